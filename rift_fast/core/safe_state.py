"""State that loads without running code: tensors in safetensors, everything else in JSON.

:func:`save_state` splits a tree of dicts, lists, tuples, numbers, strings and tensors into
``<name>.safetensors`` (each tensor under its path in the tree) and ``<name>.json`` (the rest,
with a reference where each tensor was); :func:`load_state` joins them again. Neither file can
carry code, unlike a pickle (``torch.save``), which runs whatever its author put in it when read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rift_fast.core.atomic_io import write_text_atomically

TENSOR_KEY = "__tensor__"  # {"__tensor__": name}: the tensor stored under name in the safetensors file
TUPLE_KEY = "__tuple__"  # {"__tuple__": [...]}: a tuple (JSON has only lists)
ITEMS_KEY = "__items__"  # {"__items__": [[key, value], ...]}: a dict whose keys are not all strings


def state_paths(folder: str | Path, name: str) -> tuple[Path, Path]:
    """(tensor file, JSON file) of the state ``name`` in ``folder``."""
    folder = Path(folder)
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def _split(value, path: str, tensors: dict[str, torch.Tensor]):
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {TENSOR_KEY: path}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _split(item, f"{path}.{key}", tensors) for key, item in value.items()}
        return {ITEMS_KEY: [[key, _split(item, f"{path}.{key}", tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {TUPLE_KEY: [_split(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_split(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{path}: {type(value).__name__} cannot be stored as JSON or a tensor")


def _join(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, list):
        return [_join(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if TENSOR_KEY in value:
        return tensors[value[TENSOR_KEY]]
    if TUPLE_KEY in value:
        return tuple(_join(item, tensors) for item in value[TUPLE_KEY])
    if ITEMS_KEY in value:
        return {_join(key, tensors): _join(item, tensors) for key, item in value[ITEMS_KEY]}
    return {key: _join(item, tensors) for key, item in value.items()}


def save_state(folder: str | Path, name: str, state: dict) -> None:
    """Write ``state`` as ``<name>.safetensors`` and ``<name>.json`` in ``folder``.

    Raises TypeError for a value that is neither a tensor nor JSON (an object that only pickle could store).
    """
    tensor_path, json_path = state_paths(folder, name)
    tensors: dict[str, torch.Tensor] = {}
    tree = _split(state, "state", tensors)
    save_file(tensors, str(tensor_path))
    write_text_atomically(json_path, json.dumps(tree))


def load_state(folder: str | Path, name: str) -> dict:
    """The state :func:`save_state` wrote; runs no code from the files.

    Raises FileNotFoundError when either file is missing and ValueError when one does not parse or
    the two do not match.
    """
    tensor_path, json_path = state_paths(folder, name)
    for path in (tensor_path, json_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
    try:
        tensors = load_file(str(tensor_path))
    except SafetensorError as error:
        raise ValueError(f"{tensor_path} is not a safetensors file ({error})") from None
    try:
        tree = json.loads(json_path.read_text(encoding="utf-8"))
        return _join(tree, tensors)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{json_path} is not valid JSON ({error})") from None
    except KeyError as error:
        raise ValueError(f"{json_path} names tensor {error} that {tensor_path} does not hold") from None
