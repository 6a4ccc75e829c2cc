"""``python -m rift_fast.train``: robust fine-tuning (standard, ASCC, RIFT, FreeLB) of an encoder.

With no arguments it runs the embedded default: the packaged MiniLM, the embedded Rotten Tomatoes
data and the embedded synonym sets, on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from rift_fast.cli_common import add_data_arguments, add_model_arguments, add_synonym_arguments, load_synonym_index

METHODS = ("standard", "ascc", "rift", "freelb")


@dataclass(frozen=True)
class TaskPreset:
    """Published RIFT settings of a task (RIFT_SPEC), or the embedded CPU-sized ones."""

    dataset: str
    kl_weight: float
    mi_weight: float
    batch_size: int
    max_length: int
    epochs: int
    adversary_steps: int = 10
    train_size: int | None = None  # None: the whole training split


TASK_PRESETS = {
    "imdb": TaskPreset("imdb", kl_weight=10.0, mi_weight=0.1, batch_size=32, max_length=300, epochs=20),
    "snli": TaskPreset("snli", kl_weight=5.0, mi_weight=0.7, batch_size=120, max_length=80, epochs=20),
    "embedded": TaskPreset("rotten_tomatoes", kl_weight=10.0, mi_weight=0.1, batch_size=32, max_length=64,
                           epochs=2, adversary_steps=3, train_size=2000),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rift_fast.train", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--task", default="embedded", choices=sorted(TASK_PRESETS),
                        help="preset of published settings (imdb, snli) or the embedded CPU run")
    parser.add_argument("--method", nargs="+", default=None, choices=METHODS,
                        help="methods to train (default: standard and rift)")
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.set_defaults(dataset=None)
    add_synonym_arguments(parser)
    optimisation = parser.add_argument_group("optimisation (defaults from --task)")
    optimisation.add_argument("--epochs", type=int)
    optimisation.add_argument("--batch-size", type=int, help="class-balanced: batch/num_classes per class")
    optimisation.add_argument("--lr", type=float, default=2e-5, help="AdamW learning rate")
    optimisation.add_argument("--head-weight-decay", type=float, default=2e-4, help="weight decay of the heads only")
    optimisation.add_argument("--warmup-epochs", type=float, default=2.0, help="linear warm-up from lr/10")
    optimisation.add_argument("--max-length", type=int, help="tokens per input (longer inputs are truncated)")
    optimisation.add_argument("--train-size", type=int, help="use only this many training examples")
    rift = parser.add_argument_group("RIFT / ASCC (defaults from --task)")
    rift.add_argument("--kl-weight", type=float, help="weight of KL(p(x) || p(x_adv))")
    rift.add_argument("--mi-weight", type=float, help="weight of the class-conditional InfoNCE term")
    rift.add_argument("--temperature", type=float, default=0.2, help="InfoNCE temperature")
    rift.add_argument("--adversary-steps", type=int, help="Adam steps of the ASCC adversary")
    rift.add_argument("--adversary-lr", type=float, default=1.0)
    rift.add_argument("--adversary-weight-decay", type=float, default=2e-5)
    rift.add_argument("--entropy-weight", type=float, default=15.0, help="entropy penalty of the hull weights")
    rift.add_argument("--teacher-dropout", action="store_true",
                      help="keep the frozen teacher's dropout active, as the original code did")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--test-examples", type=int, default=100, help="size of the test pool (seeded shuffle)")
    evaluation.add_argument("--ga-population", type=int, default=60)
    evaluation.add_argument("--ga-generations", type=int, default=40)
    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", default="runs/embedded", help="checkpoints, results JSON/Markdown/PNG")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    return parser


def resolve_settings(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from the task preset."""
    preset = TASK_PRESETS[args.task]
    for field in ("kl_weight", "mi_weight", "batch_size", "max_length", "epochs", "adversary_steps", "train_size"):
        if getattr(args, field) is None:
            setattr(args, field, getattr(preset, field))
    if args.dataset is None:
        args.dataset = preset.dataset
    if args.method is None:
        args.method = ["standard", "rift"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = resolve_settings(build_parser().parse_args(argv))
    from rift_fast.data import load_task
    from rift_fast.models import load_sequence_classifier

    started = time.perf_counter()
    task = load_task(args.dataset, args.data_source, seed=args.seed)
    print(task.describe())
    model, tokenizer = load_sequence_classifier(args.model, num_labels=len(task.label_names))
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {args.model} ({type(model).__name__}, {parameters / 1e6:.1f} M parameters, "
          f"vocabulary {len(tokenizer)})")
    vocabulary = sorted({w for e in task.train for w in (e.text_pair or e.text).lower().split()})
    synonyms = load_synonym_index(args, vocabulary)
    table = synonyms.vocab_table(tokenizer, k=args.synonym_k)
    covered = int((table[:, 0] >= 0).sum())
    print(f"synonyms: {synonyms.source}: {synonyms.num_words_with_synonyms()} words with synonyms; "
          f"{covered} of {len(tokenizer)} tokenizer entries have single-token synonyms")
    print(f"would train {', '.join(args.method)} on {args.train_size or len(task.train)} examples: "
          f"{args.epochs} epochs, batch {args.batch_size}, max length {args.max_length}, lr {args.lr}, "
          f"KL weight {args.kl_weight}, MI weight {args.mi_weight}, {args.adversary_steps} adversary steps")
    print(f"then attack a test pool of {args.test_examples} examples (seed {args.seed}) with PWWS and GA "
          f"(population {args.ga_population}, {args.ga_generations} generations)")
    print(f"resources ready in {time.perf_counter() - started:.1f} s. Training itself is not built yet (issue #5).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
