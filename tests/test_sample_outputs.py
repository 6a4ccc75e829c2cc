"""Golden outputs of the two commands, as TextAttack keeps them: the Markdown summary of a tiny
``python -m rift_fast.train`` run and of a tiny ``python -m rift_fast.attack`` run, each run through the
command's public ``main``, compared to the file of the same name in ``tests/sample_outputs/``.

Both runs are deterministic: a tiny BERT built from a config with a fixed seed, the embedded data and
synonym sets, ``--seed 0``, float32 throughout (the CPU is stubbed as one without native bf16, so that
neither training nor the attacks' search take a bf16 path on a CPU that has one). Before comparing,
only what legitimately varies from run to run is masked, by the regular expressions of ``MASKS``:

- the run's temporary folder (paths written into the summary) becomes ``<tmp>``;
- durations (``0.4 s``, ``1.2 min``) become ``<duration>``;
- the share of the wall time spent in the model's forward pass (``in forward``) becomes ``<share>``.

To regenerate the files after an intended change of a summary, run::

    RIFT_FAST_UPDATE_GOLDEN=1 OMP_NUM_THREADS=1 python -m pytest -p no:cacheprovider tests/test_sample_outputs.py

and review the diff of ``tests/sample_outputs/`` before committing it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from conftest import AVX2_CPU_FLAGS
from tiny_models import tiny_bert_config

from rift_fast.cli import attack, train

SAMPLE_OUTPUTS = Path(__file__).parent / "sample_outputs"
UPDATE = os.environ.get("RIFT_FAST_UPDATE_GOLDEN") == "1"
# (pattern, replacement), applied in order after the temporary folder is replaced by <tmp>.
MASKS = [
    (r"\b\d+(?:\.\d+)? (?:s|min)\b", "<duration>"),  # wall and training times
    (r"(<duration> \| )\d+%( \|)$", r"\1<share>\2"),  # the attack table's "in forward" column, after a duration
]

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the sample outputs are those of a CPU run")


def masked(text: str, tmp_path: Path) -> str:
    """``text`` with the run's folder and every ``MASKS`` pattern replaced."""
    text = text.replace(str(tmp_path), "<tmp>")
    for pattern, replacement in MASKS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def check_against_sample(name: str, markdown: str, tmp_path: Path) -> None:
    """Compare the masked ``markdown`` to ``sample_outputs/name`` (or write it there when updating)."""
    path = SAMPLE_OUTPUTS / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(masked(markdown, tmp_path), encoding="utf-8")
    assert masked(markdown, tmp_path) == path.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, regenerate with RIFT_FAST_UPDATE_GOLDEN=1 (see this module's docstring)"
    )


@pytest.fixture
def golden_model_dir(tmp_path, cpu_flags):
    """A one-layer BERT of large random weights (initializer range 1.0, so that word swaps move its
    predictions) with the embedded tokenizer, built with seed 0; the CPU stubbed as an AVX2 one."""
    from transformers import BertModel

    from rift_fast.models import load_tokenizer

    cpu_flags(AVX2_CPU_FLAGS)
    model_dir = tmp_path / "tiny"
    load_tokenizer("embedded").save_pretrained(model_dir)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(tiny_bert_config(30522, initializer_range=1.0)).save_pretrained(model_dir)
    return model_dir


def test_the_train_summary_matches_its_sample(golden_model_dir, tmp_path):
    output = tmp_path / "run"
    argv = ["--model", str(golden_model_dir), "--method", "standard", "--precision", "float32", "--seed", "0"]
    argv += ["--train-size", "16", "--epochs", "1", "--batch-size", "8", "--max-length", "24"]
    argv += ["--dev-examples", "4", "--test-examples", "4", "--output-dir", str(output)]
    assert train.main(argv) == 0
    check_against_sample("train_standard_tiny.md", (output / "results.md").read_text(encoding="utf-8"), tmp_path)


def test_the_attack_summary_matches_its_sample(golden_model_dir, tmp_path):
    output = tmp_path / "attack.json"
    argv = ["--model", str(golden_model_dir), "--attack", "pwws", "--num-examples", "6", "--seed", "0"]
    argv += ["--max-length", "32", "--output", str(output)]
    assert attack.main(argv) == 0
    check_against_sample("attack_pwws_tiny.md", output.with_suffix(".md").read_text(encoding="utf-8"), tmp_path)
