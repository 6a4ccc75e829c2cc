"""Constraints checked on each perturbed text, and the query budget.

The constraints of :mod:`rift_fast.attacks.constraints` judge one word at a time, against the
original text, when a :class:`~rift_fast.attacks.transformation.Target` is built. Some limits of the
published attacks depend on what the search has changed so far: the edit distance of DeepWordBug
(Gao et al. 2018) adds up over the changed words, and TextFooler's sentence encoder (Jin et al. 2020)
compares windows of the text before and after each swap. A :class:`TextConstraint` judges a
:class:`Perturbation` (original, current and proposed words) and serves both uses:

- as a plain :class:`Constraint` (``keep``), any search may use it: each candidate is judged as the
  only change of the original text;
- a search that tracks its texts (:class:`rift_fast.attacks.search.GreedyWordSwap`) calls
  :meth:`TextConstraint.accepts` on every proposed text of a round, for all examples in one batch.

:class:`SearchTimeConstraints` holds both kinds for a recipe: the per-word ones are applied when the
targets are built, the text ones by the search, and the settings record all of them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from rift_fast.attacks.constraints import AuxiliaryModel, Constraint, Constraints
from rift_fast.core.words import levenshtein

# DeepWordBug's edit-distance budget: "we hold the maximum difference on edit distance (epsilon) to a
# constant 30 for each sample" (Gao et al. 2018, Sec. 4; TextAttack 0.3.11 LevenshteinEditDistance(30)).
PUBLISHED_MAX_EDIT_DISTANCE = 30


@dataclass(frozen=True)
class Perturbation:
    """One proposed change of the attacked side: ``current`` (the text the search holds, as words)
    with word ``position`` replaced by ``replacement``; ``original``: the words before the attack.
    Words are those of :mod:`rift_fast.core.words`; ``original`` and ``current`` have the same length."""

    original: tuple[str, ...]
    current: tuple[str, ...]
    position: int
    replacement: str

    @cached_property
    def proposed(self) -> tuple[str, ...]:
        return self.current[: self.position] + (self.replacement,) + self.current[self.position + 1 :]

    @classmethod
    def single(cls, words: tuple[str, ...], position: int, replacement: str) -> Perturbation:
        """``replacement`` as the only change of ``words``."""
        return cls(words, words, position, replacement)


class TextConstraint(Constraint):
    """A constraint judged on whole proposed texts (see the module docstring)."""

    @abstractmethod
    def accepts(self, perturbations: Sequence[Perturbation]) -> list[bool]:
        """For each perturbation, whether the proposed text satisfies the constraint (one batch)."""

    def keep(self, words: tuple[str, ...], position: int, candidates: list[str]) -> list[bool]:
        return self.accepts([Perturbation.single(words, position, c) for c in candidates])


class EditDistanceBudget(TextConstraint):
    """The proposed text is within ``max_distance`` Levenshtein edits of the original (DeepWordBug's
    epsilon, published 30). Only whole words change and every other character is kept, so the distance
    is the sum of the changed words' distances; a distance over the whole text (TextAttack's
    ``LevenshteinEditDistance``) can be smaller when an alignment crosses a word boundary, never larger,
    so this budget is never looser than TextAttack's. Raises ValueError unless ``max_distance`` >= 1."""

    name = "max_edit_distance"

    def __init__(self, max_distance: int = PUBLISHED_MAX_EDIT_DISTANCE):
        if max_distance < 1:
            raise ValueError(f"max_edit_distance must be at least 1, got {max_distance}")
        self.max_distance = max_distance

    def describe(self) -> dict:
        return {"max_distance": self.max_distance, "metric": "levenshtein, characters, summed over changed words"}

    def accepts(self, perturbations: Sequence[Perturbation]) -> list[bool]:
        return [self.distance(p) <= self.max_distance for p in perturbations]

    @staticmethod
    def distance(perturbation: Perturbation) -> int:
        """Edits between the original words and the proposed ones, word by word."""
        return sum(
            levenshtein(before, after)
            for before, after in zip(perturbation.original, perturbation.proposed)
            if before != after
        )


class QueryBudget(Constraint):
    """At most ``max_queries`` distinct model queries per example, the clean query included
    (TextAttack's ``query_budget``); or ``per_word`` times the number of words of the attacked side
    (TextDefender, Li et al. 2021: ``query_budget_size`` x ``num_words``, with ``query_budget_size`` =
    ``neighbour_vocab_size`` = 50 in its ``args.py``; TextAttack counts the words of both texts of a pair,
    this the attacked side's only, and of those the ones the model reads, inside its window). A search
    that reads it stops an example when its budget is spent (the example then fails, as in TextAttack).
    Raises ValueError for a budget below 1 (a budget of 0 could not even score the clean input) or when
    neither or both are given."""

    name = "query_budget"

    def __init__(self, max_queries: int | None = None, per_word: int | None = None):
        if (max_queries is None) == (per_word is None):
            raise ValueError("a query budget is either max_queries or per_word, exactly one of them")
        given = max_queries if max_queries is not None else per_word
        if given is None or given < 1:
            setting = "max_queries" if max_queries is not None else "per_word"
            raise ValueError(f"query budget {setting} must be at least 1, got {given}")
        self.max_queries = max_queries
        self.per_word = per_word

    def describe(self) -> dict:
        if self.per_word is not None:
            return {"per_word": self.per_word, "counted": "distinct queries, the clean one included"}
        return {"max_queries": self.max_queries, "counted": "distinct queries, the clean one included"}

    def limit(self, num_words: int) -> int:
        """The most queries of an example whose attacked side has ``num_words`` words the model reads."""
        if self.per_word is not None:
            return max(1, self.per_word * num_words)
        return int(self.max_queries or 0)


class SearchTimeConstraints(Constraints):
    """A recipe's constraints in two groups: ``per_word`` ones, applied when targets are built (as
    :class:`Constraints`), and ``on_text`` ones, which the search applies to each text it proposes;
    ``query_budget``, read by the search. :meth:`describe` records all of them."""

    def __init__(
        self,
        per_word: Sequence[Constraint],
        on_text: Sequence[TextConstraint] = (),
        query_budget: QueryBudget | None = None,
    ):
        super().__init__(per_word)
        self.on_text = tuple(on_text)
        self.query_budget = query_budget

    def auxiliary_models(self) -> list[AuxiliaryModel]:
        return super().auxiliary_models() + [model for c in self.on_text for model in c.auxiliary_models()]

    def describe(self) -> dict:
        described = super().describe()
        described["checked_on_each_proposed_text"] = {c.name: c.describe() for c in self.on_text}
        if self.query_budget is not None:
            described[QueryBudget.name] = self.query_budget.describe()
        return described
