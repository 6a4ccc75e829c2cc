"""The call-shape benchmark's record is one ``render_results.py`` renders (no model runs here)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_call_shape  # noqa: E402
from render_results import load_record, record_section  # noqa: E402

MEASURED = [
    {
        "pool": "long",
        "examples": 2,
        "dtype": "bfloat16",
        "bare": {2: {"rows_per_second": 5.3, "padded_length": 512}, 8: {"rows_per_second": 5.2, "padded_length": 512}},
        "attacks": {
            "pwws": {
                "rows_scored": 900,
                "forward_seconds": 180.0,
                "wall_seconds": 200.0,
                "rows_per_forward_second": 5.0,
                "rows_per_wall_second": 4.5,
                "token_budget": 1024,
                "robust_accuracy": 0.5,
            }
        },
    }
]


def test_the_record_renders_with_the_ratios_to_the_bare_forward(tmp_path):
    threads = {"intra_op": 1, "inter_op": 1}
    record = bench_call_shape.record(MEASURED, SimpleNamespace(), ["--rows", "2", "8"], threads, (1.0, 1.5))
    path = tmp_path / "call-shape.json"
    path.write_text(json.dumps(record))
    section = record_section(load_record(path))
    assert "| long (2, 512 tokens) | bfloat16 | 5.3 | 5.2 | 5.3 (2 rows) |" in section
    assert "| long | bfloat16 | pwws | 1024 | 900 | 5.0 | 0.94 | 4.5 | 0.85 |" in section
    assert "avx512_bf16" in record["machine"] and record["load_average"] == {"before": 1.0, "after": 1.5}
