"""``python -m rift_fast eval`` (clean accuracy of a model on a pool) and ``python -m rift_fast list``
(what the registries hold). Command-line layer: the library never imports this module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rift_fast.cli.help import HelpFormatter, parse_arguments

EVAL_DESCRIPTION = """Clean accuracy of a model on a pool of examples: the share of the pool the model classifies
correctly, with the count, and nothing attacked. --model takes a folder written by python -m
rift_fast.train, a sequence classifier with its head or an encoder (which gets an untrained head)."""
LIST_DESCRIPTION = "What the registries hold: attack recipes, defenses, task and dataset presets, encoder families."
LIST_SECTIONS = ("recipes", "defenses", "tasks", "datasets", "models")


def build_eval_parser() -> argparse.ArgumentParser:
    """The options of ``python -m rift_fast eval``."""
    from rift_fast.cli.common import (
        add_data_arguments,
        add_model_arguments,
        add_token_budget_argument,
        positive_int,
    )
    from rift_fast.data.tasks import EVALUATED_SPLITS
    from rift_fast.models.pooling import POOLINGS

    parser = argparse.ArgumentParser(
        prog="python -m rift_fast eval",
        usage="%(prog)s [options]",
        description=EVAL_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--pooling", choices=POOLINGS, help="refuse a rift_fast checkpoint trained otherwise")
    add_data_arguments(parser)
    pool = parser.add_argument_group("pool")
    pool.add_argument("--split", default="test", choices=EVALUATED_SPLITS, help="split the pool is drawn from")
    pool.add_argument(
        "--num-examples", type=positive_int, help="size of the pool (unset: the whole split), drawn with --seed"
    )
    pool.add_argument("--max-length", type=positive_int, help="tokens per input (unset: what the model allows)")
    pool.add_argument("--batch-size", type=positive_int, default=64, help="examples per forward pass")
    add_token_budget_argument(pool)
    pool.add_argument("--output", help="also write the figures to this JSON file")
    return parser


def clean_accuracy_record(args: argparse.Namespace) -> dict:
    """``{"correct", "examples", "clean_accuracy", ...}`` of the model and pool ``args`` name."""
    import numpy as np
    import torch

    from rift_fast.attacks import VictimModel
    from rift_fast.attacks.call_shape import choose_token_budget
    from rift_fast.data.sources import DatasetOptions, load_data
    from rift_fast.data.tasks import test_pool
    from rift_fast.evaluation.statistics import Proportion
    from rift_fast.models import load_sequence_classifier

    torch.manual_seed(args.seed)  # as the attack command: a head missing from the checkpoint is drawn alike
    task = load_data(DatasetOptions.from_args(args), seed=args.seed)
    size = args.num_examples or len(getattr(task, args.split))
    pool = test_pool(task, size, seed=args.seed, split=args.split)
    model, tokenizer, labels = load_sequence_classifier(args.model, task.label_names, args.pooling)
    victim = VictimModel(model, tokenizer, max_length=args.max_length, batch_size=args.batch_size)
    victim.token_budget = choose_token_budget(victim, pool, args.token_budget)
    predicted = victim.probabilities([(e.text, e.text_pair) for e in pool], exact=True).argmax(axis=1)
    correct = int(np.sum(predicted == np.array([e.label for e in pool])))
    return {
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "seed": args.seed,
        "examples": len(pool),
        "correct": correct,
        "clean_accuracy": correct / len(pool),
        "clean_accuracy_interval": Proportion(correct, len(pool)).record(),
        "labels": labels.describe(),
    }


def eval_main(argv: list[str] | None = None) -> int:
    """``python -m rift_fast eval``: prints (and with ``--output`` writes) the clean accuracy."""
    from rift_fast.cli.common import configure_logging
    from rift_fast.core.atomic_io import write_text_atomically
    from rift_fast.evaluation.statistics import format_record

    args = parse_arguments("eval", build_eval_parser(), argv)
    configure_logging()
    record = clean_accuracy_record(args)
    print(
        f"Clean accuracy of {record['model']}: {format_record(record['clean_accuracy_interval'])} "
        f"({record['correct']} of "
        f"{record['examples']} {record['split']} examples of {record['dataset']}, seed {record['seed']})"
    )
    if args.output:
        write_text_atomically(Path(args.output), json.dumps(record, indent=1))
        print(f"written: {args.output}")
    return 0


def registry_lines(section: str) -> list[str]:
    """One line per entry of the registry ``section`` (one of :data:`LIST_SECTIONS`): ``name  summary``."""
    if section == "recipes":
        from rift_fast.attacks.recipes import RECIPES

        entries = {name: recipe.summary for name, recipe in RECIPES.items()}
    elif section == "defenses":
        from rift_fast.training.defenses import DEFENSES

        entries = {name: defense.summary for name, defense in DEFENSES.items()}
    elif section == "tasks":
        from rift_fast.training.presets import TASK_PRESETS

        entries = {
            name: f"{preset.dataset}: {preset.epochs} epochs, batch {preset.batch_size}, max length "
            f"{preset.max_length}, lr {preset.lr}, {preset.train_size or 'all'} training examples, test pool "
            f"{preset.test_examples}, attacks {' '.join(preset.eval_attacks)}"
            for name, preset in TASK_PRESETS.items()
        }
    elif section == "datasets":
        from rift_fast.data.sources import DATASET_PRESETS
        from rift_fast.data.tasks import TASK_LOADERS

        entries = {name: "task with its own loader" for name in TASK_LOADERS}
        entries |= {name: preset.reference for name, preset in DATASET_PRESETS.items()}
    elif section == "models":
        from rift_fast.models.classifier import ENCODER_FAMILIES

        entries = dict(ENCODER_FAMILIES)
    else:
        raise ValueError(f"unknown section {section!r}; one of {', '.join(LIST_SECTIONS)}")
    width = max(map(len, entries))
    return [f"  {name:<{width}}  {entries[name]}" for name in sorted(entries)]


def list_main(argv: list[str] | None = None) -> int:
    """``python -m rift_fast list [SECTION ...]``: the registries, one line per entry."""
    parser = argparse.ArgumentParser(
        prog="python -m rift_fast list", description=LIST_DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(LIST_SECTIONS)} (unset: all)")
    args = parse_arguments("list", parser, argv)
    unknown = [section for section in args.sections if section not in LIST_SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(LIST_SECTIONS)}")
    for section in args.sections or LIST_SECTIONS:
        print(f"{section}:")
        print("\n".join(registry_lines(section)))
    return 0
