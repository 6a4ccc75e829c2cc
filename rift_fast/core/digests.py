"""Content digests of what a run reads: model weights, tokenizer, data files and examples (the synonym
index has its own, :meth:`rift_fast.synonyms.SynonymIndex.content_digest`).

The model and tokenizer digests hash what was loaded, not the files it came from, so one rule serves a local folder,
a hub id and the embedded model alike. Cost: hashing 90 MB of float32 weights takes about 0.15 s
on one CPU core (BERT-base, 440 MB: under 1 s).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

TOKENIZER_CALL_STATE = ("truncation", "padding")  # backend fields a tokenizer call sets, not its definition
# Attributes of every tokenizer that change the ids or the model's answer (padding on the left moves the
# positions of absolute position embeddings; truncation side and length choose the tokens kept).
TOKENIZER_ATTRIBUTES = ("padding_side", "truncation_side", "model_max_length", "model_input_names")
# Options some tokenizer classes take (their ``init_kwargs``) that change the ids: normalisation (case,
# accents, Chinese characters), prefix spaces, begin / end tokens, splitting of special tokens.
TOKENIZER_OPTIONS = (
    "do_lower_case",
    "strip_accents",
    "tokenize_chinese_chars",
    "do_basic_tokenize",
    "never_split",
    "add_prefix_space",
    "trim_offsets",
    "add_bos_token",
    "add_eos_token",
    "add_special_tokens",
    "split_special_tokens",
    "keep_accents",
    "remove_space",
    "legacy",
)
# Texts encoded with the tokenizer's defaults (special tokens added, padded to the longest): their ids and
# attention masks catch whatever else changes an encoding (a post-processor, a normaliser, a slow
# tokenizer's own rules).
TOKENIZER_PROBE = ("A Wonderful film, naïve CAFÉ!", "x")
TOKENIZER_PROBE_PAIR = ("Is it good?", "It is. Ünïcode 42")
TEXT_DIGEST_HEX = 16  # hex digits kept of a text's SHA-256 (64 bits: no collision expected below 10^8 texts)

if TYPE_CHECKING:
    from rift_fast.core.records import Example


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state_dict: each entry's name, dtype, shape and raw bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tokenizer_definition(tokenizer) -> str:
    """The tokenizer's definition as JSON: the serialised fast tokenizer (vocabulary, merges, normaliser,
    pre-tokeniser, post-processor) without its truncation and padding, which every call with other
    ``truncation`` / ``padding`` arguments rewrites; else (a slow tokenizer) its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return json.dumps(sorted(tokenizer.get_vocab().items()))
    definition = json.loads(backend.to_str())
    for call_state in TOKENIZER_CALL_STATE:
        definition.pop(call_state, None)
    return json.dumps(definition, sort_keys=True)


def _plain(value):
    """``value`` as JSON holds it (tuples and sets as lists, other objects as their text)."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(item) for item in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def tokenizer_settings(tokenizer) -> dict:
    """Every setting of ``tokenizer`` that can change the ids or the model's answer, by name.

    Args:
        tokenizer: a Hugging Face tokenizer (fast or slow).

    Returns:
        ``{"class", "padding_side", "truncation_side", "model_max_length", "model_input_names", the
        options of :data:`TOKENIZER_OPTIONS` the tokenizer has, "special_tokens" (token -> id),
        "probe_ids" / "probe_attention_mask" (:data:`TOKENIZER_PROBE` encoded, padded to the longest),
        "probe_pair_ids" (:data:`TOKENIZER_PROBE_PAIR` as a sentence pair)}``, JSON values: a run
        records them and a resume names each that changed.
    """
    settings: dict = {"class": type(tokenizer).__name__}
    settings |= {name: _plain(getattr(tokenizer, name, None)) for name in TOKENIZER_ATTRIBUTES}
    init_kwargs = getattr(tokenizer, "init_kwargs", {}) or {}
    for name in TOKENIZER_OPTIONS:
        if hasattr(tokenizer, name) and not callable(getattr(tokenizer, name)):
            settings[name] = _plain(getattr(tokenizer, name))
        elif name in init_kwargs:
            settings[name] = _plain(init_kwargs[name])
    settings["special_tokens"] = dict(zip(tokenizer.all_special_tokens, tokenizer.all_special_ids))
    probe = tokenizer(list(TOKENIZER_PROBE), padding=tokenizer.pad_token is not None, verbose=False)
    settings["probe_ids"] = _plain(probe["input_ids"])
    settings["probe_attention_mask"] = _plain(probe.get("attention_mask"))
    settings["probe_pair_ids"] = _plain(tokenizer(*TOKENIZER_PROBE_PAIR, verbose=False)["input_ids"])
    return settings


def tokenizer_digest(tokenizer) -> str:
    """SHA-256 of the tokenizer's special tokens, :func:`tokenizer_settings` and
    :func:`tokenizer_definition`: the same for one tokenizer whatever it was called with before."""
    described = json.dumps(
        [tokenizer.special_tokens_map, tokenizer_settings(tokenizer), tokenizer_definition(tokenizer)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(described.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def examples_digest(examples: "list[Example]") -> str:
    """SHA-256 of the examples' texts, pairs and labels, in order."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.text, example.text_pair, example.label]).encode())
    return digest.hexdigest()


def text_digest(example: "Example") -> str:
    """The first :data:`TEXT_DIGEST_HEX` hex digits of the SHA-256 of the example's text and text pair
    (not its label: a text is a training text whatever it was labelled)."""
    return hashlib.sha256(json.dumps([example.text, example.text_pair]).encode()).hexdigest()[:TEXT_DIGEST_HEX]


def split_text_digests(examples: "list[Example]") -> list[str]:
    """The sorted distinct :func:`text_digest` of ``examples``."""
    return sorted({text_digest(example) for example in examples})
