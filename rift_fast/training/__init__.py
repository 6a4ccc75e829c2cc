"""Training building blocks: the classifier, the ASCC adversary, the frozen teacher and projection heads,
the losses of standard / ASCC / RIFT / FreeLB training and class-balanced batching."""

from rift_fast.models.classifier import RobustClassifier
from rift_fast.training.adversary import (
    ASCCEvaluation,
    ASCCResult,
    ascc_adversary,
    ascc_robust_accuracy,
    restrict_substitutions,
    substitution_ids,
)
from rift_fast.training.defenses import FreeLBSettings, ascc_loss, freelb_loss, rift_loss, standard_loss
from rift_fast.training.sampling import ClassBalancedBatchSampler
from rift_fast.training.teacher import FrozenTeacher, ProjectionHeads

__all__ = [
    "ASCCEvaluation",
    "ASCCResult",
    "ClassBalancedBatchSampler",
    "FreeLBSettings",
    "FrozenTeacher",
    "ProjectionHeads",
    "RobustClassifier",
    "ascc_adversary",
    "ascc_loss",
    "ascc_robust_accuracy",
    "freelb_loss",
    "restrict_substitutions",
    "rift_loss",
    "standard_loss",
    "substitution_ids",
]
