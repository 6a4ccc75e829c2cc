"""Training precision (``--precision``): bfloat16 autocast where the device runs bf16 natively, float32
elsewhere.

bf16 matrix units: CUDA GPUs of compute capability 8.0 and later (``torch.cuda.is_bf16_supported``), and
x86 CPUs with AVX512-BF16 or AMX-BF16 (Cooper Lake, Sapphire Rapids and later; the ``avx512_bf16`` /
``amx_bf16`` flags of ``/proc/cpuinfo``). Elsewhere a CPU emulates bf16 through float32 and autocast only
adds casts, so ``auto`` keeps float32 there; ``bfloat16`` forces autocast anyway (to measure it).
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

FLOAT32, BFLOAT16 = "float32", "bfloat16"
PRECISIONS = ("auto", FLOAT32, BFLOAT16)
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 bf16 dot-product units
CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def cpu_runs_bf16_natively() -> bool:
    """Whether this CPU has a bf16 dot-product unit (False where ``/proc/cpuinfo`` is missing)."""
    try:
        flags = CPUINFO.read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def runs_bf16_natively(device: torch.device) -> bool:
    """Whether ``device`` (cpu or cuda) runs bf16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_runs_bf16_natively()


def resolve_precision(requested: str, device: torch.device) -> str:
    """``float32`` or ``bfloat16``: ``auto`` gives bfloat16 where :func:`runs_bf16_natively`. Raises
    ValueError for a value outside :data:`PRECISIONS`."""
    if requested not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        if requested == BFLOAT16 and not runs_bf16_natively(device):
            logger.warning("--precision bfloat16 on %s, which emulates bf16: expect it slower than float32", device)
        return requested
    return BFLOAT16 if runs_bf16_natively(device) else FLOAT32


def training_autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``precision`` ``bfloat16`` (master weights stay float32), else nothing."""
    if precision == BFLOAT16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


__all__ = [
    "BFLOAT16",
    "FLOAT32",
    "PRECISIONS",
    "cpu_runs_bf16_natively",
    "resolve_precision",
    "runs_bf16_natively",
    "training_autocast",
]
