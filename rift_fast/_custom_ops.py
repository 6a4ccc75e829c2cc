"""Thin Python layer over the compiled ops of ``rift_fast._C`` (torch.ops.rift_fast.*).

Use the op modules of :mod:`rift_fast.ops` instead: they validate inputs, hold the torch
reference and choose the backend. Functions here assume the extension is built.
"""

import torch

from rift_fast.ops.dispatch import compiled_extension


def _ops():
    if compiled_extension() is None:
        raise ImportError("rift_fast._C is not built; run `pip install --no-build-isolation -e .`")
    return torch.ops.rift_fast


def gather_neighbours(token_ids: torch.Tensor, neighbour_table: torch.Tensor) -> torch.Tensor:
    """[B, L] int64 ids, [V, K] neighbour table -> [B, L, 1 + K] int64 (slot 0 = the token)."""
    return _ops().gather_neighbours(token_ids, neighbour_table)
