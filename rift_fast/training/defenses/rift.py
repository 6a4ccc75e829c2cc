"""RIFT (Dong et al., NeurIPS 2021: its training objective): ASCC adversarial fine-tuning plus a
class-conditional InfoNCE term that keeps the pre-trained model's features.

``loss = CE(f(x), y) + kl_weight * KL(p(x) || p(x_adv)) + mi_weight * L_NCE``: student = the student
projection of the trained model's pooled feature on x_adv (the same forward as the KL's logits),
teacher = the teacher projection of the frozen teacher's pooled feature on the clean x, ``L_NCE`` =
:func:`class_conditional_infonce` (per-class InfoNCE averaged over the classes present). Batches
should be class-balanced: negatives are the other samples of the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rift_fast.models.classifier import RobustClassifier, float32_outside_autocast
from rift_fast.ops.class_conditional_infonce import RIFT_TEMPERATURE, class_conditional_infonce
from rift_fast.training.adversary import ASCCResult
from rift_fast.training.defenses.ascc import IMDB_KL_WEIGHT, AsccSettings, adversarial_terms
from rift_fast.training.defenses.base import Batch, Defense, LossTerms, register_defense
from rift_fast.training.teacher import FrozenTeacher, ProjectionHeads

# RIFT (Dong et al., NeurIPS 2021, its experiments): the published KL and MI weights per task, (kl_weight, mi_weight).
PUBLISHED_WEIGHTS = {"imdb": (IMDB_KL_WEIGHT, 0.1), "snli": (5.0, 0.7)}
IMDB_MI_WEIGHT = PUBLISHED_WEIGHTS["imdb"][1]


@dataclass(frozen=True)
class RiftSettings(AsccSettings):
    """ASCC's settings plus the InfoNCE term's (the RIFT objective's MI term)."""

    mi_weight: float = field(
        default=IMDB_MI_WEIGHT, metadata={"help": "weight of the class-conditional InfoNCE (IMDB 0.1, SNLI 0.7)"}
    )
    temperature: float = field(default=RIFT_TEMPERATURE, metadata={"help": "InfoNCE temperature"})
    teacher_dropout: bool = field(
        default=False,
        metadata={
            "help": "turn the frozen teacher's dropout on during training; off (the default) is the original "
            "code's behaviour, which never switches its teacher to training mode"
        },
    )


def rift_loss(
    model: nn.Module,
    teacher: FrozenTeacher,
    heads: ProjectionHeads,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    sub_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    kl_weight: float = IMDB_KL_WEIGHT,
    mi_weight: float = IMDB_MI_WEIGHT,
    temperature: float = RIFT_TEMPERATURE,
    adversary: ASCCResult | None = None,
    adversary_settings: dict | None = None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> LossTerms:
    """``{"loss", "ce", "kl", "nce"}``: the ASCC loss ``+ mi_weight * L_NCE``.

    ``teacher``: :class:`~rift_fast.training.teacher.FrozenTeacher`; ``heads``:
    :class:`~rift_fast.training.teacher.ProjectionHeads`; other arguments as
    :func:`rift_fast.training.defenses.ascc.ascc_loss`.
    """
    ce, kl, pooled_adv, _ = adversarial_terms(
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
    pooled_teacher = teacher.pooled(input_ids, attention_mask, token_type_ids)
    student = heads.project(pooled_adv, labels, "student")
    target = heads.project(pooled_teacher.to(pooled_adv.dtype), labels, "teacher")
    with float32_outside_autocast(student.device):  # the InfoNCE's log-softmax in float32
        nce = class_conditional_infonce(
            student.float(), target.float(), labels, temperature=temperature, backend=backend
        )
    return {"loss": ce + kl_weight * kl + mi_weight * nce, "ce": ce, "kl": kl, "nce": nce}


@register_defense
class RiftTraining(Defense):
    name = "rift"
    summary = "ASCC + class-conditional InfoNCE to the frozen pre-trained encoder (Dong et al. 2021)"
    settings_type = RiftSettings
    settings: RiftSettings
    perturbs_embeddings = True

    def __init__(self, model: RobustClassifier, settings: RiftSettings) -> None:
        super().__init__(model, settings)
        self.heads = ProjectionHeads(model.hidden_size, model.num_classes)
        self.teacher = FrozenTeacher(model, keep_dropout=settings.teacher_dropout)

    def forward(self, batch: Batch) -> LossTerms:
        s = self.settings
        return rift_loss(
            self.model,
            self.teacher,
            self.heads,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            batch["sub_ids"],
            batch["token_type_ids"],
            kl_weight=s.kl_weight,
            mi_weight=s.mi_weight,
            temperature=s.temperature,
            adversary_settings=s.adversary_settings(),
        )

    def head_parameters(self) -> list[nn.Parameter]:
        return super().head_parameters() + list(self.heads.parameters())
