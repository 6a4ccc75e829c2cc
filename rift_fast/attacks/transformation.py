"""Transformation: what a word may become; and the :class:`Target` of one example under attack.

A :class:`Target` holds, for each word of the attacked side, its substitution choices (slot 0 is
the original word): the transformation's candidates that the constraints
(:mod:`rift_fast.attacks.constraints`) keep. Words the constraints forbid, words without candidates
and words the model does not read (past its window, on the side its tokenizer truncates) get none.
Budgets over words (the modification ratio) count the words the model reads, its visible words.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rift_fast.attacks.constraints import AuxiliaryModel, Constraints
from rift_fast.attacks.text import Edit, WordSpans, match_case
from rift_fast.core.records import Example
from rift_fast.core.words import accent_stripped, is_single_word
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class WordSite:
    """Word ``position`` of the text ``spans`` (the attacked side), where a transformation proposes
    replacements in context."""

    spans: WordSpans
    position: int

    @property
    def word(self) -> str:
        return self.spans.words[self.position]


class Transformation(ABC):
    """What a word may become. Adding one: a subclass with :meth:`candidates` and :meth:`describe`; one
    that reads the words around the word (a masked language model) also overrides :meth:`candidates_at`.

    ``robust_without_candidates``: whether a word without candidates is one that no attack of this kind
    could change (a synonym table: True), or one that the candidate source failed to serve (a language
    model: False). An example none of whose changeable words got a candidate is then reported as
    ``unattackable`` (robust) or ``no_candidate`` (not attacked, not counted robust).

    ``reads_current_text``: the candidates depend on the text the search holds after its earlier swaps
    (BAE masks the word in it). :func:`build_targets` then leaves every changeable word's choices pending,
    and a search that serves them (:attr:`SearchMethod.serves_pending_choices`) fills them through
    :class:`PendingChoices` when it reaches the word.
    """

    robust_without_candidates: ClassVar[bool] = True
    reads_current_text: ClassVar[bool] = False

    @abstractmethod
    def candidates(self, word: str) -> list[str]:
        """Replacements of ``word``, best first, each a single word in ``word``'s case."""

    def auxiliary_models(self) -> list[AuxiliaryModel]:
        """The models this transformation runs besides the victim (a masked LM)."""
        return []

    def candidates_at(self, sites: Sequence[WordSite]) -> list[list[str]]:
        """Replacements of each site's word (one list per site, as :meth:`candidates`), for many sites,
        possibly of many texts, at once. Default: :meth:`candidates` of each word alone."""
        return [self.candidates(site.word) for site in sites]

    @abstractmethod
    def describe(self) -> dict:
        """The settings of this transformation, for run records."""


class SynonymSwap(Transformation):
    """Swap a word for one of its synonyms in a :class:`SynonymIndex` (Alzantot et al. 2018; Ren et al.
    2019 with the index's source), keeping the word's case."""

    def __init__(self, synonyms: SynonymIndex):
        self.synonyms = synonyms

    def candidates(self, word: str) -> list[str]:
        return substitution_candidates(word, self.synonyms)

    def describe(self) -> dict:
        return {"transformation": "synonym_swap", "synonyms": self.synonyms.source}


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
    changeable: int = 0  # words the constraints allow to change (visible ones), with or without candidates
    pending: set[int] = field(default_factory=set)  # words whose choices wait for the text the search holds
    visible_words: int | None = None  # words the model reads (inside its window); None: every word

    @property
    def label(self) -> int:
        return self.example.label

    @property
    def num_visible_words(self) -> int:
        """How many words of the attacked side the model reads (all of them without truncation)."""
        return len(self.spans) if self.visible_words is None else self.visible_words

    def render(self, chosen: np.ndarray | dict[int, int]) -> tuple[str, str | None]:
        """The query for a choice per word (array over words, or {position: slot}; slot 0 = original)."""
        items = chosen.items() if isinstance(chosen, dict) else ((i, int(c)) for i, c in enumerate(chosen) if c)
        return self.query_with({i: self.choices[i][slot] for i, slot in items if slot})

    def query_with(self, substitutes: dict[int, str]) -> tuple[str, str | None]:
        """The query with word ``i`` of the attacked side replaced by ``substitutes[i]``."""
        return self.query_of(self.spans.replace(substitutes))

    def query_of(self, attacked: str) -> tuple[str, str | None]:
        """The query with ``attacked`` as the attacked side (the hypothesis of a sentence pair)."""
        if self.example.text_pair is None:
            return attacked, None
        return self.example.text, attacked

    def edit(self, chosen: np.ndarray | dict[int, int]) -> Edit:
        """The query of :meth:`render` as an :data:`Edit` for :class:`QueryEngine` (not rendered)."""
        if isinstance(chosen, dict):
            items = sorted((i, slot) for i, slot in chosen.items() if slot)
        else:
            positions = chosen.nonzero()[0].tolist()
            items = list(zip(positions, chosen[positions].tolist()))
        return self.index, tuple((i, self.choices[i][slot]) for i, slot in items)

    def edits_at(self, chosen: np.ndarray, position: int) -> list[Edit]:
        """The :meth:`edit` of ``chosen`` [W] with word ``position`` set to each of its slots in turn
        (slot 0, the original word, first): a GA mutation's options, built from one pass over ``chosen``."""
        modified = np.flatnonzero(chosen).tolist()
        others = [(i, self.choices[i][slot]) for i, slot in zip(modified, chosen[modified].tolist()) if i != position]
        split = bisect_left(modified, position)  # the others before the word, then after it
        before, after = others[:split], others[split:]
        return [(self.index, tuple(others))] + [
            (self.index, (*before, (position, word), *after)) for word in self.choices[position][1:]
        ]

    def edit_with(self, substitutes: dict[int, str]) -> Edit:
        """The query of :meth:`query_with` as an :data:`Edit` (a substitute equal to the word is no change)."""
        words = self.spans.words
        return self.index, tuple(sorted((i, word) for i, word in substitutes.items() if word != words[i]))


def substitution_candidates(word: str, synonyms: SynonymIndex) -> list[str]:
    """Synonyms of ``word`` (:meth:`SynonymIndex.synonyms`) that are single words, each in the word's
    case (UPPER, Title or as given), in the index's order; left out: the word itself in any case or
    accents (``naive`` for ``naïve``), and duplicates. A single word replacing a word never merges
    with the text around it (see :mod:`rift_fast.core.words`)."""
    own = accent_stripped(word)
    return list(
        dict.fromkeys(
            match_case(word, s) for s in synonyms.synonyms(word) if is_single_word(s) and accent_stripped(s) != own
        )
    )


VisibleSpan = tuple[int, int]  # the (start, end) characters of a text that the model reads


def build_target(
    index: int,
    example: Example,
    transformation: Transformation,
    constraints: Constraints,
    visible: VisibleSpan | None = None,
    truncated: bool = False,
) -> Target:
    """The :class:`Target` of one example (see :func:`build_targets`)."""
    return build_targets([(index, example, visible, truncated)], transformation, constraints)[0]


def visible_positions(spans: WordSpans, visible: VisibleSpan | None) -> list[int]:
    """The positions of the words of ``spans`` that lie wholly inside the characters ``visible``
    (start, end) that the model reads; every position when ``visible`` is None."""
    if visible is None:
        return list(range(len(spans)))
    low, high = visible
    return [position for position, (start, end) in enumerate(spans.spans) if low <= start and end <= high]


def build_targets(
    examples: Sequence[tuple[int, Example, VisibleSpan | None, bool]],
    transformation: Transformation,
    constraints: Constraints,
) -> list[Target]:
    """Word choices of each ``(index, example, visible, truncated)``'s attacked side (the hypothesis for
    sentence pairs): for each word the transformation's candidates that the constraints keep;
    ``visible``: the (start, end) characters of the attacked side that the model reads
    (:meth:`VictimModel.visible_span`; None: all). Words outside them are neither attacked nor counted:
    the modification budget is taken over the visible words. The transformation serves the changeable
    words of all the examples in one :meth:`Transformation.candidates_at` call; one that reads the
    current text (:attr:`Transformation.reads_current_text`) is not called here: the changeable words
    are attackable, their choices pending."""
    sides = [
        WordSpans(example.text if example.text_pair is None else example.text_pair) for _, example, _, _ in examples
    ]
    seen = [visible_positions(spans, visible) for spans, (_, _, visible, _) in zip(sides, examples)]
    keys = [
        (k, position)
        for k, (spans, positions) in enumerate(zip(sides, seen))
        for position in positions
        if constraints.allows(spans.words, position)
    ]
    if transformation.reads_current_text:
        return [
            _pending_target(
                index, example, spans, [p for j, p in keys if j == k], constraints, (truncated, len(seen[k]))
            )
            for k, (spans, (index, example, _, truncated)) in enumerate(zip(sides, examples))
        ]
    proposed = dict(zip(keys, transformation.candidates_at([WordSite(sides[k], p) for k, p in keys])))
    targets = []
    for k, (spans, (index, example, _, truncated)) in enumerate(zip(sides, examples)):
        choices = [
            [word, *constraints.keep(spans.words, position, proposed[k, position])]
            if (k, position) in proposed
            else [word]
            for position, word in enumerate(spans.words)
        ]
        attackable = [i for i, options in enumerate(choices) if len(options) > 1]
        changeable = sum((k, position) in proposed for position in range(len(spans)))
        budget = constraints.budget(len(seen[k]))
        targets.append(
            Target(
                index, example, spans, choices, attackable, budget, truncated, changeable, visible_words=len(seen[k])
            )
        )
    return targets


def _pending_target(
    index: int,
    example: Example,
    spans: WordSpans,
    changeable: list[int],
    constraints: Constraints,
    truncated_and_visible: tuple[bool, int],
) -> Target:
    """A target whose ``changeable`` words are attackable with their choices pending
    (``truncated_and_visible``: whether the example is truncated, and how many of its words are visible)."""
    truncated, visible = truncated_and_visible
    choices = [[word] for word in spans.words]
    budget = constraints.budget(visible)
    return Target(
        index, example, spans, choices, changeable, budget, truncated, len(changeable), set(changeable), visible
    )


@dataclass(frozen=True)
class PendingChoices:
    """Fills pending choices (:attr:`Target.pending`) from the text a search holds: for each request
    ``(target, position, substitutes)`` (the words the search has swapped so far, position -> word), the
    transformation's candidates for word ``position`` of the target's text with ``substitutes`` in place,
    that ``constraints`` keep (judged, like all per-word constraints, against the original words); all
    requests in one :meth:`Transformation.candidates_at` call. Substitutes are single words, so word
    positions do not move."""

    transformation: Transformation
    constraints: Constraints

    def fill(self, requests: Sequence[tuple[Target, int, dict[int, str]]]) -> None:
        sites = [WordSite(WordSpans(target.spans.replace(swapped)), p) for target, p, swapped in requests]
        for (target, position, _), candidates in zip(requests, self.transformation.candidates_at(sites)):
            words = target.spans.words
            target.choices[position] = [words[position], *self.constraints.keep(words, position, candidates)]
            target.pending.discard(position)
