"""Which model families rift_fast trains and attacks: every encoder, and the decoder-only families of
:data:`DECODER_FAMILIES` (a causal language model read as a sequence classifier, as Hugging Face's
``...ForSequenceClassification`` does: the last non-padding token's hidden state). Encoder-decoder
models (T5, BART) are refused.

Adding a decoder family takes one line of :data:`DECODER_FAMILIES`: its ``model_type`` (the config's),
its name and the modules LoRA adapts by default (the attention projections, as named in that family's
``transformers`` code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")  # Llama's names, shared by its descendants
ENCODER_EXAMPLES = "BERT, RoBERTa, XLM-R, DistilBERT, ALBERT, ELECTRA, DeBERTa, ModernBERT, ..."


@dataclass(frozen=True)
class DecoderFamily:
    """A decoder-only family: ``model_type`` (the transformers config's), ``name`` (in messages) and
    ``lora_targets`` (the module names LoRA adapts by default)."""

    model_type: str
    name: str
    lora_targets: tuple[str, ...]


DECODER_FAMILIES: dict[str, DecoderFamily] = {
    family.model_type: family
    for family in (
        DecoderFamily("llama", "Llama", ATTENTION_PROJECTIONS),
        DecoderFamily("qwen2", "Qwen2", ATTENTION_PROJECTIONS),
        DecoderFamily("qwen3", "Qwen3", ATTENTION_PROJECTIONS),
        DecoderFamily("mistral", "Mistral", ATTENTION_PROJECTIONS),
        DecoderFamily("gemma", "Gemma", ATTENTION_PROJECTIONS),
        DecoderFamily("gemma2", "Gemma 2", ATTENTION_PROJECTIONS),
        DecoderFamily("gemma3_text", "Gemma 3 (text)", ATTENTION_PROJECTIONS),
        DecoderFamily("phi3", "Phi-3", ("qkv_proj", "o_proj")),
        DecoderFamily("gpt2", "GPT-2", ("c_attn", "c_proj")),
        DecoderFamily("gpt_neox", "GPT-NeoX (Pythia)", ("query_key_value", "dense")),
    )
}


def supported_families() -> str:
    """The supported families in words (for error messages)."""
    decoders = ", ".join(f"{family.name} ({family.model_type})" for family in DECODER_FAMILIES.values())
    return f"encoders ({ENCODER_EXAMPLES}) and the decoder-only families {decoders}"


def _is_decoder_only(config: Any) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", None)
    return bool(getattr(config, "is_decoder", False)) or (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def decoder_family(config: Any) -> DecoderFamily | None:
    """The :class:`DecoderFamily` of a transformers ``config``; None for an encoder (or no config)."""
    return DECODER_FAMILIES.get(str(getattr(config, "model_type", None)))


def check_supported(config: Any) -> DecoderFamily | None:
    """The decoder family of ``config`` (None: an encoder).

    Raises ValueError naming the model type and listing the supported families for an encoder-decoder
    model (T5, BART) and for a decoder-only model outside :data:`DECODER_FAMILIES`.
    """
    family = decoder_family(config)
    if family is not None:
        return family
    model_type = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        kind = "an encoder-decoder model"
    elif _is_decoder_only(config):
        kind = "a decoder-only model of a family rift_fast does not support"
    else:
        return None
    raise ValueError(f"model type {model_type!r} is {kind}; rift_fast supports {supported_families()}")


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase, source: str) -> PreTrainedTokenizerBase:
    """``tokenizer`` with a padding token: its own, else its end-of-sequence token (as decoder-only
    tokenizers such as GPT-2's, Llama's and Qwen's ship none). Raises ValueError naming ``source`` when
    it has neither."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"the tokenizer of {source} has neither a padding token nor an end-of-sequence token: "
                "batches cannot be padded; save it with a pad_token (tokenizer.add_special_tokens)"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def set_pad_token_id(config: Any, tokenizer: PreTrainedTokenizerBase) -> None:
    """Sets ``config.pad_token_id`` to the tokenizer's when the config has none (Hugging Face's decoder
    classifiers need it to find the last non-padding token of a batch)."""
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id


__all__ = [
    "DECODER_FAMILIES",
    "DecoderFamily",
    "check_supported",
    "decoder_family",
    "ensure_pad_token",
    "set_pad_token_id",
    "supported_families",
]
