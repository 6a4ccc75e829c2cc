"""build_perturbation_batch: the deduplicated model batch of an attack's candidate perturbations.

Base sequences ``token_ids`` [B, L] and M edits, four [M] int64 tensors: edit m sets position
``edit_position[m]`` of a copy of base row ``edit_example[m]`` to ``edit_token[m]``; edits sharing
``edit_group[m]`` form one query (a GA individual with several changes is one query). Groups are
0..Q-1, each with at least one edit, all of its edits on one base row. Two edits of one group at
one position must carry the same token (a repeated identical edit is allowed, different tokens are
a ValueError).

Queries are deduplicated on (base row, perturbed ids): ``query_ids`` [U, L] holds each distinct
query once, in order of first appearance (row u is the lowest group of its class and rows are
sorted by that group), ``inverse`` [Q] maps each group to its row, so ``logits[inverse]`` are the
model's answers per group, and ``query_example`` [U] is the base row of each query (gather the
attention mask with it). The C++ twin hashes rows into a hash map; the GPU backends build and hash
rows in kernels, then deduplicate with torch ops (torch.unique of the hashes, a row-equality check,
exact torch.unique(dim=0) if a hash collision ever merged different rows).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from rift_fast import _custom_ops
from rift_fast.ops.dispatch import OpBackends

KERNEL_SOURCE = "build_perturbation_batch.cuh"


class PerturbationBatch(NamedTuple):
    """Unique queries of a perturbation batch and the map back to the query groups."""

    query_ids: torch.Tensor  # [U, L] int64
    inverse: torch.Tensor  # [Q] int64: row of query_ids answering group q
    query_example: torch.Tensor  # [U] int64: base row of each query


def _first_appearance(classes: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Renumber ``classes`` [Q] by first appearance -> (inverse [Q], lowest group of each class [U], ascending)."""
    groups = torch.arange(classes.shape[0], device=classes.device)
    first = torch.full((num_classes,), classes.shape[0], dtype=torch.int64, device=classes.device)
    first.scatter_reduce_(0, classes, groups, "amin")
    order = first.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_classes, device=classes.device)
    return rank[classes], first[order]


def _deduplicate_exact(rows: torch.Tensor, group_example: torch.Tensor) -> PerturbationBatch:
    unique, classes = torch.unique(torch.cat([group_example.unsqueeze(1), rows], 1), dim=0, return_inverse=True)
    inverse, first = _first_appearance(classes, unique.shape[0])
    return PerturbationBatch(rows[first], inverse, group_example[first])


def _group_examples(edit_example: torch.Tensor, edit_group: torch.Tensor, num_groups: int) -> torch.Tensor:
    return torch.full((num_groups,), -1, dtype=torch.int64, device=edit_group.device).scatter_(
        0, edit_group, edit_example
    )


def build_perturbation_batch_reference(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
) -> PerturbationBatch:
    """Plain torch ground truth of :func:`build_perturbation_batch` (valid inputs assumed)."""
    num_groups = int(edit_group.max()) + 1 if edit_group.numel() else 0
    group_example = _group_examples(edit_example, edit_group, num_groups)
    rows = token_ids[group_example]
    rows[edit_group, edit_position] = edit_token
    if num_groups == 0:
        return PerturbationBatch(rows, group_example, group_example)
    return _deduplicate_exact(rows, group_example)


def _check_inputs(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    attention_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Raise ValueError on any invalid argument; return the base row of each query group [Q]."""
    if token_ids.dim() != 2 or token_ids.dtype != torch.int64:
        raise ValueError(f"token_ids must be [B, L] int64, got {tuple(token_ids.shape)} {token_ids.dtype}")
    edits = {
        "edit_example": edit_example,
        "edit_position": edit_position,
        "edit_token": edit_token,
        "edit_group": edit_group,
    }
    for name, tensor in edits.items():
        if tensor.dim() != 1 or tensor.dtype != torch.int64:
            raise ValueError(f"{name} must be [M] int64, got {tuple(tensor.shape)} {tensor.dtype}")
        if tensor.shape != edit_example.shape:
            raise ValueError(f"{name} has {tensor.shape[0]} edits but edit_example has {edit_example.shape[0]}")
        if tensor.device != token_ids.device:
            raise ValueError(f"{name} is on {tensor.device} but token_ids are on {token_ids.device}")
    if attention_mask is not None:
        if attention_mask.shape != token_ids.shape:
            raise ValueError(
                f"attention_mask must be [B, L] = {list(token_ids.shape)}, got {tuple(attention_mask.shape)}"
            )
        if attention_mask.device != token_ids.device:
            raise ValueError(f"attention_mask is on {attention_mask.device} but token_ids are on {token_ids.device}")
    if edit_example.numel() == 0:
        return edit_example
    batch, length = token_ids.shape
    bounds = torch.stack(torch.stack([edit_example, edit_position, edit_token, edit_group]).aminmax(dim=1))
    (example_low, position_low, token_low, group_low), (example_high, position_high, _, group_high) = bounds.tolist()
    for name, low, high, limit in (
        ("edit_example", example_low, example_high, batch),
        ("edit_position", position_low, position_high, length),
    ):
        if low < 0 or high >= limit:
            raise ValueError(f"{name} must lie in [0, {limit}), got range [{low}, {high}]")
    if token_low < 0:
        raise ValueError(f"edit_token must be >= 0, got {token_low}")
    if group_low < 0:
        raise ValueError(f"edit_group must be >= 0, got {group_low}")
    num_groups = group_high + 1
    if num_groups > edit_example.numel():  # also keeps a stray huge group id from allocating Q rows
        raise ValueError(
            f"edit_group must number the groups 0..Q-1 without gaps; got group {group_high} but only "
            f"{edit_example.numel()} edits"
        )
    group_example = _group_examples(edit_example, edit_group, num_groups)
    key, order = torch.sort(edit_group * length + edit_position, stable=True)
    tokens = edit_token[order]
    conflict = (key[1:] == key[:-1]) & (tokens[1:] != tokens[:-1])
    missing = torch.bincount(edit_group, minlength=num_groups) == 0
    split = group_example[edit_group] != edit_example
    if attention_mask is None:
        padded = torch.zeros_like(edit_example, dtype=torch.bool)
    else:
        padded = attention_mask[edit_example, edit_position] == 0
    flags = torch.stack([missing.any(), split.any(), conflict.any(), padded.any()]).tolist()
    if flags[0]:
        raise ValueError(
            f"edit_group must number the groups 0..{num_groups - 1} without gaps; group "
            f"{int(missing.nonzero()[0])} has no edit"
        )
    if flags[1]:
        bad = int(edit_group[split].min())
        rows = edit_example[edit_group == bad].tolist()
        other = next(row for row in rows if row != rows[0])
        raise ValueError(f"edit_example: group {bad} has edits on base rows {rows[0]} and {other}")
    if flags[2]:
        k = int(key[1:][conflict][0])
        raise ValueError(
            f"edit_token: group {k // length} has two edits at position {k % length} with different tokens"
        )
    if flags[3]:
        m = int(padded.nonzero()[0])
        raise ValueError(
            f"edit_position[{m}] = {int(edit_position[m])} is padding of base row "
            f"{int(edit_example[m])} (attention_mask is 0)"
        )
    return group_example


# Every backend takes the validated inputs and the base row of each group, group_example [Q].
def _build_perturbation_batch_compiled(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    group_example: torch.Tensor,
) -> PerturbationBatch:
    return PerturbationBatch(
        *_custom_ops.build_perturbation_batch(
            token_ids, edit_example, edit_position, edit_token, edit_group, group_example.shape[0]
        )
    )


def _build_perturbation_batch_cupy(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    group_example: torch.Tensor,
) -> PerturbationBatch:
    from rift_fast.ops.cupy_kernels import launch

    ids, position, token, group = (t.contiguous() for t in (token_ids, edit_position, edit_token, edit_group))
    num_groups, length = group_example.shape[0], ids.shape[1]
    rows = torch.empty(num_groups, length, dtype=torch.int64, device=ids.device)
    if num_groups == 0:
        return PerturbationBatch(rows, group_example, group_example)
    num_edits = group.numel()
    if rows.numel():
        launch(KERNEL_SOURCE, "perturbation_copy_rows", rows.numel(), (ids, group_example, rows, num_groups, length))
    launch(KERNEL_SOURCE, "perturbation_apply_edits", num_edits, (group, position, token, rows, num_edits, length))
    hashes = torch.empty(num_groups, dtype=torch.int64, device=ids.device)
    launch(KERNEL_SOURCE, "perturbation_hash_rows", num_groups * 32, (rows, group_example, hashes, num_groups, length))
    unique, classes = torch.unique(hashes, return_inverse=True)
    inverse, first = _first_appearance(classes, unique.shape[0])
    representative = first[inverse]
    if not (torch.equal(rows[representative], rows) and torch.equal(group_example[representative], group_example)):
        return _deduplicate_exact(rows, group_example)  # a 64-bit hash collision merged different rows
    return PerturbationBatch(rows[first], inverse, group_example[first])


def _build_perturbation_batch_torch(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    group_example: torch.Tensor,
) -> PerturbationBatch:
    return build_perturbation_batch_reference(token_ids, edit_example, edit_position, edit_token, edit_group)


BACKEND_TABLE = OpBackends(
    "build_perturbation_batch",
    {
        "cuda": _build_perturbation_batch_compiled,
        "cupy": _build_perturbation_batch_cupy,
        "cpp": _build_perturbation_batch_compiled,
        "reference": _build_perturbation_batch_torch,
    },
)


def build_perturbation_batch(
    token_ids: torch.Tensor,
    edit_example: torch.Tensor,
    edit_position: torch.Tensor,
    edit_token: torch.Tensor,
    edit_group: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    backend: str | None = None,
) -> PerturbationBatch:
    """Apply grouped edits [M] to copies of ``token_ids`` [B, L] rows -> deduplicated :class:`PerturbationBatch`.

    ``attention_mask`` [B, L] (optional, 0 = padding) only validates that no edit lands on padding.
    """
    group_example = _check_inputs(token_ids, edit_example, edit_position, edit_token, edit_group, attention_mask)
    return BACKEND_TABLE.run(
        token_ids.device, backend, token_ids, edit_example, edit_position, edit_token, edit_group, group_example
    )
