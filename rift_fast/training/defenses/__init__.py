"""Training methods (defenses), one class each, registered by name in :data:`DEFENSES`; see
:mod:`rift_fast.training.defenses.base` for how to add one."""

from rift_fast.training.defenses.ascc import IMDB_KL_WEIGHT, AsccSettings, AsccTraining, ascc_loss
from rift_fast.training.defenses.base import DEFENSES, Defense, NoSettings, defense_class, register_defense
from rift_fast.training.defenses.freelb import AscentStep, FreeLBSettings, FreeLBTraining, freelb_ascent, freelb_loss
from rift_fast.training.defenses.infobert import InfoBertSettings, InfoBertTraining, infobert_loss
from rift_fast.training.defenses.rift import PUBLISHED_WEIGHTS, RiftSettings, RiftTraining, rift_loss
from rift_fast.training.defenses.safer import SaferTraining, random_substitution
from rift_fast.training.defenses.standard import StandardFineTuning, standard_loss

__all__ = [
    "DEFENSES",
    "IMDB_KL_WEIGHT",
    "PUBLISHED_WEIGHTS",
    "AscentStep",
    "AsccSettings",
    "AsccTraining",
    "Defense",
    "FreeLBSettings",
    "FreeLBTraining",
    "InfoBertSettings",
    "InfoBertTraining",
    "NoSettings",
    "RiftSettings",
    "RiftTraining",
    "SaferTraining",
    "StandardFineTuning",
    "ascc_loss",
    "defense_class",
    "freelb_ascent",
    "freelb_loss",
    "infobert_loss",
    "random_substitution",
    "register_defense",
    "rift_loss",
    "standard_loss",
]
