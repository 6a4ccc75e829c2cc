"""The genetic attack of Alzantot et al. (2018, EMNLP, "Generating Natural Language Adversarial Examples")
as ported by Jia et al. (2019, EMNLP, "Certified Robustness to Adversarial Word Substitutions").
"""

from __future__ import annotations

import numpy as np

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.search.base import FinishedListener, Outcomes, SearchMethod, SearchOutcome
from rift_fast.attacks.transformation import Target
from rift_fast.attacks.victim import QueryEngine

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
