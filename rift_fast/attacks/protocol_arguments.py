"""Command-line options of the protocols and of the TextFooler / DeepWordBug / BERT-Attack / BAE recipes (``python -m
rift_fast.attack``): each unset option takes the protocol's value, then :class:`RecipeOptions`' default."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from rift_fast.attacks.greedy_recipes import POS_TAGGERS, refuse_unenforced_options
from rift_fast.attacks.protocols import PROTOCOLS, protocol
from rift_fast.attacks.recipes import RecipeOptions
from rift_fast.cli.common import positive_int
from rift_fast.core.records import TaskData
from rift_fast.data.tasks import EVALUATED_SPLITS
from rift_fast.synonyms.named_vectors import DEFAULT_WORD_VECTORS, NAMED_VECTORS

LOGGER = logging.getLogger(__name__)

# argparse destinations that are RecipeOptions fields of the same name
OPTION_ARGUMENTS = (
    "ga_population",
    "ga_generations",
    "seed",
    "max_modification_ratio",
    "synonym_k",
    "word_vectors",
    "neighbours",
    "min_cosine",
    "sentence_encoder",
    "sentence_similarity",
    "similarity_window",
    "pos_tagger",
    "max_edit_distance",
    "character_edit_draws",
    "query_budget",
    "query_budget_per_word",
    "textattack_parity",
    "mlm",
    "mlm_candidates",
    "mlm_batch_size",
)


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
    """The options of the TextFooler, DeepWordBug, BERT-Attack and BAE recipes (their resources and
    constraints), in a new group of ``parser``; returns the group."""
    group = parser.add_argument_group("protocols, TextFooler, DeepWordBug, BERT-Attack and BAE", description)
    group.add_argument(
        "--word-vectors",
        default=None,
        help=f"TextFooler's neighbours: {', '.join(sorted(NAMED_VECTORS))} (installed; unset: "
        f"{DEFAULT_WORD_VECTORS}) or a 'word v1 ... vD' text file",
    )
    group.add_argument(
        "--neighbours", type=positive_int, default=None, help="TextFooler: embedding neighbours per word (50)"
    )
    group.add_argument("--min-cosine", type=float, default=None, help="TextFooler: least embedding cosine (0.5)")
    group.add_argument(
        "--sentence-encoder", default=None, help="Hugging Face encoder name or folder ('embedded': all-MiniLM-L6-v2)"
    )
    group.add_argument(
        "--sentence-similarity",
        type=float,
        default=None,
        help="least sentence similarity, in the recipe's metric (TextFooler 0.8408 angular, BERT-Attack 0.2 cosine, "
        "BAE 0.9363 cosine)",
    )
    group.add_argument(
        "--similarity-window",
        type=positive_int,
        default=None,
        help="words per similarity window (TextFooler and BAE 15; BERT-Attack: the whole text)",
    )
    group.add_argument("--pos-tagger", default=None, choices=POS_TAGGERS, help="part-of-speech tagger (nltk)")
    group.add_argument("--max-edit-distance", type=positive_int, default=None, help="DeepWordBug: character edits (30)")
    group.add_argument(
        "--character-edit-draws",
        type=positive_int,
        default=None,
        help="DeepWordBug: random edits per word (one of each kind)",
    )
    group.add_argument(
        "--mlm", default=None, help="BERT-Attack / BAE: masked language model, Hugging Face name or folder"
    )
    group.add_argument(
        "--mlm-candidates", type=positive_int, default=None, help="BERT-Attack / BAE: candidates per word (48 / 50)"
    )
    group.add_argument(
        "--mlm-batch-size", type=positive_int, default=None, help="masked-LM texts per forward pass (32)"
    )
    group.add_argument("--query-budget", type=int, default=None, help="most model queries per example")
    group.add_argument("--query-budget-per-word", type=int, default=None, help="most queries per word of a text")
    group.add_argument(
        "--textattack-parity",
        action="store_const",
        const=True,
        default=None,
        help="follow TextAttack 0.3.11's recipe where it differs from the paper (DeepWordBug's word ranking, "
        "BERT-Attack's 8 candidates)",
    )
    return group


def recipe_options(args: argparse.Namespace) -> RecipeOptions:
    """:class:`RecipeOptions` from the options ``args`` sets (those it lacks or leaves None keep their default)."""
    given = {name: getattr(args, name, None) for name in OPTION_ARGUMENTS}
    return RecipeOptions(**{name: value for name, value in given.items() if value is not None})


def apply_protocol(args: argparse.Namespace, task: TaskData) -> tuple[TaskData, RecipeOptions]:
    """The task with the protocol's length rule applied to its evaluated splits, and the recipe options
    (the protocol's values under the explicit ones). Sets ``args.num_examples`` to the protocol's pool size
    (at most the split) when unset, and ``args.protocol_settings`` for the run record. Raises ValueError
    for an option the chosen recipe does not enforce."""
    chosen = protocol(args.protocol)
    options = chosen.recipe_options({name: getattr(args, name) for name in OPTION_ARGUMENTS})
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

    options = protocol(args.protocol).recipe_options({name: getattr(args, name) for name in OPTION_ARGUMENTS})
    check_resources([args.attack], options, args.synonyms)
