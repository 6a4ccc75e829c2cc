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

from rift_fast.cli_help import HelpFormatter, parse_arguments, print_cached_help

if __name__ == "__main__":
    print_cached_help("train")  # --help from the cache, before the imports below load torch

import argparse
import io
import itertools
import json
import os
import re
import sys
import time
from dataclasses import Field, asdict, fields
from pathlib import Path

from rift_fast.attacks.protocol_arguments import add_recipe_arguments, recipe_options
from rift_fast.attacks.recipes import RECIPES
from rift_fast.attacks.resource_checks import check_resources
from rift_fast.cli_common import (
    add_data_arguments,
    add_model_arguments,
    add_synonym_arguments,
    configure_logging,
    init_distributed,
    load_synonym_index,
    non_negative_int,
    positive_int,
    run_command_line,
    seed_int,
)
from rift_fast.evaluation import EVALUATED_RECIPES
from rift_fast.models.classifier import EMBEDDING_OUTPUT, HULL_SPACES, WORD_EMBEDDING
from rift_fast.models.lora import LORA_DROPOUT
from rift_fast.models.pooling import POOLINGS
from rift_fast.settings_diff import settings_differences
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
    add_model_arguments(parser)
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
    add_data_arguments(parser)
    parser.set_defaults(dataset=None)
    add_synonym_arguments(parser)
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
    add_lora_arguments(parser)
    add_defense_arguments(parser)
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
    evaluation.add_argument(
        "--ga-generations", type=positive_int, help="40 as published; 20 is the common faster variant"
    )
    add_recipe_arguments(parser, "options of --eval-attacks (unset: the recipe's published value)")
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
    return parser


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


def keep_earlier_run(output_dir: Path, checkpoints: list[Path], world: int) -> None:
    """A run without --resume never overwrites an earlier run's ``checkpoints`` in ``output_dir``: the
    whole folder is renamed ``<name>.earlier-<UTC time>`` beside it and the run starts afresh. Under
    several processes, where the ranks could not agree on the rename, raises FileExistsError naming
    the checkpoints instead."""
    found = ", ".join(map(str, checkpoints))
    if world > 1:
        raise FileExistsError(
            f"checkpoints from an earlier run exist ({found}): pass --resume to continue them, or give another "
            "--output-dir (or move them away) to start over"
        )
    stem = f"{output_dir.name}.earlier-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    kept = output_dir.with_name(stem)
    for count in itertools.count(2):  # runs moved within one second: <stem>-2, <stem>-3, ...
        if not kept.exists():
            break
        kept = output_dir.with_name(f"{stem}-{count}")
    output_dir.rename(kept)
    print(f"{output_dir} held an earlier run ({found}); moved to {kept} (pass --resume to continue a run instead)")


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


def resolve_max_length(args: argparse.Namespace, tokenizer, train_examples: list, given: bool) -> str:
    """Sets ``args.max_length``: as given (``given``: on the command line) or from --task when it fits the
    model; when unset, derived from ``train_examples`` (:func:`rift_fast.data_sources.derived_max_length`).
    Returns how it was set. Raises SystemExit when a given length does not fit the model."""
    from rift_fast.data_sources import derived_max_length
    from rift_fast.models import checked_max_length, load_config, usable_max_length

    config = load_config(args.model)
    if args.max_length is None:
        usable = usable_max_length(config, tokenizer)
        args.max_length, how = derived_max_length(tokenizer, train_examples, usable, seed=args.seed)
        return f"from the data: {how}"
    try:  # the preset's length too must fit the model: settings are recorded as given, never clamped
        args.max_length = checked_max_length(args.max_length, config, tokenizer)
    except ValueError as error:
        raise SystemExit(f"--max-length {args.max_length} (given, or from --task {args.task}): {error}") from error
    return "given" if given else f"from --task {args.task}"


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


def _subsample(examples, size, seed):
    if size is None or size >= len(examples):
        return examples
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(examples, train_size=size, random_state=seed, stratify=[e.label for e in examples])
    return kept


def training_examples(args: argparse.Namespace) -> str:
    """How many training examples were used (``args.train_examples_used``), and why that many: the whole
    split, a --train-size sample, or the whole split because it is smaller than the --train-size asked."""
    used, asked = args.train_examples_used, args.train_size
    if asked is None:
        return f"{used:,} examples (the whole training split)"
    if used < asked:
        return f"{used:,} examples (the whole training split: --train-size {asked:,} asked for more)"
    return f"{used:,} examples (a sample stratified by label, --train-size)"


def write_results(
    output_dir: Path, rows: list[dict], args: argparse.Namespace, evaluation, stratified_pool: bool = False
) -> str:
    """Results JSON, Markdown table and PNG plot (``evaluation``: the EvaluationSettings of the attacks;
    ``stratified_pool``: the pool was drawn under a preset's PoolRule); returns the Markdown."""
    from rift_fast.attacks import RECIPES
    from rift_fast.evaluation import accuracy_columns, paired_comparisons
    from rift_fast.io_utils import write_bytes_atomically, write_text_atomically
    from rift_fast.training.ascc_words import ASCC_SCORING

    columns = accuracy_columns(evaluation.recipes)
    lines = [
        "| method | " + " | ".join(f"{name} acc" for _, name in columns) + " | train time |",
        "| --- | " + " | ".join("---:" for _ in columns) + " | ---: |",
    ]
    for row in rows:
        accuracies = " | ".join(figure_text(row, key) for key, _ in columns)
        lines.append(f"| {row['method']} | {accuracies} | {row['train_seconds'] / 60:.1f} min |")
    comparisons = paired_comparisons(rows, [key for key, _ in columns])
    options = evaluation.options()
    attacks = " ".join(f"{RECIPES[name].label}: {RECIPES[name].describe(options)}." for name in evaluation.recipes)
    drawn = "sampled stratified by label" if stratified_pool else "shuffled"
    origin = args.data_identity.get("splits", {}).get("test")
    test_origin = f"test split: {origin}; " if origin else "test split "
    lines += [
        "",
        f"Test pool: {args.test_examples} examples of {args.dataset} ({test_origin}{drawn} with seed "
        f"{args.seed}). {attacks} Attack search: {search_precision(rows)}. ASCC: {evaluation.ascc_steps} steps, CE, "
        f"scored on {ASCC_SCORING}. "
        f"Certified: SAFER randomized smoothing ({args.certification['samples']:,} samples, Monte Carlo error "
        f"{args.certification['mc_error']}, alpha {args.certification['alpha']}) against any substitution from "
        "the synonym sets. "
        f"Synonyms: {args.synonyms} ({args.synonym_table['words_covered']:,} of "
        f"{args.synonym_table['words_with_synonyms']:,} words with one-token synonyms). Hull space: "
        f"{', '.join(sorted({str(row['settings']['hull_space']) for row in rows}))}. Pooling: "
        f"{', '.join(sorted({str(row['settings']['pooling']) for row in rows}))}. Training precision: "
        f"{', '.join(sorted({str(row['settings']['precision']) for row in rows}))}. "
        f"Training: {training_examples(args)}, {args.epochs} epochs, batch "
        f"{args.batch_size}, max length {args.max_length}, lr {args.lr}, warm-up {args.warmup_epochs} epochs, "
        f"adversary steps {args.adversary_steps}, KL weight {args.kl_weight}, MI weight {args.mi_weight}, "
        f"seed {args.seed}. n/a: an empty test pool. [low, high]: 95% Wilson score interval (Wilson 1927).",
        *comparison_lines(comparisons, columns),
    ]
    markdown = "\n".join(lines) + "\n"
    write_text_atomically(output_dir / "results.md", markdown)
    record = {"settings": vars(args), "results": rows, "comparisons": comparisons}
    write_text_atomically(output_dir / "results.json", json.dumps(record, indent=1))
    title = f"{args.dataset}, {args.model}: {args.test_examples} test examples"
    write_bytes_atomically(output_dir / "results.png", results_plot(rows, columns, title))
    return markdown


def figure_text(row: dict, key: str) -> str:
    """A row's figure ``key`` with its 95% Wilson interval (``35.0% [29.8, 40.6]``), ``n/a`` when missing."""
    from rift_fast.attacks.runner import format_figure
    from rift_fast.statistics import format_record

    interval = row.get("intervals", {}).get(key)
    return format_record(interval) if interval is not None else format_figure(row.get(key), ".1%")


def comparison_lines(comparisons: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    """Markdown lines of the paired comparisons under the results table: one row per pair of methods, one
    column per figure (difference in points, its 95% interval, exact McNemar p); none without comparisons."""
    from rift_fast.statistics import DIFFERENCE_METHOD, MCNEMAR_METHOD, format_comparison

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


def results_plot(rows: list[dict], columns: list[tuple[str, str]], title: str) -> bytes:
    """PNG of grouped bars: one group per accuracy column, one bar per method, each with its 95% Wilson
    interval when the row has ``intervals`` (the figure widens with the methods; with more than four the
    value labels turn upright so that they stay readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rift_fast.attacks.runner import format_figure

    many = len(rows) > 4
    figure, axis = plt.subplots(figsize=(max(7.0, 2 + len(columns) * (0.45 * len(rows) + 0.5)), 4.2))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        values = [row[key] for key, _ in columns]
        intervals = [row.get("intervals", {}).get(key) or {} for key, _ in columns]
        heights = [0 if v is None else 100 * v for v in values]
        below = [h - 100 * i["low"] if i.get("low") is not None else 0 for h, i in zip(heights, intervals)]
        above = [100 * i["high"] - h if i.get("high") is not None else 0 for h, i in zip(heights, intervals)]
        bars = axis.bar(
            [i + k * width for i in range(len(columns))],
            heights,
            width,
            yerr=[below, above],
            capsize=2,
            error_kw={"elinewidth": 0.8},
            label=row["method"],
        )
        labels = [format_figure(None if v is None else 100 * v, ".0f") for v in values]
        axis.bar_label(bars, labels=labels, fontsize=7 if many else 8, rotation=90 if many else 0, padding=2)
    axis.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(columns))], [name for _, name in columns])
    axis.set_ylabel("accuracy on the test pool (%, bars: 95% Wilson interval)")
    axis.set_ylim(0, 110)
    axis.set_title(title)
    axis.legend(ncol=min(len(rows), 5), loc="upper center", fontsize=8, frameon=False)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    plt.close(figure)
    return image.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments("train", build_parser(), argv)
    max_length_given = args.max_length is not None
    args = resolve_settings(args)
    from rift_fast.run_lock import exclusive_run

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


def train_and_evaluate(args: argparse.Namespace, max_length_given: bool, distributed: bool = True) -> list[dict] | None:
    """One run: train every method of ``args.method`` with ``args.seed``, evaluate each on the test pool,
    write and print the results in ``args.output_dir``; under torchrun with DDP over every process unless
    ``distributed`` is False (this process alone). Returns the results' rows (None on ranks other than 0
    of a distributed run)."""
    import torch

    from rift_fast.certification import CertificationSettings
    from rift_fast.data import test_pool
    from rift_fast.data_sources import DatasetOptions, load_data
    from rift_fast.evaluation import EvaluationSettings, certified_test_pool, evaluate_test_pool, merged_evaluations
    from rift_fast.models import checkpoint_dir, load_tokenizer, load_trained_classifier, resolve_checkpoint
    from rift_fast.split_overlap import split_digests
    from rift_fast.text import vocabulary
    from rift_fast.training.loop import Trainer, TrainSettings, encode_examples

    rank, world = init_distributed() if distributed else (0, 1)
    say = print if rank == 0 else (lambda *a, **k: None)
    started = time.perf_counter()
    task = load_data(DatasetOptions.from_args(args), seed=args.seed)
    args.data_identity = task.identity  # recorded with the results and compared when a method resumes
    train_examples = _subsample(task.train, args.train_size, args.seed)
    args.train_examples_used = len(train_examples)  # the results say what was used, not what was asked
    say(task.describe())
    tokenizer = load_tokenizer(args.model)
    args.max_length_rule = resolve_max_length(args, tokenizer, train_examples, given=max_length_given)
    say(f"max length {args.max_length} ({args.max_length_rule})")
    pool = test_pool(task, args.test_examples, seed=args.seed)
    # The words WordNet is asked about: every split the synonyms serve (training, dev, the attacked pool).
    words = vocabulary(e.text_pair or e.text for e in (*task.train, *task.dev, *pool))
    synonyms = load_synonym_index(args, words)
    table, coverage = synonyms.vocab_table_with_coverage(tokenizer, k=args.synonym_k)
    args.synonym_table = asdict(coverage)  # recorded with the settings in results.json
    say(f"model: {args.model} | synonyms: {synonyms.source}")  # the table's coverage is logged with it
    train = encode_examples(tokenizer, train_examples, args.max_length)
    dev = encode_examples(tokenizer, task.dev[: args.dev_examples], args.max_length)  # model selection reads no more
    say(
        f"training {', '.join(args.method)} on {len(train_examples)} examples: {args.epochs} epochs, batch "
        f"{args.batch_size}, max length {args.max_length}, lr {args.lr}, adversary steps {args.adversary_steps}, "
        f"KL weight {args.kl_weight}, MI weight {args.mi_weight}; torch threads {torch.get_num_threads()}"
    )
    output_dir = Path(args.output_dir)
    resumable = {m for m in args.method if resolve_checkpoint(checkpoint_dir(output_dir, m, "last")) is not None}
    if world > 1:  # a checkpoint on any node counts: the trainers send it to the others
        from rift_fast.attacks.sharding import all_gather

        resumable = set().union(*all_gather(resumable, world))
    if args.resume and not resumable:
        raise FileNotFoundError(f"--resume: no checkpoint of {', '.join(args.method)} in {output_dir}")
    if resumable and not args.resume:
        keep_earlier_run(output_dir, [checkpoint_dir(output_dir, m, "last") for m in sorted(resumable)], world)
    runs = {}
    for method in args.method:
        settings = TrainSettings.for_method(
            method, **{name: getattr(args, name) for name in TrainSettings.option_names(method)}
        )
        trainer = Trainer(
            settings,
            tokenizer,
            train,
            dev,
            table,
            output_dir,
            len(task.label_names),
            rank=rank,
            world_size=world,
            data_identity=task.identity,
            synonyms=synonyms,
            label_names=task.label_names,
            split_digests=split_digests(task.train, task.dev, task.test),
            checkpoint_steps=args.checkpoint_steps,
        )
        if args.resume and method not in resumable:
            say(f"[{method}] --resume: no checkpoint yet in {trainer.last_dir}; training from the start")
        method_started = time.perf_counter()
        best = trainer.run(resume=args.resume and method in resumable)
        runs[method] = {
            "best": best,
            "train_seconds": time.perf_counter() - method_started,
            "history": trainer.history,
            "settings": asdict(trainer.settings),  # the hull space "auto" resolved to
            "device": trainer.device,
        }
        del trainer
    if world > 1:
        # Only rank 0 evaluates: the other ranks leave the process group instead of waiting in a
        # collective for the whole evaluation (which would outlast the collective's timeout).
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
        if rank != 0:
            return None
    evaluation_settings = EvaluationSettings(
        max_length=args.max_length,
        ga_population=args.ga_population,
        ga_generations=args.ga_generations,
        seed=args.seed,
        recipes=tuple(args.eval_attacks),
        recipe_options=recipe_options(args),
    )
    certification = CertificationSettings(seed=args.seed)  # SAFER's published samples and Monte Carlo error
    args.certification = asdict(certification)  # recorded with the settings in results.json
    rows = []
    for method, run in runs.items():
        say(f"[{method}] evaluating {run['best']} on {len(pool)} test examples ...")
        model = load_trained_classifier(run["best"]).to(run["device"])
        evaluation = evaluate_test_pool(model, tokenizer, pool, synonyms, table, evaluation_settings)
        certified = certified_test_pool(model, tokenizer, pool, synonyms, evaluation_settings, certification)
        evaluation = merged_evaluations(evaluation, certified)
        rows.append(
            {
                "method": method,
                "train_seconds": run["train_seconds"],
                "checkpoint": str(run["best"]),
                "history": run["history"],
                "settings": run["settings"],
                **evaluation,
            }
        )
    markdown = write_results(output_dir, rows, args, evaluation_settings, stratified_pool=task.pool_rule is not None)
    print()
    print(markdown)
    print(
        f"results: {output_dir / 'results.md'}, {output_dir / 'results.json'}, {output_dir / 'results.png'} "
        f"(total {(time.perf_counter() - started) / 60:.1f} min)"
    )
    return rows


SEED_FOLDER = "seed-{seed}"  # each seed's run in --output-dir
SEED_SETTINGS = ("method", "model", "dataset", "task", "eval_attacks", "test_examples", *PRESET_FIELDS)


def finished_seed(args: argparse.Namespace) -> list[dict] | None:
    """The rows of a seed's run that was evaluated to the end (its ``results.json``), None when there is
    none. Raises ValueError naming the settings that differ when it was run with other settings."""
    path = Path(args.output_dir) / "results.json"
    if not path.exists():
        return None
    recorded = json.loads(path.read_text())
    wanted = json.loads(json.dumps({name: getattr(args, name) for name in (*SEED_SETTINGS, "seed")}))  # as stored
    changed = settings_differences({name: recorded["settings"].get(name) for name in wanted}, wanted)
    if changed:
        raise ValueError(f"--resume: {path} was written with other settings:\n  " + "\n  ".join(changed))
    return recorded["results"]


def run_seeds(args: argparse.Namespace, max_length_given: bool) -> None:
    """``--seeds``: :func:`train_and_evaluate` once per seed in ``<output-dir>/seed-N`` (with --resume, a
    seed already evaluated is read back and a seed cut short continues from its checkpoints), then the
    summary over seeds (:func:`write_seed_summary`), written and printed. Under torchrun, process r runs
    every N-th seed from the r-th alone and rank 0 writes the summary
    (:mod:`rift_fast.training.seeds`)."""
    import copy

    from rift_fast.models import checkpoint_dir, resolve_checkpoint
    from rift_fast.training.seeds import gather_seed_rows, join_seed_group, seeds_of_rank

    rank, world = join_seed_group()  # under torchrun each process runs whole seeds alone (see seeds.py)
    root = Path(args.output_dir)
    per_seed: dict[int, list[dict]] = {}
    for seed in seeds_of_rank(args.seeds, rank, world):
        seed_args = copy.deepcopy(args)
        seed_args.seed, seed_args.seeds = seed, None
        seed_args.output_dir = str(root / SEED_FOLDER.format(seed=seed))
        rows = finished_seed(seed_args) if args.resume else None
        if rows is not None:
            print(f"seed {seed}: evaluated earlier, results read from {seed_args.output_dir}/results.json")
        else:
            checkpoints = [checkpoint_dir(Path(seed_args.output_dir), m, "last") for m in args.method]
            seed_args.resume = args.resume and any(resolve_checkpoint(c) is not None for c in checkpoints)
            print(f"seed {seed}: {'resuming' if seed_args.resume else 'training'} in {seed_args.output_dir}")
            rows = train_and_evaluate(seed_args, max_length_given, distributed=False) or []
        per_seed[seed] = rows
    gathered = gather_seed_rows(per_seed, rank, world)
    if gathered is not None:
        print(write_seed_summary(root, {seed: gathered[seed] for seed in dict.fromkeys(args.seeds)}, args))


def write_seed_summary(root: Path, per_seed: dict[int, list[dict]], args: argparse.Namespace) -> str:
    """``results.json`` and ``results.md`` in ``root`` over the seeds' rows ``per_seed``: each method's mean
    and standard deviation over seeds of each figure, and the paired comparisons pooled over seeds
    (:func:`rift_fast.statistics.pooled_paired_comparison`); the JSON keeps every seed's rows. Returns the
    Markdown."""
    from rift_fast.evaluation import accuracy_columns, comparison_pairs
    from rift_fast.io_utils import write_text_atomically
    from rift_fast.statistics import CMH_METHOD, DIFFERENCE_METHOD, mean_and_sd, pooled_paired_comparison

    columns = accuracy_columns(tuple(args.eval_attacks))
    methods = list(args.method)
    by_seed = {seed: {row["method"]: row for row in rows} for seed, rows in per_seed.items()}
    summary = {}
    for method in methods:
        summary[method] = {}
        for key, _ in columns:
            values = [by_seed[seed][method].get(key) for seed in per_seed]
            mean, sd = mean_and_sd(values)
            summary[method][key] = {"values": values, "mean": mean, "sd": sd}
    comparisons = []
    for first, second in comparison_pairs(methods):
        for key, _ in columns:
            outcomes = [
                (rows[first]["outcomes"][key], rows[second]["outcomes"][key])
                for rows in by_seed.values()
                if key in rows[first].get("outcomes", {}) and key in rows[second].get("outcomes", {})
            ]
            if len(outcomes) == len(per_seed):
                comparisons.append(
                    {"first": first, "second": second, "figure": key, **pooled_paired_comparison(outcomes)}
                )
    lines = [
        f"Over {len(per_seed)} seeds ({', '.join(map(str, per_seed))}): mean ± standard deviation (in points).",
        "",
        "| method | " + " | ".join(f"{name} acc" for _, name in columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for method in methods:
        cells = [_mean_sd_text(summary[method][key]) for key, _ in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += comparison_lines(comparisons, columns)[:-1]
    if comparisons:
        lines.append(
            f"Pooled over seeds. Interval: {DIFFERENCE_METHOD}, on the table summed over seeds. Test: {CMH_METHOD}."
        )
    lines.append(f"Each seed's table: {root}/{SEED_FOLDER.format(seed='N')}/results.md.")
    markdown = "\n".join(lines) + "\n"
    record = {
        "settings": vars(args),
        "seeds": {str(seed): rows for seed, rows in per_seed.items()},
        "summary": summary,
        "comparisons": comparisons,
    }
    write_text_atomically(root / "results.json", json.dumps(record, indent=1))
    write_text_atomically(root / "results.md", markdown)
    return markdown


def _mean_sd_text(figure: dict) -> str:
    """``35.0 ± 2.1`` (shares in points), ``35.0`` for one seed, ``n/a`` without a value."""
    if figure["mean"] is None:
        return "n/a"
    if figure["sd"] is None:
        return f"{100 * figure['mean']:.1f}"
    return f"{100 * figure['mean']:.1f} ± {100 * figure['sd']:.1f}"


if __name__ == "__main__":
    sys.exit(run_command_line(main, "python -m rift_fast.train"))
