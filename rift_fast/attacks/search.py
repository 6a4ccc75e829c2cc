"""Search methods, each attacking many targets in lockstep: every round gathers the queries of all
unfinished targets into one :class:`QueryEngine` call, and finished targets leave the batch.

``attack(targets, engine, clean, finished)`` gets ``clean``: target index -> [C] probabilities of the
unmodified input, at the search's precision (the engine's answers without ``exact``), and ``finished``:
a callable told of each target's outcome as soon as it is final (:class:`Outcomes`), so that a run
records every example when it ends rather than when the whole batch ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch

from rift_fast.attacks.alignment import single_token_words
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.text import Edit
from rift_fast.attacks.transformation import Target
from rift_fast.attacks.victim import GradientBatch, QueryEngine, VictimModel
from rift_fast.core.words import lookup_form
from rift_fast.models.classifier import input_embedding_matrix
from rift_fast.ops.substitution_scores import substitution_scores


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


# Alzantot et al. (2018) as Jia et al. (2019) ran it, the setting RIFT (Dong et al., NeurIPS 2021) evaluates with.
PUBLISHED_GA_POPULATION, PUBLISHED_GA_GENERATIONS = 60, 40


def check_ga_settings(population: int, generations: int) -> None:
    """Raises a clear error unless population >= 2 and generations >= 1."""
    if population < 2 or generations < 1:
        raise ValueError(f"GA needs population >= 2 and generations >= 1, got {population}, {generations}")


class GeneticAttack(SearchMethod):
    """Genetic attack of Alzantot et al. (2018) as ported by Jia et al. (2019).

    Mutation picks a random word with more than one choice, tries every choice (the original word
    included) and keeps the one with the lowest loss. The first population is ``population``
    mutations of the input; each generation keeps the best member (elite), draws parent pairs with
    probability proportional to the goal's selection weight (1 - p_y, or sigmoid(-margin)), makes
    children by uniform crossover and mutates them. Success as soon as a member flips the label;
    the last population is checked too (its members were already scored). Each target has its own
    random generator seeded with (seed, example index), so results do not depend on batching.
    """

    name = "ga"

    def __init__(
        self,
        goal: UntargetedClassification,
        population: int = PUBLISHED_GA_POPULATION,
        generations: int = PUBLISHED_GA_GENERATIONS,
        seed: int = 0,
    ) -> None:
        check_ga_settings(population, generations)
        self.goal = goal
        self.population = population
        self.generations = generations
        self.seed = seed

    def settings(self) -> dict:
        return {"search": self.name, "population": self.population, "generations": self.generations, "seed": self.seed}

    def _mutate(
        self, jobs: list[tuple[Target, np.random.Generator, np.ndarray]], engine: QueryEngine
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """jobs: [(target, rng, chosen [W] int)] -> [(chosen, probabilities)] after one mutation each."""
        requests, mutations = [], []
        for target, rng, chosen in jobs:
            positions = target.attackable
            if target.budget is not None and np.count_nonzero(chosen) >= target.budget:
                positions = [p for p in positions if chosen[p]]
            position = positions[int(rng.integers(len(positions)))]
            options = target.edits_at(chosen, position)  # slot 0, 1, ... of the word at ``position``
            requests += options
            mutations.append((position, len(options)))
        answers = engine.answer(requests)
        mutated, cursor = [], 0
        for (target, _, chosen), (position, count) in zip(jobs, mutations):
            scored = answers[cursor : cursor + count]
            cursor += count
            best = int(np.argmin([self.goal.loss(p, target.label) for p in scored]))
            option = chosen.copy()
            option[position] = best
            mutated.append((option, scored[best]))
        return mutated

    def _crossover(self, target: Target, rng: np.random.Generator, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        child = np.where(rng.random(len(first)) < 0.5, first, second)
        if target.budget is not None and np.count_nonzero(child) > target.budget:
            modified = np.flatnonzero(child)
            child[rng.choice(modified, size=len(modified) - target.budget, replace=False)] = 0
        return child

    def _best_member(
        self, target: Target, members: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The member of lowest loss (the first of them on a tie)."""
        return members[int(np.argmin([self.goal.loss(p, target.label) for _, p in members]))]

    def _best_successes(
        self, targets: list[Target], populations: dict[int, list[tuple[np.ndarray, np.ndarray]]], engine: QueryEngine
    ) -> dict[int, SearchOutcome]:
        """target index -> success outcome, for the targets whose best member flips the label; the
        best members' answers are decided by :meth:`QueryEngine.decide` (exact near the boundary)."""
        best = [self._best_member(t, populations[t.index]) for t in targets]
        edits = [t.edit(chosen) for t, (chosen, _) in zip(targets, best)]
        answers = [probabilities for _, probabilities in best]
        claimed = [self.goal.succeeded(p, t.label) for t, p in zip(targets, answers)]
        decided = engine.decide(edits, answers, claimed)
        return {
            t.index: SearchOutcome(True, {i: int(s) for i, s in enumerate(chosen) if s})
            for t, (chosen, _), p in zip(targets, best, decided)
            if self.goal.succeeded(p, t.label)
        }

    def attack(
        self,
        targets: list[Target],
        engine: QueryEngine,
        clean: dict[int, np.ndarray],
        finished: FinishedListener | None = None,
    ) -> dict[int, SearchOutcome]:
        rngs = {t.index: np.random.default_rng([self.seed, t.index]) for t in targets}
        jobs = [
            (t, rngs[t.index], np.zeros(len(t.choices), dtype=np.int64))
            for t in targets
            for _ in range(self.population)
        ]
        mutated = self._mutate(jobs, engine)
        populations = {t.index: mutated[k * self.population : (k + 1) * self.population] for k, t in enumerate(targets)}
        outcomes = Outcomes(finished)
        active = list(targets)
        for _ in range(self.generations):
            breeding, elites = [], {}
            outcomes.update(self._best_successes(active, populations, engine))
            outcomes.publish()
            for target in active:
                if target.index in outcomes:
                    continue
                members = populations[target.index]
                rng = rngs[target.index]
                losses = [self.goal.loss(p, target.label) for _, p in members]
                elites[target.index] = members[int(np.argmin(losses))]
                weights = np.array([self.goal.selection_weight(p, target.label) for _, p in members])
                weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(members), 1 / len(members))
                first = rng.choice(len(members), size=self.population - 1, p=weights)
                second = rng.choice(len(members), size=self.population - 1, p=weights)
                for a, b in zip(first, second):
                    breeding.append((target, rng, self._crossover(target, rng, members[a][0], members[b][0])))
            active = [t for t in active if t.index not in outcomes]
            if not active:
                break
            children = self._mutate(breeding, engine)
            for k, target in enumerate(active):
                populations[target.index] = [
                    elites[target.index],
                    *children[k * (self.population - 1) : (k + 1) * (self.population - 1)],
                ]
        outcomes.update(self._best_successes(active, populations, engine))
        for target in active:
            if target.index not in outcomes:
                chosen, _ = min(populations[target.index], key=lambda m: self.goal.loss(m[1], target.label))
                outcomes[target.index] = SearchOutcome(False, {i: int(s) for i, s in enumerate(chosen) if s})
        outcomes.publish()
        return outcomes


class GradientGuidedGreedy(SearchMethod):
    """Greedy attack ranked by first-order scores, then scored by the model.

    Each round, for all unfinished targets at once: one forward/backward gives the loss gradient at
    the word embeddings; the fused ``substitution_scores`` op scores every synonym swap of every
    unmodified attackable word, (E[c] - E[w]) . grad, and keeps the ``candidates`` best allowed
    swaps; those are scored by the model through the query engine (at the search's precision) and
    the best is applied if it lowers the loss. Gradients are always taken on the model itself.
    Stops on success, when no candidate lowers the loss, or at the budget. Only words that are one
    token of the tokenizer, with one-token synonyms (``vocab_table``), are ranked this way; tokens are
    matched to words by character offsets and synonym tokens to choices by their decoded text, so
    WordPiece, byte-level BPE and SentencePiece vocabularies all work. A target with no such swap at
    the start is reported with ``no_candidate`` (not attacked), never as a failed attack. Gradient
    passes are batched by the victim's ``batch_size``.
    """

    name = "gradient"

    def __init__(
        self,
        goal: UntargetedClassification,
        victim: VictimModel,
        vocab_table: torch.Tensor,
        candidates: int = 8,
        backend: str | None = None,
    ) -> None:
        self.goal = goal
        self.victim = victim
        self.vocab_table = vocab_table.to(victim.device)
        self.candidates = candidates
        self.backend = backend
        # get_input_embeddings: a Hugging Face model's method (nn.Module does not declare it)
        self.embeddings: torch.Tensor = input_embedding_matrix(cast(Any, victim.model).get_input_embeddings()).detach()
        self._token_texts: dict[int, str] = {}

    def settings(self) -> dict:
        return {"search": self.name, "candidates": self.candidates}

    def _ranked_swaps(
        self, targets: list[Target], chosen: dict[int, dict[int, int]], attacked_side: int
    ) -> dict[int, list[tuple[int, int]]]:
        """target index -> up to ``candidates`` allowed (word position, slot), best first-order first."""
        queries = [t.render(chosen[t.index]) for t in targets]
        ranked: dict[int, list[tuple[int, int]]] = {}
        for batch in self.victim.embedding_gradients(queries, [t.label for t in targets], attacked_side):
            ranked.update(self._rank_batch(batch, [targets[k] for k in batch.rows], chosen, attacked_side))
        return ranked

    def _rank_batch(
        self, batch: GradientBatch, targets: list[Target], chosen: dict[int, dict[int, int]], attacked_side: int
    ) -> dict[int, list[tuple[int, int]]]:
        """The ranked swaps of the targets of one gradient pass (``targets[row]`` is row ``row``)."""
        mask = torch.zeros(batch.input_ids.shape, dtype=torch.bool)
        word_at: list[dict[int, int]] = []
        for row, target in enumerate(targets):
            substitutes = {i: target.choices[i][s] for i, s in chosen[target.index].items()}
            text, spans = target.spans.replace_with_spans(substitutes)
            token_spans = [
                span if side == attacked_side else None for span, side in zip(batch.offsets[row], batch.sides[row])
            ]
            positions = {
                token: word
                for token, word in single_token_words(token_spans, spans, text).items()
                if word in target.attackable and word not in chosen[target.index]
            }
            mask[row, list(positions)] = True
            word_at.append(positions)
        scores = substitution_scores(
            batch.input_ids,
            self.vocab_table,
            self.embeddings.to(batch.grad.dtype),
            batch.grad,
            attack_mask=mask.to(batch.input_ids.device),
            topk=4 * self.candidates,
            backend=self.backend,
        )
        ranked: dict[int, list[tuple[int, int]]] = {}
        for row, target in enumerate(targets):
            swaps: list[tuple[int, int]] = []
            for position, slot in zip(scores.top_position[row].tolist(), scores.top_slot[row].tolist()):
                if position < 0 or len(swaps) == self.candidates:
                    break
                word = word_at[row][position]
                candidate = self._token_text(int(self.vocab_table[batch.input_ids[row, position], slot]))
                options = [lookup_form(o) for o in target.choices[word]]
                if candidate in options[1:]:
                    swaps.append((word, options.index(candidate, 1)))
            ranked[target.index] = list(dict.fromkeys(swaps))
        return ranked

    def _token_text(self, token_id: int) -> str:
        """The lookup form (:func:`rift_fast.core.words.lookup_form`) of a token's text as the tokenizer decodes
        it, without the tokenizer's word markers or the space before a word (``Ġfilm``, ``▁film`` -> ``film``)."""
        if token_id not in self._token_texts:
            self._token_texts[token_id] = lookup_form(cast(str, self.victim.tokenizer.decode([token_id])).strip())
        return self._token_texts[token_id]

    def attack(
        self,
        targets: list[Target],
        engine: QueryEngine,
        clean: dict[int, np.ndarray],
        finished: FinishedListener | None = None,
    ) -> dict[int, SearchOutcome]:
        attacked_side = 0 if targets and targets[0].example.text_pair is None else 1
        chosen: dict[int, dict[int, int]] = {t.index: {} for t in targets}
        latest = {t.index: clean[t.index] for t in targets}
        outcomes = Outcomes(finished)
        active = list(targets)
        while active:
            ranked = self._ranked_swaps(active, chosen, attacked_side)
            requests = [t.edit({**chosen[t.index], word: slot}) for t in active for word, slot in ranked[t.index]]
            answers = iter(engine.answer(requests))
            improving = []  # (target, word, slot, its search answer)
            for target in active:
                if not ranked[target.index] and not chosen[target.index]:
                    outcomes[target.index] = SearchOutcome(False, {}, no_candidate=True)
                    continue
                scored = [
                    (self.goal.loss(p, target.label), k, p) for k, p in zip(range(len(ranked[target.index])), answers)
                ]
                current = self.goal.loss(latest[target.index], target.label)
                best = min(scored, key=lambda item: (item[0], item[1]), default=None)
                if best is None or best[0] >= current:
                    outcomes[target.index] = SearchOutcome(False, chosen[target.index])
                    continue
                word, slot = ranked[target.index][best[1]]
                improving.append((target, word, slot, best[2]))
            edits = [t.edit({**chosen[t.index], word: slot}) for t, word, slot, _ in improving]
            claimed = [self.goal.succeeded(p, t.label) for t, _, _, p in improving]
            decided = engine.decide(edits, [p for _, _, _, p in improving], claimed)
            still = []
            for (target, word, slot, _), probabilities in zip(improving, decided):
                chosen[target.index][word] = slot
                latest[target.index] = probabilities
                if self.goal.succeeded(probabilities, target.label):
                    outcomes[target.index] = SearchOutcome(True, chosen[target.index])
                elif target.budget is not None and len(chosen[target.index]) >= target.budget:
                    outcomes[target.index] = SearchOutcome(False, chosen[target.index])
                else:
                    still.append(target)
            active = still
            outcomes.publish()
        return outcomes
