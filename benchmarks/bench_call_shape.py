"""Rows per second of the victim: the bare forward at each call shape, against what the attacks reach.

For each pool (Rotten Tomatoes snippets; with ``--long-reviews DIR/aclImdb`` also long movie reviews, the
aclImdb-style folder ``bench_engine.py`` and ``bench_attacks.py`` take) and each search dtype (float32,
and a bfloat16 search copy), it prints in one run:

1. the bare forward of the victim's search model (``VictimModel.forward_uncounted``, no query engine) at
   each rows per call of ``--rows`` (1, 2, 4, ..., 64): copies of the pool's clean input of median length,
   the median of ``--repeats`` timed calls after one untimed (:func:`measure.median_ms`), and the best
   rows/s over those shapes;
2. the rows/s the attacks reach inside PWWS, the GA and TextFooler (``--attacks``) at the engine's call
   shape (``--token-budget``, default ``auto``: measured on a CPU, :mod:`rift_fast.attacks.call_shape`):
   rows the victim scored per second of its forward passes (``VictimModel.rows_scored /
   forward_seconds``), and against the bare forward at its best shape: the seconds the bare forward
   would take for the same rows, each priced at the bare forward's best tokens/s for its length (a curve
   timed at 1/4 to 4 times the median length; with a bfloat16 search, the rows the float32 victim
   re-scored on float32's curve), over the attack's seconds in the victim's forward, and over its wall
   time less the seconds of its other models (TextFooler's sentence encoder);
3. where the gap goes: each attack's calls are kept and sent again, back to back, right after it; the
   bare forward's price over that replay is what the calls' shapes cost (their rows, padding and the
   float32 re-scoring), the replay over the attack's seconds what the engine costs around them; with the
   padding, the re-scoring's share, the call shapes new to the process and the extra milliseconds of a
   first call at a new shape (:func:`first_call_milliseconds`);
4. the engine factor call by call (:func:`call_by_call`): each call's seconds in the attack against its
   replay, split between the calls that open a queue (the engine's own work ran just before them) and
   the later ones, with the seconds in Python's garbage collector and in the kernel inside the calls.

The victim is the embedded MiniLM (its new head seeded with ``--seed``) or the classifier at ``--victim``
(e.g. the fine-tuned MiniLM ``bench_attacks.py`` saves in ``runs/bench_victim``). The record (``--output``,
JSON in the form of ``benchmarks/results/*.json``, which ``render_results.py`` renders) holds the machine
(CPU model, core count, avx512_bf16), torch threads, the commit, the load average before and after, the
tables and every figure.

    python benchmarks/bench_call_shape.py --victim runs/bench_victim --long-reviews /tmp/long_reviews/aclImdb \
        --output runs/bench_call_shape.json
    # the tables of a record computed again from its figures with this code (no model runs):
    python benchmarks/bench_call_shape.py --tables-from runs/bench_call_shape.json --output runs/bench_call_shape.json
    # a smoke run (seconds):
    python benchmarks/bench_call_shape.py --num-snippets 4 --attacks pwws --dtypes float32 --rows 1 2 4 \
        --synonyms embedded --output /tmp/call_shape.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import bench_attacks  # noqa: E402  (recipe options, synonyms, TextFooler's vectors, thread settings)
from bench_engine import pools  # noqa: E402
from measure import benchmark_record, cpu_description, median_ms, write_record  # noqa: E402

ROOT = bench_attacks.ROOT
ROWS = (1, 2, 4, 8, 16, 32, 64)
ATTACKS = ("pwws", "ga", "textfooler")
DTYPES = ("float32", "bfloat16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-reviews", default=None, help="aclImdb-style folder of long reviews (see above)")
    parser.add_argument("--num-snippets", type=int, default=24, help="Rotten Tomatoes test snippets")
    parser.add_argument("--num-long", type=int, default=2, help="long reviews")
    parser.add_argument("--victim", default="embedded", help="classifier folder, or 'embedded' (seeded new head)")
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES, help="search dtypes")
    parser.add_argument("--rows", nargs="+", type=int, default=list(ROWS), help="rows per bare forward call")
    parser.add_argument("--repeats", type=int, default=5, help="timed bare forwards per shape (median kept)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64, help="the attacks' rows per call, at most")
    bench_attacks.add_token_budget_option(parser)
    parser.add_argument("--ga-population", type=int, default=20)
    parser.add_argument("--ga-generations", type=int, default=5)
    parser.add_argument("--word-vectors", default=None, help="TextFooler's vectors (default: bench_attacks' GloVe)")
    parser.add_argument("--sentence-encoder", default="embedded", help="TextFooler's sentence encoder")
    parser.add_argument("--synonyms", default=None, help="neighbour JSON or 'embedded' (as bench_attacks.py)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "runs" / "bench_call_shape.json"), help="the JSON record")
    parser.add_argument(
        "--tables-from",
        default=None,
        help="a record of this benchmark: compute its tables again from its figures with this code, into "
        "--output (no model runs)",
    )
    return parser


def call_of(victim, pool, rows: int) -> list:
    """``rows`` copies of the clean input of ``pool`` of median length: every shape is padded alike."""
    inputs = sorted(victim.rows([(e.text, e.text_pair) for e in pool]), key=lambda row: len(row.ids))
    return [inputs[len(inputs) // 2]] * rows


def of_length(row, length: int):
    """``row`` cut to, or repeated up to, ``length`` tokens (its token types alike): a call's row of that length."""
    from rift_fast.attacks.splicing import TokenRow

    types = None if row.type_ids is None else np.resize(row.type_ids, length)
    return TokenRow.of(np.resize(row.ids, length), types)


def bare_forward(victim, pool, rows_per_call: list[int], repeats: int) -> dict[int, dict]:
    """``{rows: {"rows_per_second", "tokens_per_second", "padded_length"}}`` of the bare forward at each
    rows per call (the rows hold no padding: their tokens are the call's)."""
    figures = {}
    for rows in rows_per_call:
        call = call_of(victim, pool, rows)
        milliseconds = median_ms(lambda call=call: victim.forward_uncounted(call), warmup=1, repeats=repeats)
        padded = max(len(row.ids) for row in call)
        rate = rows / (milliseconds / 1e3)
        figures[rows] = {"rows_per_second": rate, "tokens_per_second": rate * padded, "padded_length": padded}
        print(f"[bench]   bare forward, {rows} rows x {padded} tokens: {figures[rows]['rows_per_second']:.1f} rows/s")
    return figures


def attack_figures(name: str, victim, pool, synonyms, args) -> dict:
    """One attack of ``pool`` at the engine's call shape: rows scored, forward and wall seconds, robust accuracy."""
    from rift_fast.attacks import build_attack
    from rift_fast.attacks.call_shape import choose_token_budget

    victim.token_budget = choose_token_budget(victim, pool, args.token_budget)
    bench_attacks.forget_auxiliary_models()
    attack = build_attack(name, victim, synonyms, is_pair=False, options=bench_attacks.recipe_options(name, args))
    counts = ("rows_scored", "exact_rows_scored", "tokens_scored", "exact_tokens_scored", "forward_seconds")
    faults = bench_attacks.victim_forward_timer(victim)
    before = {count: getattr(victim, count) for count in counts}
    for tally in victim.calls_scored.values():
        tally.clear()
    shapes_before, victim.calls_sent = set(victim.shapes_seen), []
    COLLECTOR.install()
    started = time.perf_counter()
    report = attack.run(pool, victim, {}, progress=False)
    wall = time.perf_counter() - started
    faults.remove()  # the model is shared by the next attacks and copied into the next dtype's search model
    calls, victim.calls_sent = victim.calls_sent, None
    scored = {count: getattr(victim, count) - before[count] for count in counts}
    rows, forward = scored["rows_scored"], scored["forward_seconds"]
    return {
        **scored,
        "calls_scored": {model: dict(tally) for model, tally in victim.calls_scored.items()},
        "other_models_seconds": report.forward_seconds - forward,
        "wall_seconds": wall,
        "rows_per_forward_second": rows / forward if forward else None,
        "page_faults_per_call": faults.page_faults / max(1, faults.calls),
        "rows_per_wall_second": rows / wall,
        "token_budget": victim.token_budget,
        "robust_accuracy": report.summary()["robust_accuracy"],
        **replayed(victim, calls, shapes_before),
    }


class CollectorClock:
    """Seconds spent in Python's garbage collector since :meth:`install` (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def install(self) -> None:
        if self._tick not in gc.callbacks:
            gc.callbacks.append(self._tick)

    def _tick(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


COLLECTOR = CollectorClock()


@dataclass(frozen=True)
class CallTime:
    """Wall seconds of one model call, and the system CPU seconds and garbage-collector seconds within it."""

    seconds: float
    system_seconds: float
    collector_seconds: float


def timed_call(call: Callable[[], Any]) -> tuple[Any, CallTime]:
    """``call()``'s result and its :class:`CallTime` (system time from ``getrusage``: the process's, whose
    one torch thread is the caller's; the kernel accounts it by clock tick, so only sums over many calls
    are meaningful)."""
    started, system, collector = time.perf_counter(), system_seconds(), COLLECTOR.seconds
    result = call()
    return result, CallTime(time.perf_counter() - started, system_seconds() - system, COLLECTOR.seconds - collector)


def system_seconds() -> float:
    """The system CPU seconds this process has used (``getrusage``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


@dataclass(frozen=True)
class SentCall:
    """One model call an attack sent: the model, its padded batch, whether it was the first call of its
    queue (the engine's own work ran just before it) and its :class:`CallTime` in the attack."""

    model: Any
    batch: dict
    opens_queue: bool
    timing: CallTime


def logging_victim_class():
    """A :class:`VictimModel` that tallies the rows each model scores by the rows of their call and their
    length (``calls_scored``: ``{"search" | "exact": Counter("ROWSxLENGTH" -> rows)}``, "exact" for the
    float32 model itself), keeps each call it sends (``calls_sent``: :class:`SentCall` s, when set to a
    list) and, in ``shapes_seen`` (shared by the class's victims), every (dtype, rows, padded length) its
    models have run, the bare forwards' included."""
    from rift_fast.attacks import VictimModel

    class ShapeLoggingVictim(VictimModel):
        shapes_seen: set[tuple] = set()

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.calls_scored: dict[str, Counter] = {"search": Counter(), "exact": Counter()}
            self.calls_sent: list[SentCall] | None = None
            self._scoring = "exact"
            self._opens_queue = False

        def answers(self, model, batch):
            self.shapes_seen.add(call_shape(model, batch))
            answer = super().answers
            if self.calls_sent is None:
                return answer(model, batch)
            probabilities, timing = timed_call(lambda: answer(model, batch))
            self.calls_sent.append(SentCall(model, batch, self._opens_queue, timing))
            self._opens_queue = False
            return probabilities

        def forward_uncounted(self, rows) -> None:
            calls_sent, self.calls_sent = self.calls_sent, None  # the bare forward is no call of the attack
            super().forward_uncounted(rows)
            self.calls_sent = calls_sent

        def _queue(self, model, rows, one_length=False):
            self._scoring = "exact" if model is self.model else "search"
            self._opens_queue = True
            return super()._queue(model, rows, one_length)

        def _batches(self, order, rows, one_length):
            calls = super()._batches(order, rows, one_length)
            for call in calls:
                self.calls_scored[self._scoring].update(f"{len(call)}x{len(rows[k].ids)}" for k in call)
            return calls

    return ShapeLoggingVictim


def call_shape(model, batch: dict) -> tuple:
    """(model dtype, rows, padded length) of one call: what the CPU kernels are chosen and built for."""
    return (str(next(model.parameters()).dtype), *batch["input_ids"].shape)


def replayed(victim, calls: list[SentCall], shapes_before: set) -> dict:
    """The calls an attack sent sent again in a row, bare, right after it (every shape already run once):
    seconds of the search model's calls and of the model's own ("exact"), the padding share (padded tokens
    over the rows' tokens, less 1), the distinct call shapes and those new to the process at the attack's
    start (``shapes_before``: the shapes run before it), and the calls compared one by one
    (:func:`call_by_call`)."""
    import torch

    seconds = {"search": 0.0, "exact": 0.0}
    timings = []
    with torch.inference_mode():
        for call in calls:
            _, timing = timed_call(lambda call=call: victim.answers(call.model, call.batch))
            seconds["exact" if call.model is victim.model else "search"] += timing.seconds
            timings.append(timing)
    padded = sum(call.batch["input_ids"].numel() for call in calls)
    tokens = sum(int(call.batch["attention_mask"].sum()) for call in calls)
    shapes = {call_shape(call.model, call.batch) for call in calls}
    new = Counter(dtype.removeprefix("torch.") for dtype, *_ in shapes - shapes_before)
    return {
        "replay_seconds": seconds,
        "padding": padded / tokens - 1 if tokens else 0.0,
        "distinct_shapes": len(shapes),
        "new_shapes": dict(new),
        "call_by_call": call_by_call(calls, timings),
    }


def call_by_call(calls: list[SentCall], replay: list[CallTime]) -> dict:
    """Each call's seconds in the attack against its replay: the calls, those that opened a queue (the
    engine's own work ran just before them), the median of replayed ÷ attack over calls, the attack's
    excess seconds (attack less replay) in the calls that opened a queue and in the later calls, and the
    garbage collector's and the system's seconds inside the calls, each over the attack's seconds in its
    calls (these sums)."""
    attack = np.array([call.timing.seconds for call in calls])
    again = np.array([timing.seconds for timing in replay])
    opens = np.array([call.opens_queue for call in calls], dtype=bool)
    forward = float(attack.sum()) or 1.0
    excess = attack - again
    return {
        "calls": len(calls),
        "calls_opening_a_queue": int(opens.sum()),
        "median_replayed_over_attack": float(np.median(again / attack)) if len(calls) else None,
        "excess_in_queue_openers": float(excess[opens].sum()) / forward,
        "excess_in_later_calls": float(excess[~opens].sum()) / forward,
        "collector_share": {
            "attack": sum(call.timing.collector_seconds for call in calls) / forward,
            "replay": sum(timing.collector_seconds for timing in replay) / forward,
        },
        "system_share": {
            "attack": sum(call.timing.system_seconds for call in calls) / forward,
            "replay": sum(timing.system_seconds for timing in replay) / forward,
        },
    }


NEW_SHAPE_TOKENS = 4096  # most tokens a call in the timing of a first call at a new shape


def first_call_milliseconds(victim, pool, repeats: int) -> float:
    """The milliseconds the search model's first call at a new shape takes beyond a later call at that
    shape (on a CPU, oneDNN builds its kernels for each shape it meets): calls at four lengths just under
    the pool's median and two row counts no other measurement here uses, in one order, timed on first
    use and again (the median of ``repeats`` passes), the difference averaged over the shapes."""
    (median,) = call_of(victim, pool, 1)
    lengths = sorted({max(1, len(median.ids) - step) for step in (1, 2, 3, 4)})
    most = max(4, min(victim.batch_size - 1, NEW_SHAPE_TOKENS // len(median.ids)))
    calls = [[of_length(median, length)] * rows for length in lengths for rows in (most, 3)]

    def one_pass() -> float:
        started = time.perf_counter()
        for call in calls:
            victim.forward_uncounted(call)
        return time.perf_counter() - started

    first = one_pass()
    later = float(np.median([one_pass() for _ in range(repeats)]))
    return 1e3 * (first - later) / len(calls)


def load_victim(args):
    """The victim model and its tokenizer (``--victim``, the embedded MiniLM's new head seeded)."""
    import torch

    from rift_fast.data.tasks import SENTIMENT_LABELS
    from rift_fast.models import load_sequence_classifier

    torch.manual_seed(args.seed)
    model, tokenizer, _ = load_sequence_classifier(args.victim, SENTIMENT_LABELS)
    return model.eval(), tokenizer


def measure_pool(name: str, pool, model, tokenizer, synonyms, args) -> list[dict]:
    """Every dtype's bare-forward and attack figures on ``pool``."""
    import torch

    measured = []
    victim_class = logging_victim_class()
    for dtype in args.dtypes:
        search_dtype = None if dtype == "float32" else getattr(torch, dtype)
        victim = victim_class(model, tokenizer, args.max_length, args.batch_size, search_dtype=search_dtype)
        print(f"[bench] {name} ({len(pool)}), {dtype} search", flush=True)
        first_call = first_call_milliseconds(victim, pool, args.repeats)
        print(f"[bench]   a first call at a new shape: {first_call:+.1f} ms", flush=True)
        bare = bare_forward(victim, pool, args.rows, args.repeats)
        by_length = tokens_by_length(victim, pool, bare, args)
        attacks = {}
        for attack in args.attacks:
            attacks[attack] = attack_figures(attack, victim, pool, synonyms, args)
            print(f"[bench]   {attack}: {json.dumps(attacks[attack])}", flush=True)
        measured.append(
            {
                "pool": name,
                "examples": len(pool),
                "dtype": dtype,
                "bare": bare,
                "first_call_milliseconds": first_call,
                "tokens_per_second_by_length": by_length,
                "attacks": attacks,
            }
        )
    return measured


LENGTH_FACTORS = (0.25, 0.5, 1, 2, 4)  # row lengths timed for the tokens/s curve, times the median length


def tokens_by_length(victim, pool, bare: dict[int, dict], args) -> dict[int, float]:
    """``{length: tokens/s}``: the bare forward's best tokens/s with rows of :data:`LENGTH_FACTORS` times
    the pool's median length (1 to ``--max-length`` tokens), each timed at the median's best rows per call
    and at the rows that hold as many tokens a call (at the median length, the first table's best counts
    too); the attacks' rows are priced on this curve."""
    best_rows = max(bare, key=lambda r: bare[r]["rows_per_second"])
    (median,) = call_of(victim, pool, 1)
    lengths = {min(args.max_length, max(1, round(factor * len(median.ids)))) for factor in LENGTH_FACTORS}
    rates = {len(median.ids): bare[best_rows]["tokens_per_second"]}
    for length in sorted(lengths):
        row = of_length(median, length)
        shapes = {best_rows, min(args.batch_size, max(1, round(best_rows * len(median.ids) / length)))}
        for rows in sorted(shapes):
            call = [row] * rows
            milliseconds = median_ms(lambda call=call: victim.forward_uncounted(call), warmup=1, repeats=args.repeats)
            rate = rows * length / (milliseconds / 1e3)
            rates[length] = max(rates.get(length, 0.0), rate)
            print(f"[bench]   {rows} rows x {length} tokens: {rate:.0f} tokens/s", flush=True)
    return dict(sorted(rates.items()))


def bare_seconds(calls: dict[str, dict[str, int]], curves: dict[str, dict], at_call_rows: bool = False) -> float | None:
    """Seconds the bare forward would take for the rows an attack scored (``calls``: ``{"search" | "exact":
    {"ROWSxLENGTH": rows}}``), each row priced at the tokens/s of its length on its model's curve
    (``curves``: ``{"search" | "exact": {"length": {length: tokens/s}, "rows": {rows: rows/s}}}``,
    interpolated, flat past its ends); with ``at_call_rows`` also slowed by the bare forward's rows/s at
    its call's rows against the best (the "rows" curve). None when a model that scored rows has no curve."""
    seconds = 0.0
    for model, tally in calls.items():
        if not tally:
            continue
        if model not in curves:
            return None
        shapes = np.array([[int(part) for part in shape.split("x")] for shape in tally], dtype=float)
        rows = np.array(list(tally.values()), dtype=float)
        lengths, rates = zip(*sorted(curves[model]["length"].items()))
        cost = rows * shapes[:, 1] / np.interp(shapes[:, 1], lengths, rates)
        if at_call_rows:
            call_rows, row_rates = zip(*sorted(curves[model]["rows"].items()))
            cost *= max(row_rates) / np.interp(shapes[:, 0], call_rows, row_rates)
        seconds += float(cost.sum())
    return seconds


def mean_call_rows(calls: dict[str, dict[str, int]]) -> float:
    """The rows of the call a scored row was in, averaged over the rows scored."""
    weighted = [(int(shape.split("x")[0]), rows) for tally in calls.values() for shape, rows in tally.items()]
    total = sum(rows for _, rows in weighted)
    return sum(size * rows for size, rows in weighted) / total if total else 0.0


def curves_of(measured: list[dict], entry: dict) -> dict[str, dict]:
    """The curves an attack of ``entry`` is priced on (:func:`bare_forward`'s rows/s by rows per call and
    :func:`tokens_by_length`'s tokens/s by length): its search dtype's as "search"; float32's of the same
    pool as "exact" (the model itself: the search curve too when the search is float32)."""

    def curve(measured_entry: dict) -> dict:
        rows = {int(r): figures["rows_per_second"] for r, figures in measured_entry["bare"].items()}
        lengths = {int(length): rate for length, rate in measured_entry["tokens_per_second_by_length"].items()}
        return {"length": lengths, "rows": rows}

    curves = {"search": curve(entry)}
    for other in measured:
        if other["pool"] == entry["pool"] and other["dtype"] == "float32":
            curves["exact"] = curve(other)
    return curves


def tables(measured: list[dict]) -> list[dict]:
    """The record's tables: the bare forward's rows/s by rows per call, and each attack against its best."""
    rows_per_call = sorted({rows for entry in measured for rows in entry["bare"]})
    bare = {
        "caption": "Bare forward of the victim's search model: rows/s by rows per call (copies of the pool's "
        "clean input of median length, whose tokens the pool column gives).",
        "columns": ["pool", "search dtype", *(f"{rows} rows" for rows in rows_per_call), "best"],
        "rows": [],
    }
    attacks = {
        "caption": 'Rows/s the attacks reach against the bare forward at its best shape. "÷ bare": the '
        "seconds the bare forward would take for the rows the attack scored, each priced at the bare "
        "forward's best tokens/s for its length (the notes give that curve; rows re-scored by the float32 "
        "victim on float32's), over the seconds the attack spent in the victim's forward, and over its wall "
        "time less the other models' (TextFooler's sentence encoder). \"At the attack's call rows\": each "
        "row priced again at the bare forward's rows/s for the rows of the call it was in (first table, "
        'interpolated), against its best: what the sizes of the calls cost, not the engine. "Page faults / '
        "call\": the minor page faults the process took inside the victim's forwards, per call (the "
        "benchmark keeps freed host memory in the heap, as the command lines do).",
        "columns": [
            "pool",
            "search dtype",
            "attack",
            "token budget",
            "rows (float32 re-scored)",
            "tokens a row",
            "rows/s (forward)",
            "÷ bare (forward)",
            "other models' share of wall",
            "÷ bare (wall less other models)",
            "rows a call (mean over rows)",
            "÷ bare at the attack's call rows (forward)",
            "page faults / call",
        ],
        "rows": [],
    }
    for entry in measured:
        rates = {rows: figures["rows_per_second"] for rows, figures in entry["bare"].items()}
        best_rows = max(rates, key=lambda rows: rates[rows])
        length = entry["bare"][best_rows]["padded_length"]
        bare["rows"].append(
            [
                f"{entry['pool']} ({entry['examples']}, {length} tokens)",
                entry["dtype"],
                *(f"{rates[r]:.1f}" if r in rates else "—" for r in rows_per_call),
                f"{rates[best_rows]:.1f} ({best_rows} rows, {rates[best_rows] * length:,.0f} tokens/s)",
            ]
        )
        for attack, figures in entry["attacks"].items():
            curves = curves_of(measured, entry)
            reference = bare_seconds(figures["calls_scored"], curves)
            at_call_rows = bare_seconds(figures["calls_scored"], curves, at_call_rows=True)
            own_wall = figures["wall_seconds"] - figures["other_models_seconds"]
            attacks["rows"].append(
                [
                    entry["pool"],
                    entry["dtype"],
                    attack,
                    str(figures["token_budget"] or "none"),
                    f"{figures['rows_scored']} ({figures['exact_rows_scored']})",
                    f"{figures['tokens_scored'] / max(1, figures['rows_scored']):.0f}",
                    f"{figures['rows_per_forward_second'] or 0.0:.1f}",
                    "—" if reference is None else f"{reference / figures['forward_seconds']:.2f}",
                    f"{figures['other_models_seconds'] / figures['wall_seconds']:.0%}",
                    "—" if reference is None else f"{reference / own_wall:.2f}",
                    f"{mean_call_rows(figures['calls_scored']):.1f}",
                    "—" if at_call_rows is None else f"{at_call_rows / figures['forward_seconds']:.2f}",
                    f"{figures['page_faults_per_call']:,.0f}" if "page_faults_per_call" in figures else "—",
                ]
            )
    attacks["align"] = "lll" + "r" * (len(attacks["columns"]) - 3)
    return [bare, attacks, gap_table(measured), engine_table(measured)]


def gap_table(measured: list[dict]) -> dict:
    """Each attack's "÷ bare (forward)" as the product of what its calls' shapes cost (the bare forward's
    price of its rows over the same calls replayed bare) and what the engine costs around them (the replay
    over the attack's seconds in the forward), with what each part is made of."""
    table = {
        "caption": "Where the gap to the bare forward goes. Each attack's calls are sent again in a row, bare, right "
        'after it ("replayed"; every shape then already run once). "÷ bare (forward)" (as above) = "calls\' '
        "shapes: bare ÷ replayed\" (its rows priced at the bare forward's best over the replay: the sizes of "
        'the calls, their padding, the float32 re-scoring in calls of one length) × "engine: replayed ÷ '
        "attack\" (the replay over the attack's seconds in the forward). The calls' shapes are in turn \"call "
        "sizes\" (the bare price of the rows at the bare forward's best over their price at the rows of their "
        'calls, the first table interpolated) × 1 / (1 + "padding" (padded tokens over real ones, less 1)) × '
        '"rest" (what the first two leave: chiefly the error of pricing a call\'s rows on curves timed at '
        'other lengths). "New shapes": (dtype, rows, padded length) of calls not run before in the process; '
        '"first calls, estimated": those times the extra milliseconds of a first call at a new shape (the '
        "notes give them), over the attack's seconds in the forward.",
        "columns": [
            "pool",
            "search dtype",
            "attack",
            "÷ bare (forward)",
            "calls' shapes: bare ÷ replayed",
            "call sizes",
            "padding",
            "rest",
            "engine: replayed ÷ attack",
            "float32 re-scoring's share of the replay",
            "call shapes (new)",
            "first calls at new shapes, estimated ÷ forward",
        ],
        "rows": [],
    }
    first_call = {(e["pool"], e["dtype"]): e.get("first_call_milliseconds") for e in measured}
    for entry in measured:
        for attack, figures in entry["attacks"].items():
            if "replay_seconds" not in figures:
                continue
            replay = replayed_seconds(figures)
            shapes = calls_shape_factors(figures, curves_of(measured, entry), replay)
            costs = [first_call.get((entry["pool"], dtype)) for dtype in figures["new_shapes"]]
            new_shapes = figures["new_shapes"].values()
            first_calls = None if None in costs else sum(n * ms for n, ms in zip(new_shapes, costs)) / 1e3
            table["rows"].append(
                [
                    entry["pool"],
                    entry["dtype"],
                    attack,
                    *(f"{factor:.2f}" if factor is not None else "—" for factor in shapes[:3]),
                    f"{figures['padding']:.1%}",
                    "—" if shapes[3] is None else f"{shapes[3]:.2f}",
                    f"{engine_factor(figures):.2f}",
                    "—" if entry["dtype"] == "float32" else f"{figures['replay_seconds']['exact'] / replay:.0%}",
                    f"{figures['distinct_shapes']} ({sum(new_shapes)})",
                    "—" if first_calls is None else f"{first_calls / figures['forward_seconds']:.2f}",
                ]
            )
    table["align"] = "lll" + "r" * (len(table["columns"]) - 3)
    return table


def replayed_seconds(figures: dict) -> float:
    """The seconds an attack's calls took replayed (both models')."""
    return sum(figures["replay_seconds"].values())


def engine_factor(figures: dict) -> float:
    """The replay over the attack's seconds in the forward (:func:`gap_table`'s "engine")."""
    return replayed_seconds(figures) / figures["forward_seconds"]


def calls_shape_factors(figures: dict, curves: dict[str, dict], replay: float) -> tuple:
    """(÷ bare, calls' shapes, call sizes, rest) of one attack (:func:`gap_table`'s caption), each None
    when a model that scored rows has no curve."""
    reference = bare_seconds(figures["calls_scored"], curves)
    at_call_rows = bare_seconds(figures["calls_scored"], curves, at_call_rows=True)
    if reference is None or at_call_rows is None:
        return None, None, None, None
    shapes, sizes = reference / replay, reference / at_call_rows
    return reference / figures["forward_seconds"], shapes, sizes, shapes * (1 + figures["padding"]) / sizes


def engine_table(measured: list[dict]) -> dict:
    """The engine factor call by call: where the attack's seconds beyond its replayed calls lie."""
    table = {
        "caption": "The engine factor call by call: each call of the attack against the same call replayed "
        '(third table). "Opening a queue": the first call of a queue, which the engine\'s own work ran just '
        "before; later calls follow another call. \"Excess\": the attack's seconds less the replay's, in "
        "those calls, over the attack's seconds in its calls (the two sum to 1 - engine). \"Garbage "
        'collection" and "system time": seconds in Python\'s garbage collector and in the kernel on the '
        "process's behalf (page faults among them) inside the calls, in the attack and in the replay, over the "
        "attack's seconds in its calls.",
        "columns": [
            "pool",
            "search dtype",
            "attack",
            "calls (opening a queue)",
            "engine: replayed ÷ attack",
            "median call: replayed ÷ attack",
            "excess: calls opening a queue",
            "excess: later calls",
            "garbage collection: attack / replay",
            "system time: attack / replay",
        ],
        "rows": [],
    }
    for entry in measured:
        for attack, figures in entry["attacks"].items():
            if "call_by_call" not in figures:
                continue
            calls = figures["call_by_call"]
            median = calls["median_replayed_over_attack"]
            collector, system = calls["collector_share"], calls["system_share"]
            table["rows"].append(
                [
                    entry["pool"],
                    entry["dtype"],
                    attack,
                    f"{calls['calls']} ({calls['calls_opening_a_queue']})",
                    f"{engine_factor(figures):.2f}",
                    "—" if median is None else f"{median:.2f}",
                    f"{calls['excess_in_queue_openers']:+.1%}",
                    f"{calls['excess_in_later_calls']:+.1%}",
                    f"{collector['attack']:.1%} / {collector['replay']:.1%}",
                    f"{system['attack']:.1%} / {system['replay']:.1%}",
                ]
            )
    table["align"] = "lll" + "r" * (len(table["columns"]) - 3)
    return table


def length_notes(measured: list[dict]) -> list[str]:
    """One note per pool and dtype: the bare forward's best tokens/s by row length (the attacks' price),
    and the extra milliseconds of a first call at a new shape."""
    first_calls = [
        f"A first call at a new shape, {entry['pool']}, {entry['dtype']}: {entry['first_call_milliseconds']:+.1f} ms "
        "beyond a later call at that shape."
        for entry in measured
        if "first_call_milliseconds" in entry
    ]
    return first_calls + [
        f"Bare forward's best tokens/s by row length, {entry['pool']}, {entry['dtype']}: "
        + ", ".join(
            f"{rate:,.0f} at {length} tokens"
            for length, rate in sorted(entry["tokens_per_second_by_length"].items(), key=lambda item: int(item[0]))
        )
        + "."
        for entry in measured
    ]


def record(measured: list[dict], args, argv: list[str], threads: dict, load: tuple[float, float]) -> dict:
    """The JSON record of a run, in the form ``render_results.py`` renders."""
    import torch

    return benchmark_record(
        "call-shape",
        "Rows per second by call shape: bare forward against the attacks",
        "python benchmarks/bench_call_shape.py " + " ".join(argv),
        f"{cpu_description()}, torch {torch.__version__}, {threads['intra_op']} intra-op threads",
        tables(measured),
        notes=[*length_notes(measured), f"Load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after."],
        torch_threads=threads,
        load_average={"before": load[0], "after": load[1]},
        figures=measured,
    )


TABLES_AGAIN = "Tables computed again"  # the opening of the note tables_again adds


def tables_again(run: dict) -> dict:
    """The record ``run`` with its tables computed again from its figures by this checkout's code, which
    a note names (the measurements, command and commit stay the run's)."""
    from measure import checkout_commit

    note = f"{TABLES_AGAIN} from this run's figures by code {checkout_commit()} (the run's code: {run['commit']})."
    notes = [line for line in run["notes"] if not line.startswith(TABLES_AGAIN)]
    figures = [{**entry, "bare": {int(rows): bare for rows, bare in entry["bare"].items()}} for entry in run["figures"]]
    return {**run, "tables": tables(figures), "notes": [*notes, note]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.tables_from:
        write_record(Path(args.output), tables_again(json.loads(Path(args.tables_from).read_text())))
        return 0
    threads = bench_attacks._set_threads(args.threads)
    from rift_fast.core.host_memory import retain_freed_host_memory

    retain_freed_host_memory()  # as the command lines do
    load_before = os.getloadavg()[0]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_victim(args)
    synonyms, _ = bench_attacks.benchmark_synonyms(args.synonyms, output.parent)
    found = pools(args)
    if "textfooler" in args.attacks and args.word_vectors is None:
        args.word_vectors = str(bench_attacks.glove_vectors_file([e for p in found.values() for e in p], output.parent))
    args.pos_tagger, args.mlm, args.mlm_batch_size = "none", None, 32  # bench_attacks.recipe_options reads them
    measured = [
        entry for name, pool in found.items() for entry in measure_pool(name, pool, model, tokenizer, synonyms, args)
    ]
    result = record(measured, args, argv, threads, (load_before, os.getloadavg()[0]))
    write_record(output, result)
    for table in result["tables"]:
        print(f"\n{table['caption']}\n")
        print(render_table(table), end="")
    print(f"\n{result['machine']}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {output}")
    return 0


def render_table(table: dict) -> str:
    """``table`` as Markdown (``render_results.markdown_table``)."""
    from render_results import markdown_table

    return markdown_table(table)


if __name__ == "__main__":
    raise SystemExit(main())
