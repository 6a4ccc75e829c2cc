"""What marks a folder as a rift_fast checkpoint, and its ``config.json``: the encoder's config under a
model type plain ``transformers`` loaders refuse (see :mod:`rift_fast.models.checkpoint`). Imports
nothing else of rift_fast, so that model sources and the classifier can ask it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METADATA_FILE = "rift_fast.json"
CONFIG_FILE = "config.json"
SPLIT_DIGESTS_FILE = "split_digests.json"  # role -> sorted text digests of the run's train / dev / test splits
CHECKPOINT_MODEL_TYPE = "rift_fast_checkpoint"  # unknown to transformers: its Auto* loaders refuse the folder
CHECKPOINT_ARCHITECTURE = "RiftFastRobustClassifier"
ENCODER_MODEL_TYPE_KEY = "encoder_model_type"
LOADING_NOTE_KEY = "rift_fast_loading"
LOADING_NOTE = (
    "a rift_fast checkpoint: load it with rift_fast.models.load_trained_classifier, or write a plain "
    "Hugging Face folder with python -m rift_fast.export <this folder> <output folder> where the head allows"
)


def checkpoint_config(encoder_config: Any) -> dict:
    """The ``config.json`` content of a checkpoint: every field of ``encoder_config`` (a transformers
    config), its model type moved to :data:`ENCODER_MODEL_TYPE_KEY` and replaced by
    :data:`CHECKPOINT_MODEL_TYPE`, ``architectures`` naming the rift_fast classifier, and a note on
    how to load the folder."""
    fields = encoder_config.to_dict()
    fields[ENCODER_MODEL_TYPE_KEY] = fields.pop("model_type")
    return {
        **fields,
        "model_type": CHECKPOINT_MODEL_TYPE,
        "architectures": [CHECKPOINT_ARCHITECTURE],
        LOADING_NOTE_KEY: LOADING_NOTE,
    }


def encoder_config_of(folder: str | Path) -> Any:
    """The encoder's transformers config of a checkpoint folder (also of folders written before the
    config was wrapped, whose ``config.json`` is the encoder's own).

    Raises:
        FileNotFoundError: ``folder`` has no ``config.json``.
    """
    from transformers import AutoConfig

    path = Path(folder) / CONFIG_FILE
    fields = json.loads(path.read_text(encoding="utf-8"))
    if fields.get("model_type") != CHECKPOINT_MODEL_TYPE:
        return AutoConfig.from_pretrained(folder)
    model_type = fields.pop(ENCODER_MODEL_TYPE_KEY)
    for wrapper_key in ("model_type", "architectures", LOADING_NOTE_KEY):
        fields.pop(wrapper_key, None)
    return AutoConfig.for_model(model_type, **fields)


def is_checkpoint_folder(source: str | Path) -> bool:
    """Whether ``source`` is a folder written by :func:`rift_fast.models.checkpoint.save_model_folder`."""
    return (Path(source) / METADATA_FILE).is_file()
