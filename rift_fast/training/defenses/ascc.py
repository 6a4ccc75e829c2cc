"""ASCC adversarial fine-tuning (Dong et al., ICLR 2021), as RIFT (Dong et al., NeurIPS 2021) trains it.

``CE(f(x), y) + kl_weight * KL(p(x) || p(x_adv))`` with ``KL = F.kl_div(log_softmax(logits_adv),
softmax(logits_clean), reduction="batchmean")``; the clean logits are NOT detached (the KL pulls p(x)
too) and there is no CE on x_adv. x_adv is the convex hull from :func:`ascc_adversary` (mode "kl"),
rebuilt with gradients into the embedding tables; the adversary runs first, in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rift_fast.models.classifier import float32_cross_entropy, logits_kl
from rift_fast.training.adversary import (
    ADVERSARY_LR,
    ADVERSARY_STEPS,
    ADVERSARY_WEIGHT_DECAY,
    ENTROPY_WEIGHT,
    ASCCResult,
    ascc_adversary,
)
from rift_fast.training.defenses.base import Batch, Defense, LossTerms, register_defense

# RIFT (Dong et al., NeurIPS 2021, its IMDB setting): the weight of the KL term.
IMDB_KL_WEIGHT = 10.0


@dataclass(frozen=True)
class AsccSettings:
    """The KL weight and the adversary's search (RIFT's adversary; defaults of the original code)."""

    kl_weight: float = field(
        default=IMDB_KL_WEIGHT, metadata={"help": "weight of KL(p(x) || p(x_adv)) (IMDB 10, SNLI 5)"}
    )
    adversary_steps: int = field(default=ADVERSARY_STEPS, metadata={"help": "Adam steps of the ASCC adversary"})
    adversary_lr: float = field(default=ADVERSARY_LR, metadata={"help": "Adam learning rate of the adversary"})
    adversary_weight_decay: float = field(
        default=ADVERSARY_WEIGHT_DECAY, metadata={"help": "Adam weight decay of the adversary"}
    )
    entropy_weight: float = field(default=ENTROPY_WEIGHT, metadata={"help": "entropy penalty of the hull weights"})

    def adversary_settings(self) -> dict:
        """Keyword arguments of :func:`ascc_adversary`."""
        return {
            "steps": self.adversary_steps,
            "lr": self.adversary_lr,
            "weight_decay": self.adversary_weight_decay,
            "entropy_weight": self.entropy_weight,
        }


def adversarial_terms(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    sub_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    adversary: ASCCResult | None,
    adversary_settings: dict | None,
    generator: torch.Generator | None,
    backend: str | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, ASCCResult]:
    """(CE of the clean batch, KL(p(x) || p(x_adv)), pooled feature of x_adv [B, H], the adversary)."""
    if adversary is None:
        adversary = ascc_adversary(
            model,
            input_ids,
            attention_mask,
            sub_ids,
            token_type_ids=token_type_ids,
            mode="kl",
            generator=generator,
            backend=backend,
            **(adversary_settings or {}),
        )
    logits_clean, _ = model(input_ids, attention_mask, token_type_ids)
    logits_adv, pooled_adv = model(input_ids, attention_mask, token_type_ids, hull_embeds=adversary.embeddings)
    ce = float32_cross_entropy(logits_clean, labels)
    kl = logits_kl(logits_clean, logits_adv, reduction="batchmean")
    return ce, kl, pooled_adv, adversary


def ascc_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    sub_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    kl_weight: float = IMDB_KL_WEIGHT,
    adversary: ASCCResult | None = None,
    adversary_settings: dict | None = None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> LossTerms:
    """``{"loss", "ce", "kl"}``: ``CE(f(x), y) + kl_weight * KL(p(x) || p(x_adv))``.

    ``sub_ids`` [B, L, K] substitution ids (see :func:`rift_fast.training.adversary.substitution_ids`).
    ``adversary``: a precomputed :class:`ASCCResult` for this batch (default: run
    :func:`ascc_adversary` in mode "kl" with ``adversary_settings`` such as ``steps``).
    """
    ce, kl, _, _ = adversarial_terms(
        model,
        input_ids,
        attention_mask,
        labels,
        sub_ids,
        token_type_ids,
        adversary,
        adversary_settings,
        generator,
        backend,
    )
    return {"loss": ce + kl_weight * kl, "ce": ce, "kl": kl}


@register_defense
class AsccTraining(Defense):
    name = "ascc"
    summary = "CE + KL to the ASCC convex-hull adversary (Dong et al. 2021)"
    settings_type = AsccSettings
    perturbs_embeddings = True
    settings: AsccSettings

    def forward(self, batch: Batch) -> LossTerms:
        s = self.settings
        return ascc_loss(
            self.model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            batch["sub_ids"],
            batch["token_type_ids"],
            kl_weight=s.kl_weight,
            adversary_settings=s.adversary_settings(),
        )


__all__ = ["IMDB_KL_WEIGHT", "AsccSettings", "AsccTraining", "adversarial_terms", "ascc_loss"]
