"""Every CUDA source compiles with nvcc for sm_90, even on a machine whose torch has no CUDA."""

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from torch.utils.cpp_extension import include_paths

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
LAUNCHERS = sorted((CSRC / "cuda").glob("*.cu"))
KERNELS = sorted((ROOT / "rift_fast" / "kernels").glob("*.cuh"))  # package data: CuPy compiles them at run time


def _nvcc() -> str:
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None:
        if os.environ.get("CI"):
            pytest.fail("nvcc is not installed: CI must compile every .cu file")
        pytest.skip("nvcc is not installed")
    return nvcc


def _compile(arguments, tmp_path):
    completed = subprocess.run(
        [_nvcc(), "-arch=sm_90", "-std=c++20", "-c", *arguments, "-o", str(tmp_path / "out.o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]


def test_cuda_sources_exist():
    assert LAUNCHERS and KERNELS


@pytest.mark.parametrize("source", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_compiles(source, tmp_path):
    # CPU wheels of torch ship the c10/cuda headers but not this one generated header.
    shim = tmp_path / "shim" / "c10" / "cuda" / "impl"
    shim.mkdir(parents=True)
    (shim / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    includes = [
        f"-I{p}" for p in [*include_paths(), sysconfig.get_paths()["include"], str(tmp_path / "shim"), str(CSRC)]
    ]
    _compile([str(source), *includes, "-D_GLIBCXX_USE_CXX11_ABI=1", "-diag-suppress=3306"], tmp_path)


@pytest.mark.parametrize("source", KERNELS, ids=lambda p: p.name)
def test_kernel_source_compiles_standalone(source, tmp_path):
    """The kernels compile without torch headers, as CuPy's RawModule compiles them."""
    _compile(["-x", "cu", str(source)], tmp_path)
