"""The classifier RIFT trains: a Hugging Face encoder, its pooler and a small classification head.

``RobustClassifier`` runs from token ids, from the OUTPUT of the embedding layer (word + position +
type embeddings after LayerNorm, before dropout: what the convex-hull adversary builds) or from word
embeddings (FreeLB perturbs those). The last two run the encoder's own ``forward`` so that the
attention mask, the attention implementation and the pooler are whatever the installed
``transformers`` (4.x or 5.x) does for ids; for the embedding-layer output a temporary forward hook
on ``encoder.embeddings`` replaces that module's output with ``dropout(given output)`` (the module's
own dropout, so train mode behaves as with ids). The module still runs on a detached placeholder
(one LayerNorm over [B, L, H]); nothing else changes.

Supported encoders: BERT-like embeddings (``word_embeddings``, ``position_embeddings``,
``token_type_embeddings``, ``LayerNorm``, ``dropout``) with absolute positions: BERT, MiniLM,
RoBERTa (positions counted from ``padding_idx + 1`` over non-padding tokens, as RoBERTa does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.sources import resolve_model_source

CLASSIFIER_HIDDEN = 256  # RIFT_SPEC step 4: Linear(H, 256) - ReLU - Linear(256, C)


def _child(module: nn.Module, name: str) -> nn.Module:
    """``module.<name>`` typed as a module (``nn.Module.__getattr__`` is typed ``Tensor | Module``)."""
    return cast(nn.Module, getattr(module, name))


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (``model.module``), else ``model``."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def embeddings_of(encoder: nn.Module) -> nn.Module:
    """The encoder's embedding module (``encoder.embeddings``), checked to be BERT-like."""
    embeddings = getattr(encoder, "embeddings", None)
    needed = ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm", "dropout")
    missing = [name for name in needed if embeddings is None or not hasattr(embeddings, name)]
    if missing:
        raise ValueError(f"{type(encoder).__name__} has no BERT-like embeddings module (missing {', '.join(missing)})")
    if getattr(embeddings, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported")
    return cast(nn.Module, embeddings)  # not None: a missing module fails the check above


def position_ids_for(encoder: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """[B, L] int64 position ids the encoder uses for ``input_ids``.

    RoBERTa-style embeddings (a ``padding_idx`` attribute on the embedding module) number the
    non-padding tokens from ``padding_idx + 1`` and give padding ``padding_idx``; others use 0..L-1.
    """
    padding_idx = getattr(embeddings_of(encoder), "padding_idx", None)
    if padding_idx is not None:
        mask = input_ids.ne(padding_idx).long()
        return torch.cumsum(mask, dim=1) * mask + padding_idx
    length = input_ids.shape[1]
    return torch.arange(length, device=input_ids.device).expand(input_ids.shape[0], length)


def embedding_layer_output(
    encoder: nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """LayerNorm(word + position + type) of ``input_ids``: the embedding layer's output before dropout."""
    embeddings = embeddings_of(encoder)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    summed = (
        _child(embeddings, "word_embeddings")(input_ids)
        + _child(embeddings, "position_embeddings")(position_ids_for(encoder, input_ids))
        + _child(embeddings, "token_type_embeddings")(token_type_ids)
    )
    return _child(embeddings, "LayerNorm")(summed)


@contextlib.contextmanager
def _replace_embedding_output(embeddings: nn.Module, output: torch.Tensor) -> Iterator[None]:
    """While active, ``embeddings(...)`` returns ``embeddings.dropout(output)`` instead of its own result."""

    def hook(module: nn.Module, args: tuple[Any, ...], result: torch.Tensor) -> torch.Tensor:
        if result.shape != output.shape:
            raise ValueError(
                f"inputs_embeds has shape {tuple(output.shape)}, the embeddings gave {tuple(result.shape)}"
            )
        return _child(module, "dropout")(output)

    handle = embeddings.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def encode_pooled(
    encoder: nn.Module,
    extra_pooler: nn.Module | None,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    word_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pooled feature [B, H] of ``encoder`` (its pooler, or ``extra_pooler`` on h_CLS when it has none).

    Exactly one of ``input_ids`` (token ids), ``inputs_embeds`` (embedding-layer output) and
    ``word_embeds`` (word embeddings: position / type embeddings and LayerNorm are added by the
    encoder) drives the encoder; ``word_embeds`` needs ``input_ids`` too, for RoBERTa positions.
    """
    if inputs_embeds is not None and word_embeds is not None:
        raise ValueError("give inputs_embeds or word_embeds, not both")
    if inputs_embeds is None and word_embeds is None and input_ids is None:
        raise ValueError("give input_ids, inputs_embeds or word_embeds")
    common = dict(attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True)
    if inputs_embeds is not None:
        with _replace_embedding_output(embeddings_of(encoder), inputs_embeds):
            # The placeholder only fixes shapes; its embedding-module output is thrown away.
            outputs = encoder(inputs_embeds=inputs_embeds.detach(), **common)
    elif word_embeds is not None:
        positions = None if input_ids is None else position_ids_for(encoder, input_ids)
        outputs = encoder(inputs_embeds=word_embeds, position_ids=positions, **common)
    else:
        outputs = encoder(input_ids=input_ids, **common)
    pooled = getattr(outputs, "pooler_output", None)
    if extra_pooler is not None or pooled is None:
        if extra_pooler is None:
            raise ValueError("the encoder returned no pooler output and no extra pooler was given")
        pooled = extra_pooler(outputs.last_hidden_state[:, 0])
    return pooled


class RobustClassifier(nn.Module):
    """Encoder + pooled feature tanh(W h_CLS) + head Linear(H, 256) - ReLU - Linear(256, C).

    ``encoder``: a Hugging Face base model (``AutoModel``: BertModel, RobertaModel, ...). When it has
    no pooler (``encoder.pooler`` missing or ``None``) a fresh ``Linear(H, H) + tanh`` on h_CLS is
    added as ``extra_pooler`` (counted as a head by :meth:`head_parameters`).
    """

    def __init__(self, encoder: nn.Module, num_classes: int, head_hidden: int = CLASSIFIER_HIDDEN) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        embeddings_of(encoder)  # fail early on unsupported encoders
        self.encoder = encoder
        self.num_classes = num_classes
        hidden: int = cast(Any, encoder).config.hidden_size  # a Hugging Face config
        self.hidden_size = hidden
        self.extra_pooler: nn.Sequential | None
        if getattr(encoder, "pooler", None) is None:
            self.extra_pooler = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        else:
            self.extra_pooler = None
        self.classifier = nn.Sequential(nn.Linear(hidden, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_classes))

    @classmethod
    def from_pretrained(cls, name_or_path: str, num_classes: int, **kwargs: Any) -> "RobustClassifier":
        """``AutoModel.from_pretrained`` (``"embedded"`` = the packaged MiniLM, see rift_fast.models)."""
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(resolve_model_source(name_or_path), **kwargs), num_classes)

    @property
    def config(self) -> Any:
        """The encoder's configuration (max_position_embeddings, hidden_size, ...)."""
        return self.encoder.config

    def get_input_embeddings(self) -> nn.Module:
        """The word-embedding table (what gradient-guided attacks differentiate against)."""
        return _child(self.embeddings, "word_embeddings")

    @property
    def embeddings(self) -> nn.Module:
        """The encoder's embedding module (what :func:`convex_hull_embedding_from_bert` reads)."""
        return embeddings_of(self.encoder)

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] position ids of ``input_ids`` as the encoder numbers them."""
        return position_ids_for(self.encoder, input_ids)

    def embedding_output(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embedding-layer output (before dropout) [B, L, H]; ``forward(inputs_embeds=...)`` takes it."""
        return embedding_layer_output(self.encoder, input_ids, token_type_ids)

    def word_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings [B, L, H] (before position / type embeddings and LayerNorm)."""
        return _child(self.embeddings, "word_embeddings")(input_ids)

    def pooled(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        word_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled feature [B, H]; inputs as :meth:`forward`."""
        return encode_pooled(
            self.encoder, self.extra_pooler, input_ids, attention_mask, token_type_ids, inputs_embeds, word_embeds
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        word_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, C], pooled [B, H]).

        ``input_ids`` [B, L] token ids; or ``inputs_embeds`` [B, L, H] = an embedding-layer output
        (LayerNorm(word + position + type), e.g. :meth:`embedding_output` or a convex hull; the
        embeddings' dropout is applied in train mode); or ``word_embeds`` [B, L, H] word embeddings
        (with ``input_ids`` for RoBERTa positions). ``attention_mask`` [B, L] 1 = token, 0 = padding.
        """
        pooled = self.pooled(input_ids, attention_mask, token_type_ids, inputs_embeds, word_embeds)
        return self.classifier(pooled), pooled

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the freshly initialised heads (classifier, extra pooler): weight decay goes here."""
        params = list(self.classifier.parameters())
        if self.extra_pooler is not None:
            params += list(self.extra_pooler.parameters())
        return params

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The pre-trained encoder's parameters (no weight decay in RIFT)."""
        return list(self.encoder.parameters())


def logits_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    """KL(p(x) || p(x_adv)) = KLDiv(log_softmax(logits_adv), softmax(logits_clean)), nothing detached."""
    return F.kl_div(F.log_softmax(logits_adv, dim=-1), F.softmax(logits_clean, dim=-1), reduction=reduction)
