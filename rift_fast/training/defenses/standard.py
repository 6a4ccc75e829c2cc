"""Standard fine-tuning: cross-entropy of the clean batch."""

from __future__ import annotations

import torch
from torch import nn

from rift_fast.models.classifier import float32_cross_entropy
from rift_fast.training.defenses.base import Batch, Defense, LossTerms, register_defense


def standard_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
) -> LossTerms:
    """``{"loss", "ce"}``: cross-entropy of the clean batch (``model``: a RobustClassifier or its DDP wrapper)."""
    logits, _ = model(input_ids, attention_mask, token_type_ids)
    ce = float32_cross_entropy(logits, labels)
    return {"loss": ce, "ce": ce}


@register_defense
class StandardFineTuning(Defense):
    name = "standard"
    summary = "cross-entropy on clean inputs"

    def forward(self, batch: Batch) -> LossTerms:
        return standard_loss(
            self.model, batch["input_ids"], batch["attention_mask"], batch["labels"], batch["token_type_ids"]
        )
