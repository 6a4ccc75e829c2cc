"""Time per training step of standard, ASCC and RIFT (and FreeLB, A2T) at the same batch, side by side.

    python benchmarks/bench_train.py                      # embedded MiniLM, batch 32, length 64, CPU
    python benchmarks/bench_train.py --model bert-base-uncased --max-length 300 --adversary-steps 10  # IMDB-like

Prints milliseconds per step (median of --repeats after --warmup), tokens per second, the ratio to
standard and RIFT / ASCC (the teacher and mutual-information overhead; target <= 1.25).

A method's per-epoch work (A2T: adversarial examples for its share of the batch's examples, which the
step then trains on beside them) is done once before the timed steps, as for an epoch after the
warm-up; its time is printed apart, not counted in the step.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from measure import median_ms

from rift_fast.data import load_task
from rift_fast.models import load_tokenizer
from rift_fast.synonyms import embedded_index
from rift_fast.training.loop import Trainer, TrainSettings, collate, encode_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--adversary-steps", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["standard", "ascc", "rift", "freelb"])
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
        f"tokens/batch={tokens} adversary_steps={args.adversary_steps} torch_threads={torch.get_num_threads()}"
    )
    timings, prepared = {}, {}
    with tempfile.TemporaryDirectory() as output_dir:  # the trainers write nothing: no epoch ends here
        for method in args.methods:
            adversary = {"adversary_steps": args.adversary_steps} if method in ("ascc", "rift") else {}
            settings = TrainSettings.for_method(
                method, model=args.model, epochs=2, batch_size=args.batch_size, max_length=args.max_length, **adversary
            )
            trainer = Trainer(
                settings, tokenizer, split, split, table, output_dir, num_classes=2, progress=False, synonyms=synonyms
            )
            # The last epoch's per-epoch work, on the timed batch alone (A2T: past its clean epoch).
            prepared[method] = trainer.prepare_epoch(settings.epochs - 1, [batch["indices"].tolist()])
            # Trainer.step is the training loop's own step (FreeLB with its default settings).
            timings[method] = median_ms(lambda trainer=trainer: trainer.step(batch), args.warmup, args.repeats) / 1e3
    print("| method | ms / step | tokens / s | vs standard |")
    print("| --- | ---: | ---: | ---: |")
    for method, seconds in timings.items():
        ratio = seconds / timings["standard"] if "standard" in timings else float("nan")
        print(f"| {method} | {1000 * seconds:.0f} | {tokens / seconds:.0f} | {ratio:.2f}x |")
    for method, figures in prepared.items():
        if figures:
            print(f"{method} per-epoch work before the steps: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()))
    if "rift" in timings and "ascc" in timings:
        print(f"RIFT / ASCC = {timings['rift'] / timings['ascc']:.3f} (target <= 1.25)")


if __name__ == "__main__":
    main()
