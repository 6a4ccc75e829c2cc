"""Perturbations of the word embeddings inside a norm ball: the random start, the ascent step, and the
K-step search that PGD and TRADES share (FreeLB takes the start and the step).

The rule is the one of TextDefender's embedding-level trainers (Li et al., EMNLP 2021,
``trainer/gradient.py``: ``delta_initial`` and ``delta_update``), which is FreeLB's (Zhu et al., ICLR 2020):

- start: uniform in [-1, 1] on the real tokens (0 on padding); l2: scaled to size ``magnitude / sqrt(tokens * E)``
  per example, linf: scaled by ``magnitude``; ``magnitude = 0`` starts at 0.
- step: ``delta + step_size * g / ||g||`` with ``g = d objective / d delta`` and the norm over one
  example's [L, E] (l2: the l2 norm; linf: the largest absolute entry, not the sign of Madry et al.),
  then back into the ball of ``radius`` (l2: rescaled to the radius when outside; linf: clamped);
  ``radius <= 0``: no ball (FreeLB's unbounded default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import cast

import torch
from torch import nn

from rift_fast.models.classifier import RobustClassifier, unwrap

NORMS = ("l2", "linf")
GRADIENT_NORM_FLOOR = 1e-8  # TextDefender / FreeLB: the gradient norm is clamped to at least this


def check_norm(setting: str, norm: str) -> None:
    """Raises ValueError naming ``setting`` when ``norm`` is not one of :data:`NORMS`."""
    if norm not in NORMS:
        raise ValueError(f"{setting} must be one of {', '.join(NORMS)}, got {norm!r}")


def random_start(
    embeds: torch.Tensor, mask: torch.Tensor, norm: str, magnitude: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[B, L, E] starting perturbation (module docstring) of ``embeds`` [B, L, E]; ``mask`` [B, L]
    1 = real token, in ``embeds``' dtype; ``generator`` on ``embeds``' device (default: the global one)."""
    if magnitude <= 0:
        return torch.zeros_like(embeds)
    noise = torch.rand(embeds.shape, generator=generator, device=embeds.device, dtype=embeds.dtype) * 2 - 1
    noise = noise * mask.unsqueeze(-1)
    if norm == "l2":
        dims = mask.sum(1) * embeds.shape[-1]  # tokens * E per example
        return noise * (magnitude / dims.sqrt()).view(-1, 1, 1)
    return noise * magnitude


def ascent_step(delta: torch.Tensor, grad: torch.Tensor, norm: str, step_size: float, radius: float) -> torch.Tensor:
    """One normalised ascent step of ``delta`` [B, L, E] along ``grad`` [B, L, E], then the projection
    onto the ball of ``radius`` (none when ``radius <= 0``); detached."""
    flat = grad.reshape(grad.shape[0], -1)
    if norm == "l2":
        denominator = flat.norm(dim=1).clamp_min(GRADIENT_NORM_FLOOR).view(-1, 1, 1)
        delta = delta + step_size * grad / denominator
        if radius > 0:
            norms = delta.reshape(delta.shape[0], -1).float().norm(dim=1)
            scale = torch.where(norms > radius, radius / norms, torch.ones_like(norms))
            delta = delta * scale.to(delta.dtype).view(-1, 1, 1)
    else:
        denominator = flat.abs().amax(dim=1).clamp_min(GRADIENT_NORM_FLOOR).view(-1, 1, 1)
        delta = delta + step_size * grad / denominator
        if radius > 0:
            delta = delta.clamp(-radius, radius)
    return delta.detach()


@contextlib.contextmanager
def model_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """While active, ``model`` is in train (``training``) or eval mode; its mode is restored afterwards."""
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


def ball_adversary(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    objective: Callable[[torch.Tensor], torch.Tensor],
    norm: str,
    steps: int,
    step_size: float,
    radius: float,
    init_magnitude: float,
    eval_mode: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The perturbation [B, L, E] (detached, the embeddings' dtype) of the word embeddings of ``input_ids``
    [B, L] after ``steps`` ascent steps on ``objective(logits)`` (a scalar of the float32 logits [B, C]).

    ``model``: a :class:`RobustClassifier` (a DDP wrapper is looked through: the search touches no
    parameter gradient). The embeddings are constants during the search; only delta gets gradients.
    ``eval_mode``: search with dropout off (TRADES's code), else in train mode (TextDefender's PGD).
    """
    inner = cast(RobustClassifier, unwrap(model))
    embeds = inner.word_embeddings(input_ids).detach()
    mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).to(embeds.dtype)
    delta = random_start(embeds, mask, norm, init_magnitude, generator)
    with model_mode(inner, not eval_mode):
        for _ in range(steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                logits, _ = inner(input_ids, attention_mask, token_type_ids, word_embeds=embeds + delta)
                (grad,) = torch.autograd.grad(objective(logits.float()), [delta])
            delta = ascent_step(delta.detach(), grad, norm, step_size, radius)
    return delta


__all__ = ["NORMS", "ascent_step", "ball_adversary", "check_norm", "model_mode", "random_start"]
