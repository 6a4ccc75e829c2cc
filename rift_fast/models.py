"""Loading encoders and tokenizers: the embedded MiniLM or any Hugging Face encoder by name or path;
the mapping of a classifier's outputs to a task's labels, and the input length a model can take."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

EMBEDDED_MODEL_NAME = "embedded"
CLASSIFICATION_HEAD_SUFFIX = "ForSequenceClassification"  # architectures whose checkpoints carry a trained head
NO_TOKENIZER_LIMIT = 10**20  # transformers' LARGE_INTEGER: a model_max_length at or above it means "not set"

logger = logging.getLogger(__name__)


def resolve_model_source(name_or_path: str) -> str:
    """``"embedded"`` -> the packaged MiniLM folder; a path must exist; other names go to the hub."""
    if not name_or_path or not name_or_path.strip():
        raise ValueError("the model name or path is empty")
    if name_or_path == EMBEDDED_MODEL_NAME:
        from rift_fast.resources import embedded_model_dir

        return str(embedded_model_dir())
    expanded = Path(name_or_path).expanduser()
    if expanded.exists():
        if not (expanded / "config.json").is_file():
            raise FileNotFoundError(f"model folder {expanded} has no config.json (not a saved Hugging Face model)")
        return str(expanded)
    # Hub ids are "name" or "owner/name"; anything else that does not exist is a missing path.
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or os.sep != "/" and os.sep in name_or_path:
        raise FileNotFoundError(f"model path does not exist: {name_or_path}")
    return name_or_path  # a hub id such as "bert-base-uncased" or "roberta-base"


def load_tokenizer(name_or_path: str):
    """The model's own (fast) tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_source(name_or_path))


def load_config(name_or_path: str):
    """The model's transformers configuration (``AutoConfig``)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(resolve_model_source(name_or_path))


def generic_label_names(count: int) -> tuple[str, ...]:
    """The names transformers gives labels that were never named: ``LABEL_0``, ``LABEL_1``, ..."""
    return tuple(f"LABEL_{index}" for index in range(count))


class LabelMismatchError(ValueError):
    """A classifier's labels cannot be matched to a task's labels."""


@dataclass(frozen=True)
class LabelMapping:
    """How a classifier's outputs correspond to a task's labels.

    ``model_index[t]`` is the model output that scores task label ``t``. ``rule``: ``"names"`` (matched
    by name, case-insensitive), ``"ids"`` (the model's names are generic: output i is task label i),
    ``"new head"`` (the checkpoint has no classification head: a new one is made in the task's order)
    or ``"rift_fast checkpoint"`` (trained by ``python -m rift_fast.train`` in the task's order).
    """

    model_index: tuple[int, ...]
    rule: str
    model_labels: tuple[str, ...]
    task_labels: tuple[str, ...]

    @property
    def is_identity(self) -> bool:
        return self.model_index == tuple(range(len(self.model_index)))

    def describe(self) -> dict:
        """For run records: the rule, both name lists and the model output of each task label."""
        return {"rule": self.rule, "model_labels": list(self.model_labels), "task_labels": list(self.task_labels),
                "model_output_of_task_label": dict(zip(self.task_labels, self.model_index))}


def map_labels(model_labels: Sequence[str], task_labels: Sequence[str]) -> LabelMapping:
    """The :class:`LabelMapping` from the model's label names (in output order) to the task's.

    Real names are matched case-insensitively, as Hugging Face's GLUE example does; generic names
    (``LABEL_0``...) map by id. Raises :class:`LabelMismatchError` naming both counts and both name lists
    when the counts differ or real names do not match the task's one to one.
    """
    model_labels, task_labels = tuple(model_labels), tuple(task_labels)
    both = (f"the model has {len(model_labels)} labels {list(model_labels)}, "
            f"the task has {len(task_labels)} labels {list(task_labels)}")
    if len(model_labels) != len(task_labels):
        raise LabelMismatchError(f"label counts differ: {both}")
    if model_labels == generic_label_names(len(model_labels)):
        return LabelMapping(tuple(range(len(task_labels))), "ids", model_labels, task_labels)
    folded = [name.casefold() for name in model_labels]
    if sorted(folded) != sorted(name.casefold() for name in task_labels):
        raise LabelMismatchError(f"label names do not match (case-insensitive): {both}")
    model_index = tuple(folded.index(name.casefold()) for name in task_labels)
    return LabelMapping(model_index, "names", model_labels, task_labels)


class TaskOrderedClassifier(nn.Module):
    """A sequence classifier whose ``logits`` [B, C] are in the task's label order: column ``t`` is
    the wrapped model's column ``mapping.model_index[t]``; every other output is the model's own.

    Takes the wrapped model's inputs except ``labels`` (its loss would follow its own order) and
    exposes its ``config`` and ``get_input_embeddings()``.
    """

    def __init__(self, model: nn.Module, mapping: LabelMapping):
        super().__init__()
        self.model = model
        self.mapping = mapping
        self.register_buffer("model_index", torch.tensor(mapping.model_index), persistent=False)

    @property
    def config(self):
        return self.model.config

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, **inputs):
        if "labels" in inputs:
            raise ValueError("TaskOrderedClassifier takes no labels: the wrapped model's loss would use its own order")
        output = self.model(**inputs)
        output.logits = output.logits.index_select(-1, self.model_index)
        return output


def _has_classification_head(config) -> bool:
    return any(name.endswith(CLASSIFICATION_HEAD_SUFFIX) for name in config.architectures or ())


def _load_hf_classifier(source: str, label_names: tuple[str, ...]):
    """The Hugging Face classifier at ``source`` and its :class:`LabelMapping` to ``label_names``."""
    from transformers import AutoModelForSequenceClassification

    config = load_config(source)
    if not _has_classification_head(config):
        mapping = LabelMapping(tuple(range(len(label_names))), "new head", label_names, label_names)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
            label2id={name: index for index, name in enumerate(label_names)})
        return model, mapping
    mapping = map_labels([config.id2label[index] for index in range(config.num_labels)], label_names)
    return AutoModelForSequenceClassification.from_pretrained(source, config=config), mapping


def load_sequence_classifier(name_or_path: str, label_names: Sequence[str]):
    """``(model, tokenizer, mapping)``: the classifier with its logits in the order of ``label_names``,
    its tokenizer and the :class:`LabelMapping` used (see :func:`map_labels`).

    A checkpoint with a classification head keeps it and is mapped by its ``config.id2label`` (wrapped
    in :class:`TaskOrderedClassifier` when the orders differ; generic names map by id, with one warning);
    an encoder without a head gets a new one in the task's order; a folder written by ``python -m
    rift_fast.train`` loads as its :class:`RobustClassifier`, trained in the task's order. Raises
    :class:`LabelMismatchError` when the labels cannot be matched. A hub id needs network access the
    first time; its error then says so.
    """
    label_names = tuple(label_names)
    source = resolve_model_source(name_or_path)
    if (Path(source) / "rift_fast.json").is_file():  # a checkpoint written by python -m rift_fast.train
        from rift_fast.training.loop import load_trained_classifier

        model = load_trained_classifier(source)
        if model.num_classes != len(label_names):
            raise LabelMismatchError(f"{source} has a {model.num_classes}-class head but the task has "
                                     f"{len(label_names)} labels {list(label_names)}")
        mapping = LabelMapping(tuple(range(len(label_names))), "rift_fast checkpoint", label_names, label_names)
        return model, load_tokenizer(source), mapping
    try:
        model, mapping = _load_hf_classifier(source, label_names)
    except OSError as error:
        raise OSError(f"could not load model {name_or_path!r} from {source!r}: {error}") from error
    if mapping.rule == "ids":
        logger.warning("%s names its labels %s: output i is taken as task label i (%s)", name_or_path,
                       list(mapping.model_labels), ", ".join(label_names))
    if not mapping.is_identity:
        model = TaskOrderedClassifier(model, mapping)
    return model, load_tokenizer(name_or_path), mapping


def position_limit(model: nn.Module) -> int | None:
    """How many input positions the model's absolute position embeddings can number; None without such a table.

    RoBERTa-style embeddings (a ``padding_idx`` on the embedding module: RoBERTa, XLM-R, CamemBERT)
    number positions from ``padding_idx + 1``, so that many rows of the table are never an input position.
    """
    embeddings = next((module for module in model.modules()
                       if isinstance(getattr(module, "position_embeddings", None), nn.Embedding)), None)
    if embeddings is None:
        return None
    padding_idx = getattr(embeddings, "padding_idx", None)
    reserved = 0 if padding_idx is None else padding_idx + 1
    return embeddings.position_embeddings.num_embeddings - reserved


def tokenizer_limit(tokenizer) -> int | None:
    """The tokenizer's ``model_max_length``, None when unset (transformers then reports 1e30)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < NO_TOKENIZER_LIMIT else None


def _skeleton(config) -> nn.Module:
    """The encoder ``config`` describes, on the meta device (no memory, no weights)."""
    from transformers import AutoModel

    with torch.device("meta"):
        return AutoModel.from_config(config)


def usable_max_length(model_or_config, tokenizer) -> int:
    """The most tokens per input that ``model_or_config`` (a module or a transformers config) and
    ``tokenizer`` can take.

    The position table's usable rows (:func:`position_limit`), else ``config.max_position_embeddings``
    (relative-position models such as DeBERTa-v2), capped by the tokenizer's ``model_max_length`` when set.
    Raises ValueError when none of them is known.
    """
    from transformers import PretrainedConfig

    model = _skeleton(model_or_config) if isinstance(model_or_config, PretrainedConfig) else model_or_config
    positions = position_limit(model) or getattr(getattr(model, "config", None), "max_position_embeddings", None)
    limits = [limit for limit in (positions, tokenizer_limit(tokenizer)) if limit]
    if not limits:
        raise ValueError(f"neither {type(model).__name__} nor its tokenizer states a maximum input length: "
                         "give one explicitly (--max-length)")
    return min(limits)


def checked_max_length(requested: int | None, model_or_config, tokenizer) -> int:
    """``requested`` tokens per input, or :func:`usable_max_length` when None.

    Raises ValueError naming both numbers when ``requested`` exceeds the usable length (longer inputs
    would index past the position table) or is below 1.
    """
    usable = usable_max_length(model_or_config, tokenizer)
    if requested is None:
        return usable
    if not 1 <= requested <= usable:
        raise ValueError(f"max length {requested} is outside 1..{usable}: this model and tokenizer take at most "
                         f"{usable} tokens per input")
    return requested
