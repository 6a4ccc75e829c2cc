"""The decoder benchmark's own parts: its Llama-style tokenizer, the cutting of texts to a token budget, and
a tiny run of rift_fast's side (TextAttack's side needs its own environment)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_decoder  # noqa: E402

from rift_fast.core.records import Example  # noqa: E402

TEXTS = [
    "the movie was a dreadful mess , and the acting was worse than the plot",
    "a wonderful film with a moving story and a brilliant cast",
    "the plot of the movie never moves , but the cast is wonderful",
] * 20


def test_the_tokenizer_is_llama_like_with_byte_fallback():
    tokenizer = bench_decoder.llama_tokenizer(TEXTS, vocab_size=300, max_length=64)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 258]) == ["<unk>", "<s>", "</s>", "<0x00>", "<0xFF>"]
    assert tokenizer.pad_token is None and tokenizer.padding_side == "right"
    ids = tokenizer("the movie was wonderful")["input_ids"]
    assert ids[0] == 1 and tokenizer.eos_token_id not in ids  # <s> starts the input, </s> ends none
    assert tokenizer.convert_ids_to_tokens(ids[1:]) == ["▁the", "▁movie", "▁was", "▁wonderful"]
    pieces = tokenizer.tokenize("café")
    assert "<0xC3>" in pieces and "<0xA9>" in pieces  # "é" is not in the texts: its UTF-8 bytes
    assert tokenizer.decode(tokenizer("a café , wonderful")["input_ids"], skip_special_tokens=True) == (
        "a café , wonderful"
    )


def test_texts_are_cut_at_a_word_boundary_to_the_token_budget():
    tokenizer = bench_decoder.llama_tokenizer(TEXTS, vocab_size=300, max_length=64)
    long_text = " ".join(TEXTS[:6]) + " zzzqqq"
    short = Example("a brilliant cast", 1)
    cut, kept = bench_decoder.cut_to_tokens([Example(long_text, 0), short], tokenizer, 20)
    assert kept == short
    assert cut.label == 0 and long_text.startswith(cut.text + " ")
    assert len(tokenizer(cut.text)["input_ids"]) <= 20
    next_word = long_text[len(cut.text) + 1 :].split()[0]
    assert len(tokenizer(cut.text + " " + next_word)["input_ids"]) > 20  # the longest such prefix


def test_a_tiny_run_attacks_every_example_with_the_models_own_labels(tmp_path, capsys):
    argv = [
        *("--num-examples", "2", "--max-length", "24", "--hidden", "32", "--layers", "1"),
        *("--vocab-size", "400", "--synonyms", "embedded", "--skip-textattack", "--output-dir", str(tmp_path)),
    ]
    assert bench_decoder.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    header, (run,) = results["header"], results["runs"]
    assert header["victim"]["hidden"] == 32 and header["victim"]["intermediate"] == 86
    assert header["tokens_per_input"]["max"] <= 24
    assert header["torch_threads"]["intra_op"] == 1
    assert run["engine"] == "rift_fast" and run["summary"]["examples"] == 2
    assert run["summary"]["clean_accuracy"] == 1.0  # labelled by the model: nothing is skipped
    assert (tmp_path / "victim" / "config.json").is_file()
    settings = json.loads((tmp_path / "victim" / "tokenizer_config.json").read_text())
    assert settings["tokenizer_class"] == "PreTrainedTokenizerFast"  # what transformers 4.x also reads
    assert "| PWWS | rift_fast (float32) | 100.0% |" in capsys.readouterr().out
