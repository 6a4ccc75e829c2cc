"""FreeLB (Zhu et al., ICLR 2020): adversarial training in the embedding space, free large-batch style.

It calls ``backward`` once per ascent step (the parameter gradients accumulate over the steps), so the
training loop lets it run backward itself and, under torchrun, averages the gradients over the
processes once per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.classifier import RobustClassifier, embeddings_of, unwrap
from rift_fast.training.defenses.base import BackwardFunction, Batch, Defense, LossTerms, register_defense
from rift_fast.training.defenses.embedding_ball import NORMS, ascent_step, check_norm, random_start


@dataclass(frozen=True)
class FreeLBSettings:
    """FreeLB settings. The defaults are the BERT-base setting common in robustness benchmarks built
    on the authors' Hugging Face code (5 ascent steps, step 0.03, random start of l2 size 0.05,
    no norm bound); the FreeLB paper itself tunes these per GLUE task and publishes no single BERT
    default. ``adv_max_norm > 0`` bounds each example's perturbation (l2: projection onto the ball;
    linf: clamping). ``perturb``: ``"word"`` = the word embeddings, as the paper and its code (the
    encoder then adds positions and types and applies LayerNorm; any encoder with an input embedding);
    ``"output"`` = the embedding-layer output (after LayerNorm; BERT-like embedding layers only)."""

    adv_steps: int = field(default=5, metadata={"help": "FreeLB ascent steps (one backward each)"})
    adv_lr: float = field(default=0.03, metadata={"help": "FreeLB ascent step size"})
    adv_init_mag: float = field(default=0.05, metadata={"help": "FreeLB random start, l2 size (0: no random start)"})
    adv_max_norm: float = field(default=0.0, metadata={"help": "FreeLB bound on each perturbation (0: none)"})
    norm_type: str = field(default="l2", metadata={"help": "FreeLB norm", "choices": NORMS})
    perturb: str = field(
        default="word",
        metadata={
            "help": "FreeLB perturbs the word embeddings or the embedding-layer output",
            "choices": ("word", "output"),
        },
    )

    def __post_init__(self) -> None:
        if self.adv_steps < 1:
            raise ValueError(f"adv_steps must be at least 1, got {self.adv_steps}")
        check_norm("norm_type", self.norm_type)
        if self.perturb not in ("word", "output"):
            raise ValueError(f"perturb must be 'word' or 'output', got {self.perturb!r}")
        if self.adv_lr < 0 or self.adv_init_mag < 0 or self.adv_max_norm < 0:
            raise ValueError("adv_lr, adv_init_mag and adv_max_norm must be >= 0")


def freelb_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    settings: FreeLBSettings | None = None,
    backward: BackwardFunction | None = None,
    generator: torch.Generator | None = None,
) -> dict:
    """FreeLB: ``adv_steps`` ascent steps on a perturbation delta, parameter gradients accumulated.

    At step t the model sees ``embeds + delta_t`` and ``CE / adv_steps`` is back-propagated
    (``backward(loss)``, default ``loss.backward()``; pass e.g. a GradScaler's scaled backward), so
    the parameter gradients after the call are those of the mean loss over the steps. Between steps
    ``delta <- delta + adv_lr * g / ||g||`` (g = d loss / d delta, per-example norm over [L, H]),
    then the projection when ``adv_max_norm > 0``. delta starts uniform in [-1, 1] on real tokens,
    scaled to l2 size ``adv_init_mag`` (per example: / sqrt(tokens * H)), or 0. Dropout masks are
    drawn afresh at every step (the authors' code reuses one set of masks across the steps).

    Returns ``{"loss", "ce"}`` (detached: the mean CE over the steps; backward is already done) and
    ``"delta_norm"`` (mean per-example l2 norm of the last delta). Do NOT call backward on them.
    """
    settings = settings or FreeLBSettings()
    backward = backward or (lambda loss: loss.backward())

    inner = cast(RobustClassifier, unwrap(model))

    def base() -> torch.Tensor:
        if settings.perturb == "word":
            return inner.word_embeddings(input_ids)
        return inner.embedding_output(input_ids, token_type_ids)

    embeds = base()
    mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).to(embeds.dtype)
    delta = random_start(embeds.detach(), mask, settings.norm_type, settings.adv_init_mag, generator)
    total = torch.zeros((), device=embeds.device)
    for step in range(settings.adv_steps):
        delta.requires_grad_(True)
        if settings.perturb == "word":
            logits, _ = model(input_ids, attention_mask, token_type_ids, word_embeds=embeds + delta)
        else:
            logits, _ = model(
                attention_mask=attention_mask, token_type_ids=token_type_ids, inputs_embeds=embeds + delta
            )
        loss = F.cross_entropy(logits, labels) / settings.adv_steps
        backward(loss)
        total = total + loss.detach().float()
        if step == settings.adv_steps - 1:
            break
        grad = cast(torch.Tensor, delta.grad).detach()  # set by backward
        delta = ascent_step(delta.detach(), grad, settings.norm_type, settings.adv_lr, settings.adv_max_norm)
        embeds = base()  # the previous graph was freed by backward
    delta_norm = delta.detach().reshape(delta.shape[0], -1).float().norm(dim=1).mean()
    return {"loss": total, "ce": total, "delta_norm": delta_norm}


@register_defense
class FreeLBTraining(Defense):
    name = "freelb"
    summary = "FreeLB ascent on the word embeddings (Zhu et al. 2020); runs backward itself"
    settings_type = FreeLBSettings
    settings: FreeLBSettings
    calls_backward = True
    perturbs_embeddings = True

    def __init__(self, model: RobustClassifier, settings: FreeLBSettings) -> None:
        super().__init__(model, settings)
        if settings.perturb == "output":
            embeddings_of(model.encoder)  # raises ValueError without a BERT-like embedding layer

    def forward(self, batch: Batch) -> LossTerms:
        return freelb_loss(
            self.model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            batch["token_type_ids"],
            settings=self.settings,
        )
