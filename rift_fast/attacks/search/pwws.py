"""Probability Weighted Word Saliency (Ren et al. 2019, ACL, "Generating Natural Language Adversarial
Examples through Probability Weighted Word Saliency"), batched across examples.
"""

from __future__ import annotations

import numpy as np

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.search.base import FinishedListener, Outcomes, SearchMethod, SearchOutcome
from rift_fast.attacks.text import Edit
from rift_fast.attacks.transformation import Target
from rift_fast.attacks.victim import QueryEngine


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
        answers = iter(engine.answer(requests))
        plans = {}
        for target in targets:
            base = self.goal.loss(clean[target.index], target.label)
            saliency, drops, best_slots = [], [], []
            for position in target.attackable:
                saliency.append(base - self.goal.loss(next(answers), target.label))
                losses = [self.goal.loss(next(answers), target.label) for _ in target.choices[position][1:]]
                best = int(np.argmin(losses))
                drops.append(base - losses[best])
                best_slots.append(best + 1)
            weights = np.exp(np.asarray(saliency) - np.max(saliency))
            score = weights / weights.sum() * np.asarray(drops)
            order = np.argsort(-score, kind="stable")
            plans[target.index] = [(target.attackable[k], best_slots[k]) for k in order]
        return plans

    def _greedy(
        self, targets: list[Target], engine: QueryEngine, plans: dict[int, list[tuple[int, int]]], outcomes: Outcomes
    ) -> dict[int, SearchOutcome]:
        """Substitute along each plan, one word per step, until the label flips or the plan or the
        budget ends. The steps do not depend on the answers, so a call asks up to
        :meth:`QueryEngine.lookahead` steps of each target, speculatively; the steps past a success
        are never confirmed, so outcomes and query counts are those of one step per call (up to the
        float rounding of rows batched differently). Finished targets are published after each call."""
        chosen: dict[int, dict[int, int]] = {t.index: {} for t in targets}
        active = list(targets)
        while active:
            width = engine.lookahead(len(active))
            asked = []
            for target in active:
                plan, done = plans[target.index], len(chosen[target.index])
                limit = len(plan) if target.budget is None else min(len(plan), max(0, target.budget))
                steps = _cumulative(chosen[target.index], plan[done : min(done + width, limit)])
                if steps:
                    asked.append((target, steps))
                else:
                    outcomes[target.index] = SearchOutcome(False, chosen[target.index])
            active = self._greedy_call(asked, engine, chosen, outcomes, speculative=width > 1)
            outcomes.publish()
        return outcomes

    def _greedy_call(
        self,
        asked: list[tuple[Target, list[dict[int, int]]]],
        engine: QueryEngine,
        chosen: dict[int, dict[int, int]],
        outcomes: dict[int, SearchOutcome],
        speculative: bool,
    ) -> list[Target]:
        """One call for the next steps of each target (``asked``: target, its substitutions after each
        step); records successes in ``outcomes``, advances ``chosen`` to the last step used, confirms
        the steps used and returns the targets still searching."""
        edits = [[target.edit(step) for step in steps] for target, steps in asked]
        answers = engine.answer([edit for group in edits for edit in group], speculative=speculative)
        cursor, groups = 0, []
        for (target, steps), group in zip(asked, edits):
            groups.append((target, group, answers[cursor : cursor + len(steps)]))
            cursor += len(steps)
        still, used = [], []
        for (target, steps), group, success in zip(asked, edits, self._first_successes(groups, engine)):
            taken = len(steps) if success is None else success + 1
            used += group[:taken]
            chosen[target.index] = steps[taken - 1]
            if success is None:
                still.append(target)
            else:
                outcomes[target.index] = SearchOutcome(True, dict(steps[success]))
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


def _cumulative(chosen: dict[int, int], steps: list[tuple[int, int]]) -> list[dict[int, int]]:
    """The substitutions {position: slot} after each of ``steps`` [(position, slot)], from ``chosen``."""
    current, after = dict(chosen), []
    for position, slot in steps:
        current[position] = slot
        after.append(dict(current))
    return after
