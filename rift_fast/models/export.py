"""Export a rift_fast checkpoint as a plain Hugging Face ``*ForSequenceClassification`` folder.

A checkpoint's classifier is encoder -> pooled feature -> Linear(H, K) - ReLU - Linear(K, C)
(K = 256). A Hugging Face class computes the same only where its own pooling is the checkpoint's and
its head is Linear(H, H) - ReLU - Linear(H, C): the head then holds the checkpoint's layers padded
with zeros (the K used rows of the first layer, zero columns in the second; ReLU(0) = 0, so the
padding adds nothing). That holds for first-token (``cls``) pooling with

- DeBERTa and DeBERTa-v2/v3 (``ContextPooler`` with ``pooler_hidden_act="relu"``), and
- DistilBERT (``pre_classifier`` - ReLU - ``classifier``),

when H >= K. Every other checkpoint (BERT, MiniLM, RoBERTa, ... whose Hugging Face heads pool with a
tanh layer, or a mean-pooled model) has no standard equivalent: its export is refused, naming why,
rather than written to compute something else. Each export is checked: the written folder is loaded
back with ``AutoModelForSequenceClassification`` and its probabilities on probe texts must equal the
checkpoint's.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from rift_fast.models.checkpoint import encoder_config_of, is_checkpoint_folder, load_trained_classifier
from rift_fast.models.pooling import CLS

PROBE_TEXTS = (
    "a gripping, beautifully acted film",
    "the plot is thin and the jokes fall flat",
    "it is a movie",
    "an accented caf\u00e9 review, neither good nor bad, that goes on for a while before it ends",
)
PROBABILITY_TOLERANCE = 1e-5  # the largest |difference| of an exported folder's probabilities on PROBE_TEXTS


@dataclass(frozen=True)
class HeadLayout:
    """How a Hugging Face sequence classifier holds a padded Linear - ReLU - Linear head.

    ``first`` / ``second``: the module paths of its two linear layers; ``config``: the config fields
    that make its activation a ReLU (and its pooler size H).
    """

    first: str
    second: str
    config: tuple[tuple[str, Any], ...] = ()


HEAD_LAYOUTS = {
    "deberta-v2": HeadLayout("pooler.dense", "classifier", (("pooler_hidden_act", "relu"),)),
    "deberta": HeadLayout("pooler.dense", "classifier", (("pooler_hidden_act", "relu"),)),
    "distilbert": HeadLayout("pre_classifier", "classifier"),
}


class NotExportableError(ValueError):
    """The checkpoint's head has no plain Hugging Face equivalent (the message says why)."""


def _exportable_layout(model_type: str, pooling: str, hidden: int, head_hidden: int) -> HeadLayout:
    """The :class:`HeadLayout` for a checkpoint, or :class:`NotExportableError` naming why there is none."""
    supported = f"first-token pooling (--pooling {CLS}) with {', '.join(sorted(HEAD_LAYOUTS))}"
    if model_type not in HEAD_LAYOUTS:
        raise NotExportableError(
            f"model type {model_type!r} with --pooling {pooling}: its Hugging Face classification head is not "
            f"Linear - ReLU - Linear on the pooled feature, so no plain folder computes this classifier "
            f"(exportable: {supported}); load it with rift_fast.models.load_trained_classifier"
        )
    if pooling != CLS:
        raise NotExportableError(
            f"model type {model_type!r} was trained with --pooling {pooling}; its Hugging Face head pools the "
            f"first token, so a plain folder would compute another classifier (exportable: {supported})"
        )
    if hidden < head_hidden:
        raise NotExportableError(
            f"hidden size {hidden} is below the head's width {head_hidden}: the Hugging Face head "
            f"Linear({hidden}, {hidden}) cannot hold it"
        )
    return HEAD_LAYOUTS[model_type]


def _padded_head(head: nn.Sequential, hidden: int) -> dict[str, torch.Tensor]:
    """The weights of Linear(H, H) - ReLU - Linear(H, C) equal to ``head`` (Linear(H, K) - ReLU -
    Linear(K, C), K <= H), as ``first.weight`` [H, H], ``first.bias`` [H], ``second.weight`` [C, H]
    and ``second.bias`` [C] (float32)."""
    inner, outer = cast(nn.Linear, head[0]), cast(nn.Linear, head[2])
    width = inner.weight.shape[0]
    first_weight = torch.zeros(hidden, hidden)
    first_weight[:width] = inner.weight.detach().float()
    first_bias = torch.zeros(hidden)
    first_bias[:width] = inner.bias.detach().float()
    second_weight = torch.zeros(outer.weight.shape[0], hidden)
    second_weight[:, :width] = outer.weight.detach().float()
    return {
        "first.weight": first_weight,
        "first.bias": first_bias,
        "second.weight": second_weight,
        "second.bias": outer.bias.detach().float().clone(),
    }


def probabilities(model: nn.Module, tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """Softmax probabilities [len(texts), C] (float32) of a classifier on ``texts``.

    Args:
        model: a Hugging Face sequence classifier (``.logits``) or a :class:`RobustClassifier`
            (``(logits, pooled)``), in eval mode.
        tokenizer: its tokenizer; only the inputs ``model.forward`` names are passed.
        texts: the texts, padded and truncated together.

    Returns:
        [len(texts), C] float32 probabilities.
    """
    encoded = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters
    with torch.no_grad():
        output = model(**{name: value for name, value in encoded.items() if name in accepted})
    logits = output[0] if isinstance(output, tuple) else output.logits
    return torch.softmax(logits.float(), dim=-1)


def export_to_transformers(
    checkpoint: str | Path, output: str | Path, probe_texts: tuple[str, ...] = PROBE_TEXTS
) -> Path:
    """Write ``checkpoint`` (a folder of ``python -m rift_fast.train``) as a plain Hugging Face
    ``*ForSequenceClassification`` folder at ``output`` (config with ``architectures``,
    ``num_labels``, ``id2label`` / ``label2id``; weights under the class's own names; the tokenizer).

    The folder is staged beside ``output`` and renamed into place after the check, so ``output`` is
    either absent or complete.

    Args:
        checkpoint: the checkpoint folder (``rift_fast.json``, ``model.safetensors``, ``config.json``).
        output: the folder to write; must not exist.
        probe_texts: texts on which the exported folder's probabilities must equal the checkpoint's
            (within :data:`PROBABILITY_TOLERANCE`).

    Returns:
        ``output`` as a Path.

    Raises:
        FileNotFoundError: ``checkpoint`` is not a rift_fast checkpoint.
        FileExistsError: ``output`` exists.
        NotExportableError: the head has no plain Hugging Face equivalent (see the module docstring).
        RuntimeError: the written folder's probabilities differ from the checkpoint's.
    """
    from transformers import AutoModelForSequenceClassification

    from rift_fast.models.sources import load_tokenizer

    checkpoint, output = Path(checkpoint), Path(output)
    if not is_checkpoint_folder(checkpoint):
        raise FileNotFoundError(f"{checkpoint} is not a rift_fast checkpoint (no rift_fast.json)")
    if output.exists():
        raise FileExistsError(f"{output} exists; give a new folder to export to")
    classifier = load_trained_classifier(checkpoint)
    config = encoder_config_of(checkpoint)
    head_width = cast(nn.Linear, classifier.classifier[0]).out_features
    layout = _exportable_layout(config.model_type, classifier.pooling, classifier.hidden_size, head_width)
    for field_name, value in layout.config:
        setattr(config, field_name, value)
    config.num_labels = classifier.num_classes  # id2label / label2id come from the checkpoint's config
    hf_model = AutoModelForSequenceClassification.from_config(config).eval()
    getattr(hf_model, hf_model.base_model_prefix).load_state_dict(classifier.encoder.state_dict())
    head = _padded_head(classifier.classifier, classifier.hidden_size)
    with torch.no_grad():
        for role, path in (("first", layout.first), ("second", layout.second)):
            layer = hf_model.get_submodule(path)
            layer.weight.copy_(head[f"{role}.weight"])
            layer.bias.copy_(head[f"{role}.bias"])
    tokenizer = load_tokenizer(str(checkpoint))
    accepted = inspect.signature(hf_model.forward).parameters  # DistilBERT takes no token_type_ids
    tokenizer.model_input_names = [name for name in tokenizer.model_input_names if name in accepted]
    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    hf_model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    reloaded = AutoModelForSequenceClassification.from_pretrained(staging).eval()
    difference = (
        (probabilities(reloaded, tokenizer, probe_texts) - probabilities(classifier, tokenizer, probe_texts))
        .abs()
        .max()
    )
    if difference > PROBABILITY_TOLERANCE:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            f"the exported {type(reloaded).__name__} gives probabilities up to {float(difference):.2e} away from "
            f"{checkpoint}'s; nothing was written to {output}"
        )
    os.replace(staging, output)
    return output


__all__ = ["HEAD_LAYOUTS", "NotExportableError", "export_to_transformers", "probabilities"]
