"""Dirichlet Neighborhood Ensemble (Zhou et al., ACL 2021): training on convex combinations of each word
and its neighbours within two hops, drawn from a Dirichlet and then ascended.

At each position the input is the hull point ``sum_s w[s] * E(sub[s])`` over slot 0 (the word), its
synonyms (one hop) and their synonyms (two hops, :func:`rift_fast.synonyms.two_hop_vocab_table`, at most
``dne_neighbours`` slots in all). E is the model's adversary space, built by the fused
``convex_hull_embedding`` op (:func:`rift_fast.training.adversary.hull_embedding`): the word embeddings
under ``--hull-space word-embedding``, which is DNE's construction (its code replaces the word-embedding
module); the embedding-layer outputs under ``embedding-output``, as ASCC and RIFT mix them.

The authors' code (github.com/dugu9sword/dne, ``awesome_glue/weighted_util.py`` and
``allennlpx/training/adv_trainer.py``; TextDefender's ``trainer/dne.py`` ports it):

1. w0 ~ Dirichlet(alpha for the word and its one-hop neighbours, alpha * decay for the two-hop ones);
   ``z0 = log(w0 + 1e-6)``, and every forward uses ``w = softmax(z)`` over the valid slots.
2. ``dne_steps`` ascent steps on z: ``z <- z + dne_step_size * g / (||g||_2 + 1e-6)`` per position,
   g = d CE / d z of the previous forward (the norm over the slots of one position).
3. ``loss = CE(w0 point) + mean over the steps of CE(ascended point)`` (its adversarial losses are
   divided by the number of steps; TextDefender sums them). All forwards run in train mode and
   every one trains the model, embedding tables included.

The inference-time ensemble of DNE (averaging the predictions of several Dirichlet draws) is not
part of training and is not built here: the attacks and the evaluation see the model on its own ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.classifier import EMBEDDING_OUTPUT, RobustClassifier, float32_cross_entropy, unwrap
from rift_fast.synonyms import two_hop_vocab_table
from rift_fast.training.adversary import INVALID_LOGIT, hull_embedding, substitution_ids
from rift_fast.training.defenses.base import Batch, Defense, LossTerms, register_defense

# The authors' code: README's DNE command (--dir_alpha 1.0 --dir_decay 0.5 --adv_iter 3), config.py
# (adv_step 10.0, nbr_num 64 slots with the word). TextDefender: alpha 1.0 / decay 0.5 on AG News,
# 0.1 / 0.1 on IMDB, 50 slots.
DNE_ALPHA = 1.0
DNE_DECAY = 0.5
DNE_STEPS = 3
DNE_STEP_SIZE = 10.0
DNE_NEIGHBOURS = 64
WEIGHT_FLOOR = 1e-6  # the authors' code: z0 = log(w0 + 1e-6), and ||g|| + 1e-6 in the step


@dataclass(frozen=True)
class DneSettings:
    """DNE's Dirichlet, its ascent and its neighbourhood (defaults: the authors' code, cited above)."""

    dne_alpha: float = field(default=DNE_ALPHA, metadata={"help": "DNE Dirichlet concentration of the one-hop slots"})
    dne_decay: float = field(
        default=DNE_DECAY, metadata={"help": "DNE factor on the concentration of the two-hop slots"}
    )
    dne_steps: int = field(default=DNE_STEPS, metadata={"help": "DNE ascent steps on the weights (0: draws only)"})
    dne_step_size: float = field(default=DNE_STEP_SIZE, metadata={"help": "DNE ascent step on the log weights"})
    dne_neighbours: int = field(
        default=DNE_NEIGHBOURS, metadata={"help": "DNE slots per word: the word and its neighbours within two hops"}
    )

    def __post_init__(self) -> None:
        if self.dne_alpha <= 0:
            raise ValueError(f"dne_alpha (a Dirichlet concentration) must be in (0, inf), got {self.dne_alpha}")
        if not 0 < self.dne_decay <= 1:
            raise ValueError(f"dne_decay must be in (0, 1], got {self.dne_decay}")
        if self.dne_steps < 0:
            raise ValueError(f"dne_steps must be in [0, inf), got {self.dne_steps}")
        if self.dne_step_size <= 0:
            raise ValueError(f"dne_step_size must be in (0, inf), got {self.dne_step_size}")
        if self.dne_neighbours < 2:
            raise ValueError(
                f"dne_neighbours must be in [2, inf) (the word and a neighbour), got {self.dne_neighbours}"
            )


def dne_substitutions(
    input_ids: torch.Tensor, one_hop_sub_ids: torch.Tensor, two_hop_table: torch.Tensor, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sub_ids [B, L, 1 + W] int64, one_hop [B, L, 1 + W] bool) of ``input_ids`` [B, L].

    ``one_hop_sub_ids`` [B, L, 1 + K]: the batch's substitutions (:func:`substitution_ids`; a position
    whose slots 1.. are all empty is frozen: padding, special tokens, the premise, or no synonyms);
    ``two_hop_table`` [V, W] (:func:`two_hop_vocab_table`, each row's one-hop neighbours first).
    ``one_hop`` marks slot 0 and the one-hop slots, which the Dirichlet draws with concentration alpha.
    """
    first_hop = (one_hop_sub_ids[..., 1:] >= 0).sum(-1)  # [B, L]
    sub_ids = substitution_ids(input_ids, two_hop_table, special_tokens_mask=first_hop == 0, backend=backend)
    slot = torch.arange(sub_ids.shape[-1], device=sub_ids.device)
    return sub_ids, slot <= first_hop.unsqueeze(-1)


def dirichlet_weights(sub_ids: torch.Tensor, one_hop: torch.Tensor, alpha: float, decay: float) -> torch.Tensor:
    """[B, L, K] float32 convex weights: per position, Dirichlet(alpha on ``one_hop`` slots, alpha *
    decay on the others) over the valid slots (``sub_ids >= 0``), 0 on the empty ones. Drawn as
    normalised Gamma(concentration, 1) in float64 from the global generator; a position whose draws
    all underflow to 0 (tiny concentrations) puts its weight on slot 0."""
    valid = sub_ids >= 0
    concentration = torch.where(one_hop, alpha, alpha * decay).to(torch.float64)
    draws = torch.distributions.Gamma(concentration, torch.ones_like(concentration)).sample()
    draws = draws.masked_fill(~valid, 0.0)
    total = draws.sum(-1, keepdim=True)
    word_only = torch.zeros_like(draws)
    word_only[..., 0] = 1.0
    return torch.where(total > 0, draws / total.clamp_min(torch.finfo(draws.dtype).tiny), word_only).float()


def dne_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor,
    sub_ids: torch.Tensor,
    weights: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    steps: int = DNE_STEPS,
    step_size: float = DNE_STEP_SIZE,
    backend: str | None = None,
) -> LossTerms:
    """``{"loss", "ce_dirichlet", "ce_ascended"}`` (module docstring, steps 1-3; ``ce_ascended`` is 0
    when ``steps`` is 0).

    ``model``: a :class:`RobustClassifier`; input_ids, attention_mask, token_type_ids [B, L]; labels
    [B]; ``sub_ids`` [B, L, K] (:func:`dne_substitutions`); ``weights`` [B, L, K] the drawn w0
    (:func:`dirichlet_weights`); ``backend``: the hull op's backend (None: dispatch).
    """
    inner = cast(RobustClassifier, unwrap(model))
    valid = sub_ids >= 0
    position_ids = inner.position_ids(input_ids) if inner.require_hull_space("dne") == EMBEDDING_OUTPUT else None
    logit = torch.log(weights.float() + WEIGHT_FLOOR).masked_fill(~valid, INVALID_LOGIT)
    losses = []
    for step in range(steps + 1):
        logit = logit.detach().requires_grad_(step < steps)
        hull = hull_embedding(model, F.softmax(logit, dim=-1), sub_ids, token_type_ids, position_ids, backend)
        logits, _ = model(input_ids, attention_mask, token_type_ids, hull_embeds=hull)
        losses.append(float32_cross_entropy(logits, labels))
        if step < steps:
            (grad,) = torch.autograd.grad(losses[-1], [logit], retain_graph=True)
            grad = grad.masked_fill(~valid, 0.0)
            logit = logit + step_size * grad / (grad.norm(dim=-1, keepdim=True) + WEIGHT_FLOOR)
    ce_dirichlet = losses[0]
    ce_ascended = torch.stack(losses[1:]).mean() if steps else torch.zeros_like(ce_dirichlet)
    return {"loss": ce_dirichlet + ce_ascended, "ce_dirichlet": ce_dirichlet, "ce_ascended": ce_ascended}


@register_defense
class DneTraining(Defense):
    name = "dne"
    summary = "Dirichlet Neighborhood Ensemble: ascended Dirichlet mixes of two-hop synonyms (Zhou et al. 2021)"
    settings_type = DneSettings
    settings: DneSettings
    perturbs_embeddings = True

    def __init__(self, model: RobustClassifier, settings: DneSettings) -> None:
        super().__init__(model, settings)
        self.two_hop_table: torch.Tensor | None = None

    def use_synonym_table(self, neighbour_table: torch.Tensor) -> None:
        """Keeps the two-hop table of ``neighbour_table`` (``dne_neighbours - 1`` neighbours per token)."""
        self.two_hop_table = two_hop_vocab_table(neighbour_table, self.settings.dne_neighbours - 1)

    def forward(self, batch: Batch) -> LossTerms:
        if self.two_hop_table is None:
            raise RuntimeError("dne needs the synonym table: call use_synonym_table(table) first (the Trainer does)")
        s = self.settings
        sub_ids, one_hop = dne_substitutions(batch["input_ids"], batch["sub_ids"], self.two_hop_table)
        return dne_loss(
            self.model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            sub_ids,
            dirichlet_weights(sub_ids, one_hop, s.dne_alpha, s.dne_decay),
            batch["token_type_ids"],
            steps=s.dne_steps,
            step_size=s.dne_step_size,
        )


__all__ = ["DneSettings", "DneTraining", "dirichlet_weights", "dne_loss", "dne_substitutions"]
