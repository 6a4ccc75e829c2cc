"""One place that decides which implementation of a fused op runs.

Backends, in the order they are preferred when ``backend="auto"``:

- ``cuda``: the compiled extension ``rift_fast._C`` built with CUDA (tensors on a GPU);
- ``cupy``: the same ``.cu`` kernels loaded at run time through CuPy ``RawModule`` (GPU present,
  extension built without CUDA);
- ``triton``: Triton kernels (GPU, or the CPU under ``TRITON_INTERPRET=1``);
- ``cpp``: the compiled extension's C++ CPU twin (tensors on the CPU);
- ``reference``: the plain torch implementation, always available.

A call may force a backend with its ``backend=`` argument; the environment variable
``RIFT_FAST_BACKEND`` (e.g. ``RIFT_FAST_BACKEND=reference``) forces it for every op. Forcing a
backend that cannot serve the call raises :class:`BackendUnavailable` instead of falling back.
"""

from __future__ import annotations

import functools
import os
from typing import Iterable

import torch

BACKENDS = ("cuda", "cupy", "triton", "cpp", "reference")
ENV_VAR = "RIFT_FAST_BACKEND"


class BackendUnavailable(RuntimeError):
    """Raised when a forced backend cannot run the requested op on the given device."""


@functools.lru_cache(maxsize=None)
def compiled_extension():
    """The compiled ``rift_fast._C`` module, or ``None`` when it was not built."""
    try:
        from rift_fast import _C  # noqa: F401  (importing registers torch.ops.rift_fast.*)
    except ImportError:
        return None
    return _C


def compiled_op_available(op_name: str, device: torch.device) -> bool:
    """Whether ``torch.ops.rift_fast.<op_name>`` has a kernel for ``device``'s type."""
    if compiled_extension() is None:
        return False
    try:
        handle = getattr(torch.ops.rift_fast, op_name)
    except (AttributeError, RuntimeError):
        return False
    key = "CUDA" if device.type == "cuda" else "CPU"
    return torch._C._dispatch_has_kernel_for_dispatch_key(handle.default.name(), key)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Triton imports and can run here (a GPU, or the CPU interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=None)
def cupy_available() -> bool:
    """CuPy imports and sees a working CUDA device (it imports without a driver, so probe it)."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy raises driver-specific errors when no GPU is usable
        return False


def _backend_serves(backend: str, op_name: str, device: torch.device) -> bool:
    if backend == "reference":
        return True
    if backend == "cpp":
        return device.type == "cpu" and compiled_op_available(op_name, device)
    if backend == "cuda":
        return device.type == "cuda" and compiled_op_available(op_name, device)
    if backend == "cupy":
        return device.type == "cuda" and cupy_available()
    if backend == "triton":
        if not triton_available():
            return False
        return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS} or 'auto'")


def choose_backend(op_name: str, device: torch.device, implemented: Iterable[str], backend: str | None = None) -> str:
    """Pick the backend for one call of ``op_name`` on ``device``.

    ``implemented`` lists the backends this op has (``reference`` always among them);
    ``backend`` is the caller's choice (``None``/``"auto"`` defers to ``RIFT_FAST_BACKEND``, then to
    the preference order of :data:`BACKENDS`).
    """
    implemented = tuple(implemented)
    requested = backend if backend not in (None, "auto") else os.environ.get(ENV_VAR, "auto")
    if requested != "auto":
        if requested not in BACKENDS:
            raise ValueError(f"unknown backend {requested!r}; choose one of {BACKENDS} or 'auto'")
        if requested not in implemented:
            raise BackendUnavailable(f"op {op_name!r} has no {requested!r} implementation (it has {implemented})")
        if not _backend_serves(requested, op_name, device):
            raise BackendUnavailable(f"backend {requested!r} cannot run op {op_name!r} on device {device}")
        return requested
    for candidate in BACKENDS:
        if candidate in implemented and _backend_serves(candidate, op_name, device):
            # The Triton interpreter is a correctness tool, far slower than the C++ twin or torch.
            if candidate == "triton" and device.type == "cpu":
                continue
            return candidate
    return "reference"
