"""Constraints: limits on what an attack may change, as composable classes applied by one pipeline.

A :class:`Constraint` may act at three points of :func:`rift_fast.attacks.transformation.build_target`
(TextAttack's split between pre-transformation and transformation constraints, applied once per
word here, for whole batches of examples):

- ``allows(words, position)``: may this word change at all (stop words, ...)?
- ``keep(words, position, candidates)``: which candidate replacements survive (a language-model
  filter; later embedding distance, part of speech, sentence similarity)?
- ``budget(num_words)``: the most words that may change (a modification ratio), or None;
  ``num_words`` counts the words the model reads (its visible words, inside its window).

:class:`Constraints` holds an ordered list of them and applies them all. Words past the model's
truncation and, for sentence pairs, the premise are never attacked: the runner enforces those
(:data:`ALWAYS_APPLIED`) and the settings record them.

Adding a constraint: one subclass of :class:`Constraint` (and, for TextAttack interop, one line in
:data:`rift_fast.interop.textattack.TEXTATTACK_CONSTRAINTS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import ClassVar, Protocol

from rift_fast.core.words import lookup_form
from rift_fast.synonyms.index import default_stop_words

# (words of the original text, position, candidate words) -> keep each candidate?
LanguageModelFilterFunction = Callable[[tuple[str, ...], int, list[str]], list[bool]]
# Limits every attack has, whatever its constraints: recorded with them in the settings.
ALWAYS_APPLIED = (
    "words the model does not read (past its window, on the side its tokenizer truncates) are neither "
    "attacked nor counted: word budgets are taken over the visible words",
    "sentence pairs: only the hypothesis is attacked",
)


class AuxiliaryModel(Protocol):
    """A model an attack runs besides the victim (a sentence encoder, a masked LM): its forward time,
    in seconds, counts in the attack's model time."""

    forward_seconds: float


class Constraint:
    """One limit on the attack; the defaults allow everything."""

    name: ClassVar[str]

    def describe(self) -> dict:
        """The settings of this constraint, for run records."""
        return {}

    def allows(self, words: tuple[str, ...], position: int) -> bool:
        """Whether word ``position`` of ``words`` may change at all."""
        return True

    def keep(self, words: tuple[str, ...], position: int, candidates: list[str]) -> list[bool]:
        """For each candidate replacement of word ``position``, whether it survives."""
        return [True] * len(candidates)

    def budget(self, num_words: int) -> int | None:
        """The most words of a ``num_words``-word text that may change; None: no limit."""
        return None

    def auxiliary_models(self) -> list[AuxiliaryModel]:
        """The models this constraint runs besides the victim."""
        return []


class StopWords(Constraint):
    """Stop words never change (compared in lookup form, see :mod:`rift_fast.core.words`). Default:
    scikit-learn's 318 English stop words, as rift_fast's published-setting attacks use."""

    name = "stop_words"

    def __init__(self, words: Iterable[str] | None = None):
        self.words = frozenset(lookup_form(w) for w in (default_stop_words() if words is None else words))

    def describe(self) -> dict:
        return {"count": len(self.words)}

    def allows(self, words: tuple[str, ...], position: int) -> bool:
        return lookup_form(words[position]) not in self.words


class MaxModificationRatio(Constraint):
    """At most ``ceil(ratio x words)`` words change, as TextAttack 0.3.11's ``MaxWordsPerturbed(max_percent)``
    counts them (7 words at 0.3 allow 3). The product is taken in decimal, so 10 words at 0.3 allow 3;
    TextAttack's float product allows 4 there (``0.3 * 10 > 3``). The words are those the model reads
    (inside its window); TextAttack counts every word of the text. Raises ValueError unless 0 < ratio <= 1."""

    name = "max_modification_ratio"

    def __init__(self, ratio: float):
        if not 0 < ratio <= 1:
            raise ValueError(f"max_modification_ratio must be in (0, 1], got {ratio}")
        self.ratio = ratio

    def describe(self) -> dict:
        return {"ratio": self.ratio}

    def budget(self, num_words: int) -> int | None:
        return math.ceil(Fraction(str(self.ratio)) * num_words)


class LanguageModelFilter(Constraint):
    """A language model (or any function) vetoes candidate replacements; ``filter_name`` is recorded."""

    name = "lm_filter"

    def __init__(self, keep: LanguageModelFilterFunction, filter_name: str):
        self._keep = keep
        self.filter_name = filter_name

    def describe(self) -> dict:
        return {"filter": self.filter_name}

    def keep(self, words: tuple[str, ...], position: int, candidates: list[str]) -> list[bool]:
        return list(self._keep(words, position, candidates))


class Constraints:
    """The ordered constraints of an attack, applied together. Default: :class:`StopWords` alone (the
    published PWWS and GA setting: no modification budget, no language-model filter)."""

    def __init__(self, constraints: Sequence[Constraint] | None = None):
        self.constraints = tuple(constraints) if constraints is not None else (StopWords(),)

    def describe(self) -> dict:
        recorded: dict = {c.name: c.describe() for c in self.constraints}
        return {**recorded, "always": list(ALWAYS_APPLIED)}

    def allows(self, words: tuple[str, ...], position: int) -> bool:
        return all(c.allows(words, position) for c in self.constraints)

    def keep(self, words: tuple[str, ...], position: int, candidates: list[str]) -> list[str]:
        """The candidates every constraint keeps, in order."""
        for constraint in self.constraints:
            if not candidates:
                break
            candidates = [c for c, kept in zip(candidates, constraint.keep(words, position, candidates)) if kept]
        return candidates

    def budget(self, num_words: int) -> int | None:
        budgets = [b for b in (c.budget(num_words) for c in self.constraints) if b is not None]
        return min(budgets) if budgets else None

    def auxiliary_models(self) -> list[AuxiliaryModel]:
        return [model for c in self.constraints for model in c.auxiliary_models()]
