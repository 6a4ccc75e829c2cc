"""The ASCC adversary (Dong et al., ICLR 2021) as RIFT (Dong et al., NeurIPS 2021) uses it.

At each position ``i`` of the input the model's input is a convex combination of the inputs of the
original token (slot 0) and its synonyms::

    e_adv(i) = sum_s w[i, s] * E(sub[i, s]),   w[i, :] = softmax(z'[i, :]),
    z'[i, s] = z[i, s] if slot s is valid, else -500

E depends on the model's adversary space (``RobustClassifier.hull_space``): for ``embedding-output``
(BERT-like embedding layers, RIFT's construction) E is the embedding-layer output, position and type embeddings
and LayerNorm included (fused op :func:`rift_fast.ops.convex_hull_embedding.convex_hull_embedding`);
for ``word-embedding`` (any other encoder with an input embedding, as ASCC did for non-BERT models) E
is the word embedding and the encoder adds positions and types itself
(:func:`rift_fast.ops.convex_hull_embedding.convex_hull_word_embedding`). Both dispatch backends with
``backend=None``.

The logits ``z`` start from ``torch.nn.init.kaiming_normal_`` on a [B, L, K, 1] tensor, as the
original code does: fan_in = L * K, gain sqrt(2), so z ~ N(0, 2 / (L * K)) (nearly uniform starting
weights). They are optimised by Adam (lr 1, weight decay 2e-5) for ``steps`` (10) steps with the
model in eval mode, minimising::

    loss = -objective + 15 * sum_i H(w[i, :]) / (300 * 128)

where ``objective`` is ``KL(p(x) || p(x_adv))`` summed over the batch (mode ``"kl"``, training; p(x)
from an eval-mode, no-grad forward of the clean input) or ``CE(p(x_adv), y)`` summed over the batch
(mode ``"ce"``, evaluation), and the entropy sum runs over every position of the batch (padding
included: its single valid slot gives H = 0). Sums and the constant 300 * 128 are those of the
original code. The final weights are the softmax of the final logits (after the last Adam step).
Only ``z`` receives gradients during the search (the model's parameters are untouched, their
``.grad`` too); the model's train/eval mode is restored afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.classifier import (
    EMBEDDING_OUTPUT,
    RobustClassifier,
    float32_cross_entropy,
    float32_outside_autocast,
    input_embedding_matrix,
    logits_kl,
    unwrap,
)
from rift_fast.ops.convex_hull_embedding import (
    BertEmbeddingsLike,
    convex_hull_embedding_from_bert,
    convex_hull_word_embedding,
)
from rift_fast.ops.gather_neighbours import gather_neighbours

ADVERSARY_STEPS = 10
ADVERSARY_LR = 1.0
ADVERSARY_WEIGHT_DECAY = 2e-5
ENTROPY_WEIGHT = 15.0
ENTROPY_NORMALISER = 300 * 128
INVALID_LOGIT = -500.0
MODES = ("kl", "ce")


@dataclass
class ASCCResult:
    """Outcome of :func:`ascc_adversary`.

    weights: [B, L, K] final convex weights (detached; ~0 on invalid slots, rows sum to 1).
    embeddings: [B, L, E] the hull of ``weights`` in the model's adversary space (no dropout);
        differentiable in the model's embedding parameters when built with grad enabled.
    objective: [steps] the objective (KL or CE, summed over the batch) at each step, before that
        step's update (detached, no host sync).
    entropy: [steps] sum_i H(w[i, :]) at each step, before the update (detached).
    """

    weights: torch.Tensor
    embeddings: torch.Tensor
    objective: torch.Tensor
    entropy: torch.Tensor


def restrict_substitutions(
    sub_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    special_tokens_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``sub_ids`` [B, L, K] with slots 1.. emptied (-1) where ``attention_mask`` is 0 or
    ``special_tokens_mask`` is 1, so padding and special tokens keep only slot 0 (themselves)."""
    frozen = torch.zeros(sub_ids.shape[:2], dtype=torch.bool, device=sub_ids.device)
    if attention_mask is not None:
        frozen |= attention_mask == 0
    if special_tokens_mask is not None:
        frozen |= special_tokens_mask.bool()
    out = sub_ids.clone()
    out[..., 1:] = out[..., 1:].masked_fill(frozen.unsqueeze(-1), -1)
    return out


def substitution_ids(
    input_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    special_tokens_mask: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """[B, L, 1 + K] substitution ids: :func:`gather_neighbours` then :func:`restrict_substitutions`."""
    table = neighbour_table.to(input_ids.device)
    sub_ids = gather_neighbours(input_ids, table, backend=backend)
    return restrict_substitutions(sub_ids, attention_mask, special_tokens_mask)


def hull_embedding(
    model: nn.Module,
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    backend: str | None = None,
    detach_tables: bool = False,
) -> torch.Tensor:
    """[B, L, E] convex hull in the model's adversary space (fused op; ``model.hull_space``): the
    embedding-layer outputs (positions as the model numbers them) or the word embeddings of the slots.
    ``detach_tables``: the embedding tables are constants (gradients reach only ``weights``). Raises
    ValueError when the model has no input-embedding module."""
    model = cast(RobustClassifier, unwrap(model))
    if model.require_hull_space("the convex-hull adversary") != EMBEDDING_OUTPUT:
        table = input_embedding_matrix(cast(nn.Embedding, model.get_input_embeddings()))
        return convex_hull_word_embedding(weights, sub_ids, table.detach() if detach_tables else table, backend)
    if position_ids is None:
        position_ids = model.position_ids(sub_ids[..., 0].clamp_min(0))
    return convex_hull_embedding_from_bert(
        cast(BertEmbeddingsLike, model.embeddings),
        weights,
        sub_ids,
        token_type_ids,
        position_ids,
        backend,
        detach_tables,
    )


def _check(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    sub_ids: torch.Tensor,
    labels: torch.Tensor | None,
    mode: str,
) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if sub_ids.dim() != 3 or sub_ids.shape[:2] != input_ids.shape:
        raise ValueError(
            f"sub_ids must be [B, L, K] with [B, L] = {tuple(input_ids.shape)}, got {tuple(sub_ids.shape)}"
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have shape {tuple(input_ids.shape)}, got {tuple(attention_mask.shape)}")
    if mode == "ce" and labels is None:
        raise ValueError("mode 'ce' needs labels")


def ascc_adversary(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    sub_ids: torch.Tensor,
    labels: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    mode: str = "kl",
    steps: int = ADVERSARY_STEPS,
    lr: float = ADVERSARY_LR,
    weight_decay: float = ADVERSARY_WEIGHT_DECAY,
    entropy_weight: float = ENTROPY_WEIGHT,
    entropy_normaliser: float = ENTROPY_NORMALISER,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> ASCCResult:
    """Find the ASCC convex weights for a batch.

    model: a :class:`~rift_fast.models.RobustClassifier`. input_ids, attention_mask [B, L];
    sub_ids [B, L, K] int64 (from :func:`substitution_ids`: slot 0 = the token, -1 = empty; padding
    and special tokens should keep only slot 0); labels [B] (mode ``"ce"``); mode ``"kl"`` (training)
    or ``"ce"`` (evaluation); a DDP/DataParallel wrapper is looked through; ``generator``: a
    torch.Generator on the inputs' device for the Kaiming draw (default: the global RNG); ``backend``:
    the hull op's backend (None = dispatch). The final hull ``embeddings`` are built under the
    caller's grad mode.
    """
    _check(input_ids, attention_mask, sub_ids, labels, mode)
    model = cast(RobustClassifier, unwrap(model))  # the search needs no DDP gradient hooks
    batch, length, slots = sub_ids.shape
    valid = sub_ids >= 0
    position_ids = model.position_ids(input_ids) if model.require_hull_space("ASCC") == EMBEDDING_OUTPUT else None
    z = torch.empty(batch, length, slots, 1, dtype=torch.float32, device=input_ids.device)
    torch.nn.init.kaiming_normal_(z, generator=generator)  # fan_in = L * K, std sqrt(2 / (L * K))
    z = z.view(batch, length, slots).requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr, weight_decay=weight_decay)
    objectives: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        if mode == "kl":
            with torch.no_grad():
                clean_logits, _ = model(input_ids, attention_mask, token_type_ids)
        device = input_ids.device
        for _ in range(steps):
            with torch.enable_grad():
                with float32_outside_autocast(device):
                    log_w = F.log_softmax(z.masked_fill(~valid, INVALID_LOGIT), dim=-1)
                    w = log_w.exp()
                hull = hull_embedding(model, w, sub_ids, token_type_ids, position_ids, backend, detach_tables=True)
                logits_adv, _ = model(input_ids, attention_mask, token_type_ids, hull_embeds=hull)
                with float32_outside_autocast(device):  # the objective and the entropy in float32
                    if mode == "kl":
                        objective = logits_kl(clean_logits, logits_adv, reduction="sum")
                    else:
                        # labels is a tensor here: _check refused mode "ce" without labels
                        objective = float32_cross_entropy(logits_adv, cast(torch.Tensor, labels), reduction="sum")
                    entropy = -(w * log_w).sum()
                    loss = -objective + entropy_weight * entropy / entropy_normaliser
                (grad,) = torch.autograd.grad(loss, [z])
            z.grad = grad
            optimiser.step()
            objectives.append(objective.detach())
            entropies.append(entropy.detach())
    finally:
        model.train(was_training)
    with float32_outside_autocast(input_ids.device):
        weights = F.softmax(z.detach().masked_fill(~valid, INVALID_LOGIT), dim=-1)
    embeddings = hull_embedding(model, weights, sub_ids, token_type_ids, position_ids, backend)
    empty = torch.zeros(0, device=input_ids.device)
    return ASCCResult(
        weights=weights,
        embeddings=embeddings,
        objective=torch.stack(objectives) if objectives else empty,
        entropy=torch.stack(entropies) if entropies else empty,
    )


@dataclass
class ASCCEvaluation:
    """Per-example outcome of :func:`ascc_robust_accuracy` ([B] bool tensors)."""

    clean_correct: torch.Tensor
    hull_correct: torch.Tensor

    @property
    def robust_correct(self) -> torch.Tensor:
        """Correct on the clean input AND on the adversarial hull (a clean mistake counts as broken)."""
        return self.clean_correct & self.hull_correct

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust_correct.float().mean())

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean())


def ascc_robust_accuracy(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    sub_ids: torch.Tensor,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    steps: int = ADVERSARY_STEPS,
    generator: torch.Generator | None = None,
    backend: str | None = None,
    **adversary_settings: float,
) -> ASCCEvaluation:
    """ASCC evaluation on the continuous hull: the adversary in mode ``"ce"``, then eval-mode predictions
    on the clean input and on the final hull input; the model's train/eval mode is restored. The hull is
    not a text: the evaluation's ASCC figure turns the weights into words and scores the text
    (:func:`rift_fast.training.ascc_words.ascc_word_outcomes`); this one is a diagnostic."""
    was_training = model.training
    try:
        with torch.no_grad():
            result = ascc_adversary(
                model,
                input_ids,
                attention_mask,
                sub_ids,
                labels,
                token_type_ids,
                mode="ce",
                steps=steps,
                generator=generator,
                backend=backend,
                **adversary_settings,
            )
            model.eval()
            clean_logits, _ = model(input_ids, attention_mask, token_type_ids)
            hull_logits, _ = model(input_ids, attention_mask, token_type_ids, hull_embeds=result.embeddings)
    finally:
        model.train(was_training)
    return ASCCEvaluation(
        clean_correct=clean_logits.argmax(-1) == labels, hull_correct=hull_logits.argmax(-1) == labels
    )
