"""Tiny models for tests: configurations of random-weight models built in the test (never downloaded)
and the toy victim, a bag-of-words classifier with hand-set word scores."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch


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


# The vocabulary and hidden sizes of ``tiny_classifier``'s encoder; RoBERTa's padding id (BERT pads with 0).
VOCAB, HIDDEN = 100, 32
ROBERTA_PAD = 1


def tiny_classifier(kind: str = "bert", pooler: bool = True, num_classes: int = 2, dropout: float = 0.0, seed: int = 0):
    """A ``RobustClassifier`` over a two-layer random ``kind`` encoder (``bert`` or ``roberta``; hidden size
    ``HIDDEN``, 2 heads, intermediate size 37, 64 positions, ``VOCAB`` tokens), built with ``seed``;
    ``pooler``: with the encoder's pooling layer; ``dropout``: the hidden and attention dropout."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    from rift_fast.models.classifier import RobustClassifier

    torch.manual_seed(seed)
    common = dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    if kind == "bert":
        encoder = BertModel(BertConfig(max_position_embeddings=64, **common), add_pooling_layer=pooler)
    else:
        roberta = RobertaConfig(max_position_embeddings=64 + ROBERTA_PAD + 1, pad_token_id=ROBERTA_PAD, **common)
        encoder = RobertaModel(roberta, add_pooling_layer=pooler)
    return RobustClassifier(encoder, num_classes)


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


# The toy victim's word scores: positive words push to class 1, negative ones to class 0; the others
# (and every word outside the vocabulary) score 0.
WORD_SCORES = {
    "good": 1.0,
    "great": 1.0,
    "movie": 0.2,
    "grand": -1.5,
    "excellent": 3.0,
    "fine": 0.1,
    "bad": -1.0,
    "awful": -2.0,
    "poor": 0.5,
    "dull": -0.1,
    "plot": 0.0,
    "acting": 0.0,
    "a": 0.0,
    "with": 0.0,
    "the": 0.0,
    "is": 0.0,
    "film": 0.0,
    "picture": 0.0,
    "cat": 0.5,
    "dog": -0.5,
    "sleeps": 0.0,
    "pet": 0.0,
}


class BagOfWords(torch.nn.Module):
    """The toy victim: logits = [-s, s] with s the sum of per-token scores (padding contributes exactly
    0); with ``classes=3`` an NLI toy, logits [s, -s, 0] over the hypothesis alone."""

    def __init__(self, tokenizer, scores: dict[str, float], classes: int = 2):
        super().__init__()
        self.scores = torch.nn.Embedding(len(tokenizer), 1)
        vocab = tokenizer.get_vocab()
        with torch.no_grad():
            self.scores.weight.zero_()
            for word, score in scores.items():
                self.scores.weight[vocab[word], 0] = score
        self.classes = classes
        self.config = SimpleNamespace(max_position_embeddings=64)

    def get_input_embeddings(self):
        return self.scores

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        if token_type_ids is not None and self.classes == 3:  # NLI toy: only the hypothesis counts
            attention_mask = attention_mask * token_type_ids
        s = (self.scores(input_ids)[..., 0] * attention_mask).sum(-1)
        logits = torch.stack([-s, s], -1) if self.classes == 2 else torch.stack([s, -s, torch.zeros_like(s)], -1)
        return SimpleNamespace(logits=logits)
