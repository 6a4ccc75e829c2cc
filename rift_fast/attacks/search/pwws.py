"""Probability Weighted Word Saliency (Ren et al. 2019, ACL, "Generating Natural Language Adversarial
Examples through Probability Weighted Word Saliency"), batched across examples.
"""

from __future__ import annotations

from bisect import insort

import numpy as np

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.search.base import FinishedListener, Outcomes, SearchMethod, SearchOutcome
from rift_fast.attacks.text import Edit
from rift_fast.attacks.transformation import Target
from rift_fast.attacks.victim import QueryEngine

# Greedy steps per target whose rows one QueryEngine.prepare call builds ahead of their one-step calls
# (rows past a success are built for nothing: a few splices, no model rows).
STEPS_BUILT_AHEAD = 32


class PWWS(SearchMethod):
    """Probability Weighted Word Saliency (Ren et al. 2019).

    saliency S(i) = p_y(x) - p_y(x with word i replaced by the unknown token); for each word the best
    synonym w*_i by the drop it causes in p_y; words are ordered by softmax(S)_i * drop_i and their
    best synonyms substituted cumulatively, one per round, until the label flips or the budget (if
    any) is spent. Uses the goal's loss (p_y or the margin) for drops.
    """

    name = "pwws"

    def __init__(self, goal: UntargetedClassification, unknown_token: str) -> None:
        self.goal = goal
        self.unknown_token = unknown_token

    def settings(self) -> dict:
        return {"search": self.name, "unknown_token": self.unknown_token}

    def attack(
        self,
        targets: list[Target],
        engine: QueryEngine,
        clean: dict[int, np.ndarray],
        finished: FinishedListener | None = None,
    ) -> dict[int, SearchOutcome]:
        return self._greedy(targets, engine, self._plans(targets, engine, clean), Outcomes(finished))

    def _plans(
        self, targets: list[Target], engine: QueryEngine, clean: dict[int, np.ndarray]
    ) -> dict[int, list[tuple[int, int]]]:
        """Each target's substitution plan [(position, best slot)] in PWWS order, from one call."""
        requests = []
        for target in targets:
            for position in target.attackable:
                requests.append(target.edit_with({position: self.unknown_token}))
                requests.extend((target.index, ((position, word),)) for word in target.choices[position][1:])
        if not requests:
            return {target.index: [] for target in targets}
        losses = self._losses(np.stack(engine.answer(requests)), targets)
        plans, cursor = {}, 0
        for target in targets:
            base = self.goal.loss(clean[target.index], target.label)
            saliency, drops, best_slots = [], [], []
            for position in target.attackable:
                synonyms = len(target.choices[position]) - 1
                saliency.append(base - losses[cursor])
                best = int(np.argmin(losses[cursor + 1 : cursor + 1 + synonyms]))
                drops.append(base - losses[cursor + 1 + best])
                best_slots.append(best + 1)
                cursor += 1 + synonyms
            weights = np.exp(np.asarray(saliency) - np.max(saliency))
            score = weights / weights.sum() * np.asarray(drops)
            order = np.argsort(-score, kind="stable")
            plans[target.index] = [(target.attackable[k], best_slots[k]) for k in order]
        return plans

    def _losses(self, answers: np.ndarray, targets: list[Target]) -> np.ndarray:
        """The goal's loss [N] float64 of each of ``answers`` [N, C], the rows of each target in turn
        (one row per attackable word and per synonym of it)."""
        rows_per_target = [sum(len(target.choices[p]) for p in target.attackable) for target in targets]
        labels = np.repeat([target.label for target in targets], rows_per_target)
        return self.goal.losses(answers, labels)

    def _greedy(
        self, targets: list[Target], engine: QueryEngine, plans: dict[int, list[tuple[int, int]]], outcomes: Outcomes
    ) -> dict[int, SearchOutcome]:
        """Substitute along each plan, one word per step, until the label flips or the plan or the
        budget ends. The steps do not depend on the answers, so a call asks up to
        :meth:`QueryEngine.lookahead` steps of each target, speculatively; the steps past a success
        are never confirmed, so outcomes and query counts are those of one step per call (up to the
        float rounding of rows batched differently). The rows of the next
        :data:`STEPS_BUILT_AHEAD` steps are built in one :meth:`QueryEngine.prepare` call, asked
        later one call at a time. Finished targets are published after each call."""
        paths = {t.index: _GreedyPath(t, plans[t.index]) for t in targets}
        taken = {t.index: 0 for t in targets}
        built = {t.index: 0 for t in targets}  # steps whose rows are built (or asked)
        active = list(targets)
        while active:
            width = engine.lookahead(len(active))
            asked = []
            for target in active:
                path, done = paths[target.index], taken[target.index]
                if done < path.length:
                    asked.append((path, done, min(done + width, path.length)))
                else:
                    outcomes[target.index] = SearchOutcome(False, path.chosen(done))
            if width < STEPS_BUILT_AHEAD:
                _build_ahead(asked, built, engine)
            active = self._greedy_call(asked, engine, taken, outcomes, speculative=width > 1)
            outcomes.publish()
        return outcomes

    def _greedy_call(
        self,
        asked: list[tuple[_GreedyPath, int, int]],
        engine: QueryEngine,
        taken: dict[int, int],
        outcomes: dict[int, SearchOutcome],
        speculative: bool,
    ) -> list[Target]:
        """One call for the next steps of each target (``asked``: its path, and the steps [start,
        stop) asked); records successes in ``outcomes``, advances ``taken`` to the steps used,
        confirms the steps used and returns the targets still searching."""
        edits = [path.edits(start, stop) for path, start, stop in asked]
        answers = engine.answer([edit for group in edits for edit in group], speculative=speculative)
        cursor, groups = 0, []
        for (path, _, _), group in zip(asked, edits):
            groups.append((path.target, group, answers[cursor : cursor + len(group)]))
            cursor += len(group)
        still, used = [], []
        for (path, start, _), group, success in zip(asked, edits, self._first_successes(groups, engine)):
            steps = len(group) if success is None else success + 1
            used += group[:steps]
            taken[path.target.index] = start + steps
            if success is None:
                still.append(path.target)
            else:
                outcomes[path.target.index] = SearchOutcome(True, path.chosen(start + steps))
        engine.confirm(used)
        return still

    def _first_successes(
        self, groups: list[tuple[Target, list[Edit], list[np.ndarray]]], engine: QueryEngine
    ) -> list[int | None]:
        """Per (target, its steps' edits, their search answers): the first step whose decided answer
        (:meth:`QueryEngine.decide`) succeeds, or None. Steps are decided in order up to the first
        claimed success, and past it only when the exact model overturns the claim, so no answer is
        re-scored that one step per call would not have re-scored."""
        claimed = [[self.goal.succeeded(p, target.label) for p in answers] for target, _, answers in groups]
        first: list[int | None] = [None] * len(groups)
        start = [0] * len(groups)
        pending = list(range(len(groups)))
        while pending:
            windows = {}
            for k in pending:
                claims = claimed[k][start[k] :]
                windows[k] = (start[k], start[k] + (claims.index(True) + 1 if True in claims else len(claims)))
            rows = [(k, i) for k, (low, high) in windows.items() for i in range(low, high)]
            decided = engine.decide(
                [groups[k][1][i] for k, i in rows], [groups[k][2][i] for k, i in rows], [claimed[k][i] for k, i in rows]
            )
            flipped = {row for row, p in zip(rows, decided) if self.goal.succeeded(p, groups[row[0]][0].label)}
            pending = []
            for k, (low, high) in windows.items():
                first[k] = next((i for i in range(low, high) if (k, i) in flipped), None)
                if first[k] is None and high < len(groups[k][1]):  # the claim at high - 1 was overturned
                    start[k] = high
                    pending.append(k)
        return first


def _build_ahead(asked: list[tuple[_GreedyPath, int, int]], built: dict[int, int], engine: QueryEngine) -> None:
    """Build the rows of each asked path's next :data:`STEPS_BUILT_AHEAD` steps where the steps asked
    now (``asked``: path, [start, stop)) pass those built (``built``: steps built per target, advanced)."""
    ahead = []
    for path, start, stop in asked:
        index = path.target.index
        if stop > built[index]:
            built[index] = min(start + STEPS_BUILT_AHEAD, path.length)
            ahead += path.edits(start, built[index])
    if ahead:
        engine.prepare(ahead)


class _GreedyPath:
    """A target's greedy substitutions along its plan: the :data:`Edit` after each step, made once
    (the steps are asked in order: those before the first step asked are forgotten).

    Args:
        target: the target.
        plan: its substitutions [(position, slot)] in PWWS order (positions distinct).
    """

    def __init__(self, target: Target, plan: list[tuple[int, int]]) -> None:
        self.target = target
        self.plan = plan[: len(plan) if target.budget is None else max(0, target.budget)]
        self.length = len(self.plan)
        self._edits: list[Edit] = []  # after steps _first, _first + 1, ...
        self._first = 0
        self._substitutes: list[tuple[int, str]] = []  # after the steps made so far, by position

    def edits(self, start: int, stop: int) -> list[Edit]:
        """The edits after steps ``start`` to ``stop`` - 1 (step k substitutes plan[0..k]); ``start``
        never goes back."""
        del self._edits[: start - self._first]
        self._first = start
        while self._first + len(self._edits) < stop:
            position, slot = self.plan[self._first + len(self._edits)]
            insort(self._substitutes, (position, self.target.choices[position][slot]))
            self._edits.append((self.target.index, tuple(self._substitutes)))
        return self._edits[: stop - start]

    def chosen(self, steps: int) -> dict[int, int]:
        """The substitutions {position: slot} after the first ``steps`` steps."""
        return dict(self.plan[:steps])
