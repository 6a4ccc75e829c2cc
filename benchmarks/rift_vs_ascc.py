"""Does RIFT's mutual-information term make models more robust than ASCC? One command trains standard
fine-tuning, ASCC, RIFT and RIFT with MI weight 0 (RIFT's whole code path with the InfoNCE term switched
off, which isolates that term) on the same seeds and the same data order, in float32, scores them with
PWWS, the GA and the ASCC attack scored on words, and reports the paired tests pooled over seeds.

    python benchmarks/rift_vs_ascc.py --seeds 0 1 2 3 4 --output-dir runs/rift_vs_ascc            # embedded, CPU
    python benchmarks/rift_vs_ascc.py --seeds 0 1 2 3 4 --output-dir runs/rift_vs_ascc_imdb \\
        --task imdb --model bert-base-uncased                                                      # BERT-base IMDB, GPU

Every option the script does not know is passed to ``python -m rift_fast.train`` (``--epochs``,
``--train-size``, ``--test-examples``, ...); the script sets ``--method``, ``--seeds``, ``--precision
float32`` and ``--eval-attacks pwws ga`` itself. It runs the training command twice per seed set: standard,
ASCC and RIFT in ``<output-dir>/main``, RIFT with ``--mi-weight 0`` in ``<output-dir>/rift-mi0``; with the
same seed both draw the same batches in the same order and attack the same test pool, so every example's
outcomes are paired across the four methods. ``--resume`` continues a killed run.

Training length: ``--epochs`` is the most epochs each method trains; the checkpoint evaluated is the epoch
of highest dev ASCC accuracy (on words), and the table shows which epoch that was per seed. Raise
``--epochs`` until the adversarially trained methods end below a training cross-entropy of 0.6 and the
chosen epoch is no longer the last one.

Writes ``<output-dir>/results.md``, ``results.json`` and ``record.json`` (the same tables as a measurement
record for ``benchmarks/results/``, rendered by ``benchmarks/render_results.py``): each method's mean ±
standard deviation over seeds of every figure, its final training cross-entropy (an adversarially
trained model whose CE has not gone below 0.6 is still in the flat regime: the run is flagged, train
longer), and for each pair that bears on the question the difference in points pooled over seeds, its
95% Newcombe interval and the Cochran-Mantel-Haenszel p-value (with each (seed, example) pair a stratum).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rift_fast.cli import train
from rift_fast.core.atomic_io import write_text_atomically
from rift_fast.evaluation.statistics import (
    CMH_METHOD,
    DIFFERENCE_METHOD,
    format_comparison,
    mean_and_sd,
    pooled_paired_comparison,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure.py
MAIN_METHODS = ("standard", "ascc", "rift")
NO_MI = "rift-mi0"  # RIFT with --mi-weight 0, run in its own folder
METHODS = (*MAIN_METHODS, NO_MI)
PAIRS = (
    ("rift", "ascc"),  # the question
    ("rift", NO_MI),  # what the MI term adds
    (NO_MI, "ascc"),  # what the rest of RIFT's code path adds
    ("ascc", "standard"),
    ("rift", "standard"),
    (NO_MI, "standard"),
)
FIGURES = (("clean_accuracy", "clean"), ("pwws_accuracy", "PWWS"), ("ga_accuracy", "GA"), ("ascc_accuracy", "ASCC"))
CURVE_KEYS = ("ce", "dev_clean_accuracy", "dev_ascc_accuracy")  # an epoch's record, averaged over seeds
FLAT_REGIME_CE = 0.6  # an adversarially trained model still above this training CE has not left the flat regime
OWN_OPTIONS = ("--method", "--seeds", "--precision", "--eval-attacks", "--output-dir", "--mi-weight")
MIN_SEEDS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(MIN_SEEDS)), help="at least 5 seeds")
    parser.add_argument("--output-dir", default="runs/rift_vs_ascc")
    parser.add_argument("--resume", action="store_true", help="continue a killed run")
    parser.add_argument(
        "--allow-few-seeds", action="store_true", help=f"accept fewer than {MIN_SEEDS} seeds (smoke tests only)"
    )
    return parser


def training_runs(args: argparse.Namespace, forwarded: list[str]) -> list[tuple[Path, list[str]]]:
    """(output folder, command line of ``python -m rift_fast.train``) of the two training runs."""
    root = Path(args.output_dir)
    common = [*forwarded, "--seeds", *map(str, args.seeds), "--precision", "float32", "--eval-attacks", "pwws", "ga"]
    common += ["--resume"] if args.resume else []
    return [
        (root / "main", [*common, "--method", *MAIN_METHODS, "--output-dir", str(root / "main")]),
        (root / NO_MI, [*common, "--method", "rift", "--mi-weight", "0", "--output-dir", str(root / NO_MI)]),
    ]


def rows_by_seed(main: Path, no_mi: Path) -> dict[str, dict[str, dict]]:
    """Per seed, each method's row: the main run's (folder ``main``), and the MI-weight-0 run's RIFT (folder
    ``no_mi``) as :data:`NO_MI`. Raises ValueError when a seed's two runs did not attack the same pool."""
    seeds: dict[str, dict[str, dict]] = {}
    for seed in json.loads((main / "results.json").read_text())["seeds"]:
        first, other = (json.loads((run / f"seed-{seed}" / "results.json").read_text()) for run in (main, no_mi))
        for name in ("seed", "data_identity", "test_examples", "max_length", "dataset", "model"):
            if first["settings"].get(name) != other["settings"].get(name):
                raise ValueError(f"seed {seed}: the two runs differ in {name}, so their outcomes are not paired")
        (rift_mi0,) = other["results"]
        seeds[seed] = {row["method"]: row for row in first["results"]} | {NO_MI: rift_mi0}
    return seeds


def chosen_epoch(history: list[dict]) -> int:
    """The epoch whose checkpoint was evaluated: the first of highest dev ASCC accuracy (on words), as the
    training loop keeps it."""
    best = max(record["dev_ascc_accuracy"] for record in history)
    return next(record["epoch"] for record in history if record["dev_ascc_accuracy"] == best)


def training_curve(histories: list[list[dict]]) -> list[dict]:
    """Per epoch, the mean over seeds of the training CE, the dev clean accuracy and the dev ASCC accuracy
    (on words): how the training length was chosen on dev."""
    epochs = min(len(history) for history in histories)
    return [
        {
            "epoch": k + 1,
            **{key: mean_and_sd([history[k].get(key) for history in histories])[0] for key in CURVE_KEYS},
        }
        for k in range(epochs)
    ]


def summarise(seeds: dict[str, dict[str, dict]]) -> dict:
    """Mean and sd over seeds of each figure and of the final training CE, and the pooled paired tests."""
    methods = {}
    for method in METHODS:
        figures = {}
        for key, _ in FIGURES:
            mean, sd = mean_and_sd([rows[method].get(key) for rows in seeds.values()])
            figures[key] = {"mean": mean, "sd": sd}
        final_ce = [rows[method]["history"][-1].get("ce") for rows in seeds.values()]
        mean, sd = mean_and_sd(final_ce)
        methods[method] = {
            "figures": figures,
            "final_training_ce": {"values": final_ce, "mean": mean, "sd": sd},
            "epoch_chosen_on_dev": [chosen_epoch(rows[method]["history"]) for rows in seeds.values()],
            "training_curve": training_curve([rows[method]["history"] for rows in seeds.values()]),
        }
    comparisons = [
        {
            "first": first,
            "second": second,
            "figure": key,
            **pooled_paired_comparison(
                [(rows[first]["outcomes"][key], rows[second]["outcomes"][key]) for rows in seeds.values()]
            ),
        }
        for first, second in PAIRS
        for key, _ in FIGURES
    ]
    return {"methods": methods, "comparisons": comparisons}


def method_rows(summary: dict) -> list[list[str]]:
    """Per method: its mean ± sd of each figure (points), final training CE and the epochs chosen on dev."""
    rows = []
    for method, record in summary["methods"].items():
        cells = [_points(record["figures"][key]) for key, _ in FIGURES]
        epochs = ", ".join(map(str, record["epoch_chosen_on_dev"]))
        rows.append([method, *cells, _plain(record["final_training_ce"]), epochs])
    return rows


def comparison_rows(summary: dict) -> list[list[str]]:
    """Per pair of :data:`PAIRS`: the pooled difference, interval and p of each figure."""
    rows = []
    for first, second in PAIRS:
        cells = {
            c["figure"]: format_comparison(c)
            for c in summary["comparisons"]
            if (c["first"], c["second"]) == (first, second)
        }
        rows.append([f"{first} - {second}", *(cells[key] for key, _ in FIGURES)])
    return rows


def flat_regime_methods(summary: dict) -> list[str]:
    """The adversarially trained methods whose mean final training CE is :data:`FLAT_REGIME_CE` or more."""
    return [
        method
        for method, record in summary["methods"].items()
        if method != "standard"
        and record["final_training_ce"]["mean"] is not None
        and record["final_training_ce"]["mean"] >= FLAT_REGIME_CE
    ]


def curve_rows(summary: dict) -> list[list[str]]:
    """Per method: each epoch's mean training CE and mean dev clean / dev ASCC accuracy."""
    rows = []
    for method, record in summary["methods"].items():
        cells = [
            f"CE {epoch['ce']:.3f}, {100 * epoch['dev_clean_accuracy']:.1f} / {100 * epoch['dev_ascc_accuracy']:.1f}"
            for epoch in record["training_curve"]
        ]
        rows.append([method, *cells])
    return rows


def tables(summary: dict, seeds: list[str]) -> list[dict]:
    """The three tables (caption, columns, rows) that both the Markdown and the record show: the figures
    over seeds, the pooled paired comparisons, the training curve."""
    epochs = min(len(record["training_curve"]) for record in summary["methods"].values())
    return [
        {
            "caption": f"Standard fine-tuning, ASCC, RIFT and RIFT with MI weight 0 over {len(seeds)} seeds "
            f"({', '.join(seeds)}), float32, same data order per seed: mean ± standard deviation over seeds, in "
            "points; final training CE: the last epoch's mean; epoch chosen on dev: per seed, the epoch of "
            "highest dev ASCC accuracy (on words), whose checkpoint was evaluated.",
            "columns": ["method", *(f"{name} acc" for _, name in FIGURES), "final training CE", "epoch chosen on dev"],
            "rows": method_rows(summary),
        },
        {
            "caption": "Paired comparisons pooled over seeds (first - second, in points [95% interval], p). "
            f"Interval: {DIFFERENCE_METHOD}, on the table summed over seeds. Test: {CMH_METHOD}.",
            "columns": ["methods", *(name for _, name in FIGURES)],
            "rows": comparison_rows(summary),
        },
        {
            "caption": "How the training length was chosen on dev: per epoch, the mean over seeds of the training "
            "cross-entropy, and of the dev clean / dev ASCC accuracy (on words), in points.",
            "columns": ["method", *(f"epoch {k}" for k in range(1, epochs + 1))],
            "rows": curve_rows(summary),
        },
    ]


def flat_regime_warning(summary: dict) -> list[str]:
    flat = flat_regime_methods(summary)
    if not flat:
        return []
    return [
        f"WARNING: {', '.join(flat)} ended with a mean training cross-entropy of {FLAT_REGIME_CE} or more: still "
        "in the flat regime; train longer (--epochs) before reading the comparisons."
    ]


def markdown(summary: dict, seeds: list[str], command: str) -> str:
    """The experiment's tables: mean ± sd per method, then the pooled paired comparisons."""
    lines = [f"Command: `{command}`", ""]
    for table in tables(summary, seeds):
        lines += [
            table["caption"],
            "",
            "| " + " | ".join(table["columns"]) + " |",
            "| --- | " + " | ".join("---:" for _ in table["columns"][1:]) + " |",
            *("| " + " | ".join(row) + " |" for row in table["rows"]),
            "",
        ]
    return "\n".join(lines + flat_regime_warning(summary)) + "\n"


def measurement_record(summary: dict, seeds: list[str], command: str) -> dict:
    """The run as a measurement record of ``benchmarks/results/`` (rendered by ``render_results.py``):
    the three tables, the command, the commit of this checkout, the machine and the flat-regime warning."""
    import torch
    from measure import benchmark_record, cpu_description

    return benchmark_record(
        "rift-vs-ascc",
        "RIFT against ASCC: the MI term isolated, over seeds, with paired tests",
        command,
        f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        tables(summary, seeds),
        order=0,
        topic="training",
        notes=flat_regime_warning(summary),
    )


def _points(figure: dict) -> str:
    if figure["mean"] is None:
        return "n/a"
    spread = "" if figure["sd"] is None else f" ± {100 * figure['sd']:.1f}"
    return f"{100 * figure['mean']:.1f}{spread}"


def _plain(figure: dict) -> str:
    if figure["mean"] is None:
        return "n/a"
    return f"{figure['mean']:.3f}" + ("" if figure["sd"] is None else f" ± {figure['sd']:.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, forwarded = build_parser().parse_known_args(argv)
    taken = sorted({option for option in forwarded if option.split("=")[0] in OWN_OPTIONS})
    if taken:
        raise SystemExit(f"{', '.join(taken)}: set by this script (see --help); give the others only")
    if len(set(args.seeds)) < MIN_SEEDS and not args.allow_few_seeds:
        raise SystemExit(f"--seeds: at least {MIN_SEEDS} distinct seeds, got {len(set(args.seeds))}")
    folders = []
    for folder, train_argv in training_runs(args, forwarded):
        print(f"python -m rift_fast.train {' '.join(train_argv)}")
        train.main(train_argv)
        folders.append(folder)
    seeds = rows_by_seed(*folders)
    summary = summarise(seeds)
    command = "python benchmarks/rift_vs_ascc.py " + " ".join(argv)
    text = markdown(summary, list(seeds), command)
    root = Path(args.output_dir)
    write_text_atomically(root / "results.md", text)
    write_text_atomically(root / "results.json", json.dumps({"command": command, **summary}, indent=1))
    record = measurement_record(summary, list(seeds), command)
    write_text_atomically(root / "record.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
