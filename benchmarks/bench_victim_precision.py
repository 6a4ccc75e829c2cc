"""Cost per row and answer drift of the attack victim in other numerics than float32.

Scores the first ``--texts`` Rotten Tomatoes test texts with the benchmark victim of
``bench_attacks.py`` (``runs/bench_victim/``; run that script once first) through
:class:`rift_fast.attacks.VictimModel` (length-sorted batches of ``--batch-size``), as:

- ``float32``: the victim itself, the reference;
- ``bfloat16``: the search copy that ``--search-dtype bfloat16`` makes (``VictimModel(search_dtype=...)``,
  ``exact_margin=0`` so that no answer is re-scored);
- ``float16`` and ``int8-dynamic`` (``torch.ao.quantization.quantize_dynamic`` on the linear layers):
  the other cheap numerics, shown for comparison (neither is offered).

Prints ms per row (median of ``--repeats`` passes), the largest |Δp| against float32 and how many
predictions change, and for float32 and bfloat16 the largest |Δp| between batches of ``--batch-size``
and batches of one (answers depend slightly on how rows are batched).

    python benchmarks/bench_victim_precision.py
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import median_ms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--victim-dir", default=str(ROOT / "runs" / "bench_victim"))
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from rift_fast.attacks import VictimModel
    from rift_fast.data.tasks import SENTIMENT_LABELS, load_task
    from rift_fast.models import load_sequence_classifier

    if not (Path(args.victim_dir) / "config.json").is_file():
        raise SystemExit(f"no victim in {args.victim_dir}: run `python benchmarks/bench_attacks.py` once first")
    model, tokenizer, _ = load_sequence_classifier(args.victim_dir, SENTIMENT_LABELS)
    queries = [(e.text, None) for e in load_task("rotten_tomatoes").test[: args.texts]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        quantized = torch.ao.quantization.quantize_dynamic(
            load_sequence_classifier(args.victim_dir, SENTIMENT_LABELS)[0].eval(), {torch.nn.Linear}, dtype=torch.qint8
        )
    victims = {
        "float32": VictimModel(model, tokenizer, batch_size=args.batch_size),
        "bfloat16": VictimModel(
            model, tokenizer, batch_size=args.batch_size, search_dtype=torch.bfloat16, exact_margin=0.0
        ),
        "float16": VictimModel(
            model, tokenizer, batch_size=args.batch_size, search_dtype=torch.float16, exact_margin=0.0
        ),
        "int8-dynamic": VictimModel(quantized, tokenizer, batch_size=args.batch_size),
    }
    tokens = np.mean([len(ids) for ids in tokenizer([q[0] for q in queries])["input_ids"]])
    print(
        f"{len(queries)} Rotten Tomatoes test texts ({tokens:.1f} tokens on average), batches of {args.batch_size}, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    print(
        "| numerics | ms / row | max abs dp vs float32 | predictions changed | max abs dp, batch "
        f"{args.batch_size} vs 1 |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    reference = victims["float32"].probabilities(queries)
    for name, victim in victims.items():
        answers = victim.probabilities(queries)
        ms = median_ms(lambda victim=victim: victim.probabilities(queries), warmup=1, repeats=args.repeats) / len(
            queries
        )
        batching = "n/a"
        if name in ("float32", "bfloat16"):
            victim.batch_size = 1
            batching = f"{np.abs(victim.probabilities(queries) - answers).max():.1e}"
            victim.batch_size = args.batch_size
        changed = int((answers.argmax(1) != reference.argmax(1)).sum())
        print(
            f"| {name} | {ms:.2f} | {np.abs(answers - reference).max():.4f} | {changed} / {len(queries)} "
            f"| {batching} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
