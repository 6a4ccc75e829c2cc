"""What keeping freed host memory in the heap gives an attack on a CPU, side by side in one run.

Runs one rift_fast attack (PWWS by default) on ``--num-examples`` long reviews with the victim of
``bench_attacks.py`` (``runs/bench_victim/``), each run in a fresh process, with each allocator setting of
``--settings``: the C library's default ("default"), :func:`rift_fast.retain_freed_host_memory` (what the
command lines do, "retained") and the same with blocks over 32 MiB served from the heap too
(``large_blocks_in_heap=True``, "retained-large-in-heap"), alternating the settings ``--repeats`` times
for each search dtype. For each it reports the wall time, the
rows per second of the victim's forward, the minor page faults the process took per forward call (memory
the allocator had handed back and the forward touched again), the peak resident memory and a digest of
every result field (the allocator must change no result).

    OMP_NUM_THREADS=1 python benchmarks/bench_host_memory.py --long-reviews /tmp/long_reviews/aclImdb
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_attacks  # noqa: E402  (victim, synonyms, recipe options, thread settings, forward timer)
from measure import benchmark_record, cpu_description, write_record  # noqa: E402

from rift_fast.core.host_memory import DEFAULT_SETTING, LARGE_BLOCKS_IN_HEAP, RETAINED  # noqa: E402

SETTINGS = (DEFAULT_SETTING, RETAINED, LARGE_BLOCKS_IN_HEAP)
SETTING_NAMES = {
    DEFAULT_SETTING: "glibc default",
    RETAINED: "freed memory kept, blocks over 32 MiB mapped apart",
    LARGE_BLOCKS_IN_HEAP: "freed memory kept, every block in the heap (rift_fast's setting)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-reviews", required=True, help="an aclImdb/ folder: the attacked pool")
    parser.add_argument("--num-examples", type=int, default=2)
    parser.add_argument("--attack", default="pwws", choices=["pwws", "ga", "textfooler"])
    parser.add_argument("--search-dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting, alternating")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS, help="allocator settings")
    parser.add_argument("--victim", default=str(bench_attacks.ROOT / "runs" / "bench_victim"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    bench_attacks.add_token_budget_option(parser)
    parser.add_argument("--record", help="write the results record (benchmarks/results/*.json form) here")
    parser.add_argument("--measurement", default="host-memory", help="the record's measurement name")
    parser.add_argument("--worker", nargs=2, metavar=("SETTING", "DTYPE"), help=argparse.SUPPRESS)
    return parser


def results_digest(results: list) -> str:
    """12 hex digits of SHA-256 over every field of every result, floats included (their repr)."""
    return hashlib.sha256(json.dumps([r.__dict__ for r in results], sort_keys=True).encode()).hexdigest()[:12]


def attack_once(setting: str, dtype: str, args) -> dict:
    """One attack of the pool in this process, with ``setting``'s allocator: its figures."""
    import torch

    from rift_fast.attacks import VictimModel, build_attack
    from rift_fast.attacks.call_shape import choose_token_budget
    from rift_fast.core.host_memory import retain_freed_host_memory
    from rift_fast.data.tasks import SENTIMENT_LABELS, load_imdb, test_pool
    from rift_fast.models import load_sequence_classifier

    bench_attacks._set_threads(1)
    large = setting == LARGE_BLOCKS_IN_HEAP
    retained = retain_freed_host_memory(large_blocks_in_heap=large) if setting != DEFAULT_SETTING else False
    model, tokenizer, _ = load_sequence_classifier(args.victim, SENTIMENT_LABELS)
    victim = VictimModel(model, tokenizer, batch_size=args.batch_size, search_dtype=getattr(torch, dtype))
    pool = test_pool(load_imdb(args.long_reviews, seed=args.seed), args.num_examples, seed=args.seed)
    victim.token_budget = choose_token_budget(victim, pool, args.token_budget)
    synonyms, _ = bench_attacks.benchmark_synonyms(None, Path(tempfile.mkdtemp()))
    recipe_args = bench_attacks.build_parser().parse_args(["--seed", str(args.seed)])
    attack = build_attack(
        args.attack, victim, synonyms, is_pair=False, options=bench_attacks.recipe_options(args.attack, recipe_args)
    )
    timer = bench_attacks.victim_forward_timer(victim)
    started = time.perf_counter()
    report = attack.run(pool, victim, {}, progress=False)
    return {
        "setting": setting,
        "retained": retained,
        "dtype": dtype,
        "token_budget": victim.token_budget,
        "wall_seconds": time.perf_counter() - started,
        "rows_per_forward_second": victim.rows_scored / victim.forward_seconds,
        "page_faults_per_call": timer.page_faults / timer.calls,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "robust_accuracy": report.summary()["robust_accuracy"],
        "results_digest": results_digest(report.results),
    }


def run_worker(setting: str, dtype: str, argv: list[str]) -> dict:
    """:func:`attack_once` in a fresh process (the allocator setting lasts for a process's life)."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", setting, dtype]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {setting} {dtype} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def each_run(runs: list[dict]) -> str:
    """The wall seconds of each of ``runs``, in their order."""
    return ", ".join(f"{run['wall_seconds']:.1f}" for run in runs)


def table(runs: list[dict], dtypes: list[str], settings: list[str]) -> dict:
    """One row per dtype and setting: medians over the repeats, and the wall time over the first setting's."""
    columns = [
        "search dtype",
        "host memory",
        "token budget",
        "wall time",
        f"÷ {settings[0]}",
        "rows/s in victim forward",
        "page faults / victim call",
        "peak RSS",
        "results digest",
    ]
    rows = []
    for dtype in dtypes:
        walls = {}
        for setting in settings:
            mine = [run for run in runs if run["dtype"] == dtype and run["setting"] == setting]
            walls[setting] = statistics.median(run["wall_seconds"] for run in mine)
            rows.append(
                [
                    dtype,
                    SETTING_NAMES[setting],
                    ", ".join(sorted({str(run["token_budget"]) for run in mine})),
                    f"{walls[setting]:.1f} s ({each_run(mine)})",
                    f"{walls[setting] / walls[settings[0]]:.3f}",
                    f"{statistics.median(run['rows_per_forward_second'] for run in mine):.2f}",
                    f"{statistics.median(run['page_faults_per_call'] for run in mine):,.0f}",
                    f"{max(run['peak_rss_mib'] for run in mine):,.0f} MiB",
                    ", ".join(sorted({run["results_digest"] for run in mine})),
                ]
            )
    return {"columns": columns, "rows": rows, "align": "ll" + "r" * (len(columns) - 2)}


def run_notes(runs: list[dict]) -> list[str]:
    """The record's notes: every run in the order run, and whether every run gave the same results."""
    dtypes = {run["dtype"] for run in runs}
    agree = all(len({run["results_digest"] for run in runs if run["dtype"] == dtype}) == 1 for dtype in dtypes)
    same = "the runs of each dtype gave one results digest" if agree else "results DIFFER between runs of one dtype"
    return [
        "Runs in order: "
        + "; ".join(
            f"{run['setting']} {run['dtype']} (budget {run['token_budget']}) {run['wall_seconds']:.1f} s, "
            f"{run['rows_per_forward_second']:.2f} rows/s, {run['page_faults_per_call']:,.0f} faults a call"
            for run in runs
        )
        + ".",
        f"Each setting measures its own token budget (--token-budget auto; the call-shape cache key names the "
        f"setting); {same}.",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(attack_once(*args.worker, args)))
        return 0
    dtypes = [d for d in args.search_dtypes.split(",") if d]
    worker_argv = [a for a in argv if a not in ("--record", args.record)]
    runs = []
    for repeat in range(args.repeats):
        for setting in args.settings if repeat % 2 == 0 else args.settings[::-1]:
            for dtype in dtypes:
                runs.append(run_worker(setting, dtype, worker_argv))
                print(f"[bench] {json.dumps(runs[-1])}", flush=True)
    result = table(runs, dtypes, args.settings)
    from render_results import markdown_table

    print(markdown_table(result))
    if args.record:
        command = "OMP_NUM_THREADS=1 python benchmarks/bench_host_memory.py " + " ".join(worker_argv)
        caption = (
            f"{args.attack.upper()} on {args.num_examples} long reviews ({args.long_reviews}), victim "
            f"{Path(args.victim).name}, token budget {args.token_budget}, one torch thread, each run a fresh "
            f"process, {args.repeats} run(s) of each setting, alternating; wall time: median (each run)."
        )
        record = benchmark_record(
            args.measurement,
            "Freed host memory kept in the heap, an attack's forwards without page faults: "
            + " against ".join(SETTING_NAMES[setting] for setting in args.settings),
            command,
            cpu_description(),
            [{"caption": caption, **result}],
            notes=run_notes(runs),
            runs=runs,
        )
        write_record(Path(args.record), record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
