"""Run the CUDA kernels of ``rift_fast/kernels/*.cuh`` through CuPy when the compiled extension has no CUDA.

The kernel sources ship inside the package (package data), so an installed rift_fast finds them
without the source tree. The same files that the CUDA build compiles are compiled at run time by CuPy's
``RawModule``; torch tensors are shared with CuPy zero-copy through DLPack, and kernels run on
torch's current CUDA stream.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"


@functools.cache
def _module(source_name: str) -> Any:
    import cupy

    path = KERNEL_DIR / source_name
    if not path.exists():
        raise FileNotFoundError(f"CUDA kernel source {path} is missing (the rift_fast install lacks its package data)")
    return cupy.RawModule(code=path.read_text(), options=("-std=c++17",))


def launch(source_name: str, kernel_name: str, total_threads: int, args: tuple, threads_per_block: int = 256) -> None:
    """Launch ``kernel_name`` of ``rift_fast/kernels/<source_name>`` over ``total_threads`` threads.

    Tensor arguments are passed as CuPy views (DLPack); Python ints become 64-bit integers. The kernel
    runs on the device of the first tensor argument, on torch's current stream of that device.
    """
    import cupy

    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    with torch.cuda.device(device), cupy.cuda.Device(device.index):
        kernel = _module(source_name).get_function(kernel_name)
        converted = tuple(
            cupy.from_dlpack(a) if isinstance(a, torch.Tensor) else (cupy.int64(a) if isinstance(a, int) else a)
            for a in args
        )
        blocks = (total_threads + threads_per_block - 1) // threads_per_block
        with cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream):
            kernel((blocks,), (threads_per_block,), converted)
