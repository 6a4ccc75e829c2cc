"""Batched word-substitution attacks, split as in TextAttack into goal, constraints, transformation and
search method, assembled by recipes (:mod:`rift_fast.attacks.recipes`, one module per recipe) from searches
(:mod:`rift_fast.attacks.search`, one module per search method); every search works on many
examples at once."""

from rift_fast.attacks.constraints import Constraint, Constraints, LanguageModelFilter, MaxModificationRatio, StopWords
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.masked_lm import BertAttackSwap, MaskedLanguageModel, MaskedLanguageModelError, MaskedWordSwap
from rift_fast.attacks.recipes import (
    RECIPES,
    Attack,
    BAERecipe,
    BertAttackRecipe,
    DeepWordBugRecipe,
    Recipe,
    RecipeOptions,
    TextFoolerRecipe,
    build_attack,
    register_recipe,
)
from rift_fast.attacks.runner import AttackCheckpoint, AttackReport, ExampleResult, run_attack
from rift_fast.attacks.search import (
    PWWS,
    GeneticAttack,
    GradientGuidedGreedy,
    GreedyWordSwap,
    SearchMethod,
    SearchOutcome,
)
from rift_fast.attacks.transformation import SynonymSwap, Target, Transformation, WordSite, build_target, build_targets
from rift_fast.attacks.victim import QueryEngine, VictimModel

__all__ = [
    "PWWS",
    "BAERecipe",
    "BertAttackRecipe",
    "BertAttackSwap",
    "MaskedLanguageModel",
    "MaskedLanguageModelError",
    "MaskedWordSwap",
    "WordSite",
    "build_targets",
    "RECIPES",
    "Attack",
    "AttackCheckpoint",
    "AttackReport",
    "Constraint",
    "Constraints",
    "DeepWordBugRecipe",
    "ExampleResult",
    "GeneticAttack",
    "GradientGuidedGreedy",
    "GreedyWordSwap",
    "LanguageModelFilter",
    "MaxModificationRatio",
    "QueryEngine",
    "Recipe",
    "RecipeOptions",
    "SearchMethod",
    "SearchOutcome",
    "StopWords",
    "SynonymSwap",
    "Target",
    "TextFoolerRecipe",
    "Transformation",
    "UntargetedClassification",
    "VictimModel",
    "build_attack",
    "build_target",
    "register_recipe",
    "run_attack",
]
