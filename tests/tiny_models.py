"""Tiny model configurations for tests: random weights, built in the test, never downloaded."""

from __future__ import annotations

from typing import Any


def tiny_bert_config(vocab_size: int, **overrides: Any):
    """A ``BertConfig`` of one layer, hidden size 16, 2 heads, intermediate size 32 and 64 positions, with
    ``overrides`` applied (any ``BertConfig`` field)."""
    from transformers import BertConfig

    settings: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
    }
    return BertConfig(**{**settings, **overrides})
