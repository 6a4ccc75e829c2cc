"""PGD adversarial training on the word embeddings (Madry et al., ICLR 2018), as TextDefender's ``pgd``
baseline applies it to text (Li et al., EMNLP 2021, ``trainer/pgd.py`` over ``trainer/gradient.py``).

``K`` ascent steps of the cross-entropy on a perturbation delta of the word embeddings (the search of
:func:`rift_fast.training.defenses.embedding_ball.ball_adversary`, in train mode as TextDefender runs
it), then ``loss = CE(f(E(x) + delta), y)``: the cross-entropy of the adversarial input only, with
no clean term ("for PGD-K, clean batch is not used when training", TextDefender). The embeddings of
the final forward are recomputed with gradients, so the word-embedding table is trained too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from rift_fast.models.classifier import RobustClassifier, float32_cross_entropy, unwrap
from rift_fast.training.defenses.base import Batch, Defense, LossTerms, model_inputs, register_defense
from rift_fast.training.defenses.embedding_ball import NORMS, ball_adversary, check_norm

# TextDefender's embedding-level trainers (trainer/gradient.py, the defaults of --adv-steps,
# --adv-learning-rate, --adv-init-mag, --adv-norm-type; shared by its pgd and freelb methods).
PGD_STEPS = 5
PGD_STEP_SIZE = 0.03
PGD_INIT_MAGNITUDE = 0.05
PGD_NORM = "l2"
# TextDefender leaves the ball unbounded (--adv-max-norm 0). From a start of size at most 0.05 and 5
# normalised steps of 0.03 no delta can leave the ball of radius 0.05 + 5 * 0.03 = 0.2 (l2 and linf),
# so this radius reproduces its default exactly while keeping Madry et al.'s ball explicit.
PGD_RADIUS = PGD_INIT_MAGNITUDE + PGD_STEPS * PGD_STEP_SIZE


@dataclass(frozen=True)
class PgdSettings:
    """The ball search on the word embeddings (TextDefender's PGD defaults; TRADES reuses them)."""

    pgd_norm: str = field(default=PGD_NORM, metadata={"help": "norm of the embedding ball", "choices": NORMS})
    pgd_steps: int = field(default=PGD_STEPS, metadata={"help": "ascent steps of the embedding-ball search"})
    pgd_step_size: float = field(
        default=PGD_STEP_SIZE, metadata={"help": "size of one normalised ascent step in the embedding ball"}
    )
    pgd_radius: float = field(default=PGD_RADIUS, metadata={"help": "radius epsilon of the embedding ball"})
    pgd_init_mag: float = field(
        default=PGD_INIT_MAGNITUDE, metadata={"help": "size of the random start in the embedding ball (0: none)"}
    )

    def __post_init__(self) -> None:
        check_norm("pgd_norm", self.pgd_norm)
        if self.pgd_steps < 1:
            raise ValueError(f"pgd_steps must be in [1, inf), got {self.pgd_steps}")
        if self.pgd_step_size <= 0:
            raise ValueError(f"pgd_step_size must be in (0, inf), got {self.pgd_step_size}")
        if self.pgd_radius <= 0:
            raise ValueError(f"pgd_radius must be in (0, inf), got {self.pgd_radius}")
        if self.pgd_init_mag < 0:
            raise ValueError(f"pgd_init_mag must be in [0, inf), got {self.pgd_init_mag}")

    def search(self) -> dict:
        """Keyword arguments of :func:`ball_adversary` (norm, steps, step_size, radius, init_magnitude)."""
        return {
            "norm": self.pgd_norm,
            "steps": self.pgd_steps,
            "step_size": self.pgd_step_size,
            "radius": self.pgd_radius,
            "init_magnitude": self.pgd_init_mag,
        }


def perturbed_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    delta: torch.Tensor,
) -> torch.Tensor:
    """Logits [B, C] of the word embeddings of ``input_ids`` plus ``delta`` [B, L, E], with gradients
    into the model's parameters (word-embedding table included)."""
    embeds = cast(RobustClassifier, unwrap(model)).word_embeddings(input_ids)
    logits, _ = model(input_ids, attention_mask, token_type_ids, word_embeds=embeds + delta)
    return logits


def delta_norm(delta: torch.Tensor) -> torch.Tensor:
    """Mean per-example l2 norm of ``delta`` [B, L, E] (detached, float32)."""
    return delta.detach().reshape(delta.shape[0], -1).float().norm(dim=1).mean()


def pgd_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    settings: PgdSettings | None = None,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """``{"loss", "ce_adv", "delta_norm"}``: ``CE(f(E(x) + delta), y)`` with delta from ``pgd_steps``
    ascent steps of the CE (module docstring). input_ids, attention_mask, token_type_ids [B, L];
    labels [B]; ``generator`` draws the random start (default: the global one). ``delta_norm``: the
    mean per-example l2 norm of delta (detached)."""
    settings = settings or PgdSettings()
    delta = ball_adversary(
        model,
        input_ids,
        attention_mask,
        token_type_ids,
        lambda logits: float32_cross_entropy(logits, labels),
        generator=generator,
        **settings.search(),
    )
    ce_adv = float32_cross_entropy(perturbed_logits(model, input_ids, attention_mask, token_type_ids, delta), labels)
    return {"loss": ce_adv, "ce_adv": ce_adv, "delta_norm": delta_norm(delta)}


@register_defense
class PgdTraining(Defense):
    name = "pgd"
    summary = "PGD-K on the word embeddings, CE of the adversarial input (Madry et al. 2018; TextDefender)"
    settings_type = PgdSettings
    settings: PgdSettings
    perturbs_embeddings = True

    def forward(self, batch: Batch) -> LossTerms:
        return pgd_loss(self.model, *model_inputs(batch), settings=self.settings)


__all__ = ["PGD_RADIUS", "PgdSettings", "PgdTraining", "delta_norm", "perturbed_logits", "pgd_loss"]
