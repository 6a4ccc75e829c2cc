"""Which sentence representation the classifier, the RIFT teacher and the student share (``--pooling``).

RIFT's mutual-information term keeps the features the pre-trained model really learned (Dong et al.,
NeurIPS 2021: the teacher's pooled feature on the clean input). That feature must be the representation the model
was pre-trained to give:

- ``pooler``: the encoder's pooler, tanh(W h_CLS). BERT pre-trains it with next-sentence prediction
  (Devlin et al. 2019) and ALBERT with sentence-order prediction (Lan et al. 2020); RoBERTa's and a
  sentence-transformers model's pooler are never trained (all-MiniLM-L6-v2 ships a zero bias and a
  weight of std 0.009);
- ``cls``: the first token's last hidden state, as the classification heads of RoBERTa, ELECTRA,
  DeBERTa and DistilBERT pool;
- ``mean``: the mean of the last hidden states over the attention mask, as sentence-transformers
  models are trained (Reimers & Gurevych 2019; the embedded all-MiniLM-L6-v2's ``1_Pooling/config.json``);
- ``last``: the last non-padding token's last hidden state, as Hugging Face's sequence classifiers of
  decoder-only models (Llama, Qwen, Mistral, Gemma, Phi-3, GPT-2, GPT-NeoX) pool: under causal
  attention only that token has seen the whole input. The attention mask finds it, with padding on
  either side.

``auto`` reads a sentence-transformers pooling config when the model has one, else keeps a pooler
that its pre-training objective trained (BERT and ALBERT, loaded with their pooler weights), else the
architecture's own classifier pooling (ModernBERT's ``config.classifier_pooling``), else ``cls``; a
decoder-only model gets ``last``.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rift_fast.models.families import decoder_family

logger = logging.getLogger(__name__)

POOLER, CLS, MEAN, LAST = "pooler", "cls", "mean", "last"
POOLINGS = ("auto", POOLER, CLS, MEAN, LAST)
# Architectures whose pre-training objective trains the pooler: BERT (next-sentence prediction, Devlin
# et al. 2019) and ALBERT (sentence-order prediction, Lan et al. 2020).
PRETRAINED_POOLER_OBJECTIVES = {"bert": "next-sentence prediction", "albert": "sentence-order prediction"}
# Why an encoder cannot serve a pooling that working_poolings leaves out.
UNSERVED_POOLING_REASONS = {
    POOLER: "has no pooler",
    MEAN: "has no attention_mask argument in its forward",
    CLS: "is a decoder-only model: under causal attention its first token sees only itself",
    LAST: "is an encoder: its classification head pools the first token, not the last",
}
SENTENCE_TRANSFORMERS_MODULES = "modules.json"
SENTENCE_TRANSFORMERS_POOLING_TYPE = "sentence_transformers.models.Pooling"
# sentence-transformers pooling flags (1_Pooling/config.json) and the pooling each one is here.
SENTENCE_TRANSFORMERS_MODES = {"pooling_mode_cls_token": CLS, "pooling_mode_mean_tokens": MEAN}


@dataclass(frozen=True)
class PoolingChoice:
    """The pooling used (``pooler``, ``cls`` or ``mean``) and why, in words (logged and recorded)."""

    mode: str
    reason: str


def _model_name(encoder: nn.Module) -> str:
    model_type = getattr(getattr(encoder, "config", None), "model_type", None)
    return f"{type(encoder).__name__} (model type {model_type})"


def _takes_attention_mask(encoder: nn.Module) -> bool:
    return "attention_mask" in inspect.signature(encoder.forward).parameters


def working_poolings(encoder: nn.Module) -> tuple[str, ...]:
    """The explicit poolings ``encoder`` can serve: ``cls`` always for an encoder; ``last`` and
    ``mean`` for a decoder-only model (its first token sees nothing but itself)."""
    if decoder_family(getattr(encoder, "config", None)) is not None:
        return (LAST, MEAN)
    usable = [POOLER] if getattr(encoder, "pooler", None) is not None else []
    return (*usable, CLS, *([MEAN] if _takes_attention_mask(encoder) else []))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the sentence-transformers config {path}: {error}") from error


def _sentence_transformers_file(source: str, name: str) -> Path | None:
    """``name`` in the model folder, or downloaded from the hub for a hub id; None when it has none."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, name))
    except EntryNotFoundError:
        return None


def sentence_transformers_pooling(source: str | None) -> str | None:
    """The pooling key of the sentence-transformers ``Pooling`` module of ``source`` (a model folder or a
    hub id), e.g. ``pooling_mode_mean_tokens``; None when the model is not a sentence-transformers one.
    Raises ValueError naming the file when its config cannot be read."""
    if source is None:
        return None
    modules_path = _sentence_transformers_file(source, SENTENCE_TRANSFORMERS_MODULES)
    if modules_path is None:
        return None
    modules = _read_json(modules_path)
    folders = [m.get("path", "") for m in modules if m.get("type") == SENTENCE_TRANSFORMERS_POOLING_TYPE]
    if not folders:
        return None
    config_path = _sentence_transformers_file(source, f"{folders[0]}/config.json")
    if config_path is None:
        raise ValueError(f"{modules_path} names a Pooling module in {folders[0]!r} but it has no config.json")
    flags = [key for key, value in _read_json(config_path).items() if key.startswith("pooling_mode") and value]
    return flags[0] if flags else None


def _automatic_pooling(encoder: nn.Module, source: str | None, pooler_loaded: bool) -> PoolingChoice:
    config = getattr(encoder, "config", None)
    model_type = getattr(config, "model_type", None)
    family = decoder_family(config)
    if family is not None:
        return PoolingChoice(LAST, f"the last non-padding token, as {family.name}'s sequence classifier pools")
    flag = sentence_transformers_pooling(source)
    if flag in SENTENCE_TRANSFORMERS_MODES:
        mode = SENTENCE_TRANSFORMERS_MODES[flag]
        return PoolingChoice(mode, f"the sentence-transformers pooling of {source} ({flag})")
    not_offered = f"; its sentence-transformers pooling {flag} is not offered" if flag else ""
    objective = PRETRAINED_POOLER_OBJECTIVES.get(str(model_type))
    if objective and pooler_loaded and getattr(encoder, "pooler", None) is not None:
        return PoolingChoice(POOLER, f"{model_type} pre-trains its pooler with {objective}{not_offered}")
    classifier_pooling = getattr(config, "classifier_pooling", None)
    if classifier_pooling in (CLS, MEAN):
        return PoolingChoice(classifier_pooling, f"the architecture's classifier pooling{not_offered}")
    return PoolingChoice(CLS, f"the first token, as {model_type}'s classification head pools{not_offered}")


def resolve_pooling(
    encoder: nn.Module, requested: str, source: str | None = None, pooler_loaded: bool = True
) -> PoolingChoice:
    """The :class:`PoolingChoice` for ``requested`` (one of :data:`POOLINGS`).

    ``source``: the model folder or hub id (read for a sentence-transformers pooling config);
    ``pooler_loaded``: the pooler's weights came from the checkpoint (False when Hugging Face
    initialised them fresh). Raises ValueError for an unknown pooling, ``pooler`` on an encoder without
    a pooler, or ``mean`` on an encoder whose ``forward`` takes no attention mask, naming the model and
    the poolings that work.
    """
    if requested not in POOLINGS:
        raise ValueError(f"--pooling must be one of {', '.join(POOLINGS)}, got {requested!r}")
    if requested == "auto":
        return _automatic_pooling(encoder, source, pooler_loaded)
    if requested not in working_poolings(encoder):
        raise ValueError(
            f"--pooling {requested}: {_model_name(encoder)} {UNSERVED_POOLING_REASONS[requested]}; "
            f"choose one of {', '.join(working_poolings(encoder))}"
        )
    return PoolingChoice(requested, "asked for")


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B] int64: the position of each row's last token (the rightmost 1 of ``attention_mask`` [B, L]),
    whichever side the padding is on (Hugging Face's rule for decoder classifiers)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.ne(0).long()).argmax(dim=1)


def pool(outputs: Any, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Pooled feature [B, H] of an encoder output (``last_hidden_state`` [B, L, H], ``pooler_output``)
    under ``mode``; ``attention_mask`` [B, L] (1 = token) weights the mean and finds the last token
    (None: every position)."""
    if mode == POOLER:
        return outputs.pooler_output
    hidden = outputs.last_hidden_state
    if mode == CLS:
        return hidden[:, 0]
    if mode == LAST:
        if attention_mask is None:
            return hidden[:, -1]
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token_index(attention_mask)]
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


__all__ = [
    "CLS",
    "LAST",
    "MEAN",
    "POOLER",
    "POOLINGS",
    "PoolingChoice",
    "last_token_index",
    "pool",
    "resolve_pooling",
    "sentence_transformers_pooling",
    "working_poolings",
]
