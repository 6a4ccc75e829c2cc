"""What ``python -m rift_fast.attack`` builds before attacking (:class:`AttackSetup`): the data under the
protocol, the pool, the victim model (a classifier, or a prompted causal language model) and the synonym
sets."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rift_fast.cli.common import load_synonym_index
from rift_fast.cli.protocol_arguments import apply_protocol

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from rift_fast.attacks import RecipeOptions
    from rift_fast.core.records import Example, TaskData
    from rift_fast.models import LabelMapping
    from rift_fast.synonyms import SynonymIndex

DEFAULT_POOL_SIZE = 300  # RIFT's pool (Dong et al., NeurIPS 2021) for datasets without a preset pool rule
LABEL_WORD_SEPARATOR = "|"  # --label-words: one word per label, separated by it


@dataclass(frozen=True)
class AttackSetup:
    """What an attack run builds before attacking, shared by its runs at each temperature.

    Attributes:
        rank: this process's rank (0 without torchrun).
        world: the number of processes.
        task: the dataset's splits and labels, under the protocol.
        options: the recipes' options under the protocol.
        pool: the attacked examples.
        model: the victim model, in ``--model-dtype`` on its device.
        tokenizer: the model's tokenizer.
        synonyms: the synonym sets of ``--synonyms``.
        labels: how the model's outputs map to the task's labels.
    """

    rank: int
    world: int
    task: TaskData
    options: RecipeOptions
    pool: list[Example]
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    synonyms: SynonymIndex
    labels: LabelMapping


def prepare_attack(args: argparse.Namespace, rank: int, world: int) -> AttackSetup:
    """Loads the data under the protocol, draws the pool (refusing the victim's own training texts), loads
    the victim model on this process's device and the synonym sets; sets ``args.num_examples`` when
    unset (:func:`default_pool_size`)."""
    import torch

    from rift_fast.core.words import vocabulary
    from rift_fast.data.sources import DatasetOptions, load_data
    from rift_fast.data.tasks import test_pool

    torch.manual_seed(args.seed)  # a head missing from the checkpoint is initialised reproducibly
    task = load_data(DatasetOptions.from_args(args), seed=args.seed)
    task, options = apply_protocol(args, task)
    if args.num_examples is None:
        args.num_examples = default_pool_size(task, args.split)
    pool = test_pool(task, args.num_examples, seed=args.seed, split=args.split)
    refuse_training_texts(args, task, pool)
    model, tokenizer, labels = load_victim(args, task)
    model = model.to(getattr(torch, args.model_dtype))
    if torch.cuda.is_available():
        model = model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    synonyms = load_synonym_index(args, vocabulary(e.text_pair or e.text for e in pool))
    return AttackSetup(rank, world, task, options, pool, model, tokenizer, synonyms, labels)


def default_pool_size(task: TaskData, split: str) -> int:
    """The pool size when --num-examples is unset: the preset's (:class:`rift_fast.core.records.PoolRule`), else
    :data:`DEFAULT_POOL_SIZE`, at most the size of ``split`` (e.g. a small file's carved test split)."""
    return min(task.pool_rule.size if task.pool_rule else DEFAULT_POOL_SIZE, len(getattr(task, split)))


def refuse_training_texts(args: argparse.Namespace, task: TaskData, pool: list[Example]) -> None:
    """When ``--model`` is a checkpoint of python -m rift_fast.train, refuse a ``pool`` that holds texts of its
    training split (and of its dev split, for a test pool): see :mod:`rift_fast.data.split_overlap`."""
    from rift_fast.data.split_overlap import check_against_checkpoint
    from rift_fast.models import is_checkpoint_folder, resolve_model_source

    source = resolve_model_source(args.model)
    if is_checkpoint_folder(source):
        roles = ("train", "dev") if args.split == "test" else ("train",)
        check_against_checkpoint(source, pool, roles, args.seed, task.identity, f"attacked {args.split} texts")


def prompt_settings(args: argparse.Namespace) -> dict:
    """The prompt template and label words of a prompted classifier, for run records (empty otherwise)."""
    if args.prompt_template is None:
        return {}
    return {"prompt_template": args.prompt_template, "label_words": args.label_words.split(LABEL_WORD_SEPARATOR)}


def load_victim(
    args: argparse.Namespace, task: TaskData
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, LabelMapping]:
    """``(model, tokenizer, label mapping)`` of ``--model``: a classifier, or with ``--prompt-template`` a
    prompted causal language model (one label word per label; a ``{text_pair}`` slot for pair tasks)."""
    from rift_fast.models import LabelMapping, load_sequence_classifier
    from rift_fast.models.prompted import load_prompted_classifier

    if args.prompt_template is None:
        if args.label_words is not None:
            raise SystemExit("--label-words applies only with --prompt-template")
        return load_sequence_classifier(args.model, task.label_names, args.pooling, args.base_model)
    words = checked_label_words(args, task)
    model, tokenizer = load_prompted_classifier(args.model, args.prompt_template, words)
    labels = tuple(task.label_names)
    return model, tokenizer, LabelMapping(tuple(range(len(words))), "label words", tuple(words), labels)


def checked_label_words(args: argparse.Namespace, task: TaskData) -> list[str]:
    """The label words of ``--label-words``, one per label of ``task``. Raises SystemExit when they are
    missing or miscounted, or when the template's ``{text_pair}`` slot does not fit the task."""
    from rift_fast.models.prompted import PAIR_SLOT

    if args.label_words is None:
        raise SystemExit("--prompt-template needs --label-words, one word per label of the task")
    if task.is_pair and PAIR_SLOT not in args.prompt_template:
        raise SystemExit(
            f"--prompt-template: {task.name} is a sentence-pair task; the template needs a {PAIR_SLOT} slot "
            "for its attacked text"
        )
    if PAIR_SLOT in args.prompt_template and not task.is_pair:
        raise SystemExit(f"--prompt-template: {task.name} is a single-text task; the {PAIR_SLOT} slot would stay empty")
    words = args.label_words.split(LABEL_WORD_SEPARATOR)
    if len(words) != len(task.label_names):
        raise SystemExit(
            f"--label-words {args.label_words!r} gives {len(words)} words; the task has {len(task.label_names)} "
            f"labels ({', '.join(task.label_names)})"
        )
    return words
