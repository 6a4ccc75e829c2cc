"""benchmarks/build_local_mlm.py: a tiny BERT trains for two steps into a loadable masked-LM folder; a folder
that is not a checkpoint is refused by name."""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from build_local_mlm import main  # noqa: E402
from tiny_models import tiny_bert_config  # noqa: E402
from tiny_tokenizers import wordpiece  # noqa: E402

# Movie-review words, so that the Rotten Tomatoes snippets the script trains on are not all [UNK].
WORDS = ["the", "film", "movie", "is", "a", "and", "of", "it", "good", "bad", "funny", "story", "café", "naïve"]


def tiny_base(folder: Path) -> Path:
    from transformers import BertModel

    folder.mkdir()
    tokenizer = wordpiece(WORDS, folder)
    BertModel(tiny_bert_config(tokenizer.vocab_size, num_hidden_layers=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_two_steps_on_a_tiny_bert_write_a_loadable_tied_masked_lm(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    base = tiny_base(tmp_path / "base")
    out = tmp_path / "mlm"
    args = ["--base", str(base), "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--eval-texts", "8"]
    top_layer = main([*args, "--train-layers", "1"])
    record = main(args)  # again, over the first folder: replaced, not merged

    assert top_layer["trainable_parameters"] < record["trainable_parameters"]
    assert record["training"]["steps"] == 2
    assert record["held_out"]["after"]["masked_tokens"] > 0
    assert 0.0 <= record["held_out"]["after"]["top1"] <= record["held_out"]["after"]["top10"] <= 1.0
    assert json.loads((out / "build_local_mlm.json").read_text())["settings"]["train_layers"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mlm")]  # no staging folder left
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    tokenizer = AutoTokenizer.from_pretrained(out)
    encoded = tokenizer("the naïve film is [MASK].", return_tensors="pt")
    with torch.inference_mode():
        assert model(**encoded).logits.shape == (1, encoded["input_ids"].shape[1], tokenizer.vocab_size)


def test_a_folder_without_a_checkpoint_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path)):
        main(["--base", str(tmp_path), "--out", str(tmp_path / "mlm")])
