"""The benchmark helpers measure what they claim, and the Triton op benchmarks run (tiny shapes, CPU interpreter)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from measure import median_ms  # noqa: E402


def test_median_ms_times_the_call_and_keeps_the_thread_count():
    threads_seen = []

    def run():
        threads_seen.append(torch.get_num_threads())
        time.sleep(0.005)

    ms = median_ms(run, warmup=1, repeats=5)
    assert 5.0 <= ms < 100.0
    assert len(threads_seen) == 6
    assert set(threads_seen) == {torch.get_num_threads()}


@pytest.mark.parametrize("script", ["bench_class_conditional_infonce.py", "bench_convex_hull_embedding.py"])
def test_triton_op_benchmark_runs_on_tiny_shapes(script):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--tiny", "--warmup", "0", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [
        line for line in result.stdout.splitlines() if "|" in line and not line.lstrip().startswith(("B ", "shape"))
    ]
    assert rows, result.stdout
