"""Loading a sequence classifier for a task: a Hugging Face classifier or encoder, or a rift_fast checkpoint,
with its logits in the task's label order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from rift_fast.models.checkpoint import is_checkpoint_folder, load_trained_classifier
from rift_fast.models.families import check_supported, set_pad_token_id
from rift_fast.models.labels import LabelMapping, LabelMismatchError, TaskOrderedClassifier, map_labels
from rift_fast.models.sources import load_config, load_tokenizer, resolve_model_source

CLASSIFICATION_HEAD_SUFFIX = "ForSequenceClassification"  # architectures whose checkpoints carry a trained head
SINGLE_LABEL = "single_label_classification"  # the only problem type rift_fast attacks and trains

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def _has_classification_head(config: Any) -> bool:
    return any(name.endswith(CLASSIFICATION_HEAD_SUFFIX) for name in config.architectures or ())


def refuse_non_classifier(config: Any, source: str) -> None:
    """Raises ValueError naming the problem type when the head of ``config`` is not a single-label
    classifier: ``problem_type`` regression (any number of outputs) or multi-label classification, or a
    trained head with one output (transformers takes one output as regression)."""
    problem_type = getattr(config, "problem_type", None)
    outputs = getattr(config, "num_labels", None)
    if problem_type not in (None, SINGLE_LABEL):
        raise ValueError(
            f"{source}: its head has problem_type {problem_type!r} ({outputs} outputs); rift_fast attacks and "
            f"trains single-label classifiers (problem_type {SINGLE_LABEL!r}), whose answer is the most "
            "probable class of a softmax"
        )
    if outputs == 1 and _has_classification_head(config):
        raise ValueError(
            f"{source}: its head has one output, a regression head (transformers takes num_labels = 1 as "
            f"problem_type 'regression'); rift_fast attacks and trains single-label classifiers with one output "
            "per class"
        )


def _load_hf_classifier(
    source: str, label_names: tuple[str, ...], tokenizer: PreTrainedTokenizerBase
) -> tuple[PreTrainedModel, LabelMapping]:
    """The Hugging Face classifier at ``source`` and its :class:`LabelMapping` to ``label_names``; its
    config gets the tokenizer's padding id when it has none (decoder-only models)."""
    from transformers import AutoModelForSequenceClassification

    config = load_config(source)
    check_supported(config)
    set_pad_token_id(config, tokenizer)
    refuse_non_classifier(config, source)
    if not _has_classification_head(config):
        mapping = LabelMapping(tuple(range(len(label_names))), "new head", label_names, label_names)
        config.num_labels = len(label_names)
        config.id2label = dict(enumerate(label_names))
        config.label2id = {name: index for index, name in enumerate(label_names)}
        return AutoModelForSequenceClassification.from_pretrained(source, config=config), mapping
    mapping = map_labels([config.id2label[index] for index in range(config.num_labels)], label_names)
    return AutoModelForSequenceClassification.from_pretrained(source, config=config), mapping


def load_sequence_classifier(
    name_or_path: str, label_names: Sequence[str], pooling: str | None = None, base_model: str | None = None
) -> tuple[nn.Module, PreTrainedTokenizerBase, LabelMapping]:
    """``(model, tokenizer, mapping)``: the classifier with its logits in the order of ``label_names``,
    its tokenizer and the :class:`LabelMapping` used (see :func:`map_labels`).

    A checkpoint with a classification head keeps it and is mapped by its ``config.id2label`` (wrapped
    in :class:`TaskOrderedClassifier` when the orders differ; generic names map by id, with one warning);
    an encoder without a head gets a new one in the task's order; a folder written by ``python -m
    rift_fast.train`` loads as its :class:`RobustClassifier`, trained in the task's order. Raises
    :class:`LabelMismatchError` when the labels cannot be matched, and ValueError naming the model type
    for encoder-decoder models and unsupported decoder-only families (listing the supported ones). A
    decoder-only classifier pools its last non-padding token (Hugging Face's rule); a tokenizer without
    a padding token pads with its end-of-sequence token. A hub id needs network access the
    first time; its error then says so. ``pooling`` (None: as trained) must equal the pooling a
    rift_fast checkpoint was trained with, and is refused for other models, which pool with their own
    classification head (ValueError). ``base_model``: where the base model of a checkpoint of LoRA
    adapters is (None: the model its settings name; see :func:`load_trained_classifier`).
    """
    label_names = tuple(label_names)
    source = resolve_model_source(name_or_path)
    if is_checkpoint_folder(source):  # written by python -m rift_fast.train
        trained = load_trained_classifier(source, pooling, base_model)
        if trained.num_classes != len(label_names):
            raise LabelMismatchError(
                f"{source} has a {trained.num_classes}-class head but the task has "
                f"{len(label_names)} labels {list(label_names)}"
            )
        mapping = LabelMapping(tuple(range(len(label_names))), "rift_fast checkpoint", label_names, label_names)
        return trained, load_tokenizer(source), mapping
    if base_model is not None:
        raise ValueError(f"--base-model {base_model}: {name_or_path} is not a rift_fast checkpoint of LoRA adapters")
    if pooling not in (None, "auto"):
        raise ValueError(
            f"--pooling {pooling} applies to checkpoints of python -m rift_fast.train; {name_or_path} pools "
            "with its own classification head"
        )
    model: nn.Module
    tokenizer = load_tokenizer(name_or_path)
    try:
        model, mapping = _load_hf_classifier(source, label_names, tokenizer)
    except OSError as error:
        raise OSError(f"could not load model {name_or_path!r} from {source!r}: {error}") from error
    if mapping.rule == "ids":
        logger.warning(
            "%s names its labels %s: output i is taken as task label i (%s)",
            name_or_path,
            list(mapping.model_labels),
            ", ".join(label_names),
        )
    if not mapping.is_identity:
        model = TaskOrderedClassifier(model, mapping)
    return model, tokenizer, mapping
