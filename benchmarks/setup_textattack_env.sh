#!/usr/bin/env bash
# Builds the separate TextAttack environment used by benchmarks/bench_attacks.py and by
# tests/test_interop_textattack.py:
#
#   bash benchmarks/setup_textattack_env.sh          # -> .venv-textattack/ (gitignored)
#   .venv-textattack/bin/python -m pytest tests/test_interop_textattack.py
#
# TextAttack stays out of the core install: textattack 0.3.11 needs flair, and every recent flair pins
# transformers<5 while rift_fast's core uses transformers 5. The environment holds:
#   torch 2.13.0 (the CPU wheel from the local wheel folder when there is one; nothing CUDA is built),
#   textattack==0.3.11 with transformers>=4.40,<5 and datasets<4.2 (an explicit, consistent set of pins),
#   rift_fast itself from this checkout plus the few core dependencies its attack code imports.
# rift_fast goes in through a .pth file (what `pip install --no-deps -e .` gives, without running the
# CMake build of rift_fast._C, which the interop does not use and which would rebuild the extension in the
# shared source tree).
#
# TextAttack downloads nltk data at import time (stopwords, and more on its first import); the script
# writes nltk's corpora/stopwords/english (scikit-learn's English stop words) into $VENV/nltk_data, points
# NLTK_DATA there and TA_CACHE_DIR at $VENV/textattack_cache (from the venv's activate script and from a .pth
# start-up hook, so plain `.venv-textattack/bin/python` works offline too), and marks TextAttack's one-time
# post-install download as done. Running the script again only repairs what is missing.
#
# Environment: VENV (default .venv-textattack), PYTHON (interpreter that makes the venv, default python3),
#              TORCH_SPEC (default: the local torch 2.13.0 CPU wheel if found, else torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${VENV:-$ROOT/.venv-textattack}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup_textattack_env] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

# 1. torch 2.13.0, CPU build (same version as the core environment, so the two engines time the same kernels).
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  spec="${TORCH_SPEC:-}"
  if [ -z "$spec" ]; then
    wheel="$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)"
    spec="${wheel:-torch==2.13.0}"
  fi
  echo "[setup_textattack_env] installing $spec"
  "${PIP[@]}" "$spec"
fi

# Requirements come from pyproject.toml: its `textattack` extra; then the core dependencies (less torch,
# installed above, and triton, which the attack code does not use) with the `test` extra.
requirements() {
  "$PY" -c '
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
if sys.argv[2] == "textattack":
    chosen = extras["textattack"]
else:
    chosen = [r for r in project["dependencies"] if not r.startswith(("torch", "triton"))] + extras["test"]
print("\n".join(chosen))
' "$ROOT/pyproject.toml" "$1"
}

# 2. TextAttack with pins that resolve quickly next to torch 2.13.0 (transformers 4.57.x, datasets 4.1.x).
mapfile -t TEXTATTACK_REQUIREMENTS < <(requirements textattack)
if ! "$PY" -c "import importlib.metadata as m; assert m.version('textattack') == '0.3.11'" 2>/dev/null; then
  echo "[setup_textattack_env] installing ${TEXTATTACK_REQUIREMENTS[*]}"
  "${PIP[@]}" "${TEXTATTACK_REQUIREMENTS[@]}"
fi

# 3. What rift_fast's attack / synonym / data code imports, kept within the TextAttack pins.
mapfile -t CORE_REQUIREMENTS < <(requirements core)
"${PIP[@]}" -q "${CORE_REQUIREMENTS[@]}" "${TEXTATTACK_REQUIREMENTS[@]}"

# 4. rift_fast from this checkout (an editable install without the C++/CUDA build) and the offline hooks.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$ROOT" > "$SITE/rift_fast_checkout.pth"
NLTK_DIR="$VENV/nltk_data"
mkdir -p "$NLTK_DIR/corpora/stopwords"
"$PY" - "$NLTK_DIR/corpora/stopwords/english" <<'EOF'
import sys
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
with open(sys.argv[1], "w", encoding="utf-8") as stream:
    stream.write("\n".join(sorted(ENGLISH_STOP_WORDS)) + "\n")
EOF
# nltk reads NLTK_DATA when it is imported; a .pth line runs at interpreter start-up, before that.
cat > "$SITE/rift_fast_textattack_offline.pth" <<EOF
import os; os.environ.setdefault("NLTK_DATA", "$NLTK_DIR"); os.environ.setdefault("TA_CACHE_DIR", "$VENV/textattack_cache")
EOF
grep -q "NLTK_DATA" "$VENV/bin/activate" || echo "export NLTK_DATA=\"$NLTK_DIR\"" >> "$VENV/bin/activate"
# On its first import TextAttack runs nltk.download for six corpora and stanza.download("en") unless its
# cache holds this marker; offline these only fail (after trying the network), and the recipes used here
# need none of them (no WordNet, no POS tagger).
mkdir -p "$VENV/textattack_cache"
touch "$VENV/textattack_cache/post_install_check_3"

# 5. Check: TextAttack, its PWWS / Alzantot recipes' building blocks and the interop import offline.
echo "[setup_textattack_env] checking the import (offline)"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" - <<'EOF'
import textattack, torch, transformers
from textattack.search_methods import GreedyWordSwapWIR, AlzantotGeneticAlgorithm
from rift_fast.interop.textattack import SynonymWordSwap, RiftModelWrapper
print("textattack", textattack.__version__ if hasattr(textattack, "__version__") else "0.3.11",
      "| torch", torch.__version__, "| transformers", transformers.__version__, "| threads", torch.get_num_threads())
EOF
echo "[setup_textattack_env] ready: $PY"
