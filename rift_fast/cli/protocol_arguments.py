"""Command-line options of the protocols and of the recipes (``python -m rift_fast.attack``), one flag per
option of the registered recipes' options dataclasses (:func:`rift_fast.attacks.recipes.recipe_option_fields`):
each unset option takes the protocol's value, then the recipe's published default."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from rift_fast.attacks.protocols import PROTOCOLS, protocol
from rift_fast.attacks.recipes import RecipeOptions, recipe_option_fields
from rift_fast.attacks.recipes.greedy import refuse_unenforced_options
from rift_fast.cli.common import positive_int
from rift_fast.core.records import TaskData
from rift_fast.data.tasks import EVALUATED_SPLITS

LOGGER = logging.getLogger(__name__)


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """``--protocol`` and the recipe options of :func:`add_recipe_arguments`."""
    group = add_recipe_arguments(parser, "unset options take the protocol's value, then the recipe's published one")
    group.add_argument(
        "--protocol",
        default="rift",
        choices=sorted(PROTOCOLS),
        help="; ".join(f"{name}: {p.source}" for name, p in sorted(PROTOCOLS.items())),
    )


def add_recipe_arguments(parser: argparse.ArgumentParser, description: str) -> argparse._ArgumentGroup:
    """One flag per recipe option (``max_edit_distance`` -> ``--max-edit-distance``; unset: None), its type
    and help from the option's field, in a new group of ``parser``; options the commands declare themselves
    (``flag=False``: ``--seed``, ``--ga-population``, ...) are left out. Returns the group."""
    group = parser.add_argument_group("protocols, TextFooler, DeepWordBug, BERT-Attack and BAE", description)
    for name, option in recipe_option_fields().items():
        if option.metadata["flag"]:
            _add_option_flag(group, name, option)
    return group


def _add_option_flag(group: argparse._ArgumentGroup, name: str, option: dataclasses.Field) -> None:
    """The flag of recipe option ``name``: a switch for a bool, else a value of the option's type."""
    flag, help_text = "--" + name.replace("_", "-"), option.metadata["help"]
    if option.metadata["type"] is bool:
        group.add_argument(flag, action="store_const", const=True, default=None, help=help_text)
        return
    value_type = positive_int if option.metadata["positive"] else option.metadata["type"]
    group.add_argument(flag, type=value_type, default=None, choices=option.metadata["choices"], help=help_text)


def given_options(args: argparse.Namespace) -> dict:
    """The recipe options ``args`` hold (its attributes named as options; None: unset)."""
    return {name: getattr(args, name, None) for name in recipe_option_fields()}


def recipe_options(args: argparse.Namespace) -> RecipeOptions:
    """:class:`RecipeOptions` from the options ``args`` sets (those it lacks or leaves None keep their default)."""
    return RecipeOptions(**{name: value for name, value in given_options(args).items() if value is not None})


def apply_protocol(args: argparse.Namespace, task: TaskData) -> tuple[TaskData, RecipeOptions]:
    """The task with the protocol's length rule applied to its evaluated splits, and the recipe options
    (the protocol's values under the explicit ones). Sets ``args.num_examples`` to the protocol's pool size
    (at most the split) when unset, and ``args.protocol_settings`` for the run record. Raises ValueError
    for an option the chosen recipe does not enforce."""
    chosen = protocol(args.protocol)
    options = chosen.recipe_options(given_options(args))
    refuse_unenforced_options(args.attack, options)
    kept = {split: [e for e in getattr(task, split) if chosen.admits(e)] for split in EVALUATED_SPLITS}
    before = len(getattr(task, args.split))
    if len(kept[args.split]) < before:
        LOGGER.info(
            "--protocol %s: %d of the %d %s examples have at most %d space-separated tokens and are left out",
            chosen.name,
            before - len(kept[args.split]),
            before,
            args.split,
            chosen.min_tokens,
        )
    task = dataclasses.replace(task, test=kept["test"], dev=kept["dev"])
    if args.num_examples is None and chosen.pool_size is not None:
        args.num_examples = min(chosen.pool_size, len(kept[args.split]))
    args.protocol_settings = {**chosen.describe(), "split_size_after_length_rule": len(kept[args.split])}
    return task, options


def check_attack_resources(args: argparse.Namespace) -> None:
    """Raises :class:`rift_fast.attacks.resource_checks.MissingResourcesError` naming each resource that
    the ``--attack`` recipe with the protocol's and the given options, or the ``--synonyms`` source, needs
    and that is not installed, with the command that installs it (before any data or model loads)."""
    from rift_fast.attacks.resource_checks import check_resources

    options = protocol(args.protocol).recipe_options(given_options(args))
    check_resources([args.attack], options, args.synonyms)
