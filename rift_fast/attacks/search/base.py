"""What every search method is: :class:`SearchMethod`, the per-target :class:`SearchOutcome` and the
:class:`Outcomes` a search publishes as targets finish.

Every search attacks many targets in lockstep: each round gathers the queries of all unfinished targets
into one :class:`QueryEngine` call, and finished targets leave the batch.

``attack(targets, engine, clean, finished)`` gets ``clean``: target index -> [C] probabilities of the
unmodified input, at the search's precision (the engine's answers without ``exact``), and ``finished``:
a callable told of each target's outcome as soon as it is final (:class:`Outcomes`), so that a run
records every example when it ends rather than when the whole batch ends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rift_fast.attacks.transformation import Target
from rift_fast.attacks.victim import QueryEngine


class SearchMethod(ABC):
    """A search over the targets' substitution choices, attacking many targets in lockstep.

    Subclasses set ``name`` and implement :meth:`settings` and :meth:`attack`; one :class:`QueryEngine`
    call per round should serve every unfinished target (identical queries are scored once there).
    """

    name: ClassVar[str]

    @property
    def serves_pending_choices(self) -> bool:
        """Whether the search fills targets' pending choices (a transformation that reads the current
        text, :attr:`Transformation.reads_current_text`) when it reaches their words."""
        return False

    @abstractmethod
    def settings(self) -> dict:
        """Every setting that changes the search's results, for run records."""

    @abstractmethod
    def attack(
        self,
        targets: list[Target],
        engine: QueryEngine,
        clean: dict[int, np.ndarray],
        finished: FinishedListener | None = None,
    ) -> dict[int, SearchOutcome]:
        """target index -> outcome. ``clean``: target index -> [C] float64 probabilities of the
        unmodified input at the search's precision; ``finished``: told of outcomes as they become
        final (see :class:`Outcomes`; a search without this argument reports them all at its end)."""


@dataclass
class SearchOutcome:
    """Result of one target: whether the search saw the label flip, the chosen slot per changed word,
    and whether the search had no candidate swap for the target at all (then it was not attacked:
    that is no evidence of robustness)."""

    success: bool
    chosen: dict[int, int]
    no_candidate: bool = False
    budget_exhausted: bool = False  # the search stopped because the example's query budget was spent


FinishedListener = Callable[[dict[int, SearchOutcome]], None]


class Outcomes(dict[int, SearchOutcome]):
    """target index -> outcome, as a search records them, telling ``listener`` of the new ones at each
    :meth:`publish`. A search publishes where every published target's queries are counted (after
    :meth:`QueryEngine.confirm`): the listener may then read :meth:`QueryEngine.queries_of`."""

    def __init__(self, listener: FinishedListener | None = None) -> None:
        super().__init__()
        self.listener = listener
        self._unpublished: list[int] = []

    def __setitem__(self, index: int, outcome: SearchOutcome) -> None:
        if index not in self:
            self._unpublished.append(index)
        super().__setitem__(index, outcome)

    def update(self, *others: Any, **named: Any) -> None:  # type: ignore[override]
        for index, outcome in dict(*others, **named).items():
            self[index] = outcome

    def publish(self) -> None:
        """Tell the listener of the outcomes recorded since the last call (in the order recorded)."""
        if self.listener is not None and self._unpublished:
            self.listener({index: self[index] for index in self._unpublished})
        self._unpublished = []
