"""InfoBERT (Wang et al., ICLR 2021): FreeLB adversarial training plus two mutual-information regularisers.

Each FreeLB ascent step (:func:`rift_fast.training.defenses.freelb.freelb_ascent`, delta on the word
embeddings, as the authors' code) back-propagates ``(CE + IB + AF) / adv_steps``:

- **Information Bottleneck regulariser** ``IB = beta * mean_k ||t_k - t_r(k)||^2 / 2``: the CLUB upper
  bound (Cheng et al., ICML 2020) of ``sum_i I(X_i; T_i)`` in the form the authors' code trains it
  (``MI_estimators.CLUBv2``, version 6 = ``CLUBv2.version 3``): the Gaussian variational q(t | x) has
  unit variance and is centred on the token's own representation, so the positive term is 0 and the
  negative term pairs each token k with a token r(k) drawn uniformly (with replacement) from the same
  batch. ``t_k``: the embedding-layer output (the encoder's ``hidden_states[0]``) of every real token.
- **Anchored Feature regulariser** ``AF = -alpha * mean over chunks of InfoNCE(local; global)``: per
  example, the real tokens ranked by the norm of d loss / d delta (ascending); the anchored features are
  ranks ``ceil(n * cl)`` to ``ceil(n * ch) - 1``, so neither the least nor the most perturbation-
  sensitive tokens. Local feature: the token's embedding-layer output; global feature: the last
  layer's hidden state of the first token (CLS). The (local, global) pairs of the batch are shuffled and
  cut into chunks of the batch size; each chunk's InfoNCE lower bound (:func:`infonce_lower_bound`) is
  maximised (the loss holds its negative).

Where this differs from RIFT's InfoNCE (:mod:`rift_fast.ops.class_conditional_infonce`, which is not
reused): InfoBERT's critic is a trained MLP on the concatenated pair, ``softplus(w2 . relu(W1 [x; y]
+ b1) + b2)`` with 300 hidden units, not the cosine of two projections over a temperature; its negatives
are every other pair of the chunk, not only same-class ones; and the bound keeps its ``+ log N``. Also
unlike the authors' code: the shuffle is a fresh permutation at every step (their ``sklearn`` shuffle
reuses ``random_state=42``), and dropout masks are drawn afresh at every ascent step (theirs are frozen
across the steps of a batch).

Defaults: the authors' ANLI command (github.com/AI-secure/InfoBERT, ``ANLI/README.md``: beta 5e-3,
alpha 5e-3, cl 0.5, ch 0.9, adv lr 4e-2, adv mag 8e-2, adv max norm 0, 3 steps), which TextDefender
(Li et al. 2021, ``trainer/infobert.py``) also uses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.classifier import RobustClassifier, float32_cross_entropy, unwrap
from rift_fast.training.defenses.base import BackwardFunction, Batch, Defense, LossTerms, register_defense
from rift_fast.training.defenses.freelb import AscentStep, FreeLBSettings, freelb_ascent

# InfoBERT's published settings (github.com/AI-secure/InfoBERT, ANLI/README.md; TextDefender's defaults).
INFOBERT_ALPHA = 5e-3  # weight of the anchored-feature InfoNCE
INFOBERT_BETA = 5e-3  # weight of the information-bottleneck CLUB bound
INFOBERT_ANCHOR_LOW = 0.5  # cl: lower rank quantile of the anchored features
INFOBERT_ANCHOR_HIGH = 0.9  # ch: upper rank quantile
INFOBERT_ADV_STEPS = 3
INFOBERT_ADV_LR = 4e-2
INFOBERT_ADV_INIT_MAG = 8e-2
CRITIC_HIDDEN = 300  # MI_estimators.InfoNCE.lower_size


@dataclass(frozen=True)
class InfoBertSettings:
    """InfoBERT's regulariser weights, anchored-feature thresholds and FreeLB ascent (published defaults,
    see the module docstring). Option names carry ``infobert_`` so they never meet another defense's."""

    infobert_alpha: float = field(
        default=INFOBERT_ALPHA, metadata={"help": "InfoBERT anchored-feature (InfoNCE) weight alpha"}
    )
    infobert_beta: float = field(
        default=INFOBERT_BETA, metadata={"help": "InfoBERT information-bottleneck (CLUB) weight beta"}
    )
    infobert_anchor_low: float = field(
        default=INFOBERT_ANCHOR_LOW, metadata={"help": "InfoBERT cl: lower gradient-rank quantile of anchored words"}
    )
    infobert_anchor_high: float = field(
        default=INFOBERT_ANCHOR_HIGH, metadata={"help": "InfoBERT ch: upper gradient-rank quantile of anchored words"}
    )
    infobert_adv_steps: int = field(default=INFOBERT_ADV_STEPS, metadata={"help": "InfoBERT FreeLB ascent steps"})
    infobert_adv_lr: float = field(default=INFOBERT_ADV_LR, metadata={"help": "InfoBERT FreeLB ascent step size"})
    infobert_adv_init_mag: float = field(
        default=INFOBERT_ADV_INIT_MAG, metadata={"help": "InfoBERT FreeLB random start, l2 size (0: none)"}
    )

    def __post_init__(self) -> None:
        if self.infobert_alpha < 0 or self.infobert_beta < 0:
            raise ValueError(
                f"infobert_alpha and infobert_beta must be >= 0, got {self.infobert_alpha}, {self.infobert_beta}"
            )
        if not 0 <= self.infobert_anchor_low < self.infobert_anchor_high <= 1:
            raise ValueError(
                "InfoBERT's anchor quantiles need 0 <= infobert_anchor_low < infobert_anchor_high <= 1, got "
                f"{self.infobert_anchor_low} and {self.infobert_anchor_high}"
            )
        self.ascent()  # FreeLBSettings validates the ascent settings

    def ascent(self) -> FreeLBSettings:
        """The FreeLB ascent on the word embeddings (l2, no norm bound: the published setting)."""
        return FreeLBSettings(
            adv_steps=self.infobert_adv_steps,
            adv_lr=self.infobert_adv_lr,
            adv_init_mag=self.infobert_adv_init_mag,
            perturb="word",
        )


def infonce_critic(hidden_size: int) -> nn.Sequential:
    """InfoBERT's critic ``F(x, y) = softplus(w2 . relu(W1 [x; y] + b1) + b2)`` on pairs of [H] features."""
    return nn.Sequential(
        nn.Linear(2 * hidden_size, CRITIC_HIDDEN), nn.ReLU(), nn.Linear(CRITIC_HIDDEN, 1), nn.Softplus()
    )


def critic_scores(critic: nn.Sequential, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
    """[N, N] scores ``S[i, j] = F(local_j, global_i)`` of ``local``, ``global_`` [N, H].

    The first layer is split over the two halves of the concatenation, so the N^2 pairs cost one
    [N, N, 300] ReLU instead of an [N, N, 2H] concatenation (the same numbers as the authors' tiling).
    """
    first, _, second, _ = critic
    first, second = cast(nn.Linear, first), cast(nn.Linear, second)
    hidden = local.shape[-1]
    from_local = local @ first.weight[:, :hidden].T  # [N, 300]
    from_global = global_ @ first.weight[:, hidden:].T + first.bias  # [N, 300]
    pairs = torch.relu(from_global.unsqueeze(1) + from_local.unsqueeze(0))  # [N_global, N_local, 300]
    return F.softplus(pairs @ second.weight.squeeze(0) + second.bias)


def infonce_lower_bound(critic: nn.Sequential, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
    """InfoNCE lower bound of I(local; global) (``MI_estimators.InfoNCE.forward``; nats, 0-d):
    ``mean_i F(x_i, y_i) - mean_i logsumexp_j F(x_j, y_i) + log N`` over the N pairs ``(x_i, y_i)``."""
    scores = critic_scores(critic, local, global_)
    return scores.diagonal().mean() - scores.logsumexp(dim=1).mean() + math.log(len(local))


def information_bottleneck(
    token_features: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """CLUB bound (the authors' ``CLUBv2.mi_est_sample``, unweighted): ``mean_k ||t_k - t_r(k)||^2 / 2``
    over the real tokens (``mask`` [B, L] 1) of ``token_features`` [B, L, H], r(k) uniform with replacement."""
    tokens = token_features[mask.bool()]
    partner = torch.randint(len(tokens), (len(tokens),), generator=generator, device=generator_device(generator))
    return (tokens - tokens[partner.to(tokens.device)]).pow(2).sum(-1).mean() / 2


def generator_device(generator: torch.Generator | None) -> torch.device:
    """Where ``generator`` draws (the CPU for torch's default generator)."""
    return generator.device if generator is not None else torch.device("cpu")


def anchored_positions(grad: torch.Tensor, mask: torch.Tensor, low: float, high: float) -> list[torch.Tensor]:
    """Per example, the positions of its anchored words: the real tokens (``mask`` [B, L] 1) ranked by the
    l2 norm of ``grad`` [B, L, E] (ascending), ranks ``ceil(n * low)`` to ``ceil(n * high) - 1`` (the
    authors' ``feature_ranking``; n = the example's real tokens)."""
    positions = []
    for row_grad, row_mask in zip(grad, mask.bool()):
        real = row_mask.nonzero(as_tuple=True)[0]
        order = real[row_grad[real].norm(dim=-1).argsort()]
        n = len(real)
        positions.append(order[math.ceil(n * low) : math.ceil(n * high)])
    return positions


def anchored_feature_infonce(
    critic: nn.Sequential,
    token_features: torch.Tensor,
    sentence_features: torch.Tensor,
    positions: list[torch.Tensor],
    chunk_size: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean InfoNCE lower bound (nats, 0-d) between anchored local features and their sentence's feature.

    ``token_features`` [B, L, H] (local), ``sentence_features`` [B, H] (global), ``positions``: each
    example's anchored positions (:func:`anchored_positions`). The pairs are shuffled and cut into chunks
    of ``chunk_size`` (the authors': the batch size); the bound is averaged over the chunks. 0 without pairs.
    """
    rows = torch.cat([torch.full_like(p, b) for b, p in enumerate(positions)])
    if len(rows) == 0:
        return token_features.new_zeros(())
    columns = torch.cat(positions)
    order = torch.randperm(len(rows), generator=generator, device=generator_device(generator)).to(rows.device)
    local, global_ = token_features[rows[order], columns[order]], sentence_features[rows[order]]
    bounds = [
        infonce_lower_bound(critic, local[start : start + chunk_size], global_[start : start + chunk_size])
        for start in range(0, len(rows), chunk_size)
    ]
    return torch.stack(bounds).mean()


@contextlib.contextmanager
def captured_features(model: RobustClassifier) -> Iterator[dict[str, torch.Tensor]]:
    """While active, each forward of ``model`` leaves ``"tokens"`` (the encoder's ``hidden_states[0]``,
    the embedding-layer output in the hidden size [B, L, H], after ALBERT's and ELECTRA's projection)
    and ``"sentence"`` (the last layer's first-token state [B, H]) in the yielded dict. The encoder's
    ``config.output_hidden_states`` is switched on meanwhile (every Hugging Face encoder reads it)."""
    config = model.config
    asked = config.output_hidden_states
    captured: dict[str, torch.Tensor] = {}

    def on_encoder(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        captured["tokens"] = output.hidden_states[0]
        captured["sentence"] = output.last_hidden_state[:, 0]

    handle = model.encoder.register_forward_hook(on_encoder)
    config.output_hidden_states = True
    try:
        yield captured
    finally:
        config.output_hidden_states = asked
        handle.remove()


def infobert_loss(
    model: nn.Module,
    critic: nn.Sequential,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    settings: InfoBertSettings | None = None,
    backward: BackwardFunction | None = None,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """InfoBERT (see the module docstring): every ascent step back-propagates ``(CE + IB + AF) / adv_steps``.

    ``critic``: :func:`infonce_critic` (trained with the model). ``generator`` draws the random start,
    the IB partners and the AF shuffle (torch's global generator by default). Returns the terms averaged
    over the steps, detached (backward is done): ``"loss"``, ``"ce"``, ``"ib"`` (beta * CLUB bound),
    ``"af"`` (-alpha * InfoNCE bound), ``"anchors"`` (anchored words per example) and ``"delta_norm"``.
    """
    settings = settings or InfoBertSettings()
    inner = cast(RobustClassifier, unwrap(model))
    chunk_size = len(input_ids)

    def objective(perturbed: torch.Tensor) -> AscentStep:
        with captured_features(inner) as features:
            logits, _ = model(input_ids, attention_mask, token_type_ids, word_embeds=perturbed)
        tokens, sentence = features["tokens"], features["sentence"]
        ce = float32_cross_entropy(logits, labels)
        ib = settings.infobert_beta * information_bottleneck(tokens, attention_mask, generator)

        def anchored_features(grad: torch.Tensor) -> dict[str, torch.Tensor]:
            positions = anchored_positions(
                grad, attention_mask, settings.infobert_anchor_low, settings.infobert_anchor_high
            )
            bound = anchored_feature_infonce(critic, tokens, sentence, positions, chunk_size, generator)
            af = -settings.infobert_alpha * bound
            anchors = torch.tensor(sum(len(p) for p in positions) / len(positions), device=af.device)
            return {"loss": af, "af": af, "anchors": anchors}

        return AscentStep(ce + ib, {"ce": ce, "ib": ib}, anchored_features)

    return freelb_ascent(
        lambda: inner.word_embeddings(input_ids), attention_mask, objective, settings.ascent(), backward, generator
    )


@register_defense
class InfoBertTraining(Defense):
    name = "infobert"
    summary = "FreeLB + information-bottleneck and anchored-feature MI regularisers (Wang et al. 2021)"
    settings_type = InfoBertSettings
    settings: InfoBertSettings
    calls_backward = True
    perturbs_embeddings = True

    def __init__(self, model: RobustClassifier, settings: InfoBertSettings) -> None:
        super().__init__(model, settings)
        self.critic = infonce_critic(model.hidden_size)

    def forward(self, batch: Batch) -> LossTerms:
        return infobert_loss(
            self.model,
            self.critic,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            batch["token_type_ids"],
            settings=self.settings,
        )

    def head_parameters(self) -> list[nn.Parameter]:
        return super().head_parameters() + list(self.critic.parameters())


__all__ = [
    "InfoBertSettings",
    "InfoBertTraining",
    "anchored_feature_infonce",
    "anchored_positions",
    "critic_scores",
    "infobert_loss",
    "infonce_critic",
    "infonce_lower_bound",
    "information_bottleneck",
]
