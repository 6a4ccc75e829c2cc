"""The call-shape benchmark's record is one ``render_results.py`` renders (no model runs here)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

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
    (_, attacks) = bench_call_shape.tables(MEASURED[1:])
    assert attacks["rows"][0][7] == "—" and attacks["rows"][0][9] == "—"
