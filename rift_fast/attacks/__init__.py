"""Batched word-substitution attacks, split as in TextAttack into goal, constraints and
transformation, search method, and a runner; every search works on many examples at once."""

from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.runner import AttackCheckpoint, AttackReport, ExampleResult, run_attack
from rift_fast.attacks.search import PWWS, GeneticAttack, GradientGuidedGreedy, SearchOutcome
from rift_fast.attacks.transformation import Constraints, Target, build_target
from rift_fast.attacks.victim import QueryEngine, VictimModel

__all__ = ["AttackCheckpoint", "AttackReport", "Constraints", "ExampleResult", "GeneticAttack", "GradientGuidedGreedy", "PWWS",
           "QueryEngine", "SearchOutcome", "Target", "UntargetedClassification", "VictimModel", "build_target",
           "run_attack"]
