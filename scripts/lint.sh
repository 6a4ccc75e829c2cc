#!/usr/bin/env bash
# The checks CI runs before the tests (and the pre-commit hooks run on each commit): lint, format, types,
# the rendered results and the docs site.
#   bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
CPP_SOURCES=(csrc/*.cpp csrc/*.h csrc/cpu/*.cpp csrc/cuda/*.cu rift_fast/kernels/*.cuh)
TYPED_PACKAGES=(rift_fast)

"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
# The clang-format of the Python environment (the PyPI wheel), found without relying on PATH.
CLANG_FORMAT="$("$PYTHON" -c 'import clang_format; print(clang_format.get_executable("clang-format"))')"
"$CLANG_FORMAT" --dry-run --Werror "${CPP_SOURCES[@]}"
"$PYTHON" -m mypy "${TYPED_PACKAGES[@]}"
# The results page, benchmarks/RESULTS.md and the README's tables are rendered from benchmarks/results/.
"$PYTHON" benchmarks/render_results.py --check
# The docs site: any warning (a broken link, a page missing from the nav, a bad docstring) fails.
NO_MKDOCS_2_WARNING=1 "$PYTHON" -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "lint: ruff, ruff format, clang-format, mypy, the rendered results and the docs site are clean"
