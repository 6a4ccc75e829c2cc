"""The genetic attack of Alzantot et al. (2018, "Generating Natural Language Adversarial Examples",
EMNLP) as Jia et al. (2019, "Certified Robustness to Adversarial Word Substitutions", EMNLP) ran it over
the synonym index: population 60, 40 generations, no modification budget, the setting RIFT (Dong et al.,
NeurIPS 2021) evaluates with."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.recipes.base import Recipe
from rift_fast.attacks.recipes.options import ModificationBudgetOption, SeedOption, option
from rift_fast.attacks.search import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION, GeneticAttack, SearchMethod
from rift_fast.attacks.victim import VictimModel
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class GeneticOptions(SeedOption, ModificationBudgetOption):
    """The genetic attack's options (the commands declare ``--ga-population`` and ``--ga-generations``).

    Attributes:
        ga_population: members of each generation.
        ga_generations: most generations.
    """

    ga_population: int = option(PUBLISHED_GA_POPULATION, "GA: members of each generation", int, flag=False)
    ga_generations: int = option(PUBLISHED_GA_GENERATIONS, "GA: most generations", int, flag=False)


class GeneticRecipe(Recipe[GeneticOptions]):
    """The genetic attack (Alzantot et al. 2018, as Jia et al. 2019); its random draws are seeded with
    ``seed``."""

    name, label, summary = "ga", "GA", "genetic attack (Alzantot et al. 2018)"
    options_type = GeneticOptions

    def settings_text(self, options: GeneticOptions) -> str:
        return (
            f"population {options.ga_population}, {options.ga_generations} generations, "
            f"{super().settings_text(options)}"
        )

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: GeneticOptions
    ) -> SearchMethod:
        return GeneticAttack(
            goal, population=options.ga_population, generations=options.ga_generations, seed=options.seed
        )
