"""substitution_scores: first-order scores of every synonym substitution, fused with their selection.

For ``token_ids`` [B, L], a neighbour table [V, K] (-1 pads, row v = synonyms of token v, see
:func:`rift_fast.ops.gather_neighbours.gather_neighbours`), the embedding table E [V', D] and
``grad`` [B, L, D] (loss gradient w.r.t. the input embeddings, same dtype as E), the score of slot
k at position l is the first-order change of the loss when the token is replaced by candidate
``c = neighbour_table[token_ids[b, l], k]``::

    scores[b, l, k] = (E[c] - E[token_ids[b, l]]) . grad[b, l]      (float32, fp32 accumulate)

and -inf where the slot is -1 or ``attack_mask[b, l]`` is False. Slot k is table column k (the
original token is not a slot: it is slot k + 1 of gather_neighbours). Selection, the same on every
backend: higher score first, NaN above +inf (NaN in ``grad`` propagates), ties to the lowest
position then the lowest slot; -inf entries are never selected: ``best_slot`` is then -1 and the
top-k rows are padded with (-inf, -1, -1). The fused backends never build [B, L, K, D].
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from rift_fast import _custom_ops
from rift_fast.ops.dispatch import OpBackends

KERNEL_SOURCE = "substitution_scores.cuh"
_KERNEL_DTYPE = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
_NEG_INF = float("-inf")


class SubstitutionScores(NamedTuple):
    """Scores of every slot and the selected substitutions (positions/slots are -1 where none)."""

    scores: torch.Tensor  # [B, L, K] float32
    best_score: torch.Tensor  # [B, L] float32, best slot of each position
    best_slot: torch.Tensor  # [B, L] int64
    top_score: torch.Tensor  # [B, topk] float32, best (position, slot) pairs of each sequence, descending
    top_position: torch.Tensor  # [B, topk] int64
    top_slot: torch.Tensor  # [B, topk] int64


def _rank_descending(values: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` largest of ``values`` [..., N] (stable: lowest index on ties; NaN first), -inf/-1 padded."""
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices[..., :count]
    top = values.gather(-1, order)
    index = torch.where(top == _NEG_INF, -1, order)
    missing = count - order.shape[-1]
    if missing > 0:
        top = torch.nn.functional.pad(top, (0, missing), value=_NEG_INF)
        index = torch.nn.functional.pad(index, (0, missing), value=-1)
    return top, index


def substitution_scores_reference(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None = None,
    topk: int = 1,
) -> SubstitutionScores:
    """Plain torch ground truth of :func:`substitution_scores` (builds the [B, L, K, D] differences)."""
    candidates = neighbour_table.long()[token_ids]  # [B, L, K]
    valid = candidates >= 0
    if attack_mask is not None:
        valid &= attack_mask.unsqueeze(-1)
    difference = embeddings[candidates.clamp(min=0)].float() - embeddings[token_ids].float().unsqueeze(2)
    scores = torch.einsum("blkd,bld->blk", difference, grad.float()).masked_fill(~valid, _NEG_INF)
    best_score, best_slot = _rank_descending(scores, 1)
    num_slots = scores.shape[-1]
    top_score, flat = _rank_descending(scores.flatten(1), topk)
    top_position = torch.where(flat >= 0, flat.div(num_slots, rounding_mode="floor"), -1)
    top_slot = torch.where(flat >= 0, flat % num_slots, -1)
    return SubstitutionScores(scores, best_score.squeeze(-1), best_slot.squeeze(-1), top_score, top_position, top_slot)


def _check_metadata(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None,
    topk: int,
) -> None:
    if token_ids.dim() != 2 or token_ids.dtype != torch.int64:
        raise ValueError(f"token_ids must be [B, L] int64, got {tuple(token_ids.shape)} {token_ids.dtype}")
    if neighbour_table.dim() != 2 or neighbour_table.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"neighbour_table must be [V, K] int32/int64, got {tuple(neighbour_table.shape)} {neighbour_table.dtype}"
        )
    if neighbour_table.shape[1] == 0:
        raise ValueError("neighbour_table has K=0 columns: there is no candidate slot")
    if embeddings.dim() != 2 or embeddings.dtype not in _KERNEL_DTYPE:
        raise ValueError(
            f"embeddings must be [V, D] float32/bfloat16/float16, got {tuple(embeddings.shape)} {embeddings.dtype}"
        )
    expected = (*token_ids.shape, embeddings.shape[1])
    if tuple(grad.shape) != expected or grad.dtype != embeddings.dtype:
        raise ValueError(
            f"grad must be {list(expected)} of dtype {embeddings.dtype} (the embeddings' dtype), got "
            f"{tuple(grad.shape)} {grad.dtype}"
        )
    if attack_mask is not None and (attack_mask.shape != token_ids.shape or attack_mask.dtype != torch.bool):
        raise ValueError(
            f"attack_mask must be [B, L] = {list(token_ids.shape)} bool, got {tuple(attack_mask.shape)} "
            f"{attack_mask.dtype}"
        )
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 0:
        raise ValueError(f"topk must be an int >= 0, got {topk!r}")
    named = {"neighbour_table": neighbour_table, "embeddings": embeddings, "grad": grad, "attack_mask": attack_mask}
    for name, tensor in named.items():
        if tensor is not None and tensor.device != token_ids.device:
            raise ValueError(f"{name} is on {tensor.device} but token_ids are on {token_ids.device}")


def _check_id_ranges(token_ids: torch.Tensor, neighbour_table: torch.Tensor, embeddings: torch.Tensor) -> None:
    """Data-dependent (one host synchronisation); the compiled op checks the same ranges itself."""
    if token_ids.numel() == 0:
        return
    rows = min(neighbour_table.shape[0], embeddings.shape[0])
    if rows == 0:
        raise ValueError("token_ids must lie in [0, 0): neighbour_table or embeddings has no row")
    ranges = [*torch.aminmax(token_ids), *(bound.long() for bound in torch.aminmax(neighbour_table))]
    ids_low, ids_high, table_low, table_high = torch.stack(ranges).tolist()  # one synchronisation on a GPU
    if ids_low < 0 or ids_high >= rows:
        raise ValueError(
            f"token_ids must lie in [0, {rows}) (rows of neighbour_table and embeddings), "
            f"got range [{ids_low}, {ids_high}]"
        )
    if table_low < -1 or table_high >= embeddings.shape[0]:
        raise ValueError(
            f"neighbour_table entries must lie in [-1, {embeddings.shape[0]}), got range [{table_low}, {table_high}]"
        )


def _substitution_scores_compiled(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None,
    topk: int,
) -> SubstitutionScores:
    return SubstitutionScores(
        *_custom_ops.substitution_scores(token_ids, neighbour_table, embeddings, grad, attack_mask, topk)
    )


def _substitution_scores_cupy(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None,
    topk: int,
) -> SubstitutionScores:
    from rift_fast.ops.cupy_kernels import launch

    ids, table, emb, g = (t.contiguous() for t in (token_ids, neighbour_table, embeddings, grad))
    batch, length = ids.shape
    num_slots, dim = table.shape[1], emb.shape[1]
    device = ids.device
    scores = torch.empty(batch, length, num_slots, dtype=torch.float32, device=device)
    best_score = torch.empty(batch, length, dtype=torch.float32, device=device)
    best_slot = torch.empty(batch, length, dtype=torch.int64, device=device)
    top_score = torch.empty(batch, topk, dtype=torch.float32, device=device)
    top_position = torch.empty(batch, topk, dtype=torch.int64, device=device)
    top_slot = torch.empty(batch, topk, dtype=torch.int64, device=device)
    if scores.numel():
        vectorised = int(dim % (16 // emb.element_size()) == 0 and emb.data_ptr() % 16 == 0 and g.data_ptr() % 16 == 0)
        kernel = f"substitution_scores_{_KERNEL_DTYPE[emb.dtype]}_{'i64' if table.dtype == torch.int64 else 'i32'}"
        if emb.element_size() == 2:  # CuPy has no bfloat16: the kernels read the raw 16-bit words
            emb, g = emb.view(torch.int16), g.view(torch.int16)
        mask = 0 if attack_mask is None else attack_mask.contiguous()  # 0 passes a null pointer
        launch(
            KERNEL_SOURCE,
            kernel,
            scores.numel() * 32,
            (ids, table, emb, g, mask, scores, ids.numel(), num_slots, dim, vectorised),
        )
        launch(
            KERNEL_SOURCE,
            "substitution_best_slot",
            ids.numel(),
            (scores, best_score, best_slot, ids.numel(), num_slots),
        )
    if top_score.numel():
        scratch = torch.empty(batch, topk, dtype=torch.int64, device=device)
        launch(
            KERNEL_SOURCE,
            "substitution_top_k",
            batch * 256,
            (scores, top_score, top_position, top_slot, scratch, length * num_slots, num_slots, topk),
        )
    return SubstitutionScores(scores, best_score, best_slot, top_score, top_position, top_slot)


BACKEND_TABLE = OpBackends(
    "substitution_scores",
    {
        "cuda": _substitution_scores_compiled,
        "cupy": _substitution_scores_cupy,
        "cpp": _substitution_scores_compiled,
        "reference": substitution_scores_reference,
    },
)


def substitution_scores(
    token_ids: torch.Tensor,
    neighbour_table: torch.Tensor,
    embeddings: torch.Tensor,
    grad: torch.Tensor,
    attack_mask: torch.Tensor | None = None,
    topk: int = 1,
    backend: str | None = None,
) -> SubstitutionScores:
    """Score every (position, slot) substitution of ``token_ids`` [B, L] and select the best ones.

    ``neighbour_table`` [V, K] int32/int64, ``embeddings`` [V', D] float32/bfloat16/float16, ``grad``
    [B, L, D] (embeddings' dtype), ``attack_mask`` [B, L] bool (False: position may not change) ->
    :class:`SubstitutionScores` with ``topk`` (position, slot) pairs per sequence. Out-of-range ids
    raise ValueError before any launch; under ``torch.compile`` that data-dependent check is left to
    the compiled op (a RuntimeError), so the graph holds no host synchronisation.
    """
    _check_metadata(token_ids, neighbour_table, embeddings, grad, attack_mask, topk)
    if not torch.compiler.is_compiling():
        _check_id_ranges(token_ids, neighbour_table, embeddings)
    return BACKEND_TABLE.run(token_ids.device, backend, token_ids, neighbour_table, embeddings, grad, attack_mask, topk)
