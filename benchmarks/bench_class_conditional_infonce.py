"""Benchmark class-conditional InfoNCE: fused Triton kernels vs the torch reference, forward + backward.

Prints, per shape: median time (ms) of one forward+backward for each backend and their ratio
(reference / fused), and on a GPU the peak extra memory (MiB, torch.cuda.max_memory_allocated above
the inputs) and its ratio. Without a GPU the Triton kernels only run under the CPU interpreter, so
the script then needs ``--tiny`` (one tiny shape, to exercise it; times are not meaningful).

    python benchmarks/bench_class_conditional_infonce.py [--dtype bfloat16] [--repeats 50]
    python benchmarks/bench_class_conditional_infonce.py --tiny   # CPU
"""

import argparse
import os

import torch
from measure import cuda_peak_mib, median_ms

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before Triton kernels are defined

from rift_fast.ops.class_conditional_infonce import class_conditional_infonce  # noqa: E402

SHAPES = ((32, 256, 2), (120, 256, 3), (512, 256, 3))  # (B, P, number of classes)
TINY_SHAPES = ((8, 16, 2),)
BACKENDS = ("triton", "reference")


def _make_inputs(batch, features, num_classes, dtype, device, seed):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, features, generator=gen).to(device=device, dtype=dtype)
    teacher = torch.randn(batch, features, generator=gen).to(device=device, dtype=dtype)
    labels = (torch.arange(batch) % num_classes).to(device)
    return student, teacher, labels


def _step(backend, student, teacher, labels, temperature):
    student = student.detach().requires_grad_(True)
    teacher = teacher.detach().requires_grad_(True)
    loss = class_conditional_infonce(student, teacher, labels, temperature, backend=backend)
    loss.backward()
    return loss.detach()


def _fmt(value, digits):
    return f"{'n/a':>9}" if value is None else f"{value:>9.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="one tiny shape (for the CPU interpreter)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        parser.error("no GPU: Triton runs only under the CPU interpreter here; pass --tiny")
    dtype = getattr(torch, args.dtype)

    print(f"device={device} dtype={args.dtype} temperature={args.temperature} repeats={args.repeats}")
    header = f"{'B':>5} {'P':>5} {'C':>3} | {'fused ms':>9} {'ref ms':>9} {'ref/fused':>9}"
    header += f" | {'fused MiB':>9} {'ref MiB':>9} {'ref/fused':>9} | {'|dloss|':>8}"
    print(header)
    for batch, features, num_classes in TINY_SHAPES if args.tiny else SHAPES:
        inputs = _make_inputs(batch, features, num_classes, dtype, device, args.seed)
        runs = {b: (lambda b=b, inputs=inputs: _step(b, *inputs, args.temperature)) for b in BACKENDS}
        ms = {b: median_ms(runs[b], args.warmup, args.repeats) for b in BACKENDS}
        mib = {b: cuda_peak_mib(runs[b], device) if device.type == "cuda" else None for b in BACKENDS}
        losses = {b: _step(b, *inputs, args.temperature).float() for b in BACKENDS}
        mem_ratio = None if mib["triton"] is None else mib["reference"] / max(mib["triton"], 1e-9)
        print(
            f"{batch:>5} {features:>5} {num_classes:>3} | {ms['triton']:>9.3f} {ms['reference']:>9.3f}"
            f" {ms['reference'] / ms['triton']:>9.2f} | {_fmt(mib['triton'], 3)} {_fmt(mib['reference'], 3)}"
            f" {_fmt(mem_ratio, 2)} | {abs(losses['triton'] - losses['reference']).item():>8.1e}"
        )


if __name__ == "__main__":
    main()
