"""Transformation and constraints: which words may change, and into what.

A :class:`Target` holds, for each word of the attacked side, its substitution choices (slot 0 is
the original word) after the constraints: stop words (compared in lookup form, see
:mod:`rift_fast.text`) and words without synonyms get none, words past the model's truncation get
none, and an optional language-model filter may veto swaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rift_fast.attacks.text import WordSpans, match_case
from rift_fast.data import Example
from rift_fast.synonyms import SynonymIndex
from rift_fast.synonyms.index import default_stop_words
from rift_fast.text import accent_stripped, is_single_word, lookup_form

# (words of the original text, position, candidate words) -> keep each candidate?
LanguageModelFilter = Callable[[tuple[str, ...], int, list[str]], list[bool]]


@dataclass
class Constraints:
    """Limits on the attack. ``max_modification_ratio=None`` is no budget (the published setting)."""

    stop_words: frozenset[str] = field(default_factory=default_stop_words)
    max_modification_ratio: float | None = None
    lm_filter: LanguageModelFilter | None = None
    lm_filter_name: str | None = None

    def __post_init__(self):
        ratio = self.max_modification_ratio
        if ratio is not None and not 0 < ratio <= 1:
            raise ValueError(f"max_modification_ratio must be in (0, 1], got {ratio}")

    def describe(self) -> dict:
        return {"stop_words": len(self.stop_words), "max_modification_ratio": self.max_modification_ratio,
                "lm_filter": self.lm_filter_name if self.lm_filter else None}


@dataclass
class Target:
    """One example under attack: the attacked side's words and each word's choices."""

    index: int
    example: Example
    spans: WordSpans
    choices: list[list[str]]
    attackable: list[int]
    budget: int | None  # most words that may change; None: no limit
    truncated: bool = False

    @property
    def label(self) -> int:
        return self.example.label

    def render(self, chosen: np.ndarray | dict[int, int]) -> tuple[str, str | None]:
        """The query for a choice per word (array over words, or {position: slot}; slot 0 = original)."""
        items = chosen.items() if isinstance(chosen, dict) else ((i, int(c)) for i, c in enumerate(chosen) if c)
        return self.query_with({i: self.choices[i][slot] for i, slot in items if slot})

    def query_with(self, substitutes: dict[int, str]) -> tuple[str, str | None]:
        """The query with word ``i`` of the attacked side replaced by ``substitutes[i]``."""
        text = self.spans.replace(substitutes)
        if self.example.text_pair is None:
            return text, None
        return self.example.text, text

    def original_query(self) -> tuple[str, str | None]:
        return self.example.text, self.example.text_pair


def substitution_candidates(word: str, synonyms: SynonymIndex) -> list[str]:
    """Synonyms of ``word`` (:meth:`SynonymIndex.synonyms`) that are single words, each in the word's
    case (UPPER, Title or as given), in the index's order; left out: the word itself in any case or
    accents (``naive`` for ``naïve``), and duplicates. A single word replacing a word never merges
    with the text around it (see :mod:`rift_fast.text`)."""
    own = accent_stripped(word)
    return list(dict.fromkeys(match_case(word, s) for s in synonyms.synonyms(word)
                              if is_single_word(s) and accent_stripped(s) != own))


def build_target(index: int, example: Example, synonyms: SynonymIndex, constraints: Constraints,
                 visible_characters: int | None = None, truncated: bool = False) -> Target:
    """Word choices of ``example``'s attacked side (the hypothesis for sentence pairs)."""
    spans = WordSpans(example.text if example.text_pair is None else example.text_pair)
    choices: list[list[str]] = []
    for position, word in enumerate(spans.words):
        visible = visible_characters is None or spans.spans[position][1] <= visible_characters
        if lookup_form(word) in constraints.stop_words or not visible:
            choices.append([word])
            continue
        candidates = substitution_candidates(word, synonyms)
        if candidates and constraints.lm_filter is not None:
            keep = constraints.lm_filter(spans.words, position, candidates)
            candidates = [c for c, k in zip(candidates, keep) if k]
        choices.append([word, *candidates])
    attackable = [i for i, options in enumerate(choices) if len(options) > 1]
    budget = None
    if constraints.max_modification_ratio is not None:
        budget = max(1, int(constraints.max_modification_ratio * len(spans)))
    return Target(index, example, spans, choices, attackable, budget, truncated)

