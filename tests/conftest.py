"""Test configuration: Triton runs under its CPU interpreter when no GPU is present."""

import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from tiny_models import tiny_bert_config
from tiny_tokenizers import word_vocabulary

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# /proc/cpuinfo flags of the two kinds of x86 CPU the suite runs on (training precision "auto" differs).
AVX2_CPU_FLAGS = "fpu sse2 avx avx2 fma"
AVX512_BF16_CPU_FLAGS = "fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16"


@pytest.fixture
def cpu_flags(tmp_path, monkeypatch):
    """Stub the detected CPU: ``cpu_flags("avx2 ...")`` makes the precision module read a /proc/cpuinfo
    with that flags line (the detection's cache is cleared before and after)."""
    from rift_fast.training import precision

    def stub(flags: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision, "CPUINFO", path)
        precision.cpu_runs_bf16_natively.cache_clear()

    yield stub
    precision.cpu_runs_bf16_natively.cache_clear()


@pytest.fixture(scope="session")
def counterfitted_neighbours_path():
    """Path of the real counter-fitted neighbour sets (counterfitted_neighbors.json, a download) that
    $RIFT_FAST_NEIGHBOURS names; skips the test when it is unset."""
    sys.path.insert(0, BENCHMARKS)
    from measure import NEIGHBOURS_VARIABLE, neighbours_file

    path = neighbours_file()
    if path is None:
        pytest.skip(f"${NEIGHBOURS_VARIABLE} is unset: set it to counterfitted_neighbors.json to test the real sets")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A one-layer BERT with the embedded tokenizer, saved as a local model folder."""
    from transformers import BertModel

    from rift_fast.models import load_tokenizer

    model_dir = tmp_path_factory.mktemp("tiny")
    load_tokenizer("embedded").save_pretrained(model_dir)
    config = tiny_bert_config(30522)
    BertModel(config).save_pretrained(model_dir)
    return model_dir


# The words of the tiny training model's vocabulary (the training tests' examples use no others).
TINY_MODEL_WORDS = ["good", "fine", "nice", "bad", "awful", "poor", "movie", "plot", "the", "a"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """(folder, tokenizer) of a one-layer BERT over ``TINY_MODEL_WORDS`` with 32 positions and no dropout,
    built with seed 0 and saved with its tokenizer: the model the training tests fine-tune."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = word_vocabulary(TINY_MODEL_WORDS, folder)
    tokenizer.save_pretrained(folder)
    config = tiny_bert_config(
        len(tokenizer), max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return str(folder), tokenizer
