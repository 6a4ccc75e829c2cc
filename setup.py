"""Build of rift_fast: setup.py drives CMake (CMakeLists.txt) to build the extension rift_fast._C.

Install with ``pip install --no-build-isolation -e .`` so the build uses the torch already
installed (an isolated build environment would download a CUDA torch of several GB).
"""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """An extension whose sources are built by CMake from ``source_dir``."""

    def __init__(self, name: str, source_dir: Path):
        super().__init__(name, sources=[])
        self.source_dir = str(source_dir)


class CMakeBuild(build_ext):
    """Configure and build each CMakeExtension into the place setuptools expects the module."""

    def build_extension(self, ext: CMakeExtension) -> None:
        output_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        config = "Debug" if self.debug else "Release"
        configure = [
            "cmake",
            ext.source_dir,
            f"-DCMAKE_BUILD_TYPE={config}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={output_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
        if os.environ.get("RIFT_FAST_CUDA_ARCHS"):
            configure.append(f"-DRIFT_FAST_CUDA_ARCHS={os.environ['RIFT_FAST_CUDA_ARCHS']}")
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.run(configure, cwd=build_dir, check=True)
        subprocess.run(["cmake", "--build", ".", "--config", config, "-j", jobs], cwd=build_dir, check=True)


setup(
    ext_modules=[CMakeExtension("rift_fast._C", ROOT)],
    cmdclass={"build_ext": CMakeBuild},
)
