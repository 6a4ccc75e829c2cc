"""The call-shape benchmark's record is one ``render_results.py`` renders (no model runs here)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_call_shape  # noqa: E402
from render_results import load_record, record_section  # noqa: E402


def _bare(rates):
    return {
        rows: {"rows_per_second": rate, "tokens_per_second": rate * 512, "padded_length": 512}
        for rows, rate in rates.items()
    }


LONG_BARE = _bare({2: 5.3, 8: 5.2})
BF16_BARE = _bare({2: 15.0, 8: 16.0})


def _pwws(rows, exact, forward, other, wall):
    return {
        "rows_scored": rows,
        "exact_rows_scored": exact,
        "tokens_scored": rows * 512,
        "exact_tokens_scored": exact * 512,
        "calls_scored": {"search": {"8x512": rows - exact} if rows > exact else {}, "exact": {"2x512": exact}},
        "forward_seconds": forward,
        "other_models_seconds": other,
        "wall_seconds": wall,
        "rows_per_forward_second": rows / forward,
        "rows_per_wall_second": rows / wall,
        "token_budget": 1024,
        "robust_accuracy": 0.5,
    }


MEASURED = [
    {
        "pool": "long",
        "examples": 2,
        "dtype": "float32",
        "bare": LONG_BARE,
        "tokens_per_second_by_length": {256: 3000.0, 512: 5.3 * 512},
        "attacks": {"pwws": _pwws(900, 900, 180.0, 0, 200.0)},
    },
    {
        "pool": "long",
        "examples": 2,
        "dtype": "bfloat16",
        "bare": BF16_BARE,
        "tokens_per_second_by_length": {512: 16.0 * 512},
        "attacks": {"pwws": _pwws(1000, 100, 80.0, 10.0, 100.0)},
    },
]


def test_the_record_renders_with_the_ratios_to_the_bare_forward(tmp_path):
    threads = {"intra_op": 1, "inter_op": 1}
    record = bench_call_shape.record(MEASURED, SimpleNamespace(), ["--rows", "2", "8"], threads, (1.0, 1.5))
    path = tmp_path / "call-shape.json"
    path.write_text(json.dumps(record))
    section = record_section(load_record(path))
    assert "| long (2, 512 tokens) | float32 | 5.3 | 5.2 | 5.3 (2 rows, 2,714 tokens/s) |" in section
    # 900 rows at 5.3 rows/s: 169.8 s against 180 s in the forward and 200 s of wall
    assert "| long | float32 | pwws | 1024 | 900 (900) | 512 | 5.0 | 0.94 | 0% | 0.85 |" in section
    # 900 bf16 rows at 16 rows/s and 100 float32 rows at 5.3: 75.1 s against 80 s, and 100 - 10 s of wall
    assert "| long | bfloat16 | pwws | 1024 | 1000 (100) | 512 | 12.5 | 0.94 | 10% | 0.83 |" in section
    assert "avx512_bf16" in record["machine"] and record["load_average"] == {"before": 1.0, "after": 1.5}


def test_rows_are_priced_on_the_curve_of_their_length_and_their_call_rows():
    curves = {"search": {"length": {100: 1000.0, 300: 3000.0}, "rows": {2: 5.0, 8: 10.0}}}
    # 10 rows of 200 tokens at 2,000 tokens/s (interpolated) and 5 of 400 at 3,000 (flat past the end)
    calls = {"search": {"8x200": 10, "2x400": 5}}
    assert bench_call_shape.bare_seconds(calls, curves) == 1.0 + 2000 / 3000
    # at their call rows: the 5 rows in calls of 2 rows cost twice as much (5 rows/s against the best 10)
    assert bench_call_shape.bare_seconds(calls, curves, at_call_rows=True) == 1.0 + 2 * 2000 / 3000
    assert bench_call_shape.mean_call_rows(calls) == (8 * 10 + 2 * 5) / 15
    assert bench_call_shape.bare_seconds({"search": {}, "exact": {"1x100": 1}}, curves) is None


def test_a_bf16_search_without_float32_figures_has_no_ratio():
    (_, attacks, gaps, by_call) = bench_call_shape.tables(MEASURED[1:])
    assert attacks["rows"][0][7] == "—" and attacks["rows"][0][9] == "—"
    assert gaps["rows"] == [] and by_call["rows"] == []  # no replay in this record


def _replayed(search, exact, new_shapes):
    return {
        "replay_seconds": {"search": search, "exact": exact},
        "padding": 0.05,
        "distinct_shapes": 12,
        "new_shapes": new_shapes,
    }


def test_the_gap_is_the_calls_shapes_times_the_engine():
    measured = [
        {**MEASURED[0], "first_call_milliseconds": 20.0},
        {**MEASURED[1], "first_call_milliseconds": 100.0},
    ]
    measured[0]["attacks"] = {"pwws": {**MEASURED[0]["attacks"]["pwws"], **_replayed(0.0, 170.0, {"float32": 9})}}
    measured[1]["attacks"] = {
        "pwws": {**MEASURED[1]["attacks"]["pwws"], **_replayed(50.0, 25.0, {"bfloat16": 40, "float32": 10})}
    }
    (_, _, gaps, _) = bench_call_shape.tables(measured)
    # float32: 900 rows priced 169.8 s; replayed in 170 s; the attack spent 180 s; 9 new shapes x 20 ms
    # the 2-row calls are at the bare forward's best rows: call sizes 1.00, and the rest is the 5% padding's
    row = ["long", "float32", "pwws", "0.94", "1.00", "1.00", "5.0%", "1.05", "0.94", "—", "12 (9)", "0.00"]
    assert gaps["rows"][0] == row
    # bf16: priced 75.1 s, replayed 50 + 25 s (a third re-scoring), attack 80 s; 40 x 100 ms + 10 x 20 ms = 4.2 s
    row = ["long", "bfloat16", "pwws", "0.94", "1.00", "1.00", "5.0%", "1.05", "0.94", "33%", "12 (50)", "0.05"]
    assert gaps["rows"][1] == row
    notes = bench_call_shape.length_notes(measured)
    assert "A first call at a new shape, long, bfloat16: +100.0 ms beyond a later call at that shape." in notes


def test_the_calls_shapes_are_call_sizes_padding_and_a_rest():
    curves = {"search": {"length": {512: 5.0 * 512}, "rows": {2: 4.0, 8: 5.0}}}
    figures = {"calls_scored": {"search": {"2x512": 100}, "exact": {}}, "forward_seconds": 40.0, "padding": 0.1}
    # 100 rows: 20 s at the best (5 rows/s), 25 s at 2-row calls (4 rows/s); replayed in 30 s
    over_bare, shapes, sizes, rest = bench_call_shape.calls_shape_factors(figures, curves, replay=30.0)
    assert (over_bare, sizes) == (0.5, 0.8)
    assert abs(shapes - 2 / 3) < 1e-12 and abs(rest - (2 / 3) * 1.1 / 0.8) < 1e-12
    assert abs(sizes / (1 + figures["padding"]) * rest - shapes) < 1e-12


class _Model(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, dtype=dtype))


def test_replayed_calls_are_timed_by_model_with_padding_and_new_shapes():
    exact, search = _Model(torch.float32), _Model(torch.bfloat16)
    sent = []
    victim = SimpleNamespace(model=exact, answers=lambda model, batch: sent.append(model))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])  # 6 tokens in 8 places
    batch = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": mask}
    single = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3)}
    timing = bench_call_shape.CallTime(seconds=1.0, system_seconds=0.1, collector_seconds=0.0)
    calls = [
        bench_call_shape.SentCall(search, batch, True, timing),
        bench_call_shape.SentCall(exact, single, True, timing),
        bench_call_shape.SentCall(search, batch, False, timing),
    ]
    seen_before = {("torch.float32", 1, 3)}
    figures = bench_call_shape.replayed(victim, calls, seen_before)
    assert sent == [search, exact, search]
    assert set(figures["replay_seconds"]) == {"search", "exact"} and figures["replay_seconds"]["exact"] > 0
    assert figures["padding"] == (8 + 8 + 3) / (6 + 6 + 3) - 1
    assert figures["distinct_shapes"] == 2 and figures["new_shapes"] == {"bfloat16": 1}
    by_call = figures["call_by_call"]
    assert by_call["calls"] == 3 and by_call["calls_opening_a_queue"] == 2
    assert abs(by_call["system_share"]["attack"] - 0.1) < 1e-12  # 0.3 s of system time in 3 s of calls
    # the stub's replay takes microseconds: nearly all of each call's second is excess
    assert by_call["excess_in_queue_openers"] > 0.66 and by_call["excess_in_later_calls"] > 0.33


def test_the_engine_factor_is_split_call_by_call():
    def timing(seconds, system=0.0, collector=0.0):
        return bench_call_shape.CallTime(seconds, system, collector)

    calls = [
        bench_call_shape.SentCall(None, {}, True, timing(2.0, system=0.2, collector=0.1)),
        bench_call_shape.SentCall(None, {}, False, timing(1.0)),
        bench_call_shape.SentCall(None, {}, False, timing(1.0)),
    ]
    # the call that opened the queue took 0.5 s more than its replay; one later call 0.5 s less
    by_call = bench_call_shape.call_by_call(calls, [timing(1.5), timing(1.0), timing(1.5)])
    assert by_call["median_replayed_over_attack"] == 1.0
    assert by_call["excess_in_queue_openers"] == 0.125 and by_call["excess_in_later_calls"] == -0.125
    assert by_call["collector_share"] == {"attack": 0.025, "replay": 0.0}
    assert by_call["system_share"] == {"attack": 0.05, "replay": 0.0}
    figures = {**MEASURED[0]["attacks"]["pwws"], "forward_seconds": 4.0, "call_by_call": by_call}
    figures["replay_seconds"] = {"search": 0.0, "exact": 4.0}
    table = bench_call_shape.engine_table([{**MEASURED[0], "attacks": {"pwws": figures}}])
    assert table["rows"] == [
        ["long", "float32", "pwws", "3 (1)", "1.00", "1.00", "+12.5%", "-12.5%", "2.5% / 0.0%", "5.0% / 0.0%"]
    ]


def test_the_tables_are_computed_again_from_a_records_figures(tmp_path):
    threads = {"intra_op": 1, "inter_op": 1}
    measured = [{**MEASURED[0], "bare": _bare({2: 5.3, 8: 5.2, 16: 4.0})}]
    record = bench_call_shape.record(measured, SimpleNamespace(), ["--rows", "2", "8", "16"], threads, (1.0, 1.5))
    run = json.loads(json.dumps({**record, "commit": "abc1234"}))  # as read back from its file: string keys
    again = bench_call_shape.tables_again(run)
    assert again["tables"] == record["tables"]  # the rows per call in their numeric order, 16 after 8
    assert again["commit"] == "abc1234" and again["notes"][-1].endswith("(the run's code: abc1234).")
    assert bench_call_shape.tables_again(again)["notes"] == again["notes"]  # one such note, the latest
