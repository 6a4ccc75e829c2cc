"""One place that decides which implementation of a fused op runs.

Each op module declares its backend table, ``BACKEND_TABLE = OpBackends("<op>", {backend: implementation})``
(every implementation takes the same validated arguments); :meth:`OpBackends.run` chooses among the
table's keys and calls the chosen implementation.

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

An op lists the backends whose backward is not bitwise reproducible (atomic adds) in
``nondeterministic``. While ``torch.use_deterministic_algorithms(True)`` is on, ``auto`` passes over
them, and forcing one raises :class:`BackendUnavailable`, as torch does for its own such ops (with
``warn_only=True`` it warns instead).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

import torch

from rift_fast._custom_ops import compiled_op_available

BACKENDS = ("cuda", "cupy", "triton", "cpp", "reference")
ENV_VAR = "RIFT_FAST_BACKEND"

Result = TypeVar("Result")


class BackendUnavailable(RuntimeError):
    """Raised when a forced backend cannot run the requested op on the given device."""


@functools.cache
def triton_available() -> bool:
    """Triton imports and can run here (a GPU, or the CPU interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


@functools.cache
def cupy_available() -> bool:
    """CuPy imports and sees a working CUDA device (it imports without a driver, so probe it)."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  CuPy raises driver-specific errors when no GPU is usable
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


def choose_backend(
    op_name: str,
    device: torch.device,
    implemented: Iterable[str],
    backend: str | None = None,
    nondeterministic: Iterable[str] = (),
) -> str:
    """Pick the backend for one call of ``op_name`` on ``device``.

    ``implemented`` lists the backends this op has (``reference`` always among them);
    ``backend`` is the caller's choice (``None``/``"auto"`` defers to ``RIFT_FAST_BACKEND``, then to
    the preference order of :data:`BACKENDS`); ``nondeterministic``: the backends left out while
    torch's deterministic mode is on (module docstring).
    """
    implemented = tuple(implemented)
    excluded = set(nondeterministic) if torch.are_deterministic_algorithms_enabled() else set()
    requested = backend if backend not in (None, "auto") else os.environ.get(ENV_VAR, "auto")
    if requested != "auto":
        if requested not in BACKENDS:
            raise ValueError(f"unknown backend {requested!r}; choose one of {BACKENDS} or 'auto'")
        if requested not in implemented:
            raise BackendUnavailable(f"op {op_name!r} has no {requested!r} implementation (it has {implemented})")
        if not _backend_serves(requested, op_name, device):
            raise BackendUnavailable(f"backend {requested!r} cannot run op {op_name!r} on device {device}")
        if requested in excluded:
            message = (
                f"backend {requested!r} of op {op_name!r} has a non-deterministic backward (atomic adds) and "
                "torch.use_deterministic_algorithms(True) is on: use backend 'reference' or turn it off"
            )
            if not torch.is_deterministic_algorithms_warn_only_enabled():
                raise BackendUnavailable(message)
            warnings.warn(message, stacklevel=3)
        return requested
    for candidate in BACKENDS:
        if candidate in implemented and candidate not in excluded and _backend_serves(candidate, op_name, device):
            # The Triton interpreter is a correctness tool, far slower than the C++ twin or torch.
            if candidate == "triton" and device.type == "cpu":
                continue
            return candidate
    return "reference"


class OpBackends(Generic[Result]):
    """The backend table of one fused op: backend name -> implementation, all with one signature;
    ``nondeterministic``: the backends whose backward is not bitwise reproducible.

    :meth:`run` chooses the backend of a call (:func:`choose_backend` over the table's keys) and calls
    its implementation. The choice is a constant for ``torch.compile``: it depends only on the op,
    the device, the ``backend=`` argument and the environment, never on tensor data.
    """

    def __init__(
        self,
        op_name: str,
        implementations: Mapping[str, Callable[..., Result]],
        nondeterministic: Iterable[str] = (),
    ) -> None:
        unknown = set(implementations) - set(BACKENDS)
        if unknown or "reference" not in implementations:
            raise ValueError(
                f"op {op_name!r}: backends must be among {BACKENDS} and include 'reference', "
                f"got {tuple(implementations)}"
            )
        self.op_name = op_name
        self.implementations = dict(implementations)
        self.nondeterministic = tuple(nondeterministic)

    @torch.compiler.assume_constant_result
    def choose(self, device: torch.device, backend: str | None = None) -> str:
        """The backend that serves a call on ``device`` (see :func:`choose_backend`)."""
        return choose_backend(self.op_name, device, self.implementations, backend, self.nondeterministic)

    def run(self, device: torch.device, backend: str | None, *args: object) -> Result:
        """Call the implementation chosen for ``device`` and ``backend`` with ``args``."""
        return self.implementations[self.choose(device, backend)](*args)
