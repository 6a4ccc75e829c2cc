"""Benchmark build_perturbation_batch: the fused op (cpp on CPU, cuda on GPU) vs the torch reference.

GA-like load: B examples x P individuals (one query group each, 1..4 word changes), about 30% of the
individuals repeating an earlier one of their example (edits in another order). Prints, per shape:
median time (ms) of one call through the public function (input validation included, the same for
both) and of the op alone, their ratios (reference / fused), peak extra memory (MiB) and its ratio,
and on a GPU the achieved bandwidth (GB/s) of the bytes the op must move (base rows read per group,
edits, perturbed rows written, unique rows gathered). Memory is measured as in
bench_substitution_scores.py (fresh subprocess per variant on the CPU, where --threads sets torch's
and the C++ twin's shared intra-op thread count).

    python benchmarks/bench_build_perturbation_batch.py [--threads 2] [--repeats 30]
"""

import argparse

import torch
from measure import median_ms, peak_mib, print_rss_growth

from rift_fast import _custom_ops
from rift_fast.ops.build_perturbation_batch import build_perturbation_batch, build_perturbation_batch_reference

SHAPES = {"L=256": (32, 256, 60), "L=128": (32, 128, 60)}  # (B examples, L, individuals per example)


def make_inputs(batch, length, per_example, vocab, device, duplicate_fraction=0.3, seed=0):
    """token_ids [B, L] and the four [M] edit tensors of a GA generation."""
    gen = torch.Generator().manual_seed(seed)
    columns, group = [], 0
    for example in range(batch):
        individuals = []
        for _ in range(per_example):
            if individuals and torch.rand(1, generator=gen).item() < duplicate_fraction:
                copy = individuals[torch.randint(len(individuals), (1,), generator=gen).item()]
                edits = [copy[i] for i in torch.randperm(len(copy), generator=gen).tolist()]
            else:
                positions = torch.randperm(length, generator=gen)[: torch.randint(1, 5, (1,), generator=gen).item()]
                edits = [(p, torch.randint(vocab, (1,), generator=gen).item()) for p in positions.tolist()]
            individuals.append(edits)
            columns += [(example, position, token, group) for position, token in edits]
            group += 1
    example, position, token, group = torch.tensor(columns).t()
    ids = torch.randint(vocab, (batch, length), generator=gen)
    return [t.to(device) for t in (ids, example, position, token, group)]


def _num_groups(inputs):
    return int(inputs[4].max()) + 1


def _call(variant, inputs, num_groups):
    """variant: '<backend>' (public function) or '<backend>-op' (op alone, no validation; ``num_groups``
    is its Q, computed once outside the timed call)."""
    if variant == "reference-op":
        return build_perturbation_batch_reference(*inputs)
    if variant.endswith("-op"):
        return _custom_ops.build_perturbation_batch(*inputs, num_groups)
    return build_perturbation_batch(*inputs, backend=variant)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=tuple(SHAPES), default=list(SHAPES))
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch = C++ threads (CPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one CPU memory measurement
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fused = "cuda" if device.type == "cuda" else "cpp"
    if args.probe:
        inputs, warm_inputs = make_inputs(*SHAPES[args.shapes[0]], args.vocab, device), make_inputs(2, 8, 4, 50, device)
        warm_groups, groups = _num_groups(warm_inputs), _num_groups(inputs)
        print_rss_growth(lambda: _call(args.probe, warm_inputs, warm_groups), lambda: _call(args.probe, inputs, groups))
        return

    print(
        f"device={device} vocab={args.vocab} repeats={args.repeats} threads={args.threads} "
        f"(torch intra-op = C++ at::parallel_for) fused={fused}; 'op' columns skip input validation"
    )
    header = (
        f"{'shape':>5} {'B':>3} {'L':>4} {'Q':>5} {'M':>5} {'U':>5} | {'fused ms':>8} {'ref ms':>8} "
        f"{'ref/fused':>9} | {'op ms':>6} {'ref op':>6} {'ratio':>6} | {'fused MiB':>9} {'ref MiB':>8} "
        f"{'ref/fused':>9}"
    )
    header += f" | {'fused GB/s':>10}" if device.type == "cuda" else ""
    print(header)
    for name in args.shapes:
        batch, length, per_example = SHAPES[name]
        inputs = make_inputs(batch, length, per_example, args.vocab, device)
        out = build_perturbation_batch(*inputs, backend=fused)
        groups, edits, unique = out.inverse.shape[0], inputs[1].shape[0], out.query_ids.shape[0]
        ms = {
            v: median_ms(lambda v=v, inputs=inputs, groups=groups: _call(v, inputs, groups), args.warmup, args.repeats)
            for v in (fused, "reference", fused + "-op", "reference-op")
        }
        probe_args = ["--shapes", name, "--vocab", str(args.vocab), "--threads", str(args.threads)]
        mib = {
            v: peak_mib(
                lambda v=v, inputs=inputs, groups=groups: _call(v, inputs, groups),
                device,
                [__file__, *probe_args, "--probe", v],
            )
            for v in (fused, "reference")
        }
        line = (
            f"{name:>5} {batch:>3} {length:>4} {groups:>5} {edits:>5} {unique:>5} | {ms[fused]:>8.2f}"
            f" {ms['reference']:>8.2f} {ms['reference'] / ms[fused]:>9.2f} | {ms[fused + '-op']:>6.2f}"
            f" {ms['reference-op']:>6.2f} {ms['reference-op'] / ms[fused + '-op']:>6.2f} | {mib[fused]:>9.2f}"
            f" {mib['reference']:>8.2f} {mib['reference'] / max(mib[fused], 1e-3):>9.1f}"
        )
        if device.type == "cuda":
            moved = (2 * groups * length + 4 * edits + 2 * unique * length) * 8 / 1e9
            line += f" | {moved / ms[fused] * 1e3:>10.1f}"
        print(line)


if __name__ == "__main__":
    main()
