"""FreeLB (Zhu et al., ICLR 2020): adversarial training in the embedding space, free large-batch style.

It calls ``backward`` once per ascent step (the parameter gradients accumulate over the steps), so the
training loop lets it run backward itself and, under torchrun, averages the gradients over the
processes once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from rift_fast.models.classifier import RobustClassifier, embeddings_of, float32_cross_entropy, unwrap
from rift_fast.training.defenses.base import BackwardFunction, Batch, Defense, LossTerms, model_inputs, register_defense
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


@dataclass
class AscentStep:
    """What one ascent step of :func:`freelb_ascent` optimises, as its ``objective`` returns it.

    ``loss``: the step's objective (0-d, with its graph); its gradient in the perturbation steers the
    ascent. ``terms``: named parts of it to report (0-d). ``regulariser``: None, or a function of that
    gradient (d loss / d delta, [B, L, E], detached) returning more terms whose ``"loss"`` is added to the
    step's backward but does not steer the ascent (InfoBERT's anchored features are chosen by it).
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    regulariser: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None


def freelb_ascent(
    clean_input: Callable[[], torch.Tensor],
    attention_mask: torch.Tensor | None,
    objective: Callable[[torch.Tensor], AscentStep],
    settings: FreeLBSettings,
    backward: BackwardFunction | None = None,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """FreeLB's ascent loop around any objective: ``settings.adv_steps`` steps on a perturbation delta,
    parameter gradients accumulated over the steps.

    ``clean_input()`` gives the unperturbed input [B, L, E] with its graph (called again after each
    backward, which frees it); step t back-propagates ``objective(clean + delta_t)`` divided by
    ``adv_steps`` (plus its regulariser's ``"loss"``) with ``backward(loss)`` (default
    ``loss.backward()``). Between steps ``delta <- delta + adv_lr * g / ||g||`` (g = d loss / d delta,
    per-example norm over [L, H]), then the projection when ``adv_max_norm > 0``. delta starts uniform in
    [-1, 1] on real tokens (``attention_mask`` 1), scaled to l2 size ``adv_init_mag`` (per example:
    / sqrt(tokens * H)), or 0.

    Returns ``{"loss", ...}``: every term averaged over the steps, detached (backward is done; do NOT
    call it again), and ``"delta_norm"`` (mean per-example l2 norm of the last delta).
    """
    backward = backward or (lambda loss: loss.backward())
    embeds = clean_input()
    mask = (attention_mask if attention_mask is not None else torch.ones(embeds.shape[:2])).to(embeds)
    delta = random_start(embeds.detach(), mask, settings.norm_type, settings.adv_init_mag, generator)
    sums: dict[str, torch.Tensor] = {}
    for step in range(settings.adv_steps):
        delta.requires_grad_(True)
        current = objective(embeds + delta)
        terms = {"loss": current.loss, **current.terms}
        if current.regulariser is None:
            backward(current.loss / settings.adv_steps)
            grad = cast(torch.Tensor, delta.grad).detach()  # set by backward
        else:
            grad = torch.autograd.grad(current.loss, delta, retain_graph=True)[0].detach()
            extra = current.regulariser(grad)
            backward((current.loss + extra["loss"]) / settings.adv_steps)
            terms = {**terms, **extra, "loss": current.loss + extra["loss"]}
        for name, value in terms.items():
            sums[name] = sums.get(name, torch.zeros((), device=value.device)) + value.detach().float()
        if step == settings.adv_steps - 1:
            break
        delta = ascent_step(delta.detach(), grad, settings.norm_type, settings.adv_lr, settings.adv_max_norm)
        embeds = clean_input()  # the previous graph was freed by backward
    delta_norm = delta.detach().reshape(delta.shape[0], -1).float().norm(dim=1).mean()
    return {**{name: total / settings.adv_steps for name, total in sums.items()}, "delta_norm": delta_norm}


def freelb_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    settings: FreeLBSettings | None = None,
    backward: BackwardFunction | None = None,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """FreeLB (:func:`freelb_ascent`) on the cross-entropy: step t back-propagates ``CE / adv_steps``
    of ``clean + delta_t`` (``backward``: e.g. a GradScaler's scaled backward), so the parameter
    gradients after the call are those of the mean loss over the steps. Dropout masks are drawn afresh
    at every step (the authors' code reuses one set of masks across the steps).

    Returns ``{"loss", "ce"}`` (detached: the mean CE over the steps; backward is already done) and
    ``"delta_norm"`` (mean per-example l2 norm of the last delta). Do NOT call backward on them.
    """
    settings = settings or FreeLBSettings()
    inner = cast(RobustClassifier, unwrap(model))

    def clean_input() -> torch.Tensor:
        if settings.perturb == "word":
            return inner.word_embeddings(input_ids)
        return inner.embedding_output(input_ids, token_type_ids)

    def objective(perturbed: torch.Tensor) -> AscentStep:
        if settings.perturb == "word":
            logits, _ = model(input_ids, attention_mask, token_type_ids, word_embeds=perturbed)
        else:
            logits, _ = model(attention_mask=attention_mask, token_type_ids=token_type_ids, inputs_embeds=perturbed)
        ce = float32_cross_entropy(logits, labels)
        return AscentStep(ce, {"ce": ce})

    return freelb_ascent(clean_input, attention_mask, objective, settings, backward, generator)


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
        return freelb_loss(self.model, *model_inputs(batch), settings=self.settings)
