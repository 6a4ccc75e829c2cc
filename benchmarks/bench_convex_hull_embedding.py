"""Benchmark convex_hull_embedding: Triton kernels vs the torch reference, forward and forward+backward.

Per shape, pass and backend it prints the median time (ms), its ratio to the reference's time
(t/t_ref < 1: faster), the memory (MiB) and its ratio to the reference's, and on a GPU the achieved
bandwidth (GB/s of the bytes the fused kernels must move). Memory on a GPU is measured:
torch.cuda.max_memory_allocated above the inputs. On the CPU it is an analytical estimate (marked
``~``): the largest tensor the op allocates besides its output and gradients ([B, L, K, D] slot
embeddings for the reference; the [B, L, K] LayerNorm statistics, or the float32 word-gradient
accumulator for non-float32 tables, for Triton).

Without a GPU Triton runs only under the CPU interpreter, so it is benchmarked only with ``--tiny``
(times are then not meaningful); the reference runs at any shape (``--batch`` shrinks it).

    python benchmarks/bench_convex_hull_embedding.py [--dtype bfloat16] [--grads weights]   # GPU
    python benchmarks/bench_convex_hull_embedding.py --backends reference --batch 2          # CPU
    python benchmarks/bench_convex_hull_embedding.py --tiny                                  # CPU interpreter
"""

import argparse
import os

import torch
from measure import cuda_peak_mib, median_ms

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the Triton kernels are defined

from rift_fast.ops.convex_hull_embedding import convex_hull_embedding  # noqa: E402

SHAPES = {  # name: (B, L, K, D, V, P, T)
    "bert-base": (32, 256, 9, 768, 30522, 512, 2),
    "minilm-L64": (32, 64, 9, 384, 30522, 512, 2),
    "minilm-L128": (32, 128, 9, 384, 30522, 512, 2),
}
TINY_SHAPES = {"tiny": (2, 8, 4, 32, 100, 16, 2)}
BACKENDS = ("triton", "reference")
TABLES = ("word_emb", "pos_emb", "type_emb", "ln_weight", "ln_bias")


def _make_inputs(batch, length, slots, hidden, vocab, positions, types, dtype, device, seed):
    gen = torch.Generator().manual_seed(seed)
    sub_ids = torch.randint(0, vocab, (batch, length, slots), generator=gen)
    sub_ids[..., 1:][torch.rand(batch, length, slots - 1, generator=gen) < 0.2] = -1  # some empty slots
    args = dict(
        weights=torch.rand(batch, length, slots, generator=gen).softmax(-1),
        sub_ids=sub_ids,
        word_emb=torch.randn(vocab, hidden, generator=gen).to(dtype),
        pos_emb=torch.randn(positions, hidden, generator=gen).to(dtype),
        type_emb=torch.randn(types, hidden, generator=gen).to(dtype),
        ln_weight=torch.ones(hidden, dtype=dtype),
        ln_bias=torch.zeros(hidden, dtype=dtype),
        token_type_ids=torch.randint(0, types, (batch, length), generator=gen),
    )
    args = {k: v.to(device) for k, v in args.items()}
    grad_out = torch.randn(batch, length, hidden, generator=gen).to(device=device, dtype=dtype)
    return args, grad_out


def _step(backend, args, grad_out, grads, backward):
    trainable = ("weights",) + (TABLES if grads == "all" else ())
    leaves = {k: args[k].detach().requires_grad_(True) for k in trainable}
    out = convex_hull_embedding(**dict(args, **leaves), backend=backend)
    if backward:
        out.backward(grad_out)
    return out.detach()


def _estimated_mib(backend, shape, dtype, grads, backward):
    """Analytical size (MiB) of the largest intermediate tensor (see the module docstring)."""
    batch, length, slots, hidden, vocab = shape[:5]
    elt = torch.tensor([], dtype=dtype).element_size()
    if backend == "reference":
        return batch * length * slots * hidden * elt / 2**20
    stats = 2 * batch * length * slots * 4
    accumulator = vocab * hidden * 4 if backward and grads == "all" and dtype != torch.float32 else 0
    return max(stats, accumulator) / 2**20


def _useful_bytes(shape, dtype, grads, backward):
    """Bytes the fused kernels must move: ids, weights, gathered rows, output; backward adds its reads and atomics."""
    batch, length, slots, hidden = shape[:4]
    elt = torch.tensor([], dtype=dtype).element_size()
    slot_count, row_count = batch * length * slots, batch * length
    total = slot_count * (4 + 8 + hidden * elt) + row_count * (2 * 8 + 3 * hidden * elt) + slot_count * 8
    if backward:
        total += slot_count * (4 + 8 + 8 + 4 + hidden * elt) + row_count * (2 * 8 + 3 * hidden * elt)
        if grads == "all":
            total += 2 * 4 * (slot_count * hidden + 2 * row_count * hidden)  # read-modify-write atomics
    return total


def _fmt(value, digits, width=9, prefix=""):
    if value is None:
        return f"{'n/a':>{width}}"
    return f"{prefix}{value:.{digits}f}".rjust(width)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--shapes", nargs="+", choices=tuple(SHAPES), default=list(SHAPES))
    parser.add_argument("--batch", type=int, help="override B of every shape")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument(
        "--grads",
        choices=("all", "weights"),
        default="all",
        help="train the tables and LayerNorm too, or only the convex weights (the adversary's inner loop)",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="one tiny shape (for the CPU interpreter)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    backends = list(args.backends)
    if device.type == "cpu" and not args.tiny and "triton" in backends:
        print("no GPU: Triton runs only under the CPU interpreter; skipping it (use --tiny to exercise it)")
        backends.remove("triton")
    if not backends:
        parser.error("no backend left to run")
    shapes = TINY_SHAPES if args.tiny else {name: SHAPES[name] for name in args.shapes}

    print(f"device={device} dtype={args.dtype} grads={args.grads} repeats={args.repeats}")
    print(
        f"{'shape':<12} {'B':>3} {'L':>4} {'K':>2} {'D':>4} {'pass':<7} {'backend':<9} | {'ms':>9} {'t/t_ref':>7}"
        f" | {'MiB':>9} {'m/m_ref':>7} | {'GB/s':>7} | {'max|diff|':>9}"
    )
    for name, shape in shapes.items():
        shape = (args.batch or shape[0],) + shape[1:]
        inputs, grad_out = _make_inputs(*shape, dtype, device, args.seed)
        outs = {b: _step(b, inputs, grad_out, args.grads, backward=False).float() for b in backends}
        for backward in (False, True):
            results = {}
            for backend in backends:

                def run(backend=backend, inputs=inputs, grad_out=grad_out, backward=backward):
                    return _step(backend, inputs, grad_out, args.grads, backward)

                ms = median_ms(run, args.warmup, args.repeats)
                if device.type == "cuda":
                    mib, mark = cuda_peak_mib(run, device), ""
                else:
                    mib, mark = _estimated_mib(backend, shape, dtype, args.grads, backward), "~"
                results[backend] = (ms, mib, mark)
            ref_ms, ref_mib = results.get("reference", (None, None, ""))[:2]
            for backend, (ms, mib, mark) in results.items():
                gbps = _useful_bytes(shape, dtype, args.grads, backward) / ms / 1e6 if device.type == "cuda" else None
                diff_text = f"{'n/a':>9}"
                if "reference" in outs and backend != "reference":
                    diff_text = f"{(outs[backend] - outs['reference']).abs().max().item():>9.1e}"
                print(
                    f"{name:<12} {shape[0]:>3} {shape[1]:>4} {shape[2]:>2} {shape[3]:>4}"
                    f" {'fwd+bwd' if backward else 'fwd':<7} {backend:<9} | {ms:>9.3f}"
                    f" {_fmt(ms / ref_ms if ref_ms else None, 2, 7)} | {_fmt(mib, 3, 9, mark)}"
                    f" {_fmt(mib / ref_mib if ref_mib else None, 3, 7)} | {_fmt(gbps, 1, 7)}"
                    f" | {diff_text}"
                )
        del inputs, grad_out, outs


if __name__ == "__main__":
    main()
