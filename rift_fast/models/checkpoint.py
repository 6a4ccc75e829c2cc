"""The checkpoint folder of a trained classifier: safetensors weights, the encoder's config, the
tokenizer, a settings JSON and, for the last checkpoint of a run, the trainer state (optimizer,
scheduler, RNG) as safetensors + JSON. Nothing in the folder is a pickle: loading it runs no code.

``python -m rift_fast.train`` writes these folders and ``python -m rift_fast.attack --model <folder>``
reads them; neither needs the other's code.

The folder's ``config.json`` is the encoder's config under the model type :data:`CHECKPOINT_MODEL_TYPE`
(the encoder's own type in :data:`ENCODER_MODEL_TYPE_KEY`): the classifier's head (Linear - ReLU -
Linear on the pooled feature) is no Hugging Face ``*ForSequenceClassification`` head, so plain
``transformers`` loaders must refuse the folder rather than load the encoder with a fresh random head.
:mod:`rift_fast.models.export` writes a standard folder where the head can be expressed as one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rift_fast.core.atomic_io import write_text_atomically
from rift_fast.core.safe_state import save_state, state_paths
from rift_fast.models.checkpoint_config import (
    CONFIG_FILE,
    METADATA_FILE,
    SPLIT_DIGESTS_FILE,
    checkpoint_config,
    encoder_config_of,
    is_checkpoint_folder,
)
from rift_fast.models.classifier import CLASSIFIER_HIDDEN, RobustClassifier
from rift_fast.models.lora import LoraOptions, is_adapter_weight
from rift_fast.models.pooling import POOLER

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHECKPOINT_FORMAT = 2  # 2: trainer state in trainer_state.safetensors + trainer_state.json (1: a pickle)
WEIGHTS_FILE = "model.safetensors"
TRAINER_STATE = "trainer_state"
LEGACY_TRAINER_STATE = "trainer_state.pt"
CLASSIFIER_PREFIX = "model."  # weights of the classifier; other prefixes are a method's own modules
HEAD_FIRST_WEIGHT = "classifier.0.weight"  # [head width, H]: the head's first layer in the classifier's state


def save_model_folder(
    folder: Path,
    weights: dict[str, torch.Tensor],
    encoder_config: Any,
    tokenizer: PreTrainedTokenizerBase,
    metadata: dict,
    trainer_state: dict | None = None,
    split_digests: dict[str, list[str]] | None = None,
) -> None:
    """Write a loadable model folder atomically.

    ``weights``: the state dict to keep (the classifier's under ``model.``); ``encoder_config``: the
    encoder's transformers config (written as :func:`checkpoint_config`); ``metadata``: the JSON record
    (``num_classes`` is required to load it); ``trainer_state``: tensors and JSON values (see
    :mod:`rift_fast.core.safe_state`), or None; ``split_digests``: role -> text digests of the run's
    splits (:func:`rift_fast.data.split_overlap.split_digests`), or None. The
    folder is staged beside its destination and swapped in with renames; a run killed midway leaves
    the previous folder (or ``<folder>.old``, which :func:`resolve_checkpoint` also reads).
    """
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(staging / WEIGHTS_FILE))
    config_json = json.dumps(checkpoint_config(encoder_config), indent=2, sort_keys=True)
    write_text_atomically(staging / CONFIG_FILE, config_json)
    tokenizer.save_pretrained(staging)
    if trainer_state is not None:
        save_state(staging, TRAINER_STATE, trainer_state)
    if split_digests is not None:
        write_text_atomically(staging / SPLIT_DIGESTS_FILE, json.dumps(split_digests, separators=(",", ":")))
    write_text_atomically(staging / METADATA_FILE, json.dumps(metadata, indent=1, sort_keys=True))
    previous = folder.with_name(folder.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        os.replace(folder, previous)
    os.replace(staging, folder)
    shutil.rmtree(previous, ignore_errors=True)


def checkpoint_dir(output_dir: str | Path, method: str, kind: str) -> Path:
    """Where a run in ``output_dir`` keeps the ``kind`` (``last`` or ``best``) checkpoint of ``method``."""
    return Path(output_dir) / method / kind


def resolve_checkpoint(folder: Path) -> Path | None:
    """``folder`` if complete, else the ``.old`` copy a killed save left, else None."""
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / METADATA_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    return None


def refuse_pickled_trainer_state(folder: Path) -> None:
    """Raises ValueError when ``folder`` holds its trainer state only as a pickle (format 1), which is
    never read (unpickling runs whatever code the file carries), and FileNotFoundError when it holds none."""
    tensor_path, json_path = state_paths(folder, TRAINER_STATE)
    if tensor_path.is_file() and json_path.is_file():
        return
    if (folder / LEGACY_TRAINER_STATE).is_file():
        raise ValueError(
            f"--resume: {folder / LEGACY_TRAINER_STATE} is a pickle (checkpoint format 1); it is not "
            "loaded because unpickling can run code from the file. Resume is possible only from "
            f"{tensor_path.name} + {json_path.name}: train again, or start from the weights alone."
        )
    raise FileNotFoundError(f"--resume: no trainer state ({tensor_path.name}, {json_path.name}) in {folder}")


def recorded_pooling(folder: Path, metadata: dict, weight_names: list[str]) -> str:
    """The pooling a checkpoint was trained with (``settings.pooling``; ``pooler`` for folders written
    before it was recorded). Raises ValueError for such an older folder whose encoder had no pooler (its
    fresh tanh layer on the first token is no longer built)."""
    pooling = metadata.get("settings", {}).get("pooling")
    if pooling is not None:
        return str(pooling)
    if any(name.startswith(f"{CLASSIFIER_PREFIX}extra_pooler.") for name in weight_names):
        raise ValueError(
            f"{folder} was saved before --pooling existed, with a fresh tanh pooler on the first token that "
            "this version no longer builds; train it again (python -m rift_fast.train --pooling cls)"
        )
    return POOLER


def _lora_options(settings: dict) -> LoraOptions | None:
    """The LoRA setup a checkpoint's settings record (None: the whole encoder was trained)."""
    if not settings.get("lora_rank"):
        return None
    return LoraOptions(
        rank=int(settings["lora_rank"]),
        alpha=float(settings["lora_alpha"]),
        dropout=float(settings["lora_dropout"]),
        targets=tuple(str(settings["lora_targets"]).split(",")),
    )


def _base_encoder(folder: Path, metadata: dict, base_model: str | None) -> nn.Module:
    """The pre-trained encoder an adapter checkpoint in ``folder`` was trained on: ``base_model``, else
    the model its settings name, with the checkpoint's config. Raises ValueError naming both when its
    weights are not the ones the adapters were trained on."""
    from transformers import AutoModel

    from rift_fast.models.sources import resolve_model_source

    base = base_model or str(metadata["settings"]["model"])
    return AutoModel.from_pretrained(resolve_model_source(base), config=encoder_config_of(folder))


def _check_base(folder: Path, metadata: dict, model: RobustClassifier, base_model: str | None) -> None:
    from rift_fast.core.digests import model_digest

    base = base_model or str(metadata["settings"]["model"])
    recorded = metadata.get("base_model_sha256")
    if recorded is not None and model_digest(model.encoder) != recorded:
        raise ValueError(
            f"{folder} holds LoRA adapters trained on the base model {metadata['settings']['model']} "
            f"(weights sha256 {recorded}); the weights of {base} differ: give the base model it was trained "
            "on (--base-model)"
        )


def load_trained_classifier(
    folder: str | Path, pooling: str | None = None, base_model: str | None = None
) -> RobustClassifier:
    """A :class:`RobustClassifier` in eval mode from a folder written by :func:`save_model_folder`, in the
    adversary space it was trained with (``settings.hull_space`` of its metadata, ``auto`` when absent)
    and with the pooling it was trained with (:func:`recorded_pooling`). ``pooling``: None or ``auto``
    accept the recorded one; another value must equal it (ValueError naming both).

    A folder of LoRA adapters (``settings.lora_rank`` > 0) holds the adapters and the heads only: they
    are loaded onto its base model, ``base_model`` (a folder or hub id) or else the one its settings
    name; ValueError when that model's weights are not the ones the adapters were trained on. Raises
    FileNotFoundError when ``folder`` is not such a folder."""
    from transformers import AutoModel

    folder = Path(folder)
    if not is_checkpoint_folder(folder):
        raise FileNotFoundError(f"{folder} is not a rift_fast checkpoint (no {METADATA_FILE})")
    metadata = json.loads((folder / METADATA_FILE).read_text())
    weights = load_file(str(folder / WEIGHTS_FILE))
    trained_pooling = recorded_pooling(folder, metadata, list(weights))
    if pooling not in (None, "auto", trained_pooling):
        raise ValueError(f"{folder} was trained with --pooling {trained_pooling}; it cannot be loaded with {pooling}")
    lora = _lora_options(metadata.get("settings", {}))
    if lora is None and base_model is not None:
        raise ValueError(f"--base-model {base_model}: {folder} holds a whole model, not LoRA adapters")
    if lora is None:
        encoder = AutoModel.from_config(encoder_config_of(folder))
    else:
        encoder = _base_encoder(folder, metadata, base_model)
    # Checkpoints written before the hull space was recorded were all BERT-like: "auto" gives their construction.
    hull_space = metadata.get("settings", {}).get("hull_space", "auto")
    state = {k[len(CLASSIFIER_PREFIX) :]: v for k, v in weights.items() if k.startswith(CLASSIFIER_PREFIX)}
    head_hidden = state[HEAD_FIRST_WEIGHT].shape[0] if HEAD_FIRST_WEIGHT in state else CLASSIFIER_HIDDEN
    model = RobustClassifier(
        encoder, metadata["num_classes"], head_hidden, hull_space=hull_space, pooling=trained_pooling
    )
    if lora is None:
        model.load_state_dict(state)
        return model.eval()
    _check_base(folder, metadata, model, base_model)
    model.use_lora(lora)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.startswith("encoder.") or is_adapter_weight(name)]
    if missing or unexpected:
        raise ValueError(f"{folder} does not match its base model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval()
