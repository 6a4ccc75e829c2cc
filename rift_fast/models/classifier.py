"""The classifier RIFT trains: a Hugging Face encoder, its pooler and a small classification head.

``RobustClassifier`` runs from token ids, from the OUTPUT of the embedding layer (word + position +
type embeddings after LayerNorm, before dropout) or from word embeddings (``get_input_embeddings()``;
the encoder adds positions, types and its normalisation through ``inputs_embeds``). The last two run
the encoder's own ``forward`` so that the attention mask, the attention implementation and the pooler
are whatever the installed ``transformers`` does for ids; for the embedding-layer output a temporary
forward hook on ``encoder.embeddings`` replaces that module's output with ``dropout(given output)``
(the module's own dropout, so train mode behaves as with ids).

The adversary space (``hull_space``, :data:`HULL_SPACES`) is where the embedding-level adversaries
(ASCC, RIFT; FreeLB's word perturbation, the gradient-guided attack) build their inputs:

- ``embedding-output``: the convex hull over the embedding-layer OUTPUT of every substitution, as
  RIFT builds it. Needs a BERT-like embedding layer (``word_embeddings``, ``position_embeddings``,
  ``token_type_embeddings`` as ``nn.Embedding``, ``LayerNorm``, ``dropout``, absolute positions):
  BERT, MiniLM, RoBERTa, XLM-R, ALBERT, ELECTRA.
- ``word-embedding``: the hull over the word embeddings; the encoder adds positions and types itself
  (the construction ASCC used for models other than BERT). Needs only an ``nn.Embedding`` input
  embedding: DistilBERT, DeBERTa-v2/v3, ModernBERT and every encoder above.
- ``auto``: ``embedding-output`` where the embedding layer is BERT-like, else ``word-embedding``.

Decoder-only models of the families in :data:`rift_fast.models.families.DECODER_FAMILIES` (Llama,
Qwen, Mistral, Gemma, Phi-3, GPT-2, GPT-NeoX) run the same way: pooled at their last non-padding
token, hulled over their word embeddings, with position ids counted over the attention mask so that
left and right padding give the same features. Encoder-decoder models (T5, BART) are refused.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from rift_fast.models.families import check_supported, decoder_family
from rift_fast.models.lora import LoraOptions, add_lora
from rift_fast.models.pooling import POOLER, pool, resolve_pooling
from rift_fast.models.sources import resolve_model_source

CLASSIFIER_HIDDEN = 256  # RIFT's classifier head: Linear(H, 256) - ReLU - Linear(256, C)
EMBEDDING_OUTPUT = "embedding-output"  # RIFT's adversary: the hull over the embedding-layer output
WORD_EMBEDDING = "word-embedding"  # ASCC (Dong et al. 2021) for non-BERT encoders: the hull over word embeddings
HULL_SPACES = ("auto", EMBEDDING_OUTPUT, WORD_EMBEDDING)
# Encoder families (config model_type) the classifier is tested on, with the hull spaces they take.
ENCODER_FAMILIES = {
    "bert": "BERT (and MiniLM, the embedded model): embedding-output or word-embedding hull",
    "roberta": "RoBERTa: embedding-output or word-embedding hull",
    "xlm-roberta": "XLM-R: embedding-output or word-embedding hull",
    "albert": "ALBERT: embedding-output or word-embedding hull",
    "electra": "ELECTRA: embedding-output or word-embedding hull",
    "distilbert": "DistilBERT: word-embedding hull",
    "deberta-v2": "DeBERTa-v2/v3: word-embedding hull",
    "modernbert": "ModernBERT: word-embedding hull",
}
BERT_LIKE_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


def _child(module: nn.Module, name: str) -> nn.Module:
    """``module.<name>`` typed as a module (``nn.Module.__getattr__`` is typed ``Tensor | Module``)."""
    return cast(nn.Module, getattr(module, name))


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (``model.module``), else ``model``."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def bert_like_embeddings(encoder: nn.Module) -> nn.Module | None:
    """``encoder.embeddings`` when it is BERT-like (see the module docstring), else None."""
    embeddings = getattr(encoder, "embeddings", None)
    if not isinstance(embeddings, nn.Module):
        return None
    tables = [getattr(embeddings, name, None) for name in BERT_LIKE_TABLES]
    if not all(isinstance(table, nn.Embedding) for table in tables):
        return None
    norm = getattr(embeddings, "LayerNorm", None)
    if not isinstance(norm, nn.LayerNorm) or norm.bias is None or not hasattr(embeddings, "dropout"):
        return None
    if getattr(embeddings, "position_embedding_type", "absolute") != "absolute":
        return None
    if getattr(embeddings, "embed_proj", None) is not None:  # DeBERTa projects after the LayerNorm
        return None
    return embeddings


def embeddings_of(encoder: nn.Module) -> nn.Module:
    """The encoder's BERT-like embedding module; raises ValueError naming what is missing otherwise."""
    embeddings = bert_like_embeddings(encoder)
    if embeddings is None:
        raise ValueError(
            f"{type(encoder).__name__} has no BERT-like embedding layer (nn.Embedding {', '.join(BERT_LIKE_TABLES)}, "
            "LayerNorm with a bias, dropout, absolute positions): the embedding-output hull needs one; use "
            f"--hull-space {WORD_EMBEDDING}"
        )
    return embeddings


def input_embeddings(encoder: nn.Module) -> nn.Embedding | None:
    """The encoder's word-embedding table (``get_input_embeddings()``) when it is an ``nn.Embedding``, else None."""
    getter = getattr(encoder, "get_input_embeddings", None)
    if getter is None:
        return None
    try:
        table = getter()
    except (NotImplementedError, AttributeError):
        return None
    return table if isinstance(table, nn.Embedding) else None


def input_embedding_matrix(table: nn.Embedding) -> torch.Tensor:
    """[V, E] the word embedding of every token as ``table`` gives it: its weight, times the scale that
    Gemma's scaled word embeddings multiply their output by (1 elsewhere)."""
    scale = getattr(table, "embed_scale", None)
    return table.weight if scale is None else table.weight * scale.to(table.weight.dtype)


def resolve_hull_space(encoder: nn.Module, requested: str) -> str | None:
    """The adversary space ``requested`` (one of :data:`HULL_SPACES`) resolves to for ``encoder``: ``auto``
    gives ``embedding-output`` for a BERT-like embedding layer, else ``word-embedding``, else None (no
    input-embedding module: no embedding-level adversary). Raises ValueError when ``requested`` is unknown
    or the encoder lacks what it needs."""
    if requested not in HULL_SPACES:
        raise ValueError(f"hull space must be one of {', '.join(HULL_SPACES)}, got {requested!r}")
    if requested == EMBEDDING_OUTPUT:
        embeddings_of(encoder)
        return EMBEDDING_OUTPUT
    if requested == WORD_EMBEDDING and input_embeddings(encoder) is None:
        raise ValueError(
            f"{type(encoder).__name__} has no input-embedding module (get_input_embeddings() gives no nn.Embedding): "
            f"the {WORD_EMBEDDING} hull needs one"
        )
    if requested == "auto" and bert_like_embeddings(encoder) is not None:
        return EMBEDDING_OUTPUT
    return WORD_EMBEDDING if input_embeddings(encoder) is not None else None


def positions_over_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L] int64 position ids that count only the tokens of ``attention_mask`` [B, L] (0 at and
    before the first token): a left-padded row gets the positions its right-padded twin gets."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)


def position_ids_for(encoder: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """[B, L] int64 position ids the encoder uses for ``input_ids``.

    RoBERTa-style embeddings (a ``padding_idx`` attribute on the embedding module) number the
    non-padding tokens from ``padding_idx + 1`` and give padding ``padding_idx``; others use 0..L-1.
    """
    padding_idx = getattr(getattr(encoder, "embeddings", None), "padding_idx", None)
    if padding_idx is not None:
        mask = input_ids.ne(padding_idx).long()
        return torch.cumsum(mask, dim=1) * mask + padding_idx
    length = input_ids.shape[1]
    return torch.arange(length, device=input_ids.device).expand(input_ids.shape[0], length)


def embedding_layer_output(
    encoder: nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """LayerNorm(word + position + type) of ``input_ids``: the BERT-like embedding layer's output before dropout."""
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


def _accepted(encoder: nn.Module, **inputs: Any) -> dict[str, Any]:
    """The ``inputs`` that are not None and that ``encoder.forward`` names (DistilBERT and ModernBERT take
    no ``token_type_ids``)."""
    parameters = inspect.signature(encoder.forward).parameters
    return {name: value for name, value in inputs.items() if value is not None and name in parameters}


def encode_pooled(
    encoder: nn.Module,
    pooling: str,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    word_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pooled feature [B, H] of ``encoder`` under ``pooling`` (``pooler``, ``cls`` or ``mean``, see
    :mod:`rift_fast.models.pooling`).

    Exactly one of ``input_ids`` (token ids), ``inputs_embeds`` (BERT-like embedding-layer output) and
    ``word_embeds`` (word embeddings: positions, types and normalisation are added by the encoder)
    drives the encoder; ``word_embeds`` takes ``input_ids`` too, for RoBERTa-style positions.
    ``token_type_ids`` reach only encoders whose ``forward`` takes them (never a decoder-only model,
    which gets position ids counted over ``attention_mask`` instead).
    """
    if inputs_embeds is not None and word_embeds is not None:
        raise ValueError("give inputs_embeds or word_embeds, not both")
    if inputs_embeds is None and word_embeds is None and input_ids is None:
        raise ValueError("give input_ids, inputs_embeds or word_embeds")
    if decoder_family(getattr(encoder, "config", None)) is not None:
        # GPT-2 would add token type ids as word embeddings; left padding must not shift the positions.
        positions = None if attention_mask is None else positions_over_mask(attention_mask)
        common = _accepted(encoder, attention_mask=attention_mask, position_ids=positions)
        drive = {"inputs_embeds": word_embeds} if word_embeds is not None else {"input_ids": input_ids}
        if inputs_embeds is not None:
            raise ValueError("a decoder-only model has no BERT-like embedding layer: give word_embeds")
        return pool(encoder(**drive, **common), attention_mask, pooling)
    common = _accepted(encoder, attention_mask=attention_mask, token_type_ids=token_type_ids)
    if inputs_embeds is not None:
        with _replace_embedding_output(embeddings_of(encoder), inputs_embeds):
            # The placeholder only fixes shapes; its embedding-module output is thrown away.
            outputs = encoder(inputs_embeds=inputs_embeds.detach(), **common)
    elif word_embeds is not None:
        roberta_style = getattr(getattr(encoder, "embeddings", None), "padding_idx", None) is not None
        positions = position_ids_for(encoder, input_ids) if roberta_style and input_ids is not None else None
        outputs = encoder(inputs_embeds=word_embeds, **common, **_accepted(encoder, position_ids=positions))
    else:
        outputs = encoder(input_ids=input_ids, **common)
    return pool(outputs, attention_mask, pooling)


class RobustClassifier(nn.Module):
    """Encoder + pooled feature + head Linear(H, 256) - ReLU - Linear(256, C).

    ``encoder``: a Hugging Face base model (``AutoModel``: BertModel, DebertaV2Model, ModernBertModel,
    LlamaModel, GPT2Model, ...). ``pooling``: one of :data:`rift_fast.models.pooling.POOLINGS`, resolved
    here with ``source`` (the model folder or hub id) and ``pooler_loaded`` (see :func:`resolve_pooling`);
    the choice is ``self.pooling`` and its reason ``self.pooling_reason``. An encoder pooler that the choice leaves
    unused is removed (it would get no gradient). ``hull_space``: one of :data:`HULL_SPACES`, resolved
    here (:func:`resolve_hull_space`); the resolved value is ``self.hull_space`` (None: the encoder has
    no input-embedding module, so only text attacks and standard training apply). Raises ValueError for
    encoder-decoder models and decoder-only families outside
    :data:`rift_fast.models.families.DECODER_FAMILIES`, fewer than 2 classes, or a hull space or pooling
    the encoder cannot serve.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        head_hidden: int = CLASSIFIER_HIDDEN,
        hull_space: str = "auto",
        pooling: str = "auto",
        source: str | None = None,
        pooler_loaded: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        config: Any = getattr(encoder, "config", None)
        check_supported(config)
        self.hull_space = resolve_hull_space(encoder, hull_space)
        choice = resolve_pooling(encoder, pooling, source, pooler_loaded)
        self.pooling, self.pooling_reason = choice.mode, choice.reason
        if self.pooling != POOLER and isinstance(getattr(encoder, "pooler", None), nn.Module):
            cast(Any, encoder).pooler = None  # Hugging Face encoders skip a None pooler
        self.encoder = encoder
        self.num_classes = num_classes
        hidden: int = config.hidden_size
        self.hidden_size = hidden
        self.classifier = nn.Sequential(nn.Linear(hidden, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_classes))
        self.lora: LoraOptions | None = None
        self._adapters: list[Any] = []  # the peft model around the encoder (a list: not a second submodule)

    def use_lora(self, options: LoraOptions) -> None:
        """Adapts the encoder with LoRA (:func:`rift_fast.models.lora.add_lora`): from now on only the
        adapters and the head train, and :meth:`adapters_disabled` runs the pre-trained encoder.
        Raises ValueError when the encoder already has adapters or lacks a target module."""
        if self.lora is not None:
            raise ValueError("the encoder already has LoRA adapters")
        self._adapters = [add_lora(self.encoder, options)]
        self.lora = options

    def enable_gradient_checkpointing(self) -> None:
        """The encoder recomputes each layer's activations in the backward pass instead of keeping them
        (Hugging Face's non-reentrant checkpointing, which also serves frozen embeddings under LoRA).
        Raises ValueError naming the encoder when it does not support it."""
        encoder = cast(Any, self.encoder)
        if not getattr(encoder, "supports_gradient_checkpointing", False):
            raise ValueError(f"--gradient-checkpointing: {type(encoder).__name__} does not support it")
        non_reentrant = {"use_reentrant": False}
        if hasattr(encoder, "activation_checkpointing_enable"):  # its name from transformers 5.x on
            encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=non_reentrant)
        else:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=non_reentrant)

    def adapters_disabled(self) -> contextlib.AbstractContextManager:
        """A context in which the encoder runs without its LoRA adapters: the pre-trained model (peft's
        ``disable_adapter()``). Raises ValueError when the encoder has no adapters."""
        if not self._adapters:
            raise ValueError("the encoder has no LoRA adapters to disable")
        return cast(contextlib.AbstractContextManager, self._adapters[0].disable_adapter())

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, num_classes: int, hull_space: str = "auto", pooling: str = "auto", **kwargs: Any
    ) -> "RobustClassifier":
        """``AutoModel.from_pretrained`` (``"embedded"`` = the packaged MiniLM, see rift_fast.models)."""
        from transformers import AutoConfig, AutoModel

        from rift_fast.models.checkpoint_config import is_checkpoint_folder

        source = resolve_model_source(name_or_path)
        if is_checkpoint_folder(source):
            raise ValueError(
                f"{name_or_path} is a checkpoint of python -m rift_fast.train, not a pre-trained encoder: continue "
                "its training with --resume and its --output-dir, or attack and evaluate it with --model"
            )
        check_supported(AutoConfig.from_pretrained(source))  # before loading weights it cannot use
        encoder, loading = AutoModel.from_pretrained(source, output_loading_info=True, **kwargs)
        pooler_loaded = not any(key.startswith("pooler.") for key in loading["missing_keys"])
        return cls(
            encoder, num_classes, hull_space=hull_space, pooling=pooling, source=source, pooler_loaded=pooler_loaded
        )

    @property
    def config(self) -> Any:
        """The encoder's configuration (max_position_embeddings, hidden_size, ...)."""
        return self.encoder.config

    def _no_input_embeddings(self, user: str) -> ValueError:
        return ValueError(
            f"{user} perturbs embeddings, but {type(self.encoder).__name__} has no input-embedding module "
            "(get_input_embeddings() gives no nn.Embedding); train it with --method standard and attack "
            "it with text attacks (pwws, ga)"
        )

    def require_hull_space(self, user: str) -> str:
        """The resolved hull space; raises ValueError naming ``user`` (a method) and the missing module
        when the encoder has no input-embedding module."""
        if self.hull_space is None:
            raise self._no_input_embeddings(user)
        return self.hull_space

    def get_input_embeddings(self) -> nn.Module:
        """The word-embedding table (what gradient-guided attacks differentiate against); raises
        ValueError when the encoder has none."""
        table = input_embeddings(self.encoder)
        if table is None:
            raise self._no_input_embeddings("an embedding-level attack")
        return table

    @property
    def embeddings(self) -> nn.Module:
        """The encoder's BERT-like embedding module (what :func:`convex_hull_embedding_from_bert` reads)."""
        return embeddings_of(self.encoder)

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] position ids of ``input_ids`` as the encoder numbers them."""
        return position_ids_for(self.encoder, input_ids)

    def embedding_output(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embedding-layer output (before dropout) [B, L, H]; ``forward(inputs_embeds=...)`` takes it."""
        return embedding_layer_output(self.encoder, input_ids, token_type_ids)

    def word_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings [B, L, E] (before position / type embeddings and normalisation)."""
        return self.get_input_embeddings()(input_ids)

    def pooled(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        word_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled feature [B, H] under ``self.pooling``; inputs as :meth:`forward`."""
        return encode_pooled(
            self.encoder, self.pooling, input_ids, attention_mask, token_type_ids, inputs_embeds, word_embeds
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        word_embeds: torch.Tensor | None = None,
        hull_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, C], pooled [B, H]).

        ``input_ids`` [B, L] token ids; or ``inputs_embeds`` [B, L, E] = a BERT-like embedding-layer output
        (LayerNorm(word + position + type), e.g. :meth:`embedding_output`; the embeddings' dropout is
        applied in train mode); or ``word_embeds`` [B, L, E] word embeddings (with ``input_ids`` for
        RoBERTa positions); or ``hull_embeds`` [B, L, E], an input in the model's adversary space
        (``self.hull_space``: taken as ``inputs_embeds`` or ``word_embeds``). ``attention_mask`` [B, L]
        1 = token, 0 = padding.
        """
        if hull_embeds is not None:
            if self.require_hull_space("a hull input") == EMBEDDING_OUTPUT:
                inputs_embeds = hull_embeds
            else:
                word_embeds = hull_embeds
        pooled = self.pooled(input_ids, attention_mask, token_type_ids, inputs_embeds, word_embeds)
        return self.classifier(pooled), pooled

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the freshly initialised classification head: weight decay goes here."""
        return list(self.classifier.parameters())

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The pre-trained encoder's parameters (no weight decay in RIFT)."""
        return list(self.encoder.parameters())


@contextlib.contextmanager
def float32_outside_autocast(device: torch.device) -> Iterator[None]:
    """A region where autocast is off on ``device``: probabilities, KL and cross-entropy computed in it
    from ``.float()`` logits stay float32 whatever autocast the caller runs under."""
    with torch.autocast(device.type, enabled=False):
        yield


def logits_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    """KL(p(x) || p(x_adv)) = KLDiv(log_softmax(logits_adv), softmax(logits_clean)), nothing detached.

    Computed in float32 outside any autocast, both sides as log-probabilities (``log_target``): a bf16
    softmax rounds p(x) and log p(x_adv) apart and gives a negative KL for close distributions.

    Args:
        logits_clean: [B, C] logits of the clean input (any float dtype).
        logits_adv: [B, C] logits of the adversarial input.
        reduction: as :func:`torch.nn.functional.kl_div`.

    Returns:
        The float32 KL (a scalar for ``batchmean`` / ``sum`` / ``mean``).
    """
    with float32_outside_autocast(logits_adv.device):
        log_p = F.log_softmax(logits_clean.float(), dim=-1)
        log_q = F.log_softmax(logits_adv.float(), dim=-1)
        return F.kl_div(log_q, log_p, reduction=reduction, log_target=True)


def float32_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits`` [B, C] (any float dtype) against ``labels`` [B] int64, computed in float32
    outside any autocast (:func:`float32_outside_autocast`)."""
    with float32_outside_autocast(logits.device):
        return F.cross_entropy(logits.float(), labels, reduction=reduction)
