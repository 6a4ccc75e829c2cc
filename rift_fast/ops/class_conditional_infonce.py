"""Class-conditional InfoNCE: the mutual-information term of RIFT (Dong et al., NeurIPS 2021).

Student features ``S`` [B, P] (trained model, adversarial inputs) and teacher features ``T`` [B, P]
(frozen encoder with trainable projection heads, clean inputs) are L2-normalised row-wise
(``F.normalize``, eps 1e-12) to ``s`` and ``t``. For every class ``c`` present in ``labels`` with
members ``M_c`` the logits are ``f[i, j] = s_i . t_j / tau`` for ``i, j in M_c`` and::

    L_c  = -mean_{j in M_c} log( exp(f[j, j]) / sum_{i in M_c} exp(f[i, j]) )   # softmax over student i
    loss = mean over present classes of L_c

Only same-class samples are negatives. A class with a single member has ``L_c = 0`` and still counts
in the mean over classes (this is the definition, not an approximation).

Backends: ``triton`` (fused kernels; the GPU, or the CPU under ``TRITON_INTERPRET=1``) and
``reference`` (plain torch). The Triton path never builds a per-class matrix: each program streams
blocks of rows against its block of columns, masking pairs of different classes, so its cost is
O(B^2 P) whatever the number of classes and its memory O(B P). It accumulates in float32 (float64
for float64 inputs; the temperature then still enters as a float32 scalar).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F

from rift_fast.ops.dispatch import OpBackends

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: the reference backend serves every call without it
    triton = None

NORM_EPS = 1e-12  # as F.normalize
# The InfoNCE temperature of RIFT (Dong et al., NeurIPS 2021: the MI term of its objective).
RIFT_TEMPERATURE = 0.2
_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def class_conditional_infonce_reference(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float = RIFT_TEMPERATURE
) -> torch.Tensor:
    """Plain-torch ground truth. student, teacher: [B, P] float; labels: [B] int; returns a 0-d loss (nats)."""
    s = F.normalize(student, dim=-1, eps=NORM_EPS)
    t = F.normalize(teacher, dim=-1, eps=NORM_EPS)
    per_class = []
    for c in torch.unique(labels):
        idx = (labels == c).nonzero(as_tuple=True)[0]
        logits = s[idx] @ t[idx].T / temperature  # [n_c, n_c]: row i student, column j teacher
        per_class.append(-logits.log_softmax(dim=0).diagonal().mean())
    return torch.stack(per_class).mean()


# The @triton.jit kernels below keep their parameters unannotated: Triton reads a jit parameter's
# annotation as a type hint (tl.constexpr, a pointer or scalar type) and would change how the kernel is
# specialised and compiled. They are exempt from mypy's disallow_untyped_defs by a targeted
# ``# type: ignore[no-untyped-def]`` on each def line.
if triton is not None:

    @triton.jit
    def _logits_tile(  # type: ignore[no-untyped-def]
        s_ptr,
        t_ptr,
        offs_i,
        offs_j,
        mask_i,
        mask_j,
        P,
        s_stride_b,
        s_stride_p,
        t_stride_b,
        t_stride_p,
        inv_tau,
        BLOCK_I: tl.constexpr,
        BLOCK_J: tl.constexpr,
        BLOCK_P: tl.constexpr,
        CDTYPE: tl.constexpr,
    ):
        """Logits f[i, j] of one [BLOCK_I, BLOCK_J] tile, the rows' inverse norms and whether each norm >= eps."""
        dot = tl.zeros((BLOCK_I, BLOCK_J), dtype=CDTYPE)
        sq_i = tl.zeros((BLOCK_I,), dtype=CDTYPE)
        sq_j = tl.zeros((BLOCK_J,), dtype=CDTYPE)
        for p0 in range(0, P, BLOCK_P):
            offs_p = p0 + tl.arange(0, BLOCK_P)
            mask_p = offs_p < P
            s = tl.load(
                s_ptr + offs_i[:, None] * s_stride_b + offs_p[None, :] * s_stride_p,
                mask=mask_i[:, None] & mask_p[None, :],
                other=0.0,
            ).to(CDTYPE)
            t = tl.load(
                t_ptr + offs_j[:, None] * t_stride_b + offs_p[None, :] * t_stride_p,
                mask=mask_j[:, None] & mask_p[None, :],
                other=0.0,
            ).to(CDTYPE)
            dot += tl.dot(s, tl.trans(t), input_precision="ieee")
            sq_i += tl.sum(s * s, axis=1)
            sq_j += tl.sum(t * t, axis=1)
        norm_i = tl.sqrt(sq_i)
        norm_j = tl.sqrt(sq_j)
        rs = 1.0 / tl.maximum(norm_i, 1e-12)
        rt = 1.0 / tl.maximum(norm_j, 1e-12)
        f = dot * rs[:, None] * rt[None, :] * inv_tau
        return f, rs, rt, norm_i >= 1e-12, norm_j >= 1e-12

    @triton.jit
    def _fwd_kernel(  # type: ignore[no-untyped-def]
        s_ptr,
        t_ptr,
        y_ptr,
        lse_ptr,
        loss_ptr,
        inv_n_ptr,
        B,
        P,
        s_stride_b,
        s_stride_p,
        t_stride_b,
        t_stride_p,
        y_stride,
        inv_tau,
        BLOCK_I: tl.constexpr,
        BLOCK_J: tl.constexpr,
        BLOCK_P: tl.constexpr,
        CDTYPE: tl.constexpr,
    ):
        """Per teacher column j: streaming log-sum-exp over same-class student rows, class size, weighted loss."""
        offs_j = tl.program_id(0) * BLOCK_J + tl.arange(0, BLOCK_J)
        mask_j = offs_j < B
        y_j = tl.load(y_ptr + offs_j * y_stride, mask=mask_j, other=0)
        run_max = tl.full((BLOCK_J,), -1.0e30, dtype=CDTYPE)
        run_sum = tl.zeros((BLOCK_J,), dtype=CDTYPE)
        diag = tl.zeros((BLOCK_J,), dtype=CDTYPE)
        count = tl.zeros((BLOCK_J,), dtype=tl.int32)
        for i0 in range(0, B, BLOCK_I):
            offs_i = i0 + tl.arange(0, BLOCK_I)
            mask_i = offs_i < B
            y_i = tl.load(y_ptr + offs_i * y_stride, mask=mask_i, other=0)
            f, _rs, _rt, _ok_i, _ok_j = _logits_tile(
                s_ptr,
                t_ptr,
                offs_i,
                offs_j,
                mask_i,
                mask_j,
                P,
                s_stride_b,
                s_stride_p,
                t_stride_b,
                t_stride_p,
                inv_tau,
                BLOCK_I,
                BLOCK_J,
                BLOCK_P,
                CDTYPE,
            )
            same = (y_i[:, None] == y_j[None, :]) & mask_i[:, None] & mask_j[None, :]
            new_max = tl.maximum(run_max, tl.max(tl.where(same, f, -1.0e30), axis=0))
            run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(
                tl.exp(tl.where(same, f - new_max[None, :], float("-inf"))), axis=0
            )
            run_max = new_max
            diag += tl.sum(tl.where(same & (offs_i[:, None] == offs_j[None, :]), f, 0.0), axis=0)
            count += tl.sum(same.to(tl.int32), axis=0)
        lse = run_max + tl.log(tl.where(mask_j, run_sum, 1.0))  # every real column counts itself
        inv_n = 1.0 / tl.maximum(count, 1).to(CDTYPE)
        tl.store(lse_ptr + offs_j, lse, mask=mask_j)
        tl.store(loss_ptr + offs_j, (lse - diag) * inv_n, mask=mask_j)
        tl.store(inv_n_ptr + offs_j, inv_n, mask=mask_j)

    @triton.jit
    def _grad_logits(f, lse_j, inv_n_j, scale, same, offs_i, offs_j):  # type: ignore[no-untyped-def]
        """dloss/df on a tile: scale * (softmax_i(f)[i, j] - [i == j]) / n_{y_j} on same-class pairs, else 0."""
        prob = tl.exp(tl.where(same, f - lse_j[None, :], float("-inf")))
        eye = (offs_i[:, None] == offs_j[None, :]).to(f.dtype)
        return tl.where(same, (prob - eye) * (scale * inv_n_j)[None, :], 0.0)

    @triton.jit
    def _bwd_student_kernel(  # type: ignore[no-untyped-def]
        s_ptr,
        t_ptr,
        y_ptr,
        lse_ptr,
        inv_n_ptr,
        scale_ptr,
        ds_ptr,
        B,
        P,
        s_stride_b,
        s_stride_p,
        t_stride_b,
        t_stride_p,
        y_stride,
        inv_tau,
        BLOCK_I: tl.constexpr,
        BLOCK_J: tl.constexpr,
        BLOCK_P: tl.constexpr,
        CDTYPE: tl.constexpr,
    ):
        """dS for a block of student rows and a chunk of features, through the L2 normalisation."""
        offs_i = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
        offs_po = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        mask_i = offs_i < B
        mask_po = offs_po < P
        y_i = tl.load(y_ptr + offs_i * y_stride, mask=mask_i, other=0)
        scale = tl.load(scale_ptr)
        acc = tl.zeros((BLOCK_I, BLOCK_P), dtype=CDTYPE)  # sum_j dF[i, j] T_j / |T_j|
        proj = tl.zeros((BLOCK_I,), dtype=CDTYPE)  # sum_j dF[i, j] f[i, j] = tau * s_i . (d loss / d s_i)
        rs = tl.zeros((BLOCK_I,), dtype=CDTYPE)
        ok_i = mask_i
        for j0 in range(0, B, BLOCK_J):
            offs_j = j0 + tl.arange(0, BLOCK_J)
            mask_j = offs_j < B
            y_j = tl.load(y_ptr + offs_j * y_stride, mask=mask_j, other=0)
            lse_j = tl.load(lse_ptr + offs_j, mask=mask_j, other=0.0)
            inv_n_j = tl.load(inv_n_ptr + offs_j, mask=mask_j, other=0.0)
            f, rs, rt, ok_i, _ok_j = _logits_tile(
                s_ptr,
                t_ptr,
                offs_i,
                offs_j,
                mask_i,
                mask_j,
                P,
                s_stride_b,
                s_stride_p,
                t_stride_b,
                t_stride_p,
                inv_tau,
                BLOCK_I,
                BLOCK_J,
                BLOCK_P,
                CDTYPE,
            )
            same = (y_i[:, None] == y_j[None, :]) & mask_i[:, None] & mask_j[None, :]
            dlogits = _grad_logits(f, lse_j, inv_n_j, scale, same, offs_i, offs_j)
            t_chunk = tl.load(
                t_ptr + offs_j[:, None] * t_stride_b + offs_po[None, :] * t_stride_p,
                mask=mask_j[:, None] & mask_po[None, :],
                other=0.0,
            ).to(CDTYPE)
            acc += tl.dot(dlogits * rt[None, :], t_chunk, input_precision="ieee")
            proj += tl.sum(dlogits * f, axis=1)
        s_chunk = tl.load(
            s_ptr + offs_i[:, None] * s_stride_b + offs_po[None, :] * s_stride_p,
            mask=mask_i[:, None] & mask_po[None, :],
            other=0.0,
        ).to(CDTYPE)
        # d/dS of S/max(|S|, eps): (g - s (s.g)) / |S| above eps, g / eps below it.
        proj = tl.where(ok_i, proj, 0.0)
        grad = rs[:, None] * (acc * inv_tau - proj[:, None] * s_chunk * rs[:, None])
        tl.store(
            ds_ptr + offs_i[:, None] * P + offs_po[None, :],
            grad.to(ds_ptr.dtype.element_ty),
            mask=mask_i[:, None] & mask_po[None, :],
        )

    @triton.jit
    def _bwd_teacher_kernel(  # type: ignore[no-untyped-def]
        s_ptr,
        t_ptr,
        y_ptr,
        lse_ptr,
        inv_n_ptr,
        scale_ptr,
        dt_ptr,
        B,
        P,
        s_stride_b,
        s_stride_p,
        t_stride_b,
        t_stride_p,
        y_stride,
        inv_tau,
        BLOCK_I: tl.constexpr,
        BLOCK_J: tl.constexpr,
        BLOCK_P: tl.constexpr,
        CDTYPE: tl.constexpr,
    ):
        """dT for a block of teacher rows (logit columns) and a chunk of features, through the L2 normalisation."""
        offs_j = tl.program_id(0) * BLOCK_J + tl.arange(0, BLOCK_J)
        offs_po = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        mask_j = offs_j < B
        mask_po = offs_po < P
        y_j = tl.load(y_ptr + offs_j * y_stride, mask=mask_j, other=0)
        lse_j = tl.load(lse_ptr + offs_j, mask=mask_j, other=0.0)
        inv_n_j = tl.load(inv_n_ptr + offs_j, mask=mask_j, other=0.0)
        scale = tl.load(scale_ptr)
        acc = tl.zeros((BLOCK_J, BLOCK_P), dtype=CDTYPE)  # sum_i dF[i, j] S_i / |S_i|
        proj = tl.zeros((BLOCK_J,), dtype=CDTYPE)  # sum_i dF[i, j] f[i, j]
        rt = tl.zeros((BLOCK_J,), dtype=CDTYPE)
        ok_j = mask_j
        for i0 in range(0, B, BLOCK_I):
            offs_i = i0 + tl.arange(0, BLOCK_I)
            mask_i = offs_i < B
            y_i = tl.load(y_ptr + offs_i * y_stride, mask=mask_i, other=0)
            f, rs, rt, _ok_i, ok_j = _logits_tile(
                s_ptr,
                t_ptr,
                offs_i,
                offs_j,
                mask_i,
                mask_j,
                P,
                s_stride_b,
                s_stride_p,
                t_stride_b,
                t_stride_p,
                inv_tau,
                BLOCK_I,
                BLOCK_J,
                BLOCK_P,
                CDTYPE,
            )
            same = (y_i[:, None] == y_j[None, :]) & mask_i[:, None] & mask_j[None, :]
            dlogits = _grad_logits(f, lse_j, inv_n_j, scale, same, offs_i, offs_j)
            s_chunk = tl.load(
                s_ptr + offs_i[:, None] * s_stride_b + offs_po[None, :] * s_stride_p,
                mask=mask_i[:, None] & mask_po[None, :],
                other=0.0,
            ).to(CDTYPE)
            acc += tl.dot(tl.trans(dlogits * rs[:, None]), s_chunk, input_precision="ieee")
            proj += tl.sum(dlogits * f, axis=0)
        t_chunk = tl.load(
            t_ptr + offs_j[:, None] * t_stride_b + offs_po[None, :] * t_stride_p,
            mask=mask_j[:, None] & mask_po[None, :],
            other=0.0,
        ).to(CDTYPE)
        proj = tl.where(ok_j, proj, 0.0)
        grad = rt[:, None] * (acc * inv_tau - proj[:, None] * t_chunk * rt[:, None])
        tl.store(
            dt_ptr + offs_j[:, None] * P + offs_po[None, :],
            grad.to(dt_ptr.dtype.element_ty),
            mask=mask_j[:, None] & mask_po[None, :],
        )


def _block_sizes(num_features: int) -> tuple[int, int, int]:
    """(BLOCK_I, BLOCK_J, BLOCK_P): 32x32 logit tiles, feature chunks of up to 128 (tl.dot needs >= 16)."""
    return 32, 32, min(max(16, triton.next_power_of_2(num_features)), 128)


def _launch_args(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float
) -> tuple[tuple[float, ...], dict[str, Any]]:
    batch, features = student.shape
    block_i, block_j, block_p = _block_sizes(features)
    cdtype = tl.float64 if student.dtype == torch.float64 else tl.float32
    args = (
        batch,
        features,
        student.stride(0),
        student.stride(1),
        teacher.stride(0),
        teacher.stride(1),
        labels.stride(0),
        1.0 / temperature,
    )
    meta = {"BLOCK_I": block_i, "BLOCK_J": block_j, "BLOCK_P": block_p, "CDTYPE": cdtype}
    return args, meta


class ClassConditionalInfoNCEFunction(torch.autograd.Function):
    """Fused Triton forward/backward; inputs are assumed validated by :func:`class_conditional_infonce`."""

    @staticmethod
    def forward(
        ctx: Any, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        batch = student.shape[0]
        acc_dtype = torch.float64 if student.dtype == torch.float64 else torch.float32
        lse = torch.empty(batch, dtype=acc_dtype, device=student.device)
        per_sample = torch.empty_like(lse)  # (lse_j - f[j, j]) / n_{y_j}
        inv_n = torch.empty_like(lse)  # 1 / n_{y_j}
        args, meta = _launch_args(student, teacher, labels, temperature)
        grid = (triton.cdiv(batch, meta["BLOCK_J"]),)
        _fwd_kernel[grid](student, teacher, labels, lse, per_sample, inv_n, *args, **meta)
        num_classes = inv_n.sum().round()  # each present class contributes n_c * (1 / n_c) = 1
        ctx.save_for_backward(student, teacher, labels, lse, inv_n, num_classes)
        ctx.temperature = temperature
        return (per_sample.sum() / num_classes).to(student.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        student, teacher, labels, lse, inv_n, num_classes = ctx.saved_tensors
        scale = (grad_output.to(lse.dtype) / num_classes).reshape(1)
        args, meta = _launch_args(student, teacher, labels, ctx.temperature)
        batch, features = student.shape
        p_chunks = triton.cdiv(features, meta["BLOCK_P"])
        grad_student = grad_teacher = None
        if ctx.needs_input_grad[0]:
            grad_student = torch.empty(batch, features, dtype=student.dtype, device=student.device)
            grid = (triton.cdiv(batch, meta["BLOCK_I"]), p_chunks)
            _bwd_student_kernel[grid](student, teacher, labels, lse, inv_n, scale, grad_student, *args, **meta)
        if ctx.needs_input_grad[1]:
            grad_teacher = torch.empty(batch, features, dtype=teacher.dtype, device=teacher.device)
            grid = (triton.cdiv(batch, meta["BLOCK_J"]), p_chunks)
            _bwd_teacher_kernel[grid](student, teacher, labels, lse, inv_n, scale, grad_teacher, *args, **meta)
        return grad_student, grad_teacher, None, None


def _validate(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float) -> None:
    for name, x in (("student", student), ("teacher", teacher), ("labels", labels)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004
    if student.dim() != 2:
        raise ValueError(f"student must be 2-D [B, P], got shape {tuple(student.shape)}")
    if teacher.shape != student.shape:
        raise ValueError(f"teacher shape {tuple(teacher.shape)} must equal student shape {tuple(student.shape)}")
    batch, features = student.shape
    if batch == 0:
        raise ValueError("student and teacher must hold at least one sample (B=0)")
    if features == 0:
        raise ValueError("student and teacher must have at least one feature (P=0)")
    if student.dtype not in _SUPPORTED_DTYPES:
        raise ValueError(f"student dtype {student.dtype} is not one of {_SUPPORTED_DTYPES}")
    if teacher.dtype != student.dtype:
        raise ValueError(f"teacher dtype {teacher.dtype} must equal student dtype {student.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape ({batch},), got {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if not (teacher.device == student.device == labels.device):
        raise ValueError(
            f"student, teacher and labels must share a device, got {student.device}, {teacher.device}, {labels.device}"
        )
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a real number, got {type(temperature).__name__}")  # noqa: TRY004
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    if bool((labels < 0).any()):  # one host sync over B integers
        raise ValueError("labels must be non-negative")


def _class_conditional_infonce_triton(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    return ClassConditionalInfoNCEFunction.apply(student, teacher, labels, float(temperature))


BACKEND_TABLE = OpBackends(
    "class_conditional_infonce",
    {
        "triton": _class_conditional_infonce_triton,
        "reference": class_conditional_infonce_reference,
    },
)


def class_conditional_infonce(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = RIFT_TEMPERATURE,
    backend: str | None = None,
) -> torch.Tensor:
    """Class-conditional InfoNCE loss of RIFT.

    student, teacher: [B, P] float32/bfloat16/float16/float64 on one device; labels: [B] non-negative
    integers; temperature: tau > 0 (logits are cosine similarities / tau). Returns a 0-d tensor in the
    features' dtype: the mean over present classes of the per-class InfoNCE (nats). Features are not
    scanned for NaN/inf (that would cost a pass and a sync); non-finite features give a NaN loss.
    ``backend``: ``None``/``"auto"``, ``"triton"`` or ``"reference"`` (see :mod:`rift_fast.ops.dispatch`).
    """
    _validate(student, teacher, labels, temperature)
    return BACKEND_TABLE.run(student.device, backend, student, teacher, labels, temperature)
