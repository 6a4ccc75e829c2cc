"""DeepWordBug (Gao et al. 2018, "Black-box Generation of Adversarial Text Sequences to Evade Deep
Learning Classifiers", IEEE S&P Workshops) as TextAttack 0.3.11 assembles it
(``textattack/attack_recipes/deepwordbug_gao_2018.py``): one random swap, substitution, deletion and
insertion of a character per word, at most 30 Levenshtein edits in all, greedy edits in order of the
paper's Combined Score (TextAttack's recipe ranks by unknown-token importance instead: ``textattack_parity``).
The differences common to the greedy recipes are listed in :mod:`rift_fast.attacks.recipes.greedy`."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.character_edits import CharacterEdits
from rift_fast.attacks.recipes.greedy import GreedyOptions, GreedyRecipe
from rift_fast.attacks.recipes.options import SeedOption, TextAttackParityOption, option
from rift_fast.attacks.text_constraints import PUBLISHED_MAX_EDIT_DISTANCE, EditDistanceBudget, TextConstraint
from rift_fast.attacks.transformation import Transformation
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class DeepWordBugOptions(GreedyOptions, TextAttackParityOption, SeedOption):
    """DeepWordBug's options (and those of its pieces: budgets, TextAttack parity, seed of the edits).

    Attributes:
        max_edit_distance: most Levenshtein character edits of a text in all.
        character_edit_draws: random edits per word (None: one edit of each kind).
    """

    max_edit_distance: int = option(
        PUBLISHED_MAX_EDIT_DISTANCE,
        f"DeepWordBug: character edits ({PUBLISHED_MAX_EDIT_DISTANCE})",
        int,
        positive=True,
    )
    character_edit_draws: int | None = option(
        None, "DeepWordBug: random edits per word (one of each kind)", int, positive=True
    )


class DeepWordBugRecipe(GreedyRecipe[DeepWordBugOptions]):
    """DeepWordBug (Gao et al. 2018): one random swap, substitution, deletion and insertion of a character
    per word, or ``character_edit_draws`` random edits (seeded with ``seed``); at most ``max_edit_distance``
    (30) Levenshtein edits in all; greedy edits in order of the Combined Score, or with
    ``textattack_parity`` of TextAttack's unknown-token importance (``GreedyWordSwapWIR``'s default, which
    its recipe keeps). The synonym index is not used."""

    name, label, summary = "deepwordbug", "DeepWordBug", "DeepWordBug character edits (Gao et al. 2018)"
    options_type = DeepWordBugOptions

    def ranking(self, options: DeepWordBugOptions) -> str:
        return "unk" if options.textattack_parity else "combined"

    def text_constraints(self, options: DeepWordBugOptions) -> list[TextConstraint]:
        return [EditDistanceBudget(options.max_edit_distance)]

    def transformation(self, synonyms: SynonymIndex, options: DeepWordBugOptions) -> Transformation:
        return CharacterEdits(seed=options.seed, draws=options.character_edit_draws)

    def settings_text(self, options: DeepWordBugOptions) -> str:
        return (
            f"{self.ranking(options)} word ranking, at most {options.max_edit_distance} character edits, "
            f"{super().settings_text(options)}"
        )
