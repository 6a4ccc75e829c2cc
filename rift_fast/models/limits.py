"""The input length a model can take: from its position embeddings, its config and its tokenizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

NO_TOKENIZER_LIMIT = 10**20  # transformers' LARGE_INTEGER: a model_max_length at or above it means "not set"


def position_limit(model: nn.Module) -> int | None:
    """How many input positions the model's absolute position embeddings can number; None without such a table.

    RoBERTa-style embeddings (a ``padding_idx`` on the embedding module: RoBERTa, XLM-R, CamemBERT)
    number positions from ``padding_idx + 1``, so that many rows of the table are never an input position.
    """
    embeddings = next(
        (
            module
            for module in model.modules()
            if isinstance(getattr(module, "position_embeddings", None), nn.Embedding)
        ),
        None,
    )
    if embeddings is None:
        return None
    padding_idx = getattr(embeddings, "padding_idx", None)
    reserved = 0 if padding_idx is None else padding_idx + 1
    table = cast(nn.Embedding, embeddings.position_embeddings)  # checked to be an nn.Embedding when found
    return table.num_embeddings - reserved


def tokenizer_limit(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The tokenizer's ``model_max_length``, None when unset (transformers then reports 1e30)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < NO_TOKENIZER_LIMIT else None


def _skeleton(config: PretrainedConfig) -> nn.Module:
    """The encoder ``config`` describes, on the meta device (no memory, no weights)."""
    from transformers import AutoModel

    with torch.device("meta"):
        return AutoModel.from_config(config)


def usable_max_length(model_or_config: nn.Module | PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> int:
    """The most tokens per input that ``model_or_config`` (a module or a transformers config) and
    ``tokenizer`` can take.

    The position table's usable rows (:func:`position_limit`), else ``config.max_position_embeddings``
    (relative-position models such as DeBERTa-v2), capped by the tokenizer's ``model_max_length`` when set.
    Raises ValueError when none of them is known.
    """
    from transformers import PretrainedConfig

    model = _skeleton(model_or_config) if isinstance(model_or_config, PretrainedConfig) else model_or_config
    positions = position_limit(model) or getattr(getattr(model, "config", None), "max_position_embeddings", None)
    limits = [limit for limit in (positions, tokenizer_limit(tokenizer)) if limit]
    if not limits:
        raise ValueError(
            f"neither {type(model).__name__} nor its tokenizer states a maximum input length: "
            "give one explicitly (--max-length)"
        )
    return min(limits)


def checked_max_length(
    requested: int | None, model_or_config: nn.Module | PretrainedConfig, tokenizer: PreTrainedTokenizerBase
) -> int:
    """``requested`` tokens per input, or :func:`usable_max_length` when None.

    Raises ValueError naming both numbers when ``requested`` exceeds the usable length (longer inputs
    would index past the position table) or is below 1.
    """
    usable = usable_max_length(model_or_config, tokenizer)
    if requested is None:
        return usable
    if not 1 <= requested <= usable:
        raise ValueError(
            f"max length {requested} is outside 1..{usable}: this model and tokenizer take at most "
            f"{usable} tokens per input"
        )
    return requested
