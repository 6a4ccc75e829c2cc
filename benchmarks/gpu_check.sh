#!/usr/bin/env bash
# One GPU check for a lent machine: build the CUDA extension, run the op tests on the GPU, every
# kernel benchmark and the attack engine against a victim on the GPU; logs under $OUT (default ./gpu_check_out).
#   device run: bash benchmarks/gpu_check.sh        (about 8 minutes on one H200, estimated: not yet run on one)
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

# Every kernel benchmark at its realistic default shapes, and the victim's precisions.
for bench in build_perturbation_batch class_conditional_infonce convex_hull_embedding substitution_scores \
    victim_precision; do
  echo "== bench_$bench" | tee -a "$OUT/benchmarks.log"
  timeout 120 "$PYTHON" "benchmarks/bench_$bench.py" 2>&1 | tee -a "$OUT/benchmarks.log"
done

# The attack engine feeding the GPU: the embedded MiniLM on the GPU attacked by PWWS and the
# GA (text path vs spliced, then the bf16 search), GPU utilisation sampled every 200 ms meanwhile.
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 \
  > "$OUT/engine_utilisation.csv" 2>&1 &
SAMPLER=$!
timeout 300 "$PYTHON" benchmarks/bench_engine.py --skip-engine-only --real-victim --device cuda \
  --real-snippets 64 --real-ga-population 60 --real-ga-generations 10 2>&1 | tee "$OUT/engine.log" | tail -30
kill "$SAMPLER"
awk -F', ' '{ total += $1; n++; if ($1 > 0) busy++ }
  END { if (n) printf "GPU utilisation during the engine run: mean %.0f%%, %d of %d samples busy\n", total / n, busy, n }' \
  "$OUT/engine_utilisation.csv" | tee -a "$OUT/engine.log"
