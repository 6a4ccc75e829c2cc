#!/usr/bin/env bash
# One GPU check for a lent machine: build the CUDA extension, run the op tests on the GPU and every
# kernel benchmark, and write the logs under $OUT (default ./gpu_check_out).
#   device run: bash benchmarks/gpu_check.sh        (about 5 minutes on one H200)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 RIFT_FAST_CUDA_ARCHS="${RIFT_FAST_CUDA_ARCHS:-90}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/environment.txt"

# The build: the image's torch is a CUDA build, so CMake compiles csrc/cuda/*.cu into rift_fast._C.
"$PYTHON" -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 \
  || { echo "build failed; see build.log"; tail -40 "$OUT/build.log"; }
"$PYTHON" -c "import rift_fast._C as C; print('CUDA kernels built:', C.with_cuda)" 2>&1 | tee -a "$OUT/environment.txt"

# Op tests on the GPU (Triton compiled for real, CUDA and CuPy backends against the references).
timeout 240 "$PYTHON" -m pytest -q -ra tests/test_op_*.py tests/test_nvcc_compile.py -p no:cacheprovider \
  2>&1 | tee "$OUT/tests.log" | tail -25

# Every kernel benchmark at its realistic default shapes.
for bench in benchmarks/bench_*.py; do
  echo "== $bench" | tee -a "$OUT/benchmarks.log"
  timeout 120 "$PYTHON" "$bench" 2>&1 | tee -a "$OUT/benchmarks.log"
done
