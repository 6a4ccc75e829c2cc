"""Gradient-guided greedy swaps over the synonym index: each round the swaps are ranked by their
first-order effect on the loss (the fused ``substitution_scores`` op), and the best ``gradient_candidates``
of them are scored by the model. rift_fast's own attack, with no published setting; A2T (Yoo & Qi,
Findings of EMNLP 2021) attacks with a search of this kind during training
(:mod:`rift_fast.training.defenses.a2t`)."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.recipes.base import Recipe
from rift_fast.attacks.recipes.options import ModificationBudgetOption, option
from rift_fast.attacks.search import GradientGuidedGreedy, SearchMethod
from rift_fast.attacks.victim import VictimModel
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class GradientOptions(ModificationBudgetOption):
    """The gradient search's options (the commands declare ``--synonym-k``).

    Attributes:
        synonym_k: synonyms per token in the search's vocabulary table.
        gradient_candidates: swaps the model scores per round, the best by first-order score.
    """

    synonym_k: int = option(8, "synonyms per token in the gradient search's table", int, flag=False)
    gradient_candidates: int = option(8, "swaps the gradient search scores per round", int, flag=False)


class GradientRecipe(Recipe[GradientOptions]):
    """Greedy swaps ranked by first-order scores (fused ``substitution_scores``)."""

    name, label, summary = "gradient", "gradient", "gradient-guided greedy swaps (fused candidate scoring)"
    options_type = GradientOptions

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: GradientOptions
    ) -> SearchMethod:
        return GradientGuidedGreedy(
            goal,
            victim,
            synonyms.vocab_table(victim.tokenizer, k=options.synonym_k),
            candidates=options.gradient_candidates,
        )
