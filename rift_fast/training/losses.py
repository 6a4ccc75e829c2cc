"""Training losses of the four methods: standard, ASCC, RIFT (RIFT_SPEC step 2) and FreeLB.

Every function takes a :class:`~rift_fast.training.model.RobustClassifier` in train mode (or a DDP
wrapper around it: the forwards whose loss is back-propagated go through the wrapper, the adversary
uses the inner module) and one batch, and returns a dict of tensors: ``"loss"`` (the total) and each
term separately (``"ce"``, ``"kl"``, ``"nce"``) for logging. The terms keep their graphs;
``.detach()`` them to log. Weight decay: ``model.head_parameters()`` and the ProjectionHeads'
parameters are the heads.

- standard: ``CE(f(x), y)``.
- ASCC: ``CE(f(x), y) + w_kl * KL(p(x) || p(x_adv))`` with ``KL = F.kl_div(log_softmax(logits_adv),
  softmax(logits_clean), reduction="batchmean")``; the clean logits are NOT detached (the KL pulls
  p(x) too) and there is no CE on x_adv. x_adv is the hull from :func:`ascc_adversary` (mode "kl"),
  rebuilt with gradients into the embedding tables; the adversary runs first, in eval mode.
- RIFT: the ASCC loss ``+ w_mi * L_NCE``: student = the student projection of the pooled feature of
  the trained model on x_adv (the same forward as the KL's logits), teacher = the teacher projection
  of the frozen teacher's pooled feature on the clean x, ``L_NCE`` =
  :func:`class_conditional_infonce` (per-class InfoNCE averaged over the classes present).
- FreeLB (Zhu et al., ICLR 2020): see :func:`freelb_loss`; it calls ``backward`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rift_fast.ops.class_conditional_infonce import class_conditional_infonce
from rift_fast.training.adversary import ASCCResult, ascc_adversary
from rift_fast.training.model import logits_kl, unwrap

# RIFT_SPEC presets: IMDB w_kl 10, w_mi 0.1; SNLI w_kl 5, w_mi 0.7.
IMDB_KL_WEIGHT, IMDB_MI_WEIGHT = 10.0, 0.1
SNLI_KL_WEIGHT, SNLI_MI_WEIGHT = 5.0, 0.7
NCE_TEMPERATURE = 0.2


def standard_loss(model, input_ids, attention_mask, labels, token_type_ids=None) -> dict:
    """``{"loss", "ce"}``: cross-entropy of the clean batch."""
    logits, _ = model(input_ids, attention_mask, token_type_ids)
    ce = F.cross_entropy(logits, labels)
    return {"loss": ce, "ce": ce}


def _adversarial_terms(model, input_ids, attention_mask, labels, sub_ids, token_type_ids, adversary,
                       adversary_settings, generator, backend):
    if adversary is None:
        adversary = ascc_adversary(model, input_ids, attention_mask, sub_ids, token_type_ids=token_type_ids,
                                   mode="kl", generator=generator, backend=backend, **(adversary_settings or {}))
    logits_clean, _ = model(input_ids, attention_mask, token_type_ids)
    logits_adv, pooled_adv = model(attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   inputs_embeds=adversary.embeddings)
    ce = F.cross_entropy(logits_clean, labels)
    kl = logits_kl(logits_clean, logits_adv, reduction="batchmean")
    return ce, kl, pooled_adv, adversary


def ascc_loss(model, input_ids, attention_mask, labels, sub_ids, token_type_ids=None, kl_weight=IMDB_KL_WEIGHT,
              adversary: ASCCResult | None = None, adversary_settings: dict | None = None, generator=None,
              backend=None) -> dict:
    """``{"loss", "ce", "kl"}``: ``CE(f(x), y) + kl_weight * KL(p(x) || p(x_adv))``.

    ``sub_ids`` [B, L, K] substitution ids (see :func:`rift_fast.training.adversary.substitution_ids`).
    ``adversary``: a precomputed :class:`ASCCResult` for this batch (default: run
    :func:`ascc_adversary` in mode "kl" with ``adversary_settings`` such as ``steps``).
    """
    ce, kl, _, _ = _adversarial_terms(model, input_ids, attention_mask, labels, sub_ids, token_type_ids,
                                      adversary, adversary_settings, generator, backend)
    return {"loss": ce + kl_weight * kl, "ce": ce, "kl": kl}


def rift_loss(model, teacher, heads, input_ids, attention_mask, labels, sub_ids, token_type_ids=None,
              kl_weight=IMDB_KL_WEIGHT, mi_weight=IMDB_MI_WEIGHT, temperature=NCE_TEMPERATURE,
              adversary: ASCCResult | None = None, adversary_settings: dict | None = None, generator=None,
              backend=None) -> dict:
    """``{"loss", "ce", "kl", "nce"}``: the ASCC loss ``+ mi_weight * L_NCE``.

    ``teacher``: :class:`~rift_fast.training.teacher.FrozenTeacher`; ``heads``:
    :class:`~rift_fast.training.teacher.ProjectionHeads`. The batch should be class-balanced
    (:class:`~rift_fast.training.sampling.ClassBalancedBatchSampler`): negatives are the other samples
    of the same class.
    """
    ce, kl, pooled_adv, _ = _adversarial_terms(model, input_ids, attention_mask, labels, sub_ids, token_type_ids,
                                               adversary, adversary_settings, generator, backend)
    pooled_teacher = teacher.pooled(input_ids, attention_mask, token_type_ids)
    student = heads.project(pooled_adv, labels, "student")
    target = heads.project(pooled_teacher.to(pooled_adv.dtype), labels, "teacher")
    nce = class_conditional_infonce(student, target, labels, temperature=temperature, backend=backend)
    return {"loss": ce + kl_weight * kl + mi_weight * nce, "ce": ce, "kl": kl, "nce": nce}


@dataclass(frozen=True)
class FreeLBSettings:
    """FreeLB settings. The defaults are the BERT-base setting common in robustness benchmarks built
    on the authors' Hugging Face code (5 ascent steps, step 0.03, random start of l2 size 0.05,
    no norm bound); the FreeLB paper itself tunes these per GLUE task and publishes no single BERT
    default. ``adv_max_norm > 0`` bounds each example's perturbation (l2: projection onto the ball;
    linf: clamping). ``perturb``: ``"word"`` = the word embeddings, as the paper and its code (the
    encoder then adds positions and types and applies LayerNorm); ``"output"`` = the embedding-layer
    output (after LayerNorm)."""

    adv_steps: int = 5
    adv_lr: float = 0.03
    adv_init_mag: float = 0.05
    adv_max_norm: float = 0.0
    norm_type: str = "l2"
    perturb: str = "word"

    def __post_init__(self):
        if self.adv_steps < 1:
            raise ValueError(f"adv_steps must be at least 1, got {self.adv_steps}")
        if self.norm_type not in ("l2", "linf"):
            raise ValueError(f"norm_type must be 'l2' or 'linf', got {self.norm_type!r}")
        if self.perturb not in ("word", "output"):
            raise ValueError(f"perturb must be 'word' or 'output', got {self.perturb!r}")
        if self.adv_lr < 0 or self.adv_init_mag < 0 or self.adv_max_norm < 0:
            raise ValueError("adv_lr, adv_init_mag and adv_max_norm must be >= 0")


def _initial_delta(embeds, mask, settings, generator):
    if settings.adv_init_mag <= 0:
        return torch.zeros_like(embeds)
    noise = torch.rand(embeds.shape, generator=generator, device=embeds.device, dtype=embeds.dtype) * 2 - 1
    noise = noise * mask.unsqueeze(-1)
    if settings.norm_type == "l2":
        dims = mask.sum(1) * embeds.shape[-1]  # tokens * H per example
        return noise * (settings.adv_init_mag / dims.sqrt()).view(-1, 1, 1)
    return noise * settings.adv_init_mag


def _ascent(delta, grad, settings):
    flat = grad.reshape(grad.shape[0], -1)
    if settings.norm_type == "l2":
        denom = flat.norm(dim=1).clamp_min(1e-8).view(-1, 1, 1)
        delta = delta + settings.adv_lr * grad / denom
        if settings.adv_max_norm > 0:
            norms = delta.reshape(delta.shape[0], -1).float().norm(dim=1)
            scale = torch.where(norms > settings.adv_max_norm, settings.adv_max_norm / norms, torch.ones_like(norms))
            delta = delta * scale.to(delta.dtype).view(-1, 1, 1)
    else:
        denom = flat.abs().amax(dim=1).clamp_min(1e-8).view(-1, 1, 1)
        delta = delta + settings.adv_lr * grad / denom
        if settings.adv_max_norm > 0:
            delta = delta.clamp(-settings.adv_max_norm, settings.adv_max_norm)
    return delta.detach()


def freelb_loss(model, input_ids, attention_mask, labels, token_type_ids=None, settings: FreeLBSettings | None = None,
                backward=None, generator=None) -> dict:
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

    inner = unwrap(model)

    def base():
        if settings.perturb == "word":
            return inner.word_embeddings(input_ids)
        return inner.embedding_output(input_ids, token_type_ids)

    embeds = base()
    mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).to(embeds.dtype)
    delta = _initial_delta(embeds.detach(), mask, settings, generator)
    total = torch.zeros((), device=embeds.device)
    for step in range(settings.adv_steps):
        delta.requires_grad_(True)
        if settings.perturb == "word":
            logits, _ = model(input_ids, attention_mask, token_type_ids, word_embeds=embeds + delta)
        else:
            logits, _ = model(attention_mask=attention_mask, token_type_ids=token_type_ids,
                              inputs_embeds=embeds + delta)
        loss = F.cross_entropy(logits, labels) / settings.adv_steps
        backward(loss)
        total = total + loss.detach().float()
        if step == settings.adv_steps - 1:
            break
        delta = _ascent(delta.detach(), delta.grad.detach(), settings)
        embeds = base()  # the previous graph was freed by backward
    delta_norm = delta.detach().reshape(delta.shape[0], -1).float().norm(dim=1).mean()
    return {"loss": total, "ce": total, "delta_norm": delta_norm}


__all__ = [
    "FreeLBSettings", "ascc_loss", "freelb_loss", "rift_loss", "standard_loss",
    "IMDB_KL_WEIGHT", "IMDB_MI_WEIGHT", "SNLI_KL_WEIGHT", "SNLI_MI_WEIGHT", "NCE_TEMPERATURE",
]
