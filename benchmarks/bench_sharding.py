"""Sharing a pool among torchrun processes: the longest-first chunk queue against round-robin, side by side.

The pool mixes Rotten Tomatoes snippets (about 20 words) with long reviews (``--long-words`` words, made by
joining snippets of one label), the long ones at seeded random places in the pool. The same attack runs
twice under ``torchrun --standalone --nproc_per_node N`` on this machine: ``--sharding round-robin``
(process r takes every N-th example) and ``--sharding queue``. For each it prints the run's wall time
(the torchrun job, start to end, and the attack's session time: its slowest process), each process's
examples and wall time and the longest idle time at the end (the wait for the slowest process), and
checks that both gave the same per-example results.

    python benchmarks/bench_sharding.py --processes 2 --model embedded --attack pwws --repeats 2 \\
        --record benchmarks/results/DATE-attack-sharding.json

``--repeats`` runs the two shardings alternately that many times each (a shared machine's load moves single
jobs); ``--record`` also writes the table as a measurement record (commit, machine, load) for
``benchmarks/render_results.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rift_fast.core.atomic_io import write_text_atomically

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py


def mixed_pool(snippets: int, long_reviews: int, long_words: int, seed: int) -> list[dict]:
    """``snippets`` Rotten Tomatoes test snippets and ``long_reviews`` long texts (snippets of one label
    joined to about ``long_words`` words), shuffled with ``seed``: ``[{"text", "label"}]``."""
    from rift_fast.data.tasks import load_task

    task = load_task("rotten_tomatoes")
    rng = random.Random(seed)
    test = list(task.test)
    rng.shuffle(test)
    pool = [{"text": e.text, "label": e.label} for e in test[:snippets]]
    rest = test[snippets:]
    for k in range(long_reviews):
        label = k % 2
        words: list[str] = []
        for example in (e for e in rest if e.label == label):
            if len(words) >= long_words:
                break
            words += example.text.split()
        pool.append({"text": " ".join(words[:long_words]), "label": label})
    rng.shuffle(pool)
    return pool


def run(sharding: str, folder: Path, args: argparse.Namespace, data: Path) -> dict:
    """One torchrun job with ``--sharding sharding``: its results JSON with the job's wall seconds."""
    output = folder / sharding / "run.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.processes)]
    command += ["-m", "rift_fast.attack", "--model", args.model, "--attack", args.attack, "--sharding", sharding]
    command += ["--dataset", str(data), "--test-file", str(data), "--num-examples", str(args.snippets + args.long)]
    command += ["--examples-per-round", str(args.examples_per_round), "--output", str(output), *args.extra]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL)
    record = json.loads(output.read_text())
    return record | {"job_seconds": time.perf_counter() - started}


COLUMNS = (
    "sharding",
    "run",
    "job wall time",
    "attack wall time (slowest process)",
    "longest idle at the end",
    "forward seconds, all processes",
    "examples per process",
)


def table_row(sharding: str, repeat: int, record: dict) -> list[str]:
    """One job's cells under :data:`COLUMNS`."""
    ranks = record["ranks"]
    shares = ", ".join("{} in {:.1f} s".format(r["examples"], r["wall_seconds"]) for r in ranks)
    return [
        sharding,
        str(repeat + 1),
        f"{record['job_seconds']:.1f} s",
        f"{record['summary']['session_wall_seconds']:.1f} s",
        f"{max(r['idle_seconds'] for r in ranks):.1f} s",
        f"{sum(r['forward_seconds'] for r in ranks):.1f} s",
        shares,
    ]


def agreement(jobs: list[list[dict]]) -> tuple[bool, float]:
    """Whether every job's per-example results equal the first job's in every field but the floating-point
    ones, and the largest difference of a floating-point field between them."""
    same, gap = True, 0.0
    for job in jobs[1:]:
        same &= len(job) == len(jobs[0])
        for first, other in zip(jobs[0], job):
            same &= first.keys() == other.keys()
            for key, value in first.items():
                if isinstance(value, float) and isinstance(other.get(key), float):
                    gap = max(gap, abs(value - other[key]))
                else:
                    same &= value == other.get(key)
    return same, gap


def measurement_record(args: argparse.Namespace, caption: str, rows: list[list[str]], notes: list[str]) -> dict:
    """The run as a measurement record of ``benchmarks/results/`` (rendered by ``render_results.py``)."""
    from measure import benchmark_record, cpu_description

    return benchmark_record(
        "attack-sharding",
        "Sharing a mixed pool among torchrun processes: chunk queue against round-robin",
        "python benchmarks/bench_sharding.py " + " ".join(sys.argv[1:]),
        f"{cpu_description()}; {args.processes} processes x {args.threads} torch threads",
        [{"caption": caption, "columns": list(COLUMNS), "rows": rows}],
        order=20,
        notes=notes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--attack", default="pwws")
    parser.add_argument("--snippets", type=int, default=20)
    parser.add_argument("--long", type=int, default=4, help="long reviews in the pool")
    parser.add_argument("--long-words", type=int, default=200)
    parser.add_argument("--examples-per-round", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="jobs per sharding, the two shardings alternating")
    parser.add_argument("--record", type=Path, help="also write the table as a measurement record to this path")
    parser.add_argument("extra", nargs="*", help="more options of python -m rift_fast.attack (after --)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        data = folder / "mixed.jsonl"
        pool = mixed_pool(args.snippets, args.long, args.long_words, args.seed)
        data.write_text("".join(json.dumps(example) + "\n" for example in pool))
        for repeat in range(args.repeats):
            for sharding in ("round-robin", "queue"):
                record = run(sharding, folder / str(repeat), args, data)
                rows.append(table_row(sharding, repeat, record))
                results[(sharding, repeat)] = record["results"]
    caption = (
        f"Pool: {args.snippets} Rotten Tomatoes snippets and {args.long} reviews of {args.long_words} words at "
        f"seeded random places; {args.attack}, model {args.model}; {args.processes} processes x {args.threads} "
        "threads under torchrun --standalone; the two shardings alternate, one job each per run."
    )
    print(caption)
    print("| " + " | ".join(COLUMNS) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join("| " + " | ".join(row) + " |" for row in rows))
    same, gap = agreement(list(results.values()))
    notes = [
        f"Load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}, on {os.cpu_count()} cores.",
        f"Identical per-example outcomes (labels, adversarial texts, query counts) across every job: {same}; "
        f"largest difference of a reported probability: {gap:.1e} (which rows share a forward pass changes the "
        "kernels' order of summation).",
    ]
    print("\n".join(notes))
    if args.record:
        write_text_atomically(args.record, json.dumps(measurement_record(args, caption, rows, notes), indent=2) + "\n")


if __name__ == "__main__":
    main()
