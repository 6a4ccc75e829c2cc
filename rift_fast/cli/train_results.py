"""The results files of ``python -m rift_fast.train`` in ``--output-dir``: ``results.json`` (the settings,
every method's row and the paired comparisons), ``results.md`` (the table with its 95% Wilson intervals,
the settings under it and the comparisons) and ``results.png``; with ``--seeds``, the summary over seeds
(mean and standard deviation, comparisons pooled over seeds) beside each seed's own folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rift_fast.evaluation.pool_evaluation import EvaluationSettings

SEED_FOLDER = "seed-{seed}"  # each seed's run in --output-dir


def write_results(
    output_dir: Path,
    rows: list[dict],
    args: argparse.Namespace,
    evaluation: EvaluationSettings,
    stratified_pool: bool = False,
) -> str:
    """Writes ``results.json``, ``results.md`` and ``results.png`` of one run in ``output_dir``.

    Args:
        output_dir: the run's folder.
        rows: one results row per method (``method``, ``train_seconds``, ``settings``, the figures, their
            ``intervals`` and ``outcomes``).
        args: the run's settings (recorded whole in ``results.json``).
        evaluation: the settings of the attacks on the test pool.
        stratified_pool: whether the pool was drawn under a preset's pool rule (stratified by label).

    Returns:
        The Markdown of ``results.md``.
    """
    from rift_fast.cli.plots import results_plot
    from rift_fast.core.atomic_io import write_bytes_atomically, write_text_atomically
    from rift_fast.evaluation.pool_evaluation import accuracy_columns, paired_comparisons

    columns = accuracy_columns(evaluation.recipes)
    lines = [
        "| method | " + " | ".join(f"{name} acc" for _, name in columns) + " | train time |",
        "| --- | " + " | ".join("---:" for _ in columns) + " | ---: |",
    ]
    for row in rows:
        accuracies = " | ".join(figure_text(row, key) for key, _ in columns)
        lines.append(f"| {row['method']} | {accuracies} | {row['train_seconds'] / 60:.1f} min |")
    comparisons = paired_comparisons(rows, [key for key, _ in columns])
    lines += ["", settings_footer(rows, args, evaluation, stratified_pool), *comparison_lines(comparisons, columns)]
    markdown = "\n".join(lines) + "\n"
    write_text_atomically(output_dir / "results.md", markdown)
    record = {"settings": vars(args), "results": rows, "comparisons": comparisons}
    write_text_atomically(output_dir / "results.json", json.dumps(record, indent=1))
    title = f"{args.dataset}, {args.model}: {args.test_examples} test examples"
    write_bytes_atomically(output_dir / "results.png", results_plot(rows, columns, title))
    return markdown


def settings_footer(
    rows: list[dict], args: argparse.Namespace, evaluation: EvaluationSettings, stratified_pool: bool
) -> str:
    """The paragraph under the results table: the test pool, the attacks, certification, synonyms and the
    training settings of the run ``args`` describes."""
    from rift_fast.attacks import RECIPES
    from rift_fast.training.ascc_words import ASCC_SCORING

    options = evaluation.options()
    attacks = " ".join(f"{RECIPES[name].label}: {RECIPES[name].describe(options)}." for name in evaluation.recipes)
    drawn = "sampled stratified by label" if stratified_pool else "shuffled"
    origin = args.data_identity.get("splits", {}).get("test")
    test_origin = f"test split: {origin}; " if origin else "test split "
    return (
        f"Test pool: {args.test_examples} examples of {args.dataset} ({test_origin}{drawn} with seed "
        f"{args.seed}). {attacks} Attack search: {search_precision(rows)}. ASCC: {evaluation.ascc_steps} steps, CE, "
        f"scored on {ASCC_SCORING}. "
        f"Certified: SAFER randomized smoothing ({args.certification['samples']:,} samples, Monte Carlo error "
        f"{args.certification['mc_error']}, alpha {args.certification['alpha']}) against any substitution from "
        "the synonym sets. "
        f"Synonyms: {args.synonyms} ({args.synonym_table['words_covered']:,} of "
        f"{args.synonym_table['words_with_synonyms']:,} words with one-token synonyms). Hull space: "
        f"{_settings_of(rows, 'hull_space')}. Pooling: {_settings_of(rows, 'pooling')}. Training precision: "
        f"{_settings_of(rows, 'precision')}. "
        f"Training: {training_examples(args)}, {args.epochs} epochs, batch "
        f"{args.batch_size}, max length {args.max_length}, lr {args.lr}, warm-up {args.warmup_epochs} epochs, "
        f"adversary steps {args.adversary_steps}, KL weight {args.kl_weight}, MI weight {args.mi_weight}, "
        f"seed {args.seed}. n/a: an empty test pool. [low, high]: 95% Wilson score interval (Wilson 1927)."
    )


def _settings_of(rows: list[dict], name: str) -> str:
    """The values of the training setting ``name`` over the rows, sorted and comma-separated."""
    return ", ".join(sorted({str(row["settings"][name]) for row in rows}))


def training_examples(args: argparse.Namespace) -> str:
    """How many training examples were used (``args.train_examples_used``), and why that many: the whole
    split, a --train-size sample, or the whole split because it is smaller than the --train-size asked."""
    used, asked = args.train_examples_used, args.train_size
    if asked is None:
        return f"{used:,} examples (the whole training split)"
    if used < asked:
        return f"{used:,} examples (the whole training split: --train-size {asked:,} asked for more)"
    return f"{used:,} examples (a sample stratified by label, --train-size)"


def figure_text(row: dict, key: str) -> str:
    """A row's figure ``key`` with its 95% Wilson interval (``35.0% [29.8, 40.6]``), ``n/a`` when missing."""
    from rift_fast.attacks.runner import format_figure
    from rift_fast.evaluation.statistics import format_record

    interval = row.get("intervals", {}).get(key)
    return format_record(interval) if interval is not None else format_figure(row.get(key), ".1%")


def comparison_lines(comparisons: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    """Markdown lines of the paired comparisons under the results table: one row per pair of methods, one
    column per figure (difference in points, its 95% interval, exact McNemar p); none without comparisons."""
    from rift_fast.evaluation.statistics import DIFFERENCE_METHOD, MCNEMAR_METHOD, format_comparison

    if not comparisons:
        return []
    shown = [(key, name) for key, name in columns if any(c["figure"] == key for c in comparisons)]
    lines = [
        "",
        "Paired comparisons on the same examples (first - second, in points [95% interval], p):",
        "",
        "| methods | " + " | ".join(name for _, name in shown) + " |",
        "| --- | " + " | ".join("---:" for _ in shown) + " |",
    ]
    for first, second in dict.fromkeys((c["first"], c["second"]) for c in comparisons):
        cells = {c["figure"]: format_comparison(c) for c in comparisons if (c["first"], c["second"]) == (first, second)}
        lines.append(f"| {first} - {second} | " + " | ".join(cells.get(key, "n/a") for key, _ in shown) + " |")
    lines += ["", f"Interval: {DIFFERENCE_METHOD}. Test: {MCNEMAR_METHOD}."]
    return lines


def search_precision(rows: list[dict]) -> str:
    """How the rows' attacks searched: float32, or bf16 with float32 verdicts."""
    dtypes = {row.get("attack_search_dtype") for row in rows}
    return "bf16 copy, every verdict re-scored in float32" if "bfloat16" in dtypes else "float32"


def write_seed_summary(root: Path, per_seed: dict[int, list[dict]], args: argparse.Namespace) -> str:
    """Writes ``results.json`` and ``results.md`` in ``root`` over the seeds' runs: each method's mean and
    standard deviation over seeds of each figure, and the paired comparisons pooled over seeds
    (:func:`rift_fast.evaluation.pool_evaluation.pooled_comparisons`); the JSON keeps every seed's rows.

    Args:
        root: the ``--output-dir`` holding each seed's folder.
        per_seed: seed -> that seed's results rows.
        args: the run's settings (recorded whole in ``results.json``).

    Returns:
        The Markdown of ``results.md``.
    """
    from rift_fast.core.atomic_io import write_text_atomically
    from rift_fast.evaluation.pool_evaluation import accuracy_columns, pooled_comparisons, seed_summary

    columns = accuracy_columns(tuple(args.eval_attacks))
    keys, methods = [key for key, _ in columns], list(args.method)
    by_seed = {seed: {row["method"]: row for row in rows} for seed, rows in per_seed.items()}
    summary = seed_summary(by_seed, methods, keys)
    comparisons = pooled_comparisons(by_seed, methods, keys)
    markdown = seed_summary_markdown(root, list(per_seed), summary, comparisons, columns)
    record = {
        "settings": vars(args),
        "seeds": {str(seed): rows for seed, rows in per_seed.items()},
        "summary": summary,
        "comparisons": comparisons,
    }
    write_text_atomically(root / "results.json", json.dumps(record, indent=1))
    write_text_atomically(root / "results.md", markdown)
    return markdown


def seed_summary_markdown(
    root: Path, seeds: list[int], summary: dict, comparisons: list[dict], columns: list[tuple[str, str]]
) -> str:
    """The table of the summary over ``seeds`` (mean ± standard deviation in points, one row per method of
    ``summary``) and the comparisons pooled over seeds under it."""
    from rift_fast.evaluation.statistics import CMH_METHOD, DIFFERENCE_METHOD

    lines = [
        f"Over {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean ± standard deviation (in points).",
        "",
        "| method | " + " | ".join(f"{name} acc" for _, name in columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for method, figures in summary.items():
        cells = [mean_sd_text(figures[key]) for key, _ in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += comparison_lines(comparisons, columns)[:-1]
    if comparisons:
        lines.append(
            f"Pooled over seeds. Interval: {DIFFERENCE_METHOD}, on the table summed over seeds. Test: {CMH_METHOD}."
        )
    lines.append(f"Each seed's table: {root}/{SEED_FOLDER.format(seed='N')}/results.md.")
    return "\n".join(lines) + "\n"


def mean_sd_text(figure: dict) -> str:
    """``35.0 ± 2.1`` (shares in points), ``35.0`` for one seed, ``n/a`` without a value."""
    if figure["mean"] is None:
        return "n/a"
    if figure["sd"] is None:
        return f"{100 * figure['mean']:.1f}"
    return f"{100 * figure['mean']:.1f} ± {100 * figure['sd']:.1f}"
