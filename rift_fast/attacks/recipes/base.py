"""What a recipe is and the registry of recipes: :class:`Recipe` assembles a goal, constraints, a
transformation and a search from its own options dataclass; :data:`RECIPES` maps each name to its recipe;
:class:`RecipeOptions` carries the options of a run, from which each recipe takes its own fields."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from rift_fast.attacks.constraints import Constraint, Constraints, MaxModificationRatio, StopWords
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.recipes.options import ModificationBudgetOption
from rift_fast.attacks.runner import AttackCheckpoint, AttackReport, run_attack
from rift_fast.attacks.search import SearchMethod
from rift_fast.attacks.transformation import SynonymSwap, Transformation
from rift_fast.attacks.victim import VictimModel
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex

Options = TypeVar("Options", bound=ModificationBudgetOption)


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


class RecipeOptions:
    """The options of a run's recipes, by name. Each name is a field of a registered recipe's options
    dataclass (:func:`recipe_option_fields`); a recipe reads the values given for its own fields and its
    published defaults for the rest (:meth:`Recipe.own_options`).

    Args:
        **values: option name -> value; None is a value (``min_cosine=None`` drops the bound).

    Raises:
        ValueError: naming each option that no registered recipe has.
    """

    def __init__(self, **values: Any) -> None:
        known = recipe_option_fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown attack options {unknown}; known: {sorted(known)}")
        self._given = tuple(values.items())

    @property
    def given(self) -> dict[str, Any]:
        """The options given, by name (a copy: the options themselves do not change)."""
        return dict(self._given)

    def value(self, name: str) -> Any:
        """The value of option ``name``: the given one, else its default."""
        return self.given[name] if name in self.given else recipe_option_fields()[name].default

    def replace(self, **values: Any) -> RecipeOptions:
        """These options with ``values`` set as well (they win)."""
        return RecipeOptions(**{**self.given, **values})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecipeOptions) and self.given == other.given

    def __hash__(self) -> int:
        return hash(frozenset(self._given))

    def __repr__(self) -> str:
        return f"RecipeOptions({', '.join(f'{name}={value!r}' for name, value in self.given.items())})"


class Recipe(ABC, Generic[Options]):
    """How one named attack is assembled from its own options. ``label`` heads its column in results
    tables; ``options_type``: its frozen options dataclass (the fields it reads, published defaults).
    Subclasses implement :meth:`search` and may override the other parts."""

    name: ClassVar[str]
    label: ClassVar[str]
    summary: ClassVar[str]
    options_type: type[Options]

    def own_options(self, options: RecipeOptions) -> Options:
        """This recipe's options: the values ``options`` give for its fields, its defaults for the rest."""
        own = {option.name for option in dataclasses.fields(self.options_type)}
        return self.options_type(**{name: value for name, value in options.given.items() if name in own})

    @abstractmethod
    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: Options
    ) -> SearchMethod:
        """The recipe's search method."""

    def max_modification_ratio(self, options: Options) -> float | None:
        """The modification budget: ``options``' one, else the recipe's published one (None: no budget)."""
        return options.max_modification_ratio

    def word_constraints(self, options: Options) -> list[Constraint]:
        """Stop words, plus the modification budget when there is one."""
        ratio = self.max_modification_ratio(options)
        return [StopWords(), *([] if ratio is None else [MaxModificationRatio(ratio)])]

    def constraints(self, options: Options) -> Constraints:
        """The :meth:`word_constraints`, applied when targets are built."""
        return Constraints(self.word_constraints(options))

    def transformation(self, synonyms: SynonymIndex, options: Options) -> Transformation:
        """The candidate swaps: the synonym sets' by default."""
        return SynonymSwap(synonyms)

    def settings_text(self, options: Options) -> str:
        """The recipe's settings in words."""
        ratio = self.max_modification_ratio(options)
        budget = "no modification budget" if ratio is None else f"at most {ratio:.0%} of the words changed"
        return f"{budget}, stop words excluded, no LM filter"

    def describe(self, options: RecipeOptions) -> str:
        """The settings of this recipe under ``options`` in words, for results tables."""
        return self.settings_text(self.own_options(options))

    def build(self, victim: VictimModel, synonyms: SynonymIndex, is_pair: bool, options: RecipeOptions) -> Attack:
        """The attack of this recipe on ``victim`` with its part of ``options``."""
        own = self.own_options(options)
        goal = UntargetedClassification(use_margin=is_pair)
        return Attack(
            self.name,
            goal,
            self.constraints(own),
            self.transformation(synonyms, own),
            self.search(goal, victim, synonyms, own),
        )


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: type[Recipe]) -> None:
    """Make ``recipe`` available under its ``name`` (the one registry line of a recipe).

    Raises:
        ValueError: when a recipe of that name is registered already, when one of its options is not
            declared with :func:`rift_fast.attacks.recipes.options.option`, or when one has another default
            or help than the option of the same name of a registered recipe (one name, one command-line flag).
    """
    if recipe.name in RECIPES:
        raise ValueError(f"an attack recipe named {recipe.name!r} is registered already")
    known = recipe_option_fields()
    for option in dataclasses.fields(recipe.options_type):
        if "flag" not in option.metadata:
            raise ValueError(f"option {option.name} of recipe {recipe.name!r} is not declared with options.option()")
        same = known.get(option.name)
        if same is not None and (same.default, same.metadata) != (option.default, option.metadata):
            raise ValueError(f"option {option.name} of recipe {recipe.name!r} differs from a registered recipe's")
    RECIPES[recipe.name] = recipe()


def recipe_option_fields() -> dict[str, dataclasses.Field]:
    """Every option of the registered recipes, in registration order: name -> its field (one per name)."""
    options: dict[str, dataclasses.Field] = {}
    for recipe in RECIPES.values():
        for option in dataclasses.fields(recipe.options_type):
            options.setdefault(option.name, option)
    return options


def register_search(search_type: type[SearchMethod]) -> type[SearchMethod]:
    """Class decorator: register a recipe of ``search_type`` under its ``name``, with the default
    constraints and transformation; the search is built as ``search_type(goal)``."""

    class SearchRecipe(Recipe[ModificationBudgetOption]):
        name, label = search_type.name, search_type.name
        summary = (search_type.__doc__ or search_type.name).strip().splitlines()[0]
        options_type = ModificationBudgetOption

        def search(
            self,
            goal: UntargetedClassification,
            victim: VictimModel,
            synonyms: SynonymIndex,
            options: ModificationBudgetOption,
        ) -> SearchMethod:
            # The registered search takes the goal alone (register_search's contract).
            return cast(Callable[[UntargetedClassification], SearchMethod], search_type)(goal)

    register_recipe(SearchRecipe)
    return search_type


def build_attack(
    name: str, victim: VictimModel, synonyms: SynonymIndex, is_pair: bool, options: RecipeOptions | None = None
) -> Attack:
    """The attack of recipe ``name`` with its part of ``options`` (None: the published defaults).

    Raises:
        ValueError: naming the registered recipes, for an unknown ``name``.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name].build(victim, synonyms, is_pair, options or RecipeOptions())
