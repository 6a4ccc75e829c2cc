"""gather_neighbours: the substitution slots of every token of a batch.

``token_ids`` [B, L] int64 and a neighbour table [V, K] (int32/int64, -1 pads; row v lists the
synonyms of token v, see :meth:`rift_fast.synonyms.SynonymIndex.vocab_table`) give
``[B, L, 1 + K]`` int64 substitution ids: slot 0 is the token itself, slots 1..K its synonyms,
-1 where a slot is empty. The convex-hull adversary and the gradient-guided attack start here.
"""

from __future__ import annotations

import torch

from rift_fast import _custom_ops
from rift_fast.ops.dispatch import OpBackends

KERNEL_SOURCE = "gather_neighbours.cuh"


def gather_neighbours_reference(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> torch.Tensor:
    """Plain torch ground truth of :func:`gather_neighbours`."""
    neighbours = neighbour_table.long()[token_ids]
    return torch.cat([token_ids.unsqueeze(-1), neighbours], dim=-1)


def _check_metadata(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> None:
    if token_ids.dim() != 2:
        raise ValueError(f"token_ids must be [B, L], got shape {tuple(token_ids.shape)}")
    if neighbour_table.dim() != 2:
        raise ValueError(f"neighbour_table must be [V, K], got shape {tuple(neighbour_table.shape)}")
    if token_ids.dtype != torch.int64:
        raise ValueError(f"token_ids must be int64, got {token_ids.dtype}")
    if neighbour_table.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"neighbour_table must be int32 or int64, got {neighbour_table.dtype}")
    if token_ids.device != neighbour_table.device:
        raise ValueError(f"token_ids are on {token_ids.device} but neighbour_table is on {neighbour_table.device}")


def _check_id_range(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> None:
    """Data-dependent (a host synchronisation); the compiled op checks the same range itself."""
    if token_ids.numel():
        low, high = int(token_ids.min()), int(token_ids.max())
        if low < 0 or high >= neighbour_table.shape[0]:
            raise ValueError(f"token ids must lie in [0, {neighbour_table.shape[0]}), got range [{low}, {high}]")


def _gather_neighbours_cupy(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> torch.Tensor:
    from rift_fast.ops.cupy_kernels import launch

    ids = token_ids.contiguous()
    table = neighbour_table.contiguous()
    out = torch.empty((*ids.shape, table.shape[1] + 1), dtype=torch.int64, device=ids.device)
    if out.numel():
        kernel = "gather_neighbours_i64" if table.dtype == torch.int64 else "gather_neighbours_i32"
        launch(KERNEL_SOURCE, kernel, out.numel(), (ids, table, out, ids.numel(), table.shape[1]))
    return out


BACKEND_TABLE = OpBackends(
    "gather_neighbours",
    {
        "cuda": _custom_ops.gather_neighbours,
        "cupy": _gather_neighbours_cupy,
        "cpp": _custom_ops.gather_neighbours,
        "reference": gather_neighbours_reference,
    },
)


def gather_neighbours(
    token_ids: torch.Tensor, neighbour_table: torch.Tensor, backend: str | None = None
) -> torch.Tensor:
    """[B, L] int64 ids, [V, K] neighbour table -> [B, L, 1 + K] int64 substitution ids.

    Out-of-range ids raise ValueError before any launch; under ``torch.compile`` that data-dependent
    check is left to the compiled op (a RuntimeError), so the graph holds no host synchronisation.
    """
    _check_metadata(token_ids, neighbour_table)
    if not torch.compiler.is_compiling():
        _check_id_range(token_ids, neighbour_table)
    return BACKEND_TABLE.run(token_ids.device, backend, token_ids, neighbour_table)
