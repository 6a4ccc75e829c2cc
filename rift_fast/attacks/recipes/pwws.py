"""PWWS: Probability Weighted Word Saliency (Ren et al. 2019, "Generating Natural Language Adversarial
Examples through Probability Weighted Word Saliency", ACL), over the synonym index, with no modification
budget, as RIFT (Dong et al., NeurIPS 2021) evaluates with it."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.recipes.base import Recipe
from rift_fast.attacks.recipes.options import ModificationBudgetOption
from rift_fast.attacks.search import PWWS, SearchMethod
from rift_fast.attacks.victim import VictimModel
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class PWWSOptions(ModificationBudgetOption):
    """PWWS's options: the modification budget only (none published)."""


class PWWSRecipe(Recipe[PWWSOptions]):
    """PWWS (Ren et al. 2019) over the synonym index; the saliency probe is the tokenizer's unknown token."""

    name, label, summary = "pwws", "PWWS", "probability weighted word saliency (Ren et al. 2019)"
    options_type = PWWSOptions

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: PWWSOptions
    ) -> SearchMethod:
        return PWWS(goal, unknown_token=victim.tokenizer.unk_token)
