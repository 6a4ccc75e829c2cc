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


def substitution_scores(token_ids: torch.Tensor, neighbour_table: torch.Tensor, embeddings: torch.Tensor,
                        grad: torch.Tensor, attack_mask: torch.Tensor | None, topk: int) -> tuple[torch.Tensor, ...]:
    """-> (scores [B, L, K], best_score [B, L], best_slot [B, L], top_score, top_position, top_slot [B, topk])."""
    return _ops().substitution_scores(token_ids, neighbour_table, embeddings, grad, attack_mask, topk)


def build_perturbation_batch(token_ids: torch.Tensor, edit_example: torch.Tensor, edit_position: torch.Tensor,
                             edit_token: torch.Tensor, edit_group: torch.Tensor,
                             num_groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (query_ids [U, L] int64, inverse [num_groups] int64, query_example [U] int64)."""
    return _ops().build_perturbation_batch(token_ids, edit_example, edit_position, edit_token, edit_group, num_groups)
