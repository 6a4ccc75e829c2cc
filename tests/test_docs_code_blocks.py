"""Every ```python block of README.md and docs/*.md runs as printed: offline, on the CPU, each in a
fresh namespace and a temporary working folder. A block that cannot run offline is preceded by the
line ``<!-- not-run: REASON -->``."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_RUN = re.compile(r"^<!-- not-run: (?P<reason>\S.*?) -->$")
FENCE = re.compile(r"^```python\s*$")


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line of the opening fence, code, the not-run reason or None) of each ```python block of ``path``.

    Raises:
        ValueError: a block that is never closed, naming the file and line.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    number = 0
    while number < len(lines):
        if FENCE.match(lines[number]):
            start = number
            end = next((k for k in range(start + 1, len(lines)) if lines[k].startswith("```")), None)
            if end is None:
                raise ValueError(f"{path}:{start + 1}: a ```python block that is never closed")
            previous = lines[start - 1].strip() if start else ""
            skipped = NOT_RUN.match(previous)
            blocks.append((start + 1, "\n".join(lines[start + 1 : end]) + "\n", skipped and skipped["reason"]))
            number = end
        number += 1
    return blocks


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


BLOCKS = [
    pytest.param(path, line, code, reason, id=f"{path.relative_to(ROOT)}:{line}")
    for path in _documents()
    for line, code, reason in python_blocks(path)
]


@pytest.mark.parametrize("path, line, code, reason", BLOCKS)
def test_each_python_block_of_the_docs_runs(path, line, code, reason, tmp_path, monkeypatch):
    if reason is not None:
        pytest.skip(f"not run: {reason}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub download fails at once instead of retrying
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read at import time
    namespace = {"__name__": "__main__"}
    exec(compile(code, f"{path}:{line}", "exec"), namespace)  # noqa: S102  (the docs' own code)


@pytest.mark.parametrize(
    "markdown, expected",
    [
        ("text\n```python\nx = 1\n```\n", [(2, "x = 1\n", None)]),
        ("<!-- not-run: needs a GPU -->\n```python\nimport cupy\n```\n", [(2, "import cupy\n", "needs a GPU")]),
        ("<!-- not-run: hub -->\n\n```python\ny = 2\n```\n", [(3, "y = 2\n", None)]),  # not immediately before
        ("```bash\npython -m rift_fast list\n```\n```python\n```\n", [(4, "\n", None)]),
        ("```pycon\n>>> 1\n```\n", []),
    ],
)
def test_blocks_are_found_with_their_lines_and_not_run_markers(tmp_path, markdown, expected):
    page = tmp_path / "page.md"
    page.write_text(markdown)
    assert python_blocks(page) == expected


def test_an_unclosed_block_is_refused_naming_the_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# title\n```python\nx = 1\n")
    with pytest.raises(ValueError, match=r"page.md:2: a ```python block that is never closed"):
        python_blocks(page)


def test_every_docs_page_with_python_has_a_block_that_runs():
    runnable = {path for path, _, _, reason in (param.values for param in BLOCKS) if reason is None}
    assert {ROOT / "docs" / "python-api.md", ROOT / "docs" / "fused-ops.md"} <= runnable
