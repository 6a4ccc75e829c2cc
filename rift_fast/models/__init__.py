"""Models and checkpoints: where encoders come from, the model families supported (encoders and the
decoder-only families of :data:`DECODER_FAMILIES`), the classifier that rift_fast trains (with LoRA
adapters or without), prompted classifiers, the checkpoint folder, the mapping of a classifier's
outputs to a task's labels, and the input length a model can take. Attacks, training and evaluation
all load models from here."""

from rift_fast.models.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_dir,
    is_checkpoint_folder,
    load_trained_classifier,
    refuse_pickled_trainer_state,
    resolve_checkpoint,
    save_model_folder,
)
from rift_fast.models.classifier import RobustClassifier, unwrap
from rift_fast.models.families import DECODER_FAMILIES, DecoderFamily
from rift_fast.models.labels import LabelMapping, LabelMismatchError, TaskOrderedClassifier, map_labels
from rift_fast.models.limits import checked_max_length, usable_max_length
from rift_fast.models.loading import load_sequence_classifier
from rift_fast.models.lora import LoraOptions
from rift_fast.models.prompted import PromptedClassifier, load_prompted_classifier
from rift_fast.models.sources import EMBEDDED_MODEL_NAME, load_config, load_tokenizer, resolve_model_source

__all__ = [
    "CHECKPOINT_FORMAT",
    "DECODER_FAMILIES",
    "DecoderFamily",
    "EMBEDDED_MODEL_NAME",
    "LabelMapping",
    "LabelMismatchError",
    "LoraOptions",
    "PromptedClassifier",
    "RobustClassifier",
    "TaskOrderedClassifier",
    "checked_max_length",
    "checkpoint_dir",
    "is_checkpoint_folder",
    "load_config",
    "load_prompted_classifier",
    "load_sequence_classifier",
    "load_tokenizer",
    "load_trained_classifier",
    "map_labels",
    "refuse_pickled_trainer_state",
    "resolve_checkpoint",
    "resolve_model_source",
    "save_model_folder",
    "unwrap",
    "usable_max_length",
]
