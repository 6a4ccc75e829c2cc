"""TRADES (Zhang et al., ICML 2019) on the word embeddings.

``loss = CE(f(x), y) + beta * KL(p(x) || p(E(x) + delta))`` with ``KL = F.kl_div(log_softmax(logits_adv),
softmax(logits_clean), reduction="batchmean")``: nothing detached, as in the authors' code
(``trades.py``: ``(1 / batch_size) * KLDivLoss(sum)``, the clean logits recomputed with gradients).
delta comes from the search PGD uses (:func:`rift_fast.training.defenses.embedding_ball.ball_adversary`,
same settings) ascending ``KL(p(x) || p(E(x) + delta))`` with the clean distribution fixed, in eval mode
as the authors' code searches. TRADES published its ball for image pixels only (l_inf 0.031, 10 steps
of 0.007), so the ball, the steps and the random start are PGD's word-embedding ones (TextDefender).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rift_fast.models.classifier import float32_cross_entropy, logits_kl
from rift_fast.training.defenses.base import Batch, Defense, LossTerms, model_inputs, register_defense
from rift_fast.training.defenses.embedding_ball import ball_adversary, model_mode
from rift_fast.training.defenses.pgd import PgdSettings, delta_norm, perturbed_logits

# Zhang et al. 2019: beta = 1 / lambda = 6 on CIFAR-10 (the authors' train_trades_cifar10.py default).
TRADES_BETA = 6.0


@dataclass(frozen=True)
class TradesSettings(PgdSettings):
    """PGD's embedding ball plus the weight beta of the KL term."""

    trades_beta: float = field(default=TRADES_BETA, metadata={"help": "TRADES weight of KL(p(x) || p(x + delta))"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trades_beta < 0:
            raise ValueError(f"trades_beta must be in [0, inf), got {self.trades_beta}")
        if self.pgd_init_mag <= 0:
            # KL(p || p) has zero gradient at delta = 0: the eval-mode search could not move.
            raise ValueError(f"TRADES needs a random start: pgd_init_mag must be in (0, inf), got {self.pgd_init_mag}")


def trades_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    settings: TradesSettings | None = None,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """``{"loss", "ce", "kl", "delta_norm"}``: ``CE(f(x), y) + trades_beta * KL(p(x) || p(E(x) + delta))``
    (module docstring). Arguments as :func:`rift_fast.training.defenses.pgd.pgd_loss`."""
    settings = settings or TradesSettings()
    with torch.no_grad(), model_mode(model, training=False):
        clean = model(input_ids, attention_mask, token_type_ids)[0]
    delta = ball_adversary(
        model,
        input_ids,
        attention_mask,
        token_type_ids,
        lambda logits: logits_kl(clean, logits, reduction="batchmean"),
        eval_mode=True,
        generator=generator,
        **settings.search(),
    )
    logits_clean, _ = model(input_ids, attention_mask, token_type_ids)
    logits_adv = perturbed_logits(model, input_ids, attention_mask, token_type_ids, delta)
    ce = float32_cross_entropy(logits_clean, labels)
    kl = logits_kl(logits_clean, logits_adv, reduction="batchmean")
    return {"loss": ce + settings.trades_beta * kl, "ce": ce, "kl": kl, "delta_norm": delta_norm(delta)}


@register_defense
class TradesTraining(Defense):
    name = "trades"
    summary = "CE + beta * KL to a word-embedding ball adversary (Zhang et al. 2019)"
    settings_type = TradesSettings
    settings: TradesSettings
    perturbs_embeddings = True

    def forward(self, batch: Batch) -> LossTerms:
        return trades_loss(self.model, *model_inputs(batch), settings=self.settings)


__all__ = ["TRADES_BETA", "TradesSettings", "TradesTraining", "trades_loss"]
