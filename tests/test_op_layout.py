"""Layout of rift_fast.ops: module names equal op names, and the CuPy kernel sources ship inside the package."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import rift_fast
from rift_fast.ops import cupy_kernels

PACKAGE = Path(rift_fast.__file__).resolve().parent
COMPILED_OPS = ("gather_neighbours", "substitution_scores", "build_perturbation_batch")
TRITON_OPS = ("convex_hull_embedding", "class_conditional_infonce")
FROM_PACKAGE = "from rift_fast.ops import {op} as from_package"
FROM_MODULE = "from rift_fast.ops.{op} import {op} as from_module"
CHECK = (
    "import inspect, rift_fast.ops\n"
    "assert inspect.isfunction(from_package) and from_package is from_module is rift_fast.ops.{op}"
)


@pytest.mark.parametrize("op_name", COMPILED_OPS)
def test_cupy_kernel_source_is_package_data(op_name):
    source = importlib.import_module(f"rift_fast.ops.{op_name}").KERNEL_SOURCE
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    declared = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert cupy_kernels.KERNEL_DIR.is_relative_to(PACKAGE)
    assert (cupy_kernels.KERNEL_DIR / source).is_file()
    shipped = {path for pattern in declared["rift_fast"] for path in PACKAGE.glob(pattern)}
    assert cupy_kernels.KERNEL_DIR / source in shipped


@pytest.mark.parametrize("order", [(FROM_PACKAGE, FROM_MODULE), (FROM_MODULE, FROM_PACKAGE)], ids=["package", "module"])
def test_op_name_is_the_function_in_either_import_order(order):
    """``rift_fast.ops.<op>`` is the function, though ``<op>`` also names its submodule (fresh interpreter)."""
    script = "\n".join(line.format(op=op) for op in COMPILED_OPS + TRITON_OPS for line in (*order, CHECK))
    subprocess.run([sys.executable, "-c", script], check=True, cwd=PACKAGE.parent)
