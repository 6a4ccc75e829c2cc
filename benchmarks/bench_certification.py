"""Time SAFER certification (rift_fast.evaluation.certification) of a trained classifier on the embedded test pool.

    python benchmarks/bench_certification.py --model runs/embedded/standard/best --examples 20 \\
        --samples 1382 --mc-error 0.05      # the fewest samples for mc_error 0.05 at alpha 0.001

Prints the wall time, the examples sampled (``--sample-all``: also those whose Delta_x leaves no chance
to be certified), the random copies drawn and the distinct ones the model scored, the model rows scored
per second, the certified accuracy and the mean Delta_x, for the spliced engine (the default) and,
with --text-path, for the text path too.
"""

from __future__ import annotations

import argparse
import time

import torch

from rift_fast.attacks import VictimModel
from rift_fast.data.tasks import load_task, test_pool
from rift_fast.evaluation.certification import CONFIDENCE_ALPHA, CertificationSettings, certified_accuracy
from rift_fast.models import load_sequence_classifier
from rift_fast.synonyms import embedded_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained checkpoint folder")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1382)
    parser.add_argument("--mc-error", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=CONFIDENCE_ALPHA)
    parser.add_argument("--batch-size", type=int, default=64, help="model rows per forward pass")
    parser.add_argument("--text-path", action="store_true", help="also time the engine without token splicing")
    parser.add_argument("--sample-all", action="store_true", help="sample the examples that cannot be certified too")
    args = parser.parse_args()
    task = load_task("rotten_tomatoes")
    pool = test_pool(task, args.examples, seed=0)
    model, tokenizer, _ = load_sequence_classifier(args.model, task.label_names)
    if torch.cuda.is_available():
        model = model.cuda()
    synonyms = embedded_index()
    settings = CertificationSettings(args.samples, args.mc_error, args.alpha, skip_uncertifiable=not args.sample_all)
    print(
        f"model={args.model} examples={len(pool)} samples={args.samples} mc_error={args.mc_error} "
        f"alpha={args.alpha} device={next(model.parameters()).device} torch_threads={torch.get_num_threads()}"
    )
    print("| engine | wall s | examples sampled | copies | distinct scored | rows / s | certified acc | mean Delta_x |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for splicing in (True, False) if args.text_path else (True,):
        victim = VictimModel(model, tokenizer, batch_size=args.batch_size)
        started = time.perf_counter()
        result = certified_accuracy(victim, pool, synonyms, settings, splicing=splicing)
        seconds = time.perf_counter() - started
        distinct = sum(e.distinct for e in result.examples)
        sampled = sum(1 for e in result.examples if e.counts)
        summary = result.summary()
        print(
            f"| {'spliced' if splicing else 'text path'} | {seconds:.1f} | {sampled} | {args.samples * sampled:,} | "
            f"{distinct:,} | {victim.rows_scored / seconds:.0f} | {summary['certified_accuracy']:.1%} | "
            f"{summary['mean_delta']:.3f} |"
        )


if __name__ == "__main__":
    main()
