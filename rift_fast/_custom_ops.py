"""Thin Python layer over the compiled ops of ``rift_fast._C`` (torch.ops.rift_fast.*).

This module loads the extension (when it was built) and registers the fake (meta) kernel of every
compiled op, so ``torch.compile`` and ``torch.library.opcheck`` can trace them. It imports nothing
of ``rift_fast.ops``: the op modules there import it, never the reverse.

Use the op modules of :mod:`rift_fast.ops` instead of the functions here: they validate inputs,
hold the torch reference and choose the backend. Functions here assume the extension is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import torch

LIBRARY = "rift_fast"


def _load_extension() -> ModuleType | None:
    try:
        return importlib.import_module("rift_fast._C")  # importing registers torch.ops.rift_fast.*
    except ImportError:
        return None


EXTENSION = _load_extension()


def compiled_op_available(op_name: str, device: torch.device) -> bool:
    """Whether ``torch.ops.rift_fast.<op_name>`` has a kernel for ``device``'s type."""
    if EXTENSION is None:
        return False
    try:
        handle = getattr(torch.ops.rift_fast, op_name)
    except (AttributeError, RuntimeError):
        return False
    key = "CUDA" if device.type == "cuda" else "CPU"
    return torch._C._dispatch_has_kernel_for_dispatch_key(handle.default.name(), key)


def _ops() -> torch._ops._OpNamespace:
    if EXTENSION is None:
        raise ImportError("rift_fast._C is not built; run `pip install --no-build-isolation -e .`")
    return torch.ops.rift_fast


def gather_neighbours(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> torch.Tensor:
    """[B, L] int64 ids, [V, K] neighbour table -> [B, L, 1 + K] int64 (slot 0 = the token)."""
    return _ops().gather_neighbours(token_ids, neighbour_table)


def substitution_scores(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None,
    topk: int,
) -> tuple[torch.Tensor, ...]:
    """-> (scores [B, L, K], best_score [B, L], best_slot [B, L], top_score, top_position, top_slot [B, topk])."""
    return _ops().substitution_scores(token_ids, neighbour_table, embeddings, grad, attack_mask, topk)


def build_perturbation_batch(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    num_groups: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (query_ids [U, L] int64, inverse [num_groups] int64, query_example [U] int64)."""
    return _ops().build_perturbation_batch(token_ids, edit_example, edit_position, edit_token, edit_group, num_groups)


def _gather_neighbours_fake(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> torch.Tensor:
    return token_ids.new_empty((*token_ids.shape, neighbour_table.shape[1] + 1))


def _substitution_scores_fake(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None,
    topk: int,
) -> tuple[torch.Tensor, ...]:
    batch, length = token_ids.shape
    per_slot, per_position, selected = (batch, length, neighbour_table.shape[1]), (batch, length), (batch, topk)
    return (
        token_ids.new_empty(per_slot, dtype=torch.float32),
        token_ids.new_empty(per_position, dtype=torch.float32),
        token_ids.new_empty(per_position),
        token_ids.new_empty(selected, dtype=torch.float32),
        token_ids.new_empty(selected),
        token_ids.new_empty(selected),
    )


def _build_perturbation_batch_fake(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    num_groups: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    num_unique = torch.library.get_ctx().new_dynamic_size()  # how many queries stay after de-duplication
    return (
        token_ids.new_empty((num_unique, token_ids.shape[1])),
        token_ids.new_empty((num_groups,)),
        token_ids.new_empty((num_unique,)),
    )


FAKE_KERNELS: dict[str, Callable[..., object]] = {
    "gather_neighbours": _gather_neighbours_fake,
    "substitution_scores": _substitution_scores_fake,
    "build_perturbation_batch": _build_perturbation_batch_fake,
}

if EXTENSION is not None:
    for _op_name, _fake in FAKE_KERNELS.items():
        torch.library.register_fake(f"{LIBRARY}::{_op_name}", _fake)
