"""--precision: bf16 autocast only where the device runs bf16 natively (auto), float32 otherwise; the
choice is recorded, a forced bfloat16 step trains, and an unknown value is refused."""

from __future__ import annotations

import pytest
import torch
from conftest import AVX2_CPU_FLAGS, AVX512_BF16_CPU_FLAGS

from rift_fast.evaluation.pool_evaluation import EvaluationSettings
from rift_fast.training import precision
from rift_fast.training.loop import TrainSettings
from rift_fast.training.precision import BFLOAT16, FLOAT32, resolve_precision, training_autocast

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags,expected",
    [
        ("fpu sse2 avx2 avx512f avx512bw", FLOAT32),  # AVX-512 without its BF16 extension: emulated
        ("fpu avx2 avx512f avx512_bf16", BFLOAT16),  # Cooper Lake, Zen 4
        ("fpu avx2 amx_bf16 amx_tile", BFLOAT16),  # Sapphire Rapids
        ("fpu sse2 avx2", FLOAT32),
    ],
)
def test_auto_takes_bf16_only_where_the_cpu_runs_it_natively(cpu_flags, flags, expected):
    cpu_flags(flags)
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


@pytest.mark.parametrize(
    "flags,training,search",
    [(AVX2_CPU_FLAGS, FLOAT32, None), (AVX512_BF16_CPU_FLAGS, BFLOAT16, torch.bfloat16)],
    ids=["avx2", "avx512-bf16"],
)
def test_both_kinds_of_cpu_choose_their_training_precision_and_attack_search(cpu_flags, flags, training, search):
    cpu_flags(flags)
    assert resolve_precision("auto", CPU) == training
    assert EvaluationSettings().search_dtype(CPU) is search
    assert EvaluationSettings(bf16_search=False).search_dtype(CPU) is None  # a pinned choice holds on any CPU
    assert EvaluationSettings(bf16_search=True).search_dtype(CPU) is torch.bfloat16
    assert resolve_precision(FLOAT32, CPU) == FLOAT32 and resolve_precision(BFLOAT16, CPU) == BFLOAT16


def test_the_cpu_detection_reads_the_flags_line_only_once(cpu_flags):
    cpu_flags(AVX512_BF16_CPU_FLAGS)
    assert precision.cpu_runs_bf16_natively()
    precision.CPUINFO.write_text("flags\t\t: avx2\n")  # cached: the flags of one CPU do not change
    assert precision.cpu_runs_bf16_natively()
    precision.cpu_runs_bf16_natively.cache_clear()
    assert not precision.cpu_runs_bf16_natively()


def test_bf16_autocast_keeps_the_loss_in_float32_near_the_float32_loss():
    logits = torch.randn(6, 3)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    weight = torch.randn(3, 3)
    with training_autocast(BFLOAT16, CPU):
        projected = logits @ weight
        loss = torch.nn.functional.cross_entropy(projected, targets)
    assert projected.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    exact = torch.nn.functional.cross_entropy(logits @ weight, targets)
    torch.testing.assert_close(loss, exact, rtol=2e-2, atol=2e-2)  # bf16's 8-bit mantissa: about 2 digits
