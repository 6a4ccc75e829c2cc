"""Attack recipes, one module per recipe, and the registry of their names.

A recipe module holds the recipe's frozen options dataclass (its fields, with the published values as
defaults; the pieces several recipes share come from :mod:`.options`), the :class:`Recipe` that assembles
the goal, constraints, transformation and search from those options, and the paper it follows. The attack
command line (``--attack`` and one flag per option), the test-pool evaluation of ``python -m
rift_fast.train`` and the benchmarks all build attacks here.

Adding an attack: write its module (an options dataclass and a :class:`Recipe` subclass, usually only
:meth:`Recipe.search`) and add its line to the registry below.
"""

from rift_fast.attacks.recipes.bae import BAERecipe
from rift_fast.attacks.recipes.base import (
    RECIPES,
    Attack,
    Recipe,
    RecipeOptions,
    build_attack,
    recipe_option_fields,
    register_recipe,
    register_search,
)
from rift_fast.attacks.recipes.bert_attack import BertAttackRecipe
from rift_fast.attacks.recipes.deepwordbug import DeepWordBugRecipe
from rift_fast.attacks.recipes.genetic import GeneticRecipe
from rift_fast.attacks.recipes.gradient import GradientRecipe
from rift_fast.attacks.recipes.pwws import PWWSRecipe
from rift_fast.attacks.recipes.textfooler import TextFoolerRecipe
from rift_fast.attacks.search import PUBLISHED_GA_GENERATIONS, PUBLISHED_GA_POPULATION

# The registry: one line per recipe (the order of the command line's recipe options).
register_recipe(PWWSRecipe)
register_recipe(GeneticRecipe)
register_recipe(GradientRecipe)
register_recipe(TextFoolerRecipe)
register_recipe(DeepWordBugRecipe)
register_recipe(BertAttackRecipe)
register_recipe(BAERecipe)

__all__ = [
    "PUBLISHED_GA_GENERATIONS",
    "PUBLISHED_GA_POPULATION",
    "RECIPES",
    "Attack",
    "BAERecipe",
    "BertAttackRecipe",
    "DeepWordBugRecipe",
    "GeneticRecipe",
    "GradientRecipe",
    "PWWSRecipe",
    "Recipe",
    "RecipeOptions",
    "TextFoolerRecipe",
    "build_attack",
    "recipe_option_fields",
    "register_recipe",
    "register_search",
]
