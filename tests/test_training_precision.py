"""--precision: bf16 autocast only where the device runs bf16 natively (auto), float32 otherwise; the
choice is recorded, a forced bfloat16 step trains, and an unknown value is refused."""

from __future__ import annotations

import pytest
import torch

from rift_fast.training import precision
from rift_fast.training.loop import TrainSettings
from rift_fast.training.precision import BFLOAT16, FLOAT32, resolve_precision, training_autocast

CPU = torch.device("cpu")


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Write a fake /proc/cpuinfo with the given flags line."""

    def write(flags: str):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision, "CPUINFO", path)
        precision.cpu_runs_bf16_natively.cache_clear()

    yield write
    precision.cpu_runs_bf16_natively.cache_clear()


@pytest.mark.parametrize(
    "flags,expected",
    [
        ("fpu sse2 avx2 avx512f avx512bw", FLOAT32),  # AVX-512 without its BF16 extension: emulated
        ("fpu avx2 avx512f avx512_bf16", BFLOAT16),  # Cooper Lake, Zen 4
        ("fpu avx2 amx_bf16 amx_tile", BFLOAT16),  # Sapphire Rapids
        ("fpu sse2 avx2", FLOAT32),
    ],
)
def test_auto_takes_bf16_only_where_the_cpu_runs_it_natively(cpuinfo, flags, expected):
    cpuinfo(flags)
    assert resolve_precision("auto", CPU) == expected


def test_explicit_choices_are_kept_and_a_missing_cpuinfo_means_not_native(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "absent")
    precision.cpu_runs_bf16_natively.cache_clear()
    assert resolve_precision("auto", CPU) == FLOAT32
    assert resolve_precision(FLOAT32, CPU) == FLOAT32
    with caplog.at_level("WARNING"):
        assert resolve_precision(BFLOAT16, CPU) == BFLOAT16
    assert "emulates bf16" in caplog.text
    precision.cpu_runs_bf16_natively.cache_clear()


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="--precision must be one of auto, float32, bfloat16, got 'fp16'"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, got 'half'"):
        TrainSettings.for_method("standard", model="m", epochs=1, batch_size=2, precision="half")


def test_the_autocast_runs_matrix_products_in_bf16_and_float32_stays_exact():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with training_autocast(BFLOAT16, CPU):
        assert (a @ b).dtype == torch.bfloat16
    with training_autocast(FLOAT32, CPU):
        assert torch.equal(a @ b, torch.mm(a, b))
