"""The frozen teacher of RIFT and the per-class projection heads of its InfoNCE term (Dong et al., NeurIPS 2021).

``FrozenTeacher`` is a deep copy of the PRE-TRAINED encoder (build it before fine-tuning starts) with
every parameter frozen. It stays in eval mode (dropout off) whatever ``train()`` says, as in the original
code: its teacher is loaded by ``from_pretrained``, which returns the model in eval mode, and is never
switched to training mode (only the student and its heads are). ``keep_dropout=True`` is a departure
from the original, not a reproduction of it: the teacher then follows ``train()`` / ``eval()`` and its
dropout is active during training.
When the classifier trains LoRA adapters (:meth:`RobustClassifier.use_lora`), its frozen pre-trained
weights already are the teacher: the teacher runs the classifier's own encoder with the adapters
switched off (in eval mode) and holds no copy.

``ProjectionHeads`` holds, for each class, a student head and a teacher head, each
Linear(H, 512) - ReLU - Linear(512, 256); both sides are trainable. ``project`` applies to every
sample the head of its class.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn

from rift_fast.models.classifier import RobustClassifier, encode_pooled, unwrap

PROJECTION_HIDDEN = 512
PROJECTION_DIM = 256
SIDES = ("student", "teacher")


class FrozenTeacher(nn.Module):
    """Frozen copy of a :class:`RobustClassifier`'s encoder, pooled as the classifier pools (``pooling``).

    Build it from the model BEFORE fine-tuning. ``pooled(...)`` runs under ``torch.no_grad``.
    Its parameters are not trainable and it holds no classifier head. Under LoRA it holds no
    parameters at all: ``pooled`` runs the classifier's encoder with its adapters disabled
    (``shares_weights`` is True).
    """

    def __init__(self, model: RobustClassifier, keep_dropout: bool = False) -> None:
        super().__init__()
        self.keep_dropout = keep_dropout
        model = cast(RobustClassifier, unwrap(model))
        self.pooling = model.pooling
        self.shares_weights = model.lora is not None
        self._student = [model]  # a list: the student is not a submodule of its teacher
        self.encoder = None if self.shares_weights else copy.deepcopy(model.encoder)
        for param in self.parameters():
            param.requires_grad_(False)
        self.train(model.training)

    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Eval mode always, unless ``keep_dropout`` (then ``mode`` as asked)."""
        return super().train(mode and self.keep_dropout)

    @torch.no_grad()
    def pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled feature [B, H] of the clean input (no gradient)."""
        if self.encoder is not None:
            return encode_pooled(self.encoder, self.pooling, input_ids, attention_mask, token_type_ids)
        student = self._student[0]
        was_training = student.encoder.training
        student.encoder.train(was_training and self.keep_dropout)
        try:
            with student.adapters_disabled():
                return encode_pooled(student.encoder, self.pooling, input_ids, attention_mask, token_type_ids)
        finally:
            student.encoder.train(was_training)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.pooled(input_ids, attention_mask, token_type_ids)


def _projection(hidden: int, inner: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, inner), nn.ReLU(), nn.Linear(inner, out))


class ProjectionHeads(nn.Module):
    """One student and one teacher head per class: Linear(H, 512) - ReLU - Linear(512, 256)."""

    def __init__(self, hidden_size: int, num_classes: int, inner: int = PROJECTION_HIDDEN, out: int = PROJECTION_DIM):
        super().__init__()
        self.num_classes = num_classes
        self.student = nn.ModuleList(_projection(hidden_size, inner, out) for _ in range(num_classes))
        self.teacher = nn.ModuleList(_projection(hidden_size, inner, out) for _ in range(num_classes))

    def project(self, features: torch.Tensor, labels: torch.Tensor, side: str) -> torch.Tensor:
        """[B, H] features -> [B, 256]: sample i through the ``side`` head of class ``labels[i]``.

        Every head runs on the whole batch and each row keeps its class's result: C times the
        (small) head compute, no host sync, and every head takes part in the graph (DDP needs no
        ``find_unused_parameters`` when a class is absent from a shard).
        """
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                f"features must be [B, H] and labels [B], got {tuple(features.shape)}, {tuple(labels.shape)}"
            )
        heads = self.student if side == "student" else self.teacher
        every = torch.stack([head(features) for head in heads])  # [C, B, P]
        return every[labels.long(), torch.arange(features.shape[0], device=features.device)]
