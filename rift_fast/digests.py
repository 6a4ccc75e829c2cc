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
TEXT_DIGEST_HEX = 16  # hex digits kept of a text's SHA-256 (64 bits: no collision expected below 10^8 texts)

if TYPE_CHECKING:
    from rift_fast.data import Example


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


def tokenizer_digest(tokenizer) -> str:
    """SHA-256 of the tokenizer's class, special tokens and :func:`tokenizer_definition`: the same for
    one tokenizer whatever it was called with before."""
    described = json.dumps(
        [type(tokenizer).__name__, tokenizer.special_tokens_map, tokenizer_definition(tokenizer)], sort_keys=True
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
