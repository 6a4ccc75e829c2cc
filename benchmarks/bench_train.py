"""Time per training step of every registered method at the same batch, side by side, in float32 and
with bf16 autocast.

    python benchmarks/bench_train.py                      # embedded MiniLM, batch 32, length 64, CPU
    python benchmarks/bench_train.py --methods standard ascc rift --precisions float32 bfloat16
    python benchmarks/bench_train.py --model bert-base-uncased --max-length 300 --adversary-steps 10  # IMDB-like

Prints milliseconds per step (median of --repeats after --warmup), tokens per second, the ratio to
standard in the same precision, bf16 / float32 per method, and RIFT / ASCC (the teacher and
mutual-information overhead; target <= 1.25). It says whether the device runs bf16 natively.

A method's per-epoch work (A2T: adversarial examples for its share of the batch's examples, which the
step then trains on beside them) is done once before the timed steps, as for an epoch after the
warm-up; its time is printed apart, not counted in the step.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from measure import median_ms

from rift_fast.data.tasks import load_task
from rift_fast.models import load_tokenizer
from rift_fast.synonyms import embedded_index
from rift_fast.training.defenses import DEFENSES
from rift_fast.training.loop import Trainer, TrainSettings, collate, encode_examples
from rift_fast.training.precision import BFLOAT16, FLOAT32, runs_bf16_natively


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--adversary-steps", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["standard", *sorted(set(DEFENSES) - {"standard"})])
    parser.add_argument("--precisions", nargs="+", default=[FLOAT32], choices=[FLOAT32, BFLOAT16])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    task = load_task("rotten_tomatoes")
    tokenizer = load_tokenizer(args.model)
    synonyms = embedded_index()
    table = synonyms.vocab_table(tokenizer, k=8).to(device)
    # Long enough texts so every row reaches max_length where possible.
    examples = sorted(task.train, key=lambda e: -len(e.text))[: args.batch_size * 4]
    split = encode_examples(tokenizer, examples, args.max_length)
    per_class = args.batch_size // 2
    negatives = [i for i, y in enumerate(split.labels) if y == 0][:per_class]
    positives = [i for i, y in enumerate(split.labels) if y == 1][:per_class]
    batch = collate(split, negatives + positives, tokenizer.pad_token_id, table, device)
    tokens = int(batch["attention_mask"].sum())
    print(
        f"device={device} model={args.model} batch={args.batch_size} length={batch['input_ids'].shape[1]} "
        f"tokens/batch={tokens} adversary_steps={args.adversary_steps} torch_threads={torch.get_num_threads()} "
        f"bf16 native: {runs_bf16_natively(device)}"
    )
    timings, prepared = {}, {}
    with tempfile.TemporaryDirectory() as output_dir:  # the trainers write nothing: no epoch ends here
        for method in args.methods:
            options = TrainSettings.option_names(method)
            adversary = {"adversary_steps": args.adversary_steps} if "adversary_steps" in options else {}
            for precision in args.precisions:
                settings = TrainSettings.for_method(
                    method,
                    model=args.model,
                    epochs=2,
                    batch_size=args.batch_size,
                    max_length=args.max_length,
                    precision=precision,
                    **adversary,
                )
                trainer = Trainer(
                    settings, tokenizer, split, split, table, output_dir, 2, progress=False, synonyms=synonyms
                )
                # The last epoch's per-epoch work, on the timed batch alone (A2T: past its clean epoch).
                prepared[method] = trainer.prepare_epoch(settings.epochs - 1, [batch["indices"].tolist()])
                # Trainer.step is the training loop's own step (each method with its default settings).
                step = median_ms(lambda trainer=trainer: trainer.step(batch), args.warmup, args.repeats) / 1e3
                timings[method, precision] = step
    print_table(timings, tokens, args.precisions)
    for method, figures in prepared.items():
        if figures:
            print(f"{method} per-epoch work before the steps: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()))


def print_table(timings: dict[tuple[str, str], float], tokens: int, precisions: list[str]) -> None:
    """Markdown: ms / step and tokens / s per method and precision, ratio to standard, bf16 / float32."""
    both = FLOAT32 in precisions and BFLOAT16 in precisions
    print("| method | precision | ms / step | tokens / s | vs standard |" + (" bf16 / float32 |" if both else ""))
    print("| --- | --- | ---: | ---: | ---: |" + (" ---: |" if both else ""))
    for (method, precision), seconds in timings.items():
        standard = timings.get(("standard", precision), float("nan"))
        row = f"| {method} | {precision} | {1000 * seconds:.0f} | {tokens / seconds:.0f} | {seconds / standard:.2f}x |"
        if both:
            row += f" {timings[method, BFLOAT16] / timings[method, FLOAT32]:.2f} |" if precision == BFLOAT16 else " |"
        print(row)
    for precision in precisions:
        if ("rift", precision) in timings and ("ascc", precision) in timings:
            ratio = timings["rift", precision] / timings["ascc", precision]
            print(f"RIFT / ASCC ({precision}) = {ratio:.3f} (target <= 1.25)")


if __name__ == "__main__":
    main()
