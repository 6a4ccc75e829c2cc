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


# Decoder-only families: model type -> the config fields that name their sizes (GPT-2 and GPT-NeoX have their own).
DECODER_SIZES = {
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64},
    "gpt_neox": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
}
LLAMA_LIKE_SIZES = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,  # grouped-query attention, as the real ones
    "intermediate_size": 37,
    "head_dim": 16,
}


def tiny_decoder_config(model_type: str, vocab_size: int, pad: int | None, bos: int, eos: int, **overrides: Any):
    """A two-layer decoder-only config of ``model_type`` (hidden size 32, 2 heads, 64 positions) over
    ``vocab_size`` tokens with the tokenizer's special ids (``pad`` None: the config names none, as
    Llama's and GPT-2's), with ``overrides`` applied."""
    from transformers import AutoConfig

    sizes = DECODER_SIZES.get(model_type, LLAMA_LIKE_SIZES)
    settings: dict[str, Any] = {
        "vocab_size": vocab_size,
        "pad_token_id": pad,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "max_position_embeddings": 64,
        **sizes,
    }
    return AutoConfig.for_model(model_type, **{**settings, **overrides})
