"""``python -m rift_fast.train``: robust fine-tuning of an encoder by one or more defenses (standard,
ASCC, RIFT by default; ``python -m rift_fast list`` shows all), then evaluation of each on the test pool:
clean accuracy, robust accuracy under the --eval-attacks recipes and the ASCC attack, SAFER certified
accuracy.

With no arguments it runs the embedded default on the CPU: the packaged MiniLM, the embedded Rotten
Tomatoes data and synonym sets; it trains standard fine-tuning, ASCC and RIFT, attacks with PWWS and
prints one table. ``--task imdb|snli`` selects the published RIFT settings. ``--dataset`` trains on
another dataset (a preset, hf:NAME, or CSV / TSV / JSONL files with a column mapping) with the --task
settings; its max length, unless given, comes from the data (the 95th percentile of the token lengths,
capped by the model). ``torchrun --nproc_per_node N -m rift_fast.train ...`` trains with
DistributedDataParallel.

Every figure of the table carries its 95% Wilson interval, and the paired comparisons (each defense
against standard, RIFT against ASCC: difference in points with its interval, exact McNemar p) are
printed under it. ``--seeds 0 1 2`` runs everything once per seed and pools the seeds.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import Field, fields
from pathlib import Path

from rift_fast.attacks.recipes import RECIPES
from rift_fast.attacks.resource_checks import check_resources
from rift_fast.cli.common import (
    add_data_arguments,
    add_model_arguments,
    add_synonym_arguments,
    add_token_budget_argument,
    configure_logging,
    non_negative_int,
    positive_int,
    seed_int,
)
from rift_fast.cli.help import HelpFormatter, parse_arguments
from rift_fast.cli.protocol_arguments import add_recipe_arguments, recipe_options
from rift_fast.cli.train_run import run_seeds, train_and_evaluate
from rift_fast.evaluation.pool_evaluation import EVALUATED_RECIPES
from rift_fast.models.classifier import EMBEDDING_OUTPUT, HULL_SPACES, WORD_EMBEDDING
from rift_fast.models.lora import LORA_DROPOUT
from rift_fast.models.pooling import POOLINGS
from rift_fast.training.defenses import DEFENSES
from rift_fast.training.loop import HEAD_WEIGHT_DECAY
from rift_fast.training.precision import PRECISIONS
from rift_fast.training.presets import PRESET_FIELDS, TASK_PRESETS

DEFAULT_METHODS = ["standard", "ascc", "rift"]
ALL_METHODS = "all"  # --method all: every registered defense, the default ones first


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rift_fast.train", usage="%(prog)s [options]", description=__doc__, formatter_class=HelpFormatter
    )
    add_method_arguments(parser)
    add_model_arguments(parser)
    add_encoder_arguments(parser)
    add_data_arguments(parser)
    parser.set_defaults(dataset=None)
    add_synonym_arguments(parser)
    add_optimisation_arguments(parser)
    add_lora_arguments(parser)
    add_defense_arguments(parser)
    add_evaluation_arguments(parser)
    add_recipe_arguments(parser, "options of --eval-attacks (unset: the recipe's published value)")
    add_run_arguments(parser)
    return parser


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task`` (the preset of settings) and ``--method`` (the defenses trained)."""
    parser.add_argument(
        "--task",
        default="embedded",
        choices=sorted(TASK_PRESETS),
        help="preset of published settings (imdb, snli) or the embedded CPU run (default)",
    )
    parser.add_argument(
        "--method",
        nargs="+",
        default=DEFAULT_METHODS,
        choices=[*sorted(DEFENSES), ALL_METHODS],
        help=f"methods to train, one after the other (default: {' '.join(DEFAULT_METHODS)}; {ALL_METHODS}: every "
        "registered one): " + "; ".join(f"{name}: {defense.summary}" for name, defense in sorted(DEFENSES.items())),
    )


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the hull is built, the sentence feature and the training precision."""
    parser.add_argument(
        "--hull-space",
        default="auto",
        choices=HULL_SPACES,
        help=f"where the ASCC/RIFT hull is built: {EMBEDDING_OUTPUT} = over the embedding-layer output "
        f"(RIFT's construction; BERT-like embedding layers), {WORD_EMBEDDING} = over the word embeddings, the "
        f"model adding positions and types (ASCC's construction for other encoders); auto (default): "
        f"{EMBEDDING_OUTPUT} where the embedding layer is BERT-like, else {WORD_EMBEDDING}",
    )
    parser.add_argument(
        "--pooling",
        default="auto",
        choices=POOLINGS,
        help="the sentence feature of the classifier and of RIFT's teacher: pooler = the encoder's pooler "
        "(pre-trained by BERT's next-sentence prediction), cls = the first token's state, mean = the masked "
        "mean of the last states (sentence-transformers models), last = the last non-padding token's state "
        "(decoder-only models); auto (default): last for a decoder-only model, else a sentence-transformers "
        "pooling config if the model has one, else a pre-trained pooler, else the architecture's own",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="training step autocast: auto (default) = bfloat16 where the device runs bf16 natively (CUDA "
        "sm80+, CPUs with AVX512-BF16/AMX), else float32. Evaluation scores in float32; where bf16 is native "
        "its attacks search with a bf16 copy of the model and re-score every verdict in float32",
    )


def add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    """Epochs, batch, learning rate, warm-up, max length and training examples (unset: from --task)."""
    optimisation = parser.add_argument_group("optimisation (unset: from --task)")
    optimisation.add_argument("--epochs", type=positive_int)
    optimisation.add_argument(
        "--batch-size", type=positive_int, help="global, class-balanced: batch/num_classes per class"
    )
    optimisation.add_argument("--lr", type=float, help="AdamW learning rate (2e-5 in RIFT)")
    optimisation.add_argument(
        "--head-weight-decay", type=float, default=HEAD_WEIGHT_DECAY, help="weight decay of the heads only"
    )
    optimisation.add_argument("--warmup-epochs", type=float, help="linear warm-up from lr/10 (2 in RIFT)")
    optimisation.add_argument(
        "--max-length",
        type=positive_int,
        help="tokens per input (longer inputs are truncated); at most what the model's positions and tokenizer allow",
    )
    optimisation.add_argument(
        "--train-size", type=positive_int, help="use only this many training examples (stratified)"
    )
    optimisation.add_argument(
        "--length-grouped-batches",
        type=non_negative_int,
        help="batches of similar lengths, sorted within groups of this many batches (0: random batches, as RIFT)",
    )


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """Model selection on dev examples, the test pool and the recipes run on it (unset: from --task)."""
    evaluation = parser.add_argument_group("evaluation (unset: from --task)")
    evaluation.add_argument(
        "--dev-examples", type=positive_int, help="dev examples for model selection (ASCC robust acc)"
    )
    evaluation.add_argument(
        "--dev-adversary-steps", type=non_negative_int, help="ASCC steps of the dev evaluation (10 in RIFT)"
    )
    evaluation.add_argument("--test-examples", type=positive_int, help="size of the test pool (seeded shuffle)")
    evaluation.add_argument(
        "--eval-attacks",
        nargs="+",
        choices=sorted(RECIPES),
        help=f"recipes run on the test pool (unset: from --task; {' '.join(EVALUATED_RECIPES)} is RIFT's protocol, "
        "the embedded run takes pwws alone to fit its time; their options below)",
    )
    evaluation.add_argument("--ga-population", type=positive_int)
    add_token_budget_argument(evaluation)
    evaluation.add_argument(
        "--ga-generations", type=positive_int, help="40 as published; 20 is the common faster variant"
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The output folder, ``--seeds``, ``--resume`` and ``--checkpoint-steps``."""
    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", default=None, help="checkpoints and results (default runs/<task>)")
    run.add_argument(
        "--seeds",
        nargs="+",
        type=seed_int,
        help="train and evaluate every method once per seed (each a full run with --seed N, in <output-dir>/"
        "seed-N), then report the mean and standard deviation over seeds and the paired comparisons pooled "
        "over seeds (Cochran-Mantel-Haenszel); with --resume, seeds already evaluated are read back. Under "
        "torchrun the seeds are dealt out to the processes, each running its seeds alone; rank 0 pools them",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue each method from its last checkpoint (an epoch end, or within an epoch with "
        "--checkpoint-steps), on any number of processes; methods without one start from the beginning",
    )
    run.add_argument(
        "--checkpoint-steps",
        type=non_negative_int,
        default=0,
        help="also write the last checkpoint every this many optimisation steps within an epoch (0, default: "
        "at epoch ends only); --resume then continues with the epoch's remaining samples",
    )


def add_lora_arguments(parser: argparse.ArgumentParser) -> None:
    """``--lora-rank`` and its alpha, dropout and target modules; ``--gradient-checkpointing``."""
    lora = parser.add_argument_group("LoRA adapters and memory (for large models)")
    lora.add_argument(
        "--lora-rank",
        type=non_negative_int,
        default=0,
        help="train LoRA adapters of this rank and the heads only, the base model frozen (0, default: the whole "
        "model); RIFT's teacher is then the base model with the adapters switched off, not a copy",
    )
    lora.add_argument("--lora-alpha", type=float, default=0.0, help="LoRA alpha (default: twice the rank)")
    lora.add_argument(
        "--lora-dropout", type=float, default=LORA_DROPOUT, help=f"dropout on the adapters' input ({LORA_DROPOUT})"
    )
    lora.add_argument(
        "--lora-targets",
        default="",
        help="comma-separated names of the modules to adapt (default: the model family's attention "
        "projections, printed at the start; a name the model lacks is refused, listing those it has)",
    )
    lora.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute each layer's activations in the backward pass instead of keeping them (less memory)",
    )


def defense_options() -> dict[str, tuple[Field, list[str]]]:
    """Every option of the registered defenses' settings: name -> (its field, the defenses that take it).
    Raises ValueError when two defenses declare one option with different defaults."""
    options: dict[str, tuple[Field, list[str]]] = {}
    for name, defense in sorted(DEFENSES.items()):
        for option in fields(defense.settings_type):
            known, users = options.setdefault(option.name, (option, []))
            if known.default != option.default:
                raise ValueError(
                    f"option {option.name} has the default {known.default} in {users} but {option.default} in {name}"
                )
            users.append(name)
    return options


def add_defense_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per field of the registered defenses' settings (unset: from --task, else the default)."""
    group = parser.add_argument_group("method settings (unset: from --task, else the published default)")
    for name, (option, users) in defense_options().items():
        help_text = f"{option.metadata.get('help', name)} ({', '.join(users)}; default {option.default})"
        flag = "--" + name.replace("_", "-")
        if option.type in (bool, "bool"):
            group.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            group.add_argument(
                flag, type=type(option.default), default=None, help=help_text, choices=option.metadata.get("choices")
            )


def resolve_settings(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from the task preset, then from the defenses' defaults. On a dataset
    other than the preset's, ``max_length`` stays None (derived from the data once the tokenizer is
    loaded) and the default output folder is ``runs/<task>-<dataset>``."""
    preset = TASK_PRESETS[args.task]
    own_dataset = args.dataset in (None, preset.dataset)
    for name in PRESET_FIELDS:
        if getattr(args, name) is None and (own_dataset or name != "max_length"):
            setattr(args, name, getattr(preset, name))
    for name, (option, _) in defense_options().items():
        if getattr(args, name) is None:
            setattr(args, name, option.default)
    if args.dataset is None:
        args.dataset = preset.dataset
    if args.output_dir is None:
        dataset_slug = re.sub(r"[^A-Za-z0-9._-]+", "_", args.dataset).strip("_")
        args.output_dir = f"runs/{args.task}" if own_dataset else f"runs/{args.task}-{dataset_slug}"
    return args


def expand_methods(methods: list[str]) -> list[str]:
    """``methods`` with ``all`` replaced by every registered defense (the default methods first).
    Raises SystemExit when a method is listed twice (both runs would write one checkpoint folder
    and one row of results)."""
    if ALL_METHODS in methods:
        if methods != [ALL_METHODS]:
            raise SystemExit(f"--method {ALL_METHODS} trains every method; give it alone, not with {methods}")
        return [*DEFAULT_METHODS, *sorted(set(DEFENSES) - set(DEFAULT_METHODS))]
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise SystemExit(
            f"--method lists {', '.join(repeated)} more than once; each method writes its own "
            "folder in --output-dir, so list each once"
        )
    return methods


def main(argv: list[str] | None = None) -> int:
    """``python -m rift_fast.train``: parses ``argv`` (default: the process's arguments), resolves the
    settings and trains and evaluates with the output folder held by this run. Returns the exit status."""
    args = parse_arguments("train", build_parser(), argv)
    max_length_given = args.max_length is not None
    args = resolve_settings(args)
    from rift_fast.core.run_lock import exclusive_run

    rank = int(os.environ.get("RANK", "0"))  # torchrun's; init_distributed joins the group later
    with exclusive_run(Path(args.output_dir), f"--output-dir {args.output_dir}", rank):
        return run_training(args, max_length_given)


def run_training(args: argparse.Namespace, max_length_given: bool) -> int:
    """Training and evaluation of :func:`main` (one seed, or each of ``--seeds``) once the output folder
    is this run's."""
    configure_logging()
    check_resources(args.eval_attacks, recipe_options(args), args.synonyms)
    args.method = expand_methods(args.method)
    if args.seeds:
        run_seeds(args, max_length_given)
    else:
        train_and_evaluate(args, max_length_given)
    return 0
