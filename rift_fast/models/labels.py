"""The mapping of a classifier's outputs to a task's labels, by name (as Hugging Face's GLUE example does)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn


def canonical_label(name: str) -> str:
    """The form label names are compared in: Unicode NFKC (composed accents, compatibility forms such
    as full-width letters), runs of whitespace as one space, no outer whitespace, case folded. So
    ``"Positive "``, ``"POSITIVE"`` and ``"positive"`` are one name, as are the NFC and NFD spellings
    of ``"négatif"``."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def generic_label_names(count: int) -> tuple[str, ...]:
    """The names transformers gives labels that were never named: ``LABEL_0``, ``LABEL_1``, ..."""
    return tuple(f"LABEL_{index}" for index in range(count))


class LabelMismatchError(ValueError):
    """A classifier's labels cannot be matched to a task's labels."""


@dataclass(frozen=True)
class LabelMapping:
    """How a classifier's outputs correspond to a task's labels.

    ``model_index[t]`` is the model output that scores task label ``t``. ``rule``: ``"names"`` (matched
    by name, case-insensitive), ``"ids"`` (the model's or the task's names are generic: output i is task
    label i),
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
        return {
            "rule": self.rule,
            "model_labels": list(self.model_labels),
            "task_labels": list(self.task_labels),
            "model_output_of_task_label": dict(zip(self.task_labels, self.model_index)),
        }


def map_labels(model_labels: Sequence[str], task_labels: Sequence[str]) -> LabelMapping:
    """The :class:`LabelMapping` from the model's label names (in output order) to the task's.

    Real names are matched in their :func:`canonical_label` form (case-insensitively, as Hugging Face's
    GLUE example does, and regardless of Unicode normalisation and outer whitespace); generic names
    (``LABEL_0``...) on either side map by id (a dataset whose labels are only ids takes generic names,
    :func:`rift_fast.data.sources.resolve_labels`). Raises :class:`LabelMismatchError` naming both counts
    and both name lists when the counts differ or real names do not match the task's one to one.
    """
    model_labels, task_labels = tuple(model_labels), tuple(task_labels)
    both = (
        f"the model has {len(model_labels)} labels {list(model_labels)}, "
        f"the task has {len(task_labels)} labels {list(task_labels)}"
    )
    if len(model_labels) != len(task_labels):
        raise LabelMismatchError(f"label counts differ: {both}")
    generic = generic_label_names(len(model_labels))
    if generic in (model_labels, task_labels):
        return LabelMapping(tuple(range(len(task_labels))), "ids", model_labels, task_labels)
    folded = [canonical_label(name) for name in model_labels]
    if sorted(folded) != sorted(canonical_label(name) for name in task_labels):
        raise LabelMismatchError(f"label names do not match (case-insensitive): {both}")
    model_index = tuple(folded.index(canonical_label(name)) for name in task_labels)
    return LabelMapping(model_index, "names", model_labels, task_labels)


class TaskOrderedClassifier(nn.Module):
    """A sequence classifier whose ``logits`` [B, C] are in the task's label order: column ``t`` is
    the wrapped model's column ``mapping.model_index[t]``; every other output is the model's own.

    Takes the wrapped model's inputs except ``labels`` (its loss would follow its own order) and
    exposes its ``config`` and ``get_input_embeddings()``.
    """

    def __init__(self, model: nn.Module, mapping: LabelMapping) -> None:
        super().__init__()
        self.model = model
        self.mapping = mapping
        self.register_buffer("model_index", torch.tensor(mapping.model_index), persistent=False)

    @property
    def config(self) -> Any:
        return self.model.config

    def get_input_embeddings(self) -> nn.Module:
        return cast(Any, self.model).get_input_embeddings()  # a Hugging Face model's method

    def forward(self, **inputs: Any) -> Any:
        if "labels" in inputs:
            raise ValueError("TaskOrderedClassifier takes no labels: the wrapped model's loss would use its own order")
        output = self.model(**inputs)
        output.logits = output.logits.index_select(-1, self.model_index)
        return output
