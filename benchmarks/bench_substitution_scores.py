"""Benchmark substitution_scores: the fused op (cpp on CPU, cuda on GPU) vs the torch reference.

Prints, per shape: median time (ms) of one call (scores + best slot + per-sequence top-k) for each
backend and their ratio (reference / fused); peak extra memory (MiB) and its ratio; on a GPU the
achieved bandwidth (GB/s) of the bytes the op must move (ids, grad, the gathered embedding rows,
table rows, scores). Peak memory is torch.cuda.max_memory_allocated above the inputs on a GPU;
on the CPU, the peak-RSS growth of one call in a fresh subprocess per variant (VmHWM after the
call, reset through /proc/self/clear_refs, minus VmRSS before it; a tiny call first pages in
the code). On the CPU torch and the C++
twin share one intra-op thread pool (at::parallel_for): --threads sets both.

    python benchmarks/bench_substitution_scores.py [--dtype bfloat16] [--threads 2] [--repeats 20]
"""

import argparse

import torch
from measure import median_ms, peak_mib, print_rss_growth

from rift_fast.ops.substitution_scores import substitution_scores

SHAPES = {"bert-base": (32, 256, 8, 768), "minilm": (32, 128, 8, 384)}  # (B, L, K, D)


def make_inputs(batch, length, k, dim, vocab, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(0, vocab, (vocab, k), generator=gen)
    table[torch.rand(vocab, k, generator=gen) < 0.3] = -1  # many tokens have fewer than K synonyms
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    embeddings = torch.randn(vocab, dim, generator=gen).to(dtype)
    grad = torch.randn(batch, length, dim, generator=gen).to(dtype)
    mask = torch.rand(batch, length, generator=gen) < 0.85  # special tokens, stop words excluded
    return [t.to(device) for t in (ids, table.int(), embeddings, grad, mask)]


def _runner(backend, inputs, topk):
    return lambda: substitution_scores(*inputs, topk=topk, backend=backend)


def moved_gb(batch, length, k, dim, element_size):
    """Bytes the op must move: ids, grad, original + candidate embedding rows, table rows, scores."""
    positions = batch * length
    return positions * (8 + dim * element_size * (k + 2) + k * 4 + k * 4) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--shapes", nargs="+", choices=tuple(SHAPES), default=list(SHAPES))
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--topk", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch = C++ threads (CPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one CPU memory measurement
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    fused = "cuda" if device.type == "cuda" else "cpp"
    if args.probe:
        warm_inputs = make_inputs(2, 8, 8, 16, 64, dtype, device)
        inputs = make_inputs(*SHAPES[args.shapes[0]], args.vocab, dtype, device)
        print_rss_growth(_runner(args.probe, warm_inputs, args.topk), _runner(args.probe, inputs, args.topk))
        return

    print(
        f"device={device} dtype={args.dtype} vocab={args.vocab} topk={args.topk} repeats={args.repeats} "
        f"threads={args.threads} (torch intra-op = C++ at::parallel_for) fused={fused}"
    )
    header = f"{'shape':>9} {'B':>3} {'L':>4} {'K':>2} {'D':>4} | {'fused ms':>9} {'ref ms':>9} {'ref/fused':>9}"
    header += f" | {'fused MiB':>9} {'ref MiB':>9} {'ref/fused':>9}"
    header += f" | {'fused GB/s':>10} {'ref GB/s':>9}" if device.type == "cuda" else ""
    print(header)
    for name in args.shapes:
        batch, length, k, dim = SHAPES[name]
        inputs = make_inputs(batch, length, k, dim, args.vocab, dtype, device)
        ms = {b: median_ms(_runner(b, inputs, args.topk), args.warmup, args.repeats) for b in (fused, "reference")}
        probe_args = [
            "--dtype",
            args.dtype,
            "--shapes",
            name,
            "--vocab",
            str(args.vocab),
            "--topk",
            str(args.topk),
            "--threads",
            str(args.threads),
        ]
        mib = {
            b: peak_mib(_runner(b, inputs, args.topk), device, [__file__, *probe_args, "--probe", b])
            for b in (fused, "reference")
        }
        line = (
            f"{name:>9} {batch:>3} {length:>4} {k:>2} {dim:>4} | {ms[fused]:>9.2f} {ms['reference']:>9.2f}"
            f" {ms['reference'] / ms[fused]:>9.2f} | {mib[fused]:>9.1f} {mib['reference']:>9.1f}"
            f" {mib['reference'] / max(mib[fused], 1e-3):>9.1f}"
        )
        if device.type == "cuda":
            gigabytes = moved_gb(batch, length, k, dim, inputs[2].element_size())
            line += f" | {gigabytes / ms[fused] * 1e3:>10.1f} {gigabytes / ms['reference'] * 1e3:>9.1f}"
        print(line)


if __name__ == "__main__":
    main()
