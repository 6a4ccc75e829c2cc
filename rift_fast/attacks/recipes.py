"""Attack recipes: each assembles a goal, constraints, a transformation and a search in exactly one
place, and one registry maps names to them. The attack command line (``--attack``), the test-pool
evaluation of ``python -m rift_fast.train`` and the benchmarks all build attacks here.

Adding an attack: subclass :class:`Recipe` (usually only :meth:`Recipe.search`) and decorate it with
``@register_recipe``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

from rift_fast.attacks.constraints import Constraint, Constraints, MaxModificationRatio, StopWords
from rift_fast.attacks.embedding import PUBLISHED_MIN_COSINE, PUBLISHED_NEIGHBOURS
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.masked_lm import DEFAULT_MASKED_LANGUAGE_MODEL
from rift_fast.attacks.runner import AttackCheckpoint, AttackReport, run_attack
from rift_fast.attacks.search import (
    PUBLISHED_GA_GENERATIONS,
    PUBLISHED_GA_POPULATION,
    PWWS,
    GeneticAttack,
    GradientGuidedGreedy,
    SearchMethod,
)
from rift_fast.attacks.text_constraints import PUBLISHED_MAX_EDIT_DISTANCE
from rift_fast.attacks.transformation import SynonymSwap, Transformation
from rift_fast.attacks.victim import VictimModel
from rift_fast.core.records import Example
from rift_fast.models import EMBEDDED_MODEL_NAME
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class RecipeOptions:
    """The options recipes read (each recipe's docstring says which); defaults are the published ones.

    ``max_modification_ratio``: None, the recipe's published budget (none for PWWS and GA); ``synonym_k``: synonyms per
    token in the gradient search's table; ``gradient_candidates``: swaps it scores per round.

    TextFooler and DeepWordBug (:mod:`rift_fast.attacks.greedy_recipes`) also read: ``word_vectors``
    (path of a ``word v1 ... vD`` file: TextFooler's neighbours), ``neighbours`` (K), ``min_cosine`` (None:
    no embedding-cosine constraint), ``sentence_encoder`` (Hugging Face name or folder, ``embedded``:
    the packaged all-MiniLM-L6-v2), ``sentence_similarity`` and ``similarity_window`` (words; None: the
    recipe's published values),
    ``pos_tagger`` (``nltk`` or ``none``), ``max_edit_distance`` (characters), ``character_edit_draws`` (None:
    one edit of each kind per word), ``query_budget`` (queries per example) or ``query_budget_per_word``, and
    ``textattack_parity`` (TextAttack 0.3.11's recipe where the paper and TextAttack differ).

    BERT-Attack and BAE also read ``mlm`` (the masked language model's Hugging Face name or folder),
    ``mlm_candidates`` (K; None: the recipe's published K) and ``mlm_batch_size`` (texts per forward pass).
    """

    ga_population: int = PUBLISHED_GA_POPULATION
    ga_generations: int = PUBLISHED_GA_GENERATIONS
    seed: int = 0
    max_modification_ratio: float | None = None
    synonym_k: int = 8
    gradient_candidates: int = 8
    word_vectors: str | None = None
    neighbours: int = PUBLISHED_NEIGHBOURS
    min_cosine: float | None = PUBLISHED_MIN_COSINE
    sentence_encoder: str = EMBEDDED_MODEL_NAME
    sentence_similarity: float | None = None
    similarity_window: int | None = None
    pos_tagger: str = "nltk"
    max_edit_distance: int = PUBLISHED_MAX_EDIT_DISTANCE
    character_edit_draws: int | None = None
    query_budget: int | None = None
    query_budget_per_word: int | None = None
    textattack_parity: bool = False
    mlm: str = DEFAULT_MASKED_LANGUAGE_MODEL
    mlm_candidates: int | None = None
    mlm_batch_size: int = 32


@dataclass
class Attack:
    """An assembled attack: TextAttack's four parts, each working on whole batches of examples."""

    recipe: str
    goal: UntargetedClassification
    constraints: Constraints
    transformation: Transformation
    search: SearchMethod

    def settings(self) -> dict:
        """The attack's part of a run's settings."""
        return {
            "recipe": self.recipe,
            "search": self.search.settings(),
            "constraints": self.constraints.describe(),
            "transformation": self.transformation.describe(),
            "goal": self.goal.describe(),
        }

    def run(
        self,
        examples: list[Example],
        victim: VictimModel,
        settings: dict,
        checkpoint: AttackCheckpoint | None = None,
        **options: Any,
    ) -> AttackReport:
        """:func:`run_attack` with this attack's parts (``options``: its keyword arguments)."""
        return run_attack(
            examples,
            victim,
            self.transformation,
            self.search,
            self.constraints,
            self.goal,
            settings,
            checkpoint=checkpoint,
            **options,
        )


class Recipe(ABC):
    """How one named attack is assembled. ``label`` heads its column in results tables;
    ``reads_part_of_speech`` / ``reads_word_vectors``: it needs a tagger (``options.pos_tagger``) or word
    vectors (``options.word_vectors``), checked before a run (:mod:`rift_fast.attacks.resource_checks`)."""

    name: ClassVar[str]
    label: ClassVar[str]
    summary: ClassVar[str]
    reads_part_of_speech: ClassVar[bool] = False
    reads_word_vectors: ClassVar[bool] = False

    @abstractmethod
    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: RecipeOptions
    ) -> SearchMethod:
        """The recipe's search method."""

    def max_modification_ratio(self, options: RecipeOptions) -> float | None:
        """The modification budget: ``options``' one, else the recipe's published one (None: no budget)."""
        return options.max_modification_ratio

    def word_constraints(self, options: RecipeOptions) -> list[Constraint]:
        """Stop words, plus the modification budget when there is one."""
        ratio = self.max_modification_ratio(options)
        return [StopWords(), *([] if ratio is None else [MaxModificationRatio(ratio)])]

    def constraints(self, options: RecipeOptions) -> Constraints:
        """The :meth:`word_constraints`, applied when targets are built."""
        return Constraints(self.word_constraints(options))

    def transformation(self, synonyms: SynonymIndex, options: RecipeOptions) -> Transformation:
        return SynonymSwap(synonyms)

    def describe(self, options: RecipeOptions) -> str:
        """The recipe's settings in words, for results tables."""
        ratio = self.max_modification_ratio(options)
        budget = "no modification budget" if ratio is None else f"at most {ratio:.0%} of the words changed"
        return f"{budget}, stop words excluded, no LM filter"

    def build(self, victim: VictimModel, synonyms: SynonymIndex, is_pair: bool, options: RecipeOptions) -> Attack:
        goal = UntargetedClassification(use_margin=is_pair)
        return Attack(
            self.name,
            goal,
            self.constraints(options),
            self.transformation(synonyms, options),
            self.search(goal, victim, synonyms, options),
        )


RecipeType = TypeVar("RecipeType", bound=type[Recipe])
RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: RecipeType) -> RecipeType:
    """Class decorator: make ``recipe`` available under ``recipe.name`` (raises ValueError on a clash)."""
    if recipe.name in RECIPES:
        raise ValueError(f"an attack recipe named {recipe.name!r} is registered already")
    RECIPES[recipe.name] = recipe()
    return recipe


def register_search(search_type: type[SearchMethod]) -> type[SearchMethod]:
    """Class decorator: register a recipe of ``search_type`` under its ``name``, with the default
    constraints and transformation; the search is built as ``search_type(goal)``."""

    class SearchRecipe(Recipe):
        name, label = search_type.name, search_type.name
        summary = (search_type.__doc__ or search_type.name).strip().splitlines()[0]

        def search(
            self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: RecipeOptions
        ) -> SearchMethod:
            # The registered search takes the goal alone (register_search's contract).
            return cast(Callable[[UntargetedClassification], SearchMethod], search_type)(goal)

    register_recipe(SearchRecipe)
    return search_type


def build_attack(
    name: str, victim: VictimModel, synonyms: SynonymIndex, is_pair: bool, options: RecipeOptions | None = None
) -> Attack:
    """The attack of recipe ``name``; raises ValueError naming the registered recipes for an unknown one."""
    if name not in RECIPES:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name].build(victim, synonyms, is_pair, options or RecipeOptions())


@register_recipe
class PWWSRecipe(Recipe):
    """PWWS (Ren et al. 2019) over the synonym index; the saliency probe is the tokenizer's unknown token."""

    name, label, summary = "pwws", "PWWS", "probability weighted word saliency (Ren et al. 2019)"

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: RecipeOptions
    ) -> SearchMethod:
        return PWWS(goal, unknown_token=victim.tokenizer.unk_token)


@register_recipe
class GeneticRecipe(Recipe):
    """The genetic attack (Alzantot et al. 2018, as Jia et al. 2019); reads ``ga_population``,
    ``ga_generations`` and ``seed``."""

    name, label, summary = "ga", "GA", "genetic attack (Alzantot et al. 2018)"

    def describe(self, options: RecipeOptions) -> str:
        return f"population {options.ga_population}, {options.ga_generations} generations, {super().describe(options)}"

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: RecipeOptions
    ) -> SearchMethod:
        return GeneticAttack(
            goal, population=options.ga_population, generations=options.ga_generations, seed=options.seed
        )


@register_recipe
class GradientRecipe(Recipe):
    """Greedy swaps ranked by first-order scores (fused ``substitution_scores``); reads ``synonym_k``
    and ``gradient_candidates``."""

    name, label, summary = "gradient", "gradient", "gradient-guided greedy swaps (fused candidate scoring)"

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: RecipeOptions
    ) -> SearchMethod:
        return GradientGuidedGreedy(
            goal,
            victim,
            synonyms.vocab_table(victim.tokenizer, k=options.synonym_k),
            candidates=options.gradient_candidates,
        )


__all__ = [
    "PUBLISHED_GA_POPULATION",
    "PUBLISHED_GA_GENERATIONS",
    "RECIPES",
    "Attack",
    "Recipe",
    "RecipeOptions",
    "build_attack",
    "register_recipe",
    "register_search",
]
