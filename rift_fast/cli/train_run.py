"""What ``python -m rift_fast.train`` runs once its options are resolved: the data, tokenizer and synonym
sets built (:class:`TrainingSetup`), every method trained (:class:`TrainedMethod`), each evaluated on the
test pool and the results written (:mod:`rift_fast.cli.train_results`); with ``--seeds``, one such run per
seed and the summary over seeds."""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rift_fast.cli.common import init_distributed, load_synonym_index
from rift_fast.cli.protocol_arguments import recipe_options
from rift_fast.cli.train_results import SEED_FOLDER, write_results, write_seed_summary
from rift_fast.core.settings_diff import settings_differences
from rift_fast.training.presets import PRESET_FIELDS

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from rift_fast.core.records import Example, TaskData
    from rift_fast.evaluation.certification import CertificationSettings
    from rift_fast.evaluation.pool_evaluation import EvaluationSettings
    from rift_fast.synonyms import SynonymIndex
    from rift_fast.training.encoding import EncodedSplit

SEED_SETTINGS = ("method", "model", "dataset", "task", "eval_attacks", "test_examples", *PRESET_FIELDS)


@dataclass(frozen=True)
class TrainingSetup:
    """What one run builds before training, shared by every method it trains and evaluates.

    Attributes:
        rank: this process's rank (0 without torchrun).
        world: the number of processes.
        task: the dataset's splits and labels.
        pool: the test pool every method is evaluated on.
        tokenizer: the model's tokenizer.
        synonyms: the synonym sets of ``--synonyms``.
        neighbour_table: ``[V, k]`` int64 synonym token ids over the tokenizer's vocabulary, -1 padded.
        train: the encoded training examples (a ``--train-size`` sample, or all).
        dev: the encoded dev examples of model selection (``--dev-examples``).
    """

    rank: int
    world: int
    task: TaskData
    pool: list[Example]
    tokenizer: PreTrainedTokenizerBase
    synonyms: SynonymIndex
    neighbour_table: torch.Tensor
    train: EncodedSplit
    dev: EncodedSplit

    def say(self, message: str) -> None:
        """Prints ``message`` on rank 0 (the other ranks stay silent)."""
        if self.rank == 0:
            print(message)


@dataclass(frozen=True)
class TrainedMethod:
    """One method's training, as its evaluation and the results need it.

    Attributes:
        method: the defense's name (``standard``, ``ascc``, ``rift``, ...).
        best: the folder of its best checkpoint (model selection on the dev examples).
        train_seconds: the wall time of its training, in seconds.
        history: one record per epoch (the trainer's history).
        settings: its training settings, ``auto`` values resolved (e.g. the hull space).
        device: the device it was trained on.
    """

    method: str
    best: Path
    train_seconds: float
    history: list[dict]
    settings: dict
    device: torch.device

    def result_row(self, evaluation: dict) -> dict:
        """The method's row of ``results.json``: its name, training time, checkpoint, history and settings,
        then the figures of its ``evaluation`` on the test pool."""
        return {
            "method": self.method,
            "train_seconds": self.train_seconds,
            "checkpoint": str(self.best),
            "history": self.history,
            "settings": self.settings,
            **evaluation,
        }


def train_and_evaluate(args: argparse.Namespace, max_length_given: bool, distributed: bool = True) -> list[dict] | None:
    """One run: train every method of ``args.method`` with ``args.seed``, evaluate each on the test pool,
    write and print the results in ``args.output_dir``; under torchrun with DDP over every process unless
    ``distributed`` is False (this process alone). Returns the results' rows (None on ranks other than 0
    of a distributed run)."""
    rank, world = init_distributed() if distributed else (0, 1)
    started = time.perf_counter()
    setup = prepare_training(args, max_length_given, rank, world)
    trained = train_methods(args, setup)
    if world > 1:
        leave_process_group()
        if rank != 0:
            return None
    rows, evaluation = evaluate_methods(args, setup, trained)
    output_dir = Path(args.output_dir)
    markdown = write_results(output_dir, rows, args, evaluation, stratified_pool=setup.task.pool_rule is not None)
    print()
    print(markdown)
    print(
        f"results: {output_dir / 'results.md'}, {output_dir / 'results.json'}, {output_dir / 'results.png'} "
        f"(total {(time.perf_counter() - started) / 60:.1f} min)"
    )
    return rows


def prepare_training(args: argparse.Namespace, max_length_given: bool, rank: int, world: int) -> TrainingSetup:
    """Loads the data, tokenizer and synonym sets and encodes the training and dev examples; records in
    ``args`` what the results report (the data's identity, the examples used, the max length and how it
    was set, the synonym table's coverage)."""
    from rift_fast.data.sources import DatasetOptions, load_data
    from rift_fast.data.tasks import stratified_sample, test_pool
    from rift_fast.models import load_tokenizer
    from rift_fast.training.encoding import encode_examples

    say = print if rank == 0 else _silent
    task = load_data(DatasetOptions.from_args(args), seed=args.seed)
    args.data_identity = task.identity  # recorded with the results and compared when a method resumes
    train_examples = stratified_sample(task.train, args.train_size, args.seed)
    args.train_examples_used = len(train_examples)  # the results say what was used, not what was asked
    say(task.describe())
    tokenizer = load_tokenizer(args.model)
    args.max_length_rule = resolve_max_length(args, tokenizer, train_examples, given=max_length_given)
    say(f"max length {args.max_length} ({args.max_length_rule})")
    pool = test_pool(task, args.test_examples, seed=args.seed)
    synonyms, table = load_synonym_table(args, task, pool, tokenizer)
    say(f"model: {args.model} | synonyms: {synonyms.source}")  # the table's coverage is logged with it
    train = encode_examples(tokenizer, train_examples, args.max_length)
    dev = encode_examples(tokenizer, task.dev[: args.dev_examples], args.max_length)  # model selection reads no more
    return TrainingSetup(rank, world, task, pool, tokenizer, synonyms, table, train, dev)


def load_synonym_table(
    args: argparse.Namespace, task: TaskData, pool: list[Example], tokenizer: PreTrainedTokenizerBase
) -> tuple[SynonymIndex, torch.Tensor]:
    """``(the synonym sets of --synonyms, their [V, k] table over the tokenizer's vocabulary)``; records
    the table's coverage in ``args.synonym_table``."""
    from rift_fast.core.words import vocabulary

    # The words WordNet is asked about: every split the synonyms serve (training, dev, the attacked pool).
    words = vocabulary(e.text_pair or e.text for e in (*task.train, *task.dev, *pool))
    synonyms = load_synonym_index(args, words)
    table, coverage = synonyms.vocab_table_with_coverage(tokenizer, k=args.synonym_k)
    args.synonym_table = asdict(coverage)  # recorded with the settings in results.json
    return synonyms, table


def _silent(message: str) -> None:
    """Prints nothing (ranks other than 0)."""


def resolve_max_length(
    args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase, train_examples: list, given: bool
) -> str:
    """Sets ``args.max_length``: as given (``given``: on the command line) or from --task when it fits the
    model; when unset, derived from ``train_examples`` (:func:`rift_fast.data.sources.derived_max_length`).
    Returns how it was set. Raises SystemExit when a given length does not fit the model."""
    from rift_fast.data.sources import derived_max_length
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


def train_methods(args: argparse.Namespace, setup: TrainingSetup) -> list[TrainedMethod]:
    """Trains every method of ``args.method`` in turn (with --resume, each from its last checkpoint where it
    has one). Raises FileNotFoundError for --resume without any checkpoint; an earlier run's checkpoints
    without --resume are moved away (:func:`keep_earlier_run`)."""
    import torch

    from rift_fast.models import checkpoint_dir, resolve_checkpoint

    setup.say(
        f"training {', '.join(args.method)} on {args.train_examples_used} examples: {args.epochs} epochs, batch "
        f"{args.batch_size}, max length {args.max_length}, lr {args.lr}, adversary steps {args.adversary_steps}, "
        f"KL weight {args.kl_weight}, MI weight {args.mi_weight}; torch threads {torch.get_num_threads()}"
    )
    output_dir = Path(args.output_dir)
    resumable = {m for m in args.method if resolve_checkpoint(checkpoint_dir(output_dir, m, "last")) is not None}
    if setup.world > 1:  # a checkpoint on any node counts: the trainers send it to the others
        from rift_fast.attacks.sharding import all_gather

        resumable = set().union(*all_gather(resumable, setup.world))
    if args.resume and not resumable:
        raise FileNotFoundError(f"--resume: no checkpoint of {', '.join(args.method)} in {output_dir}")
    if resumable and not args.resume:
        keep_earlier_run(output_dir, [checkpoint_dir(output_dir, m, "last") for m in sorted(resumable)], setup.world)
    return [train_method(args, setup, method, method in resumable) for method in args.method]


def train_method(args: argparse.Namespace, setup: TrainingSetup, method: str, resumable: bool) -> TrainedMethod:
    """Trains ``method`` (continued from its last checkpoint under --resume when ``resumable``)."""
    from rift_fast.data.split_overlap import split_digests
    from rift_fast.training.loop import Trainer, TrainSettings

    settings = TrainSettings.for_method(
        method, **{name: getattr(args, name) for name in TrainSettings.option_names(method)}
    )
    trainer = Trainer(
        settings,
        setup.tokenizer,
        setup.train,
        setup.dev,
        setup.neighbour_table,
        Path(args.output_dir),
        len(setup.task.label_names),
        rank=setup.rank,
        world_size=setup.world,
        data_identity=setup.task.identity,
        synonyms=setup.synonyms,
        label_names=setup.task.label_names,
        split_digests=split_digests(setup.task.train, setup.task.dev, setup.task.test),
        checkpoint_steps=args.checkpoint_steps,
        token_budget=args.token_budget,
    )
    if args.resume and not resumable:
        setup.say(f"[{method}] --resume: no checkpoint yet in {trainer.last_dir}; training from the start")
    started = time.perf_counter()
    best = trainer.run(resume=args.resume and resumable)
    # The settings as trained: the hull space "auto" resolved to.
    return TrainedMethod(
        method, best, time.perf_counter() - started, trainer.history, asdict(trainer.settings), trainer.device
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


def leave_process_group() -> None:
    """Only rank 0 evaluates: once every rank has trained, the processes leave the process group instead
    of the other ranks waiting in a collective for the whole evaluation (which would outlast the
    collective's timeout)."""
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def evaluate_methods(
    args: argparse.Namespace, setup: TrainingSetup, trained: list[TrainedMethod]
) -> tuple[list[dict], EvaluationSettings]:
    """Evaluates each trained method on the test pool: ``(its results rows, the evaluation's settings)``;
    records the certification settings in ``args``."""
    from rift_fast.evaluation.certification import CertificationSettings
    from rift_fast.evaluation.pool_evaluation import EvaluationSettings

    evaluation = EvaluationSettings(
        max_length=args.max_length,
        ga_population=args.ga_population,
        ga_generations=args.ga_generations,
        seed=args.seed,
        recipes=tuple(args.eval_attacks),
        recipe_options=recipe_options(args),
        token_budget=args.token_budget,
    )
    certification = CertificationSettings(seed=args.seed)  # SAFER's published samples and Monte Carlo error
    args.certification = asdict(certification)  # recorded with the settings in results.json
    rows = [method.result_row(evaluate_method(setup, method, evaluation, certification)) for method in trained]
    return rows, evaluation


def evaluate_method(
    setup: TrainingSetup, method: TrainedMethod, evaluation: EvaluationSettings, certification: CertificationSettings
) -> dict:
    """The figures of ``method``'s best checkpoint on the test pool: clean and robust accuracies, certified
    accuracy (:func:`rift_fast.evaluation.pool_evaluation.evaluate_test_pool`, ``certified_test_pool``)."""
    from rift_fast.evaluation.pool_evaluation import certified_test_pool, evaluate_test_pool, merged_evaluations
    from rift_fast.models import load_trained_classifier

    setup.say(f"[{method.method}] evaluating {method.best} on {len(setup.pool)} test examples ...")
    model = load_trained_classifier(method.best).to(method.device)
    pool, tokenizer, synonyms = setup.pool, setup.tokenizer, setup.synonyms
    figures = evaluate_test_pool(model, tokenizer, pool, synonyms, setup.neighbour_table, evaluation)
    certified = certified_test_pool(model, tokenizer, pool, synonyms, evaluation, certification)
    return merged_evaluations(figures, certified)


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
    summary over seeds (:func:`rift_fast.cli.train_results.write_seed_summary`), written and printed. Under
    torchrun, process r runs every N-th seed from the r-th alone and rank 0 writes the summary
    (:mod:`rift_fast.training.seeds`)."""
    from rift_fast.training.seeds import gather_seed_rows, join_seed_group, seeds_of_rank

    rank, world = join_seed_group()  # under torchrun each process runs whole seeds alone
    root = Path(args.output_dir)
    per_seed = {seed: seed_rows(args, seed, root, max_length_given) for seed in seeds_of_rank(args.seeds, rank, world)}
    gathered = gather_seed_rows(per_seed, rank, world)
    if gathered is not None:
        print(write_seed_summary(root, {seed: gathered[seed] for seed in dict.fromkeys(args.seeds)}, args))


def seed_rows(args: argparse.Namespace, seed: int, root: Path, max_length_given: bool) -> list[dict]:
    """The results rows of ``seed``'s run in ``<root>/seed-N``: read back when --resume finds it evaluated,
    else trained (continued from its checkpoints under --resume) and evaluated."""
    import copy

    from rift_fast.models import checkpoint_dir, resolve_checkpoint

    seed_args = copy.deepcopy(args)
    seed_args.seed, seed_args.seeds = seed, None
    seed_args.output_dir = str(root / SEED_FOLDER.format(seed=seed))
    rows = finished_seed(seed_args) if args.resume else None
    if rows is not None:
        print(f"seed {seed}: evaluated earlier, results read from {seed_args.output_dir}/results.json")
        return rows
    checkpoints = [checkpoint_dir(Path(seed_args.output_dir), m, "last") for m in args.method]
    seed_args.resume = args.resume and any(resolve_checkpoint(c) is not None for c in checkpoints)
    print(f"seed {seed}: {'resuming' if seed_args.resume else 'training'} in {seed_args.output_dir}")
    return train_and_evaluate(seed_args, max_length_given, distributed=False) or []
