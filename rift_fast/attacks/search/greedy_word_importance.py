"""Greedy word swap in word-importance order (TextAttack's ``GreedyWordSwapWIR``), the search of
TextFooler (Jin et al. 2020) and DeepWordBug (Gao et al. 2018), batched across examples.

Every round serves all unfinished examples together: one :class:`QueryEngine` call for the importance
probes of all of them, then per step one sentence-encoder batch (the text constraints) and one engine
call for the surviving candidates of all of them. Finished examples leave the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import numpy as np

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.search.base import FinishedListener, Outcomes, SearchMethod, SearchOutcome
from rift_fast.attacks.sentence_encoder import SentenceSimilarity
from rift_fast.attacks.text import Edit
from rift_fast.attacks.text_constraints import Perturbation, QueryBudget, TextConstraint
from rift_fast.attacks.transformation import PendingChoices, Target
from rift_fast.attacks.victim import Query, QueryEngine

Request = TypeVar("Request", Query, Edit)  # what the search asks the engine about: a rendered query or an edit

# How words are ranked before the greedy swaps:
# delete: the drop of the goal's loss when the word is deleted (TextFooler, Jin et al. 2020, Eq. 2);
# unk: ... when it is replaced by an unknown token (TextAttack's default, its deepwordbug recipe);
# combined: DeepWordBug's Combined Score, temporal head + lambda x temporal tail (Gao et al. 2018, Eq. 4).
RANKINGS = ("delete", "unk", "combined")
TEXTATTACK_UNKNOWN_TOKEN = "[UNK]"  # the literal text TextAttack's "unk" ranking puts in a word's place
COMBINED_TAIL_WEIGHT = 1.0  # lambda of the Combined Score (Gao et al. 2018)


@dataclass
class _Progress:
    """What the search holds for one target."""

    target: Target
    order: list[int]
    query_limit: int | None
    chosen: dict[int, int] = field(default_factory=dict)
    loss: float = 0.0
    step: int = 0
    scored_any: bool = False
    budget_spent: bool = False  # a request was cut by the query budget: the search is over (as in TextAttack)


class GreedyWordSwap(SearchMethod):
    """Greedy swaps in importance order (TextAttack 0.3.11 ``GreedyWordSwapWIR``).

    Attackable words are ranked once by ``ranking`` (:data:`RANKINGS`), most important first, ties by
    position. Then, one word per step, the word's candidates that every ``text_constraints`` accepts
    (each judged against the text the search holds and the original) are scored; the one with the
    lowest loss is kept when it lowers the loss. When several flip the label, the one most similar to
    the text before the swap wins, as in TextAttack, if a :class:`SentenceSimilarity` is among the
    text constraints and checks the text. An example ends on success, when its words run out,
    when its modification budget is spent, or when ``query_budget`` is spent (it then fails, as in
    TextAttack; its last requests are cut to what the budget allows). An example whose candidates were
    all rejected by the text constraints (or, with ``pending``, never proposed), so that nothing was ever
    scored, is reported with ``no_candidate``. ``pending`` fills the choices of a word that a
    transformation proposes from the text the search holds (BAE) when the search reaches it, for all
    examples of a step in one call. Deterministic: no random draw, so batched runs equal one example at a
    time.

    Differences from TextAttack: words without candidates are not probed for importance (TextAttack
    probes every word the pre-transformation constraints allow, as this search does with pending
    choices), and queries are counted once per distinct text.
    """

    name = "greedy_wir"

    def __init__(
        self,
        goal: UntargetedClassification,
        ranking: str,
        text_constraints: Sequence[TextConstraint] = (),
        query_budget: QueryBudget | None = None,
        unknown_token: str = TEXTATTACK_UNKNOWN_TOKEN,
        pending: PendingChoices | None = None,
    ) -> None:
        if ranking not in RANKINGS:
            raise ValueError(f"word ranking must be one of {RANKINGS}, got {ranking!r}")
        self.goal = goal
        self.ranking = ranking
        self.text_constraints = tuple(text_constraints)
        self.query_budget = query_budget
        self.unknown_token = unknown_token
        self.pending = pending

    @property
    def serves_pending_choices(self) -> bool:
        return self.pending is not None

    def settings(self) -> dict:
        settings: dict = {"search": self.name, "ranking": self.ranking}
        if self.ranking == "unk":
            settings["unknown_token"] = self.unknown_token
        if self.ranking == "combined":
            settings["tail_weight"] = COMBINED_TAIL_WEIGHT
        return settings

    def _probes(self, target: Target) -> list[Edit] | list[Query]:
        """The queries whose answers rank the target's words (see :meth:`_importance`): word edits (the
        word deleted or an unknown token in its place, spliced where exact), or the rendered heads and
        tails of the Combined Score, which are not word edits."""
        if self.ranking in ("delete", "unk"):
            filler = "" if self.ranking == "delete" else self.unknown_token
            return [target.edit_with({p: filler}) for p in target.attackable]
        text, spans = target.spans.text, target.spans.spans
        probes = []
        for p in target.attackable:
            head_end = spans[p - 1][1] if p > 0 else 0
            tail_start = spans[p + 1][0] if p + 1 < len(spans) else len(text)
            for piece in (text[: spans[p][1]], text[:head_end], text[spans[p][0] :], text[tail_start:]):
                probes.append(target.query_of(piece))
        return probes

    def _importance(self, target: Target, base: float, losses: list[float]) -> list[float]:
        """Per attackable word, how much it supports the true label (the larger, the earlier it is swapped)."""
        if self.ranking in ("delete", "unk"):
            return [base - loss for loss in losses]
        scores = []
        for k in range(len(target.attackable)):
            head, head_before, tail, tail_after = losses[4 * k : 4 * k + 4]
            scores.append((head - head_before) + COMBINED_TAIL_WEIGHT * (tail - tail_after))
        return scores

    def _allowed(
        self, engine: QueryEngine, progress: _Progress, requests: list[Request], rendered: bool = False
    ) -> list[Request]:
        """The longest first part of ``requests`` that the example's query budget still allows, marking
        the budget spent when some are cut. Only distinct new queries count
        (:meth:`QueryEngine.fresh_queries`): a request that repeats a query already asked, or one earlier
        in the list, is answered from the cache and costs nothing (``rendered``: the requests are texts)."""
        if progress.query_limit is None:
            return requests
        index = progress.target.index
        left = progress.query_limit - engine.queries_of(index)
        for count, fresh in enumerate(engine.fresh_queries(index, requests, rendered)):
            if fresh and left <= 0:
                progress.budget_spent = True
                return requests[:count]
            left -= fresh
        return requests

    def _out_of_queries(self, engine: QueryEngine, progress: _Progress) -> bool:
        limit = progress.query_limit
        return progress.budget_spent or (limit is not None and engine.queries_of(progress.target.index) >= limit)

    def _rank(self, targets: list[Target], engine: QueryEngine, clean: dict[int, np.ndarray]) -> dict[int, _Progress]:
        """Every target's word order, from one engine call for all probes."""
        limits = {t.index: self.query_budget.limit(t.num_visible_words) if self.query_budget else None for t in targets}
        progress = {t.index: _Progress(t, [], limits[t.index]) for t in targets}
        probes = {t.index: self._probes(t) for t in targets}
        rendered = self.ranking == "combined"
        allowed = {t.index: self._allowed(engine, progress[t.index], probes[t.index], rendered) for t in targets}
        answers = iter(self._probe_answers(engine, targets, allowed))
        for target in targets:
            state = progress[target.index]
            state.loss = self.goal.loss(clean[target.index], target.label)
            losses = [self.goal.loss(next(answers), target.label) for _ in allowed[target.index]]
            if state.budget_spent:
                continue  # the budget ran out while ranking: no order, the example fails (as in TextAttack)
            importance = self._importance(target, state.loss, losses)
            ranked = sorted(range(len(importance)), key=lambda k: (-importance[k], k))
            state.order = [target.attackable[k] for k in ranked]
        return progress

    def _probe_answers(
        self, engine: QueryEngine, targets: list[Target], probes: dict[int, list[Edit] | list[Query]]
    ) -> list[np.ndarray]:
        """The engine's answers to every target's ``probes``, in order, from one engine call."""
        if self.ranking == "combined":
            return engine.answer_texts([(t.index, cast(Query, q)) for t in targets for q in probes[t.index]])
        return engine.answer([cast(Edit, edit) for t in targets for edit in probes[t.index]])

    def attack(
        self,
        targets: list[Target],
        engine: QueryEngine,
        clean: dict[int, np.ndarray],
        finished: FinishedListener | None = None,
    ) -> dict[int, SearchOutcome]:
        progress = self._rank(targets, engine, clean)
        outcomes = Outcomes(finished)
        active = list(progress.values())
        while active:
            proposals: list[tuple[_Progress, int, int]] = []  # (progress, position, slot)
            steps: list[tuple[_Progress, int]] = []  # (progress, position) of this step
            still = []
            for state in active:
                target = state.target
                over_budget = target.budget is not None and len(state.chosen) >= target.budget
                out_of_queries = self._out_of_queries(engine, state)
                words_left = state.step < len(state.order) and not over_budget
                if not words_left or out_of_queries:
                    no_candidate = not state.scored_any and not out_of_queries
                    exhausted = state.budget_spent or (out_of_queries and words_left)
                    outcomes[target.index] = SearchOutcome(
                        False, state.chosen, no_candidate=no_candidate, budget_exhausted=exhausted
                    )
                    continue
                steps.append((state, state.order[state.step]))
                state.step += 1
            self._fill_pending(steps)
            for state, position in steps:
                proposals += [(state, position, slot) for slot in range(1, len(state.target.choices[position]))]
                still.append(state)
            proposals = self._constrained(proposals)
            self._score_and_apply(proposals, engine, outcomes)
            active = [s for s in still if s.target.index not in outcomes]
            outcomes.publish()
        return outcomes

    def _fill_pending(self, steps: list[tuple[_Progress, int]]) -> None:
        """The choices of this step's words that are still pending, filled in one call."""
        requests = [
            (state.target, position, _swapped(state)) for state, position in steps if position in state.target.pending
        ]
        if not requests:
            return
        if self.pending is None:
            raise ValueError("targets with pending choices need a GreedyWordSwap built with a PendingChoices")
        self.pending.fill(requests)

    def _constrained(self, proposals: list[tuple[_Progress, int, int]]) -> list[tuple[_Progress, int, int]]:
        """The proposals every text constraint accepts, each constraint judging all of them in one batch."""
        for constraint in self.text_constraints:
            if not proposals:
                break
            perturbations = [
                Perturbation(
                    state.target.spans.words,
                    _current_words(state),
                    position,
                    state.target.choices[position][slot],
                )
                for state, position, slot in proposals
            ]
            proposals = [p for p, kept in zip(proposals, constraint.accepts(perturbations)) if kept]
        return proposals

    def _score_and_apply(
        self, proposals: list[tuple[_Progress, int, int]], engine: QueryEngine, outcomes: dict[int, SearchOutcome]
    ) -> None:
        """Score every proposal in one engine call; keep each example's best when it lowers its loss."""
        by_example: dict[int, list[tuple[_Progress, int, int]]] = {}
        for proposal in proposals:
            by_example.setdefault(proposal[0].target.index, []).append(proposal)
        requests, owners = [], []
        for group in by_example.values():
            state = group[0][0]
            edits = [state.target.edit({**state.chosen, position: slot}) for _, position, slot in group]
            allowed = self._allowed(engine, state, edits)
            requests += allowed
            owners += group[: len(allowed)]
        answers = self._decided(
            engine, requests, engine.answer(requests), [state.target.label for state, _, _ in owners]
        )
        scored: dict[int, list[_Scored]] = {}
        for (state, position, slot), probabilities in zip(owners, answers):
            state.scored_any = True
            loss = self.goal.loss(probabilities, state.target.label)
            scored.setdefault(state.target.index, []).append(_Scored(loss, position, slot, probabilities))
        for index, candidates in scored.items():
            state = by_example[index][0][0]
            best = min(candidates, key=lambda c: c.loss)  # the first of equal losses
            if best.loss >= state.loss:
                continue
            succeeded = self.goal.succeeded(best.probabilities, state.target.label)
            if succeeded:
                best = self._most_similar_success(state, candidates)
            state.chosen[best.position] = best.slot
            state.loss = best.loss
            if succeeded:
                outcomes[index] = SearchOutcome(True, dict(state.chosen))

    def _decided(
        self, engine: QueryEngine, edits: list[Edit], answers: list[np.ndarray], labels: list[int]
    ) -> list[np.ndarray]:
        """``answers`` with every claimed success (and answer near the boundary) re-scored by the exact
        model (:meth:`QueryEngine.decide`), so that a success is never a reduced-precision artefact."""
        claimed = [self.goal.succeeded(p, label) for p, label in zip(answers, labels)]
        return engine.decide(edits, answers, claimed)

    def _most_similar_success(self, state: _Progress, candidates: list[_Scored]) -> _Scored:
        """Among the candidates that flip the label, the one whose window is most similar to the text
        before the swap (TextAttack's ``GreedyWordSwapWIR``; the first of equal similarities in order of
        loss), or the lowest loss when the search has no sentence-similarity constraint or the text is
        shorter than its window."""
        successes = sorted(
            (c for c in candidates if self.goal.succeeded(c.probabilities, state.target.label)), key=lambda c: c.loss
        )
        similarity = next((c for c in self.text_constraints if isinstance(c, SentenceSimilarity)), None)
        current = _current_words(state)
        if similarity is None or len(successes) < 2 or similarity.skips(current):
            return successes[0]
        perturbations = [
            Perturbation(state.target.spans.words, current, c.position, state.target.choices[c.position][c.slot])
            for c in successes
        ]
        scores = similarity.similarities(perturbations)
        return successes[int(np.argmax(scores))]


@dataclass(frozen=True)
class _Scored:
    """A scored proposal: its loss, word position and slot, and the victim's probabilities."""

    loss: float
    position: int
    slot: int
    probabilities: np.ndarray


def _swapped(state: _Progress) -> dict[int, str]:
    """The swaps chosen so far: position -> new word."""
    return {position: state.target.choices[position][slot] for position, slot in state.chosen.items()}


def _current_words(state: _Progress) -> tuple[str, ...]:
    """The attacked side's words with the swaps chosen so far."""
    words = list(state.target.spans.words)
    for position, word in _swapped(state).items():
        words[position] = word
    return tuple(words)
