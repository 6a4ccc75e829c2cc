"""Search methods, one per module, each attacking many targets in lockstep (:mod:`.base` says how):

- :mod:`.pwws`: Probability Weighted Word Saliency (Ren et al. 2019);
- :mod:`.genetic`: the genetic attack (Alzantot et al. 2018, as Jia et al. 2019);
- :mod:`.gradient`: greedy swaps ranked by first-order scores;
- :mod:`.greedy_word_importance`: greedy swaps in word-importance order (TextAttack's ``GreedyWordSwapWIR``:
  TextFooler, DeepWordBug, BERT-Attack, BAE).
"""

from rift_fast.attacks.search.base import FinishedListener, Outcomes, SearchMethod, SearchOutcome
from rift_fast.attacks.search.genetic import (
    PUBLISHED_GA_GENERATIONS,
    PUBLISHED_GA_POPULATION,
    GeneticAttack,
    check_ga_settings,
)
from rift_fast.attacks.search.gradient import GradientGuidedGreedy
from rift_fast.attacks.search.greedy_word_importance import GreedyWordSwap
from rift_fast.attacks.search.pwws import PWWS

__all__ = [
    "PUBLISHED_GA_GENERATIONS",
    "PUBLISHED_GA_POPULATION",
    "PWWS",
    "FinishedListener",
    "GeneticAttack",
    "GradientGuidedGreedy",
    "GreedyWordSwap",
    "Outcomes",
    "SearchMethod",
    "SearchOutcome",
    "check_ga_settings",
]
