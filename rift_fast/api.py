"""Attacks on in-memory models and texts: :class:`Attacker` and :func:`attack_texts`.

The Python counterpart of ``python -m rift_fast.attack``: a recipe of the registry, the same label
mapping (the model's ``config.id2label`` matched to the task's label names, by name, case-insensitively,
or by id for generic names) and the same report (:class:`rift_fast.attacks.AttackReport`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rift_fast.attacks.call_shape import AUTO, choose_token_budget
from rift_fast.attacks.recipes import RecipeOptions, build_attack
from rift_fast.attacks.runner import AttackReport
from rift_fast.attacks.victim import VictimModel
from rift_fast.core.records import Example
from rift_fast.models.labels import LabelMapping, TaskOrderedClassifier, generic_label_names, map_labels
from rift_fast.synonyms import SynonymIndex, embedded_index

Label = int | str  # a label id (the task's order) or a label name


def model_label_names(model: torch.nn.Module) -> tuple[str, ...] | None:
    """The label names of ``model``'s outputs, in order, from its ``config.id2label``; None without one."""
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not isinstance(id2label, dict) or not id2label:
        return None
    return tuple(str(id2label[index]) for index in sorted(id2label, key=int))


def task_label_mapping(model: torch.nn.Module, label_names: Sequence[str] | None) -> LabelMapping:
    """How ``model``'s outputs map to the task's ``label_names`` (None: the model's own names, else ids).

    Raises:
        LabelMismatchError: the model's names and ``label_names`` differ in count or do not match one to one.
        ValueError: neither the model nor ``label_names`` says how many classes there are.
    """
    own = model_label_names(model)
    if label_names is None:
        if own is None:
            raise ValueError("the model has no config.id2label: pass label_names (the task's names in id order)")
        return LabelMapping(tuple(range(len(own))), "names", own, own)
    task = tuple(label_names)
    if own is None:
        return LabelMapping(tuple(range(len(task))), "ids", generic_label_names(len(task)), task)
    return map_labels(own, task)


def label_ids(labels: Sequence[Label], names: Sequence[str]) -> list[int]:
    """``labels`` as ids of ``names``: an int is an id in ``0..len(names)-1``, a str a name (compared
    case-insensitively, surrounding spaces ignored).

    Raises:
        ValueError: naming the position and value of the first label that is neither.
    """
    by_name = {name.strip().casefold(): index for index, name in enumerate(names)}
    ids = []
    for position, label in enumerate(labels):
        if isinstance(label, str):
            index = by_name.get(label.strip().casefold())
        elif isinstance(label, int) and 0 <= label < len(names):
            index = label
        else:
            index = None
        if index is None:
            raise ValueError(f"labels[{position}] = {label!r} is neither a label name of {list(names)} nor an id 0..")
        ids.append(index)
    return ids


class Attacker:
    """Attacks texts with one recipe on an in-memory classifier (as TextAttack's ``Attacker``).

    Args:
        model: a sequence classifier returning logits [B, C] (``.logits`` or the first output), e.g. a
            Hugging Face ``*ForSequenceClassification`` or a checkpoint of ``python -m rift_fast.train``.
        tokenizer: its tokenizer (a Hugging Face fast tokenizer).
        recipe: a name of :data:`rift_fast.attacks.RECIPES` (pwws, ga, gradient, textfooler, ...).
        label_names: the task's label names in id order; the model's outputs are reordered to them
            by its ``config.id2label`` (None: the model's own names).
        synonyms: the substitution sets (None: the embedded counter-fitted GloVe + WordNet sets).
        options: the recipe's options (None: the published ones).
        max_length: tokens per input (None: what the model and tokenizer allow).
        batch_size: rows per forward pass, at most.
        token_budget: tokens (rows x padded length) per forward pass, at most: a number, None (no bound
            but the rows) or ``"auto"`` (chosen for the texts of each :meth:`attack` and the device,
            :func:`rift_fast.attacks.call_shape.choose_token_budget`); results do not depend on it.
        search_dtype: a reduced dtype (``torch.bfloat16``) for the search's model copy; verdicts stay exact.

    Raises:
        ValueError: an unknown recipe, or labels that cannot be matched (:func:`task_label_mapping`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        recipe: str = "pwws",
        label_names: Sequence[str] | None = None,
        synonyms: SynonymIndex | None = None,
        options: RecipeOptions | None = None,
        max_length: int | None = None,
        batch_size: int = 64,
        search_dtype: torch.dtype | None = None,
        token_budget: int | str | None = AUTO,
    ) -> None:
        self.mapping = task_label_mapping(model, label_names)
        if not self.mapping.is_identity:
            model = TaskOrderedClassifier(model, self.mapping)
        self.victim = VictimModel(
            model.eval(), tokenizer, max_length=max_length, batch_size=batch_size, search_dtype=search_dtype
        )
        self.token_budget = token_budget
        self.recipe = recipe
        self.synonyms = synonyms if synonyms is not None else embedded_index()
        self.options = options or RecipeOptions()
        build_attack(recipe, self.victim, self.synonyms, False, self.options)  # an unknown recipe fails here

    @property
    def label_names(self) -> tuple[str, ...]:
        """The task's label names in id order (the report's label ids index them)."""
        return self.mapping.task_labels

    def attack(
        self,
        texts: Sequence[str],
        labels: Sequence[Label],
        text_pairs: Sequence[str] | None = None,
        progress: bool = False,
    ) -> AttackReport:
        """Attacks each text (the hypothesis ``text_pairs[i]`` of a pair, its premise ``texts[i]`` kept).

        Args:
            texts: N texts (premises when ``text_pairs`` is given).
            labels: N true labels, ids or names of :attr:`label_names`.
            text_pairs: N attacked hypotheses of sentence pairs, or None for single texts.
            progress: show a progress bar.

        Returns:
            The report: ``summary()`` (accuracies, rates, counts), ``results`` (one ExampleResult per text,
            in order, labels and predictions as ids of :attr:`label_names`), ``to_markdown()``.

        Raises:
            ValueError: lengths that differ, or a label that is neither a name nor an id.
        """
        if len(labels) != len(texts) or (text_pairs is not None and len(text_pairs) != len(texts)):
            counts = f"{len(texts)} texts, {len(labels)} labels" + (
                f", {len(text_pairs)} text pairs" if text_pairs is not None else ""
            )
            raise ValueError(f"one label (and text pair) per text is needed, got {counts}")
        ids = label_ids(labels, self.label_names)
        pairs = list(text_pairs) if text_pairs is not None else [None] * len(texts)
        examples = [Example(text, label, pair) for text, label, pair in zip(texts, ids, pairs)]
        self.victim.token_budget = choose_token_budget(self.victim, examples, self.token_budget)
        attack = build_attack(self.recipe, self.victim, self.synonyms, text_pairs is not None, self.options)
        settings = {**attack.settings(), "labels": self.mapping.describe(), **self.victim.describe()}
        return attack.run(examples, self.victim, settings, progress=progress)


def attack_texts(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[Label],
    recipe: str = "pwws",
    text_pairs: Sequence[str] | None = None,
    **attacker_arguments: Any,
) -> AttackReport:
    """Attacks ``texts`` with ``recipe`` in one call: ``Attacker(model, tokenizer, recipe,
    **attacker_arguments)`` then :meth:`Attacker.attack` (see both for the arguments, returns and errors)."""
    return Attacker(model, tokenizer, recipe, **attacker_arguments).attack(texts, labels, text_pairs)


__all__ = ["Attacker", "attack_texts", "label_ids", "model_label_names", "task_label_mapping"]
