"""Training methods (defenses), one class each, registered by name in :data:`DEFENSES`; see
:mod:`rift_fast.training.defenses.base` for how to add one."""

from rift_fast.training.defenses.a2t import A2TSettings, A2TTraining, a2t_loss, generate_adversarial_examples
from rift_fast.training.defenses.ascc import IMDB_KL_WEIGHT, AsccSettings, AsccTraining, ascc_loss
from rift_fast.training.defenses.base import DEFENSES, Defense, EpochData, NoSettings, defense_class, register_defense
from rift_fast.training.defenses.dne import DneSettings, DneTraining, dne_loss
from rift_fast.training.defenses.freelb import AscentStep, FreeLBSettings, FreeLBTraining, freelb_ascent, freelb_loss
from rift_fast.training.defenses.infobert import InfoBertSettings, InfoBertTraining, infobert_loss
from rift_fast.training.defenses.pgd import PgdSettings, PgdTraining, pgd_loss
from rift_fast.training.defenses.rift import PUBLISHED_WEIGHTS, RiftSettings, RiftTraining, rift_loss
from rift_fast.training.defenses.safer import SaferTraining, random_substitution
from rift_fast.training.defenses.standard import StandardFineTuning, standard_loss
from rift_fast.training.defenses.trades import TradesSettings, TradesTraining, trades_loss

__all__ = [
    "DEFENSES",
    "IMDB_KL_WEIGHT",
    "PUBLISHED_WEIGHTS",
    "A2TSettings",
    "A2TTraining",
    "AscentStep",
    "AsccSettings",
    "AsccTraining",
    "Defense",
    "DneSettings",
    "DneTraining",
    "EpochData",
    "FreeLBSettings",
    "FreeLBTraining",
    "InfoBertSettings",
    "InfoBertTraining",
    "NoSettings",
    "PgdSettings",
    "PgdTraining",
    "RiftSettings",
    "RiftTraining",
    "SaferTraining",
    "StandardFineTuning",
    "TradesSettings",
    "TradesTraining",
    "a2t_loss",
    "ascc_loss",
    "defense_class",
    "dne_loss",
    "freelb_ascent",
    "freelb_loss",
    "generate_adversarial_examples",
    "infobert_loss",
    "pgd_loss",
    "random_substitution",
    "register_defense",
    "rift_loss",
    "standard_loss",
    "trades_loss",
]
