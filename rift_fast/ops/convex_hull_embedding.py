"""convex_hull_embedding: the input embedding of the ASCC adversary of RIFT (Dong et al., 2021).

Every position ``(b, l)`` holds ``K`` substitution slots ``sub_ids[b, l, :]`` (slot 0 = the original
word, -1 = empty slot) and convex weights ``weights[b, l, :]``. The op returns the convex
combination of the FULL embedding-layer output of each slot::

    x_k        = word_emb[sub_ids[b, l, k]] + pos_emb[position_ids[b, l]] + type_emb[token_type_ids[b, l]]
    out[b, l]  = sum_k weights[b, l, k] * LayerNorm(x_k)        # LayerNorm: biased variance, eps, affine

Empty slots (id -1) count with weight 0 and are never read from the table; a position whose slots
are all empty gets a zero vector. The weights are used as given (normalising them is the caller's
business).

Backends: ``triton`` (the GPU, or the CPU under ``TRITON_INTERPRET=1``) and ``reference`` (plain
torch; builds the [B, L, K, D] slot embeddings). The Triton path never builds [B, L, K, D]: one
program handles a block of positions, loops over the K slots and keeps only [rows, D] tiles; it
computes in float32 (float64 for float64 tables) and keeps the per-slot LayerNorm statistics
([B, L, K] float32) for the backward, which recomputes the normalised slots and scatters the table
gradients with atomic adds into float32 buffers (so table gradients are not bitwise deterministic
on a GPU). The reference gathers rows with ``F.embedding``, whose CPU backward sums repeated ids in a
fixed order: advanced indexing's (``index_put_`` with accumulation) depends on the thread schedule, and
made whole ASCC and RIFT trainings differ from run to run on a 2-thread CPU.

No fused entropy regulariser is offered: it lives on the [B, L, K] weights, which are D times
smaller than this op's traffic, so torch ops on them cost nothing worth fusing.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from rift_fast.ops.dispatch import OpBackends

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: the reference backend serves every call without it
    triton = None

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
_ID_DTYPES = (torch.int32, torch.int64)


def convex_hull_embedding_reference(
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    word_emb: torch.Tensor,
    pos_emb: torch.Tensor,
    type_emb: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-12,
    position_ids: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain-torch ground truth (differentiable by autograd); arguments as :func:`convex_hull_embedding`."""
    batch, length, _ = sub_ids.shape
    if position_ids is None:
        position_ids = torch.arange(length, device=sub_ids.device).expand(batch, length)
    if token_type_ids is None:
        token_type_ids = torch.zeros((batch, length), dtype=torch.long, device=sub_ids.device)
    valid = sub_ids >= 0
    base = F.embedding(position_ids, pos_emb) + F.embedding(token_type_ids, type_emb)  # [B, L, D]
    slots = F.embedding(sub_ids.clamp_min(0), word_emb) + base.unsqueeze(2)  # [B, L, K, D]
    normed = F.layer_norm(slots, (word_emb.shape[1],), ln_weight, ln_bias, eps)
    hull = (weights.masked_fill(~valid, 0).unsqueeze(-1) * normed).sum(dim=2)
    return hull.to(word_emb.dtype)


# The @triton.jit kernels below keep their parameters unannotated: Triton reads a jit parameter's
# annotation as a type hint (tl.constexpr, a pointer or scalar type) and would change how the kernel is
# specialised and compiled. They are exempt from mypy's disallow_untyped_defs by a targeted
# ``# type: ignore[no-untyped-def]`` on each def line.
if triton is not None:

    @triton.jit
    def _row_setup(  # type: ignore[no-untyped-def]
        rows_start,
        N,
        L,
        D,
        pid_ptr,
        tid_ptr,
        pos_ptr,
        type_ptr,
        pid_sb,
        pid_sl,
        tid_sb,
        tid_sl,
        pos_sp,
        pos_sd,
        type_st,
        type_sd,
        BLOCK_R: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CDTYPE: tl.constexpr,
    ):
        """Rows of one block, their (b, l), masks, position / type ids and pos_emb + type_emb [BLOCK_R, BLOCK_D]."""
        rows = (rows_start + tl.arange(0, BLOCK_R)).to(tl.int64)
        mask_r = rows < N
        b = rows // L
        l = rows % L
        offs_d = tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        mask = mask_r[:, None] & mask_d[None, :]
        p = tl.load(pid_ptr + b * pid_sb + l * pid_sl, mask=mask_r, other=0).to(tl.int64)
        t = tl.load(tid_ptr + b * tid_sb + l * tid_sl, mask=mask_r, other=0).to(tl.int64)
        pt = tl.load(pos_ptr + p[:, None] * pos_sp + offs_d[None, :] * pos_sd, mask=mask, other=0.0).to(CDTYPE)
        pt += tl.load(type_ptr + t[:, None] * type_st + offs_d[None, :] * type_sd, mask=mask, other=0.0).to(CDTYPE)
        return rows, mask_r, b, l, offs_d, mask_d, mask, p, t, pt

    @triton.jit
    def _load_slot(  # type: ignore[no-untyped-def]
        k,
        b,
        l,
        mask_r,
        mask_d,
        offs_d,
        pt,
        w_ptr,
        ids_ptr,
        word_ptr,
        w_sb,
        w_sl,
        w_sk,
        ids_sb,
        ids_sl,
        ids_sk,
        word_sv,
        word_sd,
        CDTYPE: tl.constexpr,
    ):
        """Slot k of every row: id (int64), validity, weight (0 if empty or past N) and x = word + pos + type."""
        idx = tl.load(ids_ptr + b * ids_sb + l * ids_sl + k * ids_sk, mask=mask_r, other=-1).to(tl.int64)
        valid = idx >= 0
        w = tl.load(w_ptr + b * w_sb + l * w_sl + k * w_sk, mask=valid, other=0.0).to(CDTYPE)
        x = (
            tl.load(
                word_ptr + idx[:, None] * word_sv + offs_d[None, :] * word_sd,
                mask=valid[:, None] & mask_d[None, :],
                other=0.0,
            ).to(CDTYPE)
            + pt
        )
        return idx, valid, w, x

    @triton.jit
    def _fwd_kernel(  # type: ignore[no-untyped-def]
        w_ptr,
        ids_ptr,
        word_ptr,
        pos_ptr,
        type_ptr,
        lnw_ptr,
        lnb_ptr,
        pid_ptr,
        tid_ptr,
        out_ptr,
        mean_ptr,
        rstd_ptr,
        N,
        L,
        K,
        D,
        eps,
        w_sb,
        w_sl,
        w_sk,
        ids_sb,
        ids_sl,
        ids_sk,
        word_sv,
        word_sd,
        pos_sp,
        pos_sd,
        type_st,
        type_sd,
        lnw_s,
        lnb_s,
        pid_sb,
        pid_sl,
        tid_sb,
        tid_sl,
        BLOCK_R: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CDTYPE: tl.constexpr,
        LAYER_NORM: tl.constexpr,
    ):
        """out[r] = gamma * sum_k w_k xhat_k + beta * sum_k w_k for BLOCK_R rows (saving each slot's mean
        and rstd); without LAYER_NORM, out[r] = sum_k w_k x_k."""
        rows, mask_r, b, l, offs_d, mask_d, mask, _p, _t, pt = _row_setup(
            tl.program_id(0) * BLOCK_R,
            N,
            L,
            D,
            pid_ptr,
            tid_ptr,
            pos_ptr,
            type_ptr,
            pid_sb,
            pid_sl,
            tid_sb,
            tid_sl,
            pos_sp,
            pos_sd,
            type_st,
            type_sd,
            BLOCK_R,
            BLOCK_D,
            CDTYPE,
        )
        acc = tl.zeros((BLOCK_R, BLOCK_D), dtype=CDTYPE)
        wsum = tl.zeros((BLOCK_R,), dtype=CDTYPE)
        for k in range(K):
            _idx, _valid, w, x = _load_slot(
                k,
                b,
                l,
                mask_r,
                mask_d,
                offs_d,
                pt,
                w_ptr,
                ids_ptr,
                word_ptr,
                w_sb,
                w_sl,
                w_sk,
                ids_sb,
                ids_sl,
                ids_sk,
                word_sv,
                word_sd,
                CDTYPE,
            )
            if LAYER_NORM:
                mean = tl.sum(x, axis=1) / D
                xc = tl.where(mask_d[None, :], x - mean[:, None], 0.0)
                rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + eps)
                acc += (w * rstd)[:, None] * xc
                wsum += w
                tl.store(mean_ptr + rows * K + k, mean, mask=mask_r)
                tl.store(rstd_ptr + rows * K + k, rstd, mask=mask_r)
            else:
                acc += w[:, None] * x
        if LAYER_NORM:
            gamma = tl.load(lnw_ptr + offs_d * lnw_s, mask=mask_d, other=0.0).to(CDTYPE)
            beta = tl.load(lnb_ptr + offs_d * lnb_s, mask=mask_d, other=0.0).to(CDTYPE)
            out = acc * gamma[None, :] + wsum[:, None] * beta[None, :]
        else:
            out = acc
        tl.store(out_ptr + rows[:, None] * D + offs_d[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _bwd_kernel(  # type: ignore[no-untyped-def]
        gout_ptr,
        w_ptr,
        ids_ptr,
        word_ptr,
        pos_ptr,
        type_ptr,
        lnw_ptr,
        lnb_ptr,
        pid_ptr,
        tid_ptr,
        mean_ptr,
        rstd_ptr,
        dw_ptr,
        dword_ptr,
        dpos_ptr,
        dtype_ptr,
        dlnw_ptr,
        dlnb_ptr,
        N,
        L,
        K,
        D,
        w_sb,
        w_sl,
        w_sk,
        ids_sb,
        ids_sl,
        ids_sk,
        word_sv,
        word_sd,
        pos_sp,
        pos_sd,
        type_st,
        type_sd,
        lnw_s,
        lnb_s,
        pid_sb,
        pid_sl,
        tid_sb,
        tid_sl,
        BLOCK_R: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CDTYPE: tl.constexpr,
        WEIGHT_GRAD: tl.constexpr,
        WORD_GRAD: tl.constexpr,
        POS_GRAD: tl.constexpr,
        TYPE_GRAD: tl.constexpr,
        LN_GRAD: tl.constexpr,
        LAYER_NORM: tl.constexpr,
    ):
        """Gradients of BLOCK_R rows: d_weights stored, table and LayerNorm-parameter gradients atomically
        added (without LAYER_NORM: d_weights and the word-table gradient only)."""
        rows, mask_r, b, l, offs_d, mask_d, mask, p, t, pt = _row_setup(
            tl.program_id(0) * BLOCK_R,
            N,
            L,
            D,
            pid_ptr,
            tid_ptr,
            pos_ptr,
            type_ptr,
            pid_sb,
            pid_sl,
            tid_sb,
            tid_sl,
            pos_sp,
            pos_sd,
            type_st,
            type_sd,
            BLOCK_R,
            BLOCK_D,
            CDTYPE,
        )
        g = tl.load(gout_ptr + rows[:, None] * D + offs_d[None, :], mask=mask, other=0.0).to(CDTYPE)
        gamma = tl.load(lnw_ptr + offs_d * lnw_s, mask=mask_d, other=0.0).to(CDTYPE)
        beta = tl.load(lnb_ptr + offs_d * lnb_s, mask=mask_d, other=0.0).to(CDTYPE)
        gy = g * gamma[None, :]  # dL/dxhat, the same for every slot
        g_beta = tl.sum(g * beta[None, :], axis=1)  # <g, beta>
        gy_mean = tl.sum(gy, axis=1) / D
        dpt = tl.zeros((BLOCK_R, BLOCK_D), dtype=CDTYPE)  # sum_k dx_k: the gradient of pos + type
        s_acc = tl.zeros((BLOCK_R, BLOCK_D), dtype=CDTYPE)  # sum_k w_k xhat_k
        wsum = tl.zeros((BLOCK_R,), dtype=CDTYPE)
        for k in range(K):
            idx, valid, w, x = _load_slot(
                k,
                b,
                l,
                mask_r,
                mask_d,
                offs_d,
                pt,
                w_ptr,
                ids_ptr,
                word_ptr,
                w_sb,
                w_sl,
                w_sk,
                ids_sb,
                ids_sl,
                ids_sk,
                word_sv,
                word_sd,
                CDTYPE,
            )
            if LAYER_NORM:
                mean = tl.load(mean_ptr + rows * K + k, mask=mask_r, other=0.0)
                rstd = tl.load(rstd_ptr + rows * K + k, mask=mask_r, other=0.0)
                xhat = tl.where(mask_d[None, :], (x - mean[:, None]) * rstd[:, None], 0.0)
                gy_xhat = tl.sum(gy * xhat, axis=1)
                if WEIGHT_GRAD:
                    dw = tl.where(valid, gy_xhat + g_beta, 0.0)
                    tl.store(dw_ptr + rows * K + k, dw.to(dw_ptr.dtype.element_ty), mask=mask_r)
                if LN_GRAD:
                    s_acc += w[:, None] * xhat
                    wsum += w
                if WORD_GRAD or POS_GRAD or TYPE_GRAD:
                    dx = (w * rstd)[:, None] * (gy - gy_mean[:, None] - xhat * (gy_xhat / D)[:, None])
                    if WORD_GRAD:
                        tl.atomic_add(
                            dword_ptr + idx[:, None] * D + offs_d[None, :], dx, mask=valid[:, None] & mask_d[None, :]
                        )
                    dpt += dx
            else:
                if WEIGHT_GRAD:
                    dw = tl.where(valid, tl.sum(g * x, axis=1), 0.0)
                    tl.store(dw_ptr + rows * K + k, dw.to(dw_ptr.dtype.element_ty), mask=mask_r)
                if WORD_GRAD:
                    tl.atomic_add(
                        dword_ptr + idx[:, None] * D + offs_d[None, :],
                        w[:, None] * g,
                        mask=valid[:, None] & mask_d[None, :],
                    )
        if POS_GRAD:
            tl.atomic_add(dpos_ptr + p[:, None] * D + offs_d[None, :], dpt, mask=mask)
        if TYPE_GRAD:
            tl.atomic_add(dtype_ptr + t[:, None] * D + offs_d[None, :], dpt, mask=mask)
        if LN_GRAD:
            tl.atomic_add(dlnw_ptr + offs_d, tl.sum(g * s_acc, axis=0), mask=mask_d)
            tl.atomic_add(dlnb_ptr + offs_d, tl.sum(g * wsum[:, None], axis=0), mask=mask_d)


def _launch_config(hidden: int, dtype: torch.dtype) -> dict[str, Any]:
    """BLOCK_D covers a whole row; BLOCK_R rows per program keep a tile near 2048 elements."""
    block_d = triton.next_power_of_2(hidden)
    block_r = max(1, min(16, 2048 // block_d))
    return {
        "BLOCK_R": block_r,
        "BLOCK_D": block_d,
        "CDTYPE": tl.float64 if dtype == torch.float64 else tl.float32,
        "num_warps": 4 if block_r * block_d <= 1024 else 8,
    }


def _strides(
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    word_emb: torch.Tensor,
    pos_emb: torch.Tensor,
    type_emb: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
) -> tuple[int, ...]:
    return (
        *weights.stride(),
        *sub_ids.stride(),
        *word_emb.stride(),
        *pos_emb.stride(),
        *type_emb.stride(),
        ln_weight.stride(0),
        ln_bias.stride(0),
        *position_ids.stride(),
        *token_type_ids.stride(),
    )


class ConvexHullEmbeddingFunction(torch.autograd.Function):
    """Triton forward/backward; inputs are assumed validated and the ids resolved to [B, L] by the public op.
    ``layer_norm=False`` serves :func:`convex_hull_word_embedding` (zero position / type tables given)."""

    @staticmethod
    def forward(
        ctx: Any,
        weights: torch.Tensor,
        sub_ids: torch.Tensor,
        word_emb: torch.Tensor,
        pos_emb: torch.Tensor,
        type_emb: torch.Tensor,
        ln_weight: torch.Tensor,
        ln_bias: torch.Tensor,
        eps: float,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        layer_norm: bool,
    ) -> torch.Tensor:
        batch, length, slots = sub_ids.shape
        rows, hidden = batch * length, word_emb.shape[1]
        meta = _launch_config(hidden, word_emb.dtype)
        stat_dtype = torch.float64 if word_emb.dtype == torch.float64 else torch.float32
        out = torch.empty((batch, length, hidden), dtype=word_emb.dtype, device=word_emb.device)
        mean = torch.empty((batch, length, slots), dtype=stat_dtype, device=word_emb.device)
        rstd = torch.empty_like(mean)
        tables = (weights, sub_ids, word_emb, pos_emb, type_emb, ln_weight, ln_bias, position_ids, token_type_ids)
        if rows:
            _fwd_kernel[(triton.cdiv(rows, meta["BLOCK_R"]),)](
                weights,
                sub_ids,
                word_emb,
                pos_emb,
                type_emb,
                ln_weight,
                ln_bias,
                position_ids,
                token_type_ids,
                out,
                mean,
                rstd,
                rows,
                length,
                slots,
                hidden,
                eps,
                *_strides(*tables),
                LAYER_NORM=layer_norm,
                **meta,
            )
        ctx.save_for_backward(*tables, mean, rstd)
        ctx.layer_norm = layer_norm
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weights, sub_ids, word_emb, pos_emb, type_emb, ln_weight, ln_bias, position_ids, token_type_ids, mean, rstd = (
            ctx.saved_tensors
        )
        need = ctx.needs_input_grad
        batch, length, slots = sub_ids.shape
        rows, hidden = batch * length, word_emb.shape[1]
        meta = _launch_config(hidden, word_emb.dtype)
        acc_dtype = mean.dtype

        # A gradient nobody wants gets a placeholder the kernel never touches.
        def buffer(shape: tuple[int, ...], wanted: bool) -> torch.Tensor:
            return torch.zeros(shape, dtype=acc_dtype, device=word_emb.device) if wanted else mean

        d_weights = torch.zeros(weights.shape, dtype=weights.dtype, device=weights.device) if need[0] else mean
        d_word = buffer(word_emb.shape, need[2])
        d_pos = buffer(pos_emb.shape, need[3])
        d_type = buffer(type_emb.shape, need[4])
        ln_grad = need[5] or need[6]
        d_lnw = buffer((hidden,), ln_grad)
        d_lnb = buffer((hidden,), ln_grad)
        if rows and any(need):
            tables = (weights, sub_ids, word_emb, pos_emb, type_emb, ln_weight, ln_bias, position_ids, token_type_ids)
            _bwd_kernel[(triton.cdiv(rows, meta["BLOCK_R"]),)](
                grad_out.contiguous(),
                *tables,
                mean,
                rstd,
                d_weights,
                d_word,
                d_pos,
                d_type,
                d_lnw,
                d_lnb,
                rows,
                length,
                slots,
                hidden,
                *_strides(*tables),
                WEIGHT_GRAD=need[0],
                WORD_GRAD=need[2],
                POS_GRAD=need[3],
                TYPE_GRAD=need[4],
                LN_GRAD=ln_grad,
                LAYER_NORM=ctx.layer_norm,
                **meta,
            )

        def cast(grad: torch.Tensor, wanted: bool, like: torch.Tensor) -> torch.Tensor | None:
            return grad.to(like.dtype) if wanted else None

        return (
            d_weights if need[0] else None,
            None,
            cast(d_word, need[2], word_emb),
            cast(d_pos, need[3], pos_emb),
            cast(d_type, need[4], type_emb),
            cast(d_lnw, need[5], ln_weight),
            cast(d_lnb, need[6], ln_bias),
            None,
            None,
            None,
            None,
        )


def _check_ids(name: str, ids: torch.Tensor, batch: int, length: int, upper: int) -> torch.Tensor:
    """[B, L] (or [1, L]) integer ids in [0, upper); returns them expanded to [B, L]."""
    if ids.dtype not in _ID_DTYPES:
        raise ValueError(f"{name} must be int32 or int64, got {ids.dtype}")
    if ids.dim() != 2 or ids.shape[1] != length or ids.shape[0] not in (1, batch):
        raise ValueError(f"{name} must have shape ({batch}, {length}) or (1, {length}), got {tuple(ids.shape)}")
    if ids.numel():
        low, high = (int(v) for v in torch.aminmax(ids))
        if low < 0 or high >= upper:
            raise ValueError(f"{name} must lie in [0, {upper}), got range [{low}, {high}]")
    return ids.expand(batch, length)


def _validate_slots(
    weights: torch.Tensor, sub_ids: torch.Tensor, word_emb: torch.Tensor, **others: torch.Tensor
) -> None:
    """Raise ValueError naming the offending argument among the weights, slot ids and word table (and
    ``others``: more tensors that must be tensors on the same device)."""
    named = {"weights": weights, "sub_ids": sub_ids, "word_emb": word_emb, **others}
    for name, x in named.items():
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004
    devices = {name: x.device for name, x in named.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"all tensors must share one device, got {devices}")
    if weights.dim() != 3:
        raise ValueError(f"weights must be [B, L, K], got shape {tuple(weights.shape)}")
    if weights.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"weights must be floating ({_FLOAT_DTYPES}), got {weights.dtype}")
    if sub_ids.dtype not in _ID_DTYPES:
        raise ValueError(f"sub_ids must be int32 or int64, got {sub_ids.dtype}")
    if sub_ids.shape != weights.shape:
        raise ValueError(f"sub_ids shape {tuple(sub_ids.shape)} must equal weights shape {tuple(weights.shape)}")
    if weights.shape[2] == 0:
        raise ValueError("weights and sub_ids must have at least one slot (K=0)")
    if word_emb.dim() != 2 or word_emb.shape[0] == 0 or word_emb.shape[1] == 0:
        raise ValueError(f"word_emb must be a non-empty [V, D] table, got shape {tuple(word_emb.shape)}")
    if word_emb.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"word_emb must be floating ({_FLOAT_DTYPES}), got {word_emb.dtype}")
    if sub_ids.numel():
        low, high = (int(v) for v in torch.aminmax(sub_ids))
        vocab = word_emb.shape[0]
        if low < -1 or high >= vocab:
            raise ValueError(f"sub_ids must lie in [-1, {vocab}) (-1 = empty slot), got range [{low}, {high}]")


def _validate(
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    word_emb: torch.Tensor,
    pos_emb: torch.Tensor,
    type_emb: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float,
    position_ids: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise ValueError naming the offending argument; return (position_ids, token_type_ids) as [B, L] tensors."""
    optional = {"position_ids": position_ids, "token_type_ids": token_type_ids}
    _validate_slots(
        weights,
        sub_ids,
        word_emb,
        pos_emb=pos_emb,
        type_emb=type_emb,
        ln_weight=ln_weight,
        ln_bias=ln_bias,
        **{name: ids for name, ids in optional.items() if ids is not None},
    )
    batch, length, _ = weights.shape
    hidden = word_emb.shape[1]
    for name, x in (("pos_emb", pos_emb), ("type_emb", type_emb)):
        if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] != hidden:
            raise ValueError(f"{name} must be a non-empty [rows, {hidden}] table, got shape {tuple(x.shape)}")
    for name, x in (("ln_weight", ln_weight), ("ln_bias", ln_bias)):
        if x.shape != (hidden,):
            raise ValueError(f"{name} must have shape ({hidden},), got {tuple(x.shape)}")
    for name, x in (("pos_emb", pos_emb), ("type_emb", type_emb), ("ln_weight", ln_weight), ("ln_bias", ln_bias)):
        if x.dtype != word_emb.dtype:
            raise ValueError(f"{name} dtype {x.dtype} must equal word_emb dtype {word_emb.dtype}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite real number >= 0, got {eps!r}")
    if position_ids is None:
        if length > pos_emb.shape[0]:
            raise ValueError(f"default position_ids need L={length} <= pos_emb rows {pos_emb.shape[0]}")
        position_ids = torch.arange(length, device=weights.device).expand(batch, length)
    else:
        position_ids = _check_ids("position_ids", position_ids, batch, length, pos_emb.shape[0])
    if token_type_ids is None:
        token_type_ids = torch.zeros((), dtype=torch.long, device=weights.device).expand(batch, length)
    else:
        token_type_ids = _check_ids("token_type_ids", token_type_ids, batch, length, type_emb.shape[0])
    return position_ids, token_type_ids


def _convex_hull_embedding_triton(
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    word_emb: torch.Tensor,
    pos_emb: torch.Tensor,
    type_emb: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
) -> torch.Tensor:
    return ConvexHullEmbeddingFunction.apply(
        weights,
        sub_ids,
        word_emb,
        pos_emb,
        type_emb,
        ln_weight,
        ln_bias,
        float(eps),
        position_ids,
        token_type_ids,
        True,
    )


BACKEND_TABLE = OpBackends(
    "convex_hull_embedding",
    {
        "triton": _convex_hull_embedding_triton,
        "reference": convex_hull_embedding_reference,
    },
    nondeterministic=("triton",),  # atomic adds in the backward
)


def convex_hull_embedding(
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    word_emb: torch.Tensor,
    pos_emb: torch.Tensor,
    type_emb: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float = 1e-12,
    position_ids: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Convex combination of the embedding-layer outputs of each position's substitution slots.

    weights: [B, L, K] float (convex weights; entries of empty slots are ignored); sub_ids: [B, L, K]
    int32/int64 vocabulary ids, -1 = empty slot; word_emb: [V, D]; pos_emb: [P, D]; type_emb: [T, D];
    ln_weight, ln_bias: [D] (the tables and LayerNorm parameters share one float dtype); eps: LayerNorm
    epsilon; position_ids: [B, L] or [1, L] ids into pos_emb (default arange(L)); token_type_ids:
    [B, L] or [1, L] ids into type_emb (default 0). Returns [B, L, D] in word_emb's dtype,
    differentiable in weights, the three tables and the LayerNorm parameters. ``backend``:
    ``None``/``"auto"``, ``"triton"`` or ``"reference"`` (see :mod:`rift_fast.ops.dispatch`).
    """
    position_ids, token_type_ids = _validate(
        weights, sub_ids, word_emb, pos_emb, type_emb, ln_weight, ln_bias, eps, position_ids, token_type_ids
    )
    return BACKEND_TABLE.run(
        weights.device,
        backend,
        weights,
        sub_ids,
        word_emb,
        pos_emb,
        type_emb,
        ln_weight,
        ln_bias,
        eps,
        position_ids,
        token_type_ids,
    )


class BertEmbeddingsLike(Protocol):
    """The parameters of a HuggingFace ``BertEmbeddings``-like module that the convex hull reads."""

    word_embeddings: torch.nn.Embedding
    position_embeddings: torch.nn.Embedding
    token_type_embeddings: torch.nn.Embedding
    LayerNorm: torch.nn.LayerNorm


def convex_hull_embedding_from_bert(
    embeddings_module: BertEmbeddingsLike,
    weights: torch.Tensor,
    sub_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    backend: str | None = None,
    detach_tables: bool = False,
) -> torch.Tensor:
    """:func:`convex_hull_embedding` with the parameters of a HuggingFace ``BertEmbeddings``-like module.

    The module needs ``word_embeddings``, ``position_embeddings``, ``token_type_embeddings`` (nn.Embedding)
    and ``LayerNorm`` (nn.LayerNorm); absolute positions only (models that offset positions, e.g.
    RoBERTa, must pass their ``position_ids``). Dropout is NOT applied: apply the module's dropout to
    the [B, L, D] result yourself if training needs it. ``detach_tables``: use the tables and LayerNorm
    parameters as constants (gradients reach only ``weights``, as in an adversary's inner loop).
    """
    if getattr(embeddings_module, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("embeddings_module must use absolute position embeddings")
    norm = embeddings_module.LayerNorm
    tables = [
        embeddings_module.word_embeddings.weight,
        embeddings_module.position_embeddings.weight,
        embeddings_module.token_type_embeddings.weight,
        norm.weight,
        norm.bias,
    ]
    if detach_tables:
        tables = [t.detach() for t in tables]
    word_emb, pos_emb, type_emb, ln_weight, ln_bias = tables
    return convex_hull_embedding(
        weights,
        sub_ids,
        word_emb,
        pos_emb,
        type_emb,
        ln_weight,
        ln_bias,
        norm.eps,
        position_ids=position_ids,
        token_type_ids=token_type_ids,
        backend=backend,
    )


def convex_hull_word_embedding_reference(
    weights: torch.Tensor, sub_ids: torch.Tensor, word_emb: torch.Tensor
) -> torch.Tensor:
    """Plain-torch ground truth of :func:`convex_hull_word_embedding` (differentiable by autograd)."""
    valid = sub_ids >= 0
    slots = F.embedding(sub_ids.clamp_min(0), word_emb)  # [B, L, K, D]
    return (weights.masked_fill(~valid, 0).unsqueeze(-1).to(slots.dtype) * slots).sum(dim=2).to(word_emb.dtype)


def _convex_hull_word_embedding_triton(
    weights: torch.Tensor, sub_ids: torch.Tensor, word_emb: torch.Tensor
) -> torch.Tensor:
    """The Triton kernels of :func:`convex_hull_embedding` without the LayerNorm, over zero position / type rows."""
    hidden = word_emb.shape[1]
    zero_row = torch.zeros((1, hidden), dtype=word_emb.dtype, device=word_emb.device)
    zero_ids = torch.zeros((), dtype=torch.long, device=word_emb.device).expand(sub_ids.shape[:2])
    unit = torch.ones(hidden, dtype=word_emb.dtype, device=word_emb.device)
    return ConvexHullEmbeddingFunction.apply(
        weights, sub_ids, word_emb, zero_row, zero_row, unit, zero_row[0], 0.0, zero_ids, zero_ids, False
    )


WORD_BACKEND_TABLE = OpBackends(
    "convex_hull_word_embedding",
    {
        "triton": _convex_hull_word_embedding_triton,
        "reference": convex_hull_word_embedding_reference,
    },
    nondeterministic=("triton",),  # atomic adds in the backward
)


def convex_hull_word_embedding(
    weights: torch.Tensor, sub_ids: torch.Tensor, word_emb: torch.Tensor, backend: str | None = None
) -> torch.Tensor:
    """Convex combination of the WORD embeddings of each position's substitution slots (the hull ASCC
    builds for encoders without a BERT-like embedding layer; the encoder then adds positions, types and
    its normalisation itself, through ``inputs_embeds``)::

        out[b, l] = sum_k weights[b, l, k] * word_emb[sub_ids[b, l, k]]

    weights: [B, L, K] float; sub_ids: [B, L, K] int32/int64, -1 = empty slot (weight ignored, row never
    read; a position whose slots are all empty gets zeros); word_emb: [V, D] float (the model's
    ``get_input_embeddings().weight``). Returns [B, L, D] in word_emb's dtype, differentiable in weights
    and word_emb. Raises ValueError on bad shapes, dtypes, devices or ids. ``backend``: as
    :func:`convex_hull_embedding` (the same Triton kernels, LayerNorm switched off).
    """
    _validate_slots(weights, sub_ids, word_emb)
    return WORD_BACKEND_TABLE.run(weights.device, backend, weights, sub_ids, word_emb)
