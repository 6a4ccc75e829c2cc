"""SAFER training: each token drawn uniformly from itself and its one-token synonyms (never from outside
them; a word without synonyms, padding and special tokens stay), one Trainer epoch and a loadable checkpoint."""

import json
from collections import Counter

import pytest
import torch
from test_training_loop import _examples, _table, tiny_model  # noqa: F401  (tiny_model is a fixture)
from tiny_tokenizers import byte_level_bpe, sentencepiece_unigram, wordpiece

from rift_fast.models import load_trained_classifier
from rift_fast.synonyms import SynonymIndex
from rift_fast.training.adversary import substitution_ids
from rift_fast.training.defenses import random_substitution
from rift_fast.training.loop import Trainer, TrainSettings, encode_examples

WORDS = ["the", "film", "movie", "picture", "café", "bistro", "naïve", "plot", "日本"]
SYNONYMS = {"film": ["movie", "picture"], "movie": ["film"], "café": ["bistro"], "naïve": ["plot"]}


@pytest.mark.parametrize("family", ["wordpiece", "bpe", "unigram"])
def test_draws_come_only_from_each_words_set_and_cover_it_uniformly(family, tmp_path):
    tokenizer = {"wordpiece": lambda: wordpiece(WORDS, tmp_path), "bpe": lambda: byte_level_bpe(WORDS)}.get(
        family, lambda: sentencepiece_unigram(WORDS)
    )()
    table = SynonymIndex(SYNONYMS).vocab_table(tokenizer, k=2)
    encoded = tokenizer(
        ["The film, café and 日本 plot", "movie naïve “film” 2024"],
        padding=True,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    sub_ids = substitution_ids(encoded["input_ids"], table, encoded["attention_mask"], encoded["special_tokens_mask"])
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([random_substitution(sub_ids, generator) for _ in range(600)])  # [600, B, L]
    for b, row in enumerate(sub_ids):
        for position, options in enumerate(row):
            allowed = {int(t) for t in options if t >= 0}
            seen = Counter(draws[:, b, position].tolist())
            assert set(seen) == allowed  # only the set, and all of it
            if len(allowed) > 1:  # uniform: each member within 5 standard deviations of 600 / |set|
                expected = 600 / len(allowed)
                spread = 5 * (600 * (1 / len(allowed)) * (1 - 1 / len(allowed))) ** 0.5
                assert all(abs(count - expected) < spread for count in seen.values())
    vocab = tokenizer.get_vocab()
    film = next(vocab[t] for t in ("film", "Ġfilm", "▁film") if t in vocab)
    assert (sub_ids[..., 0] == film).any() and (sub_ids[..., 1:] >= 0).any()
    special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
    assert torch.equal(draws[:, special], encoded["input_ids"][special].expand(600, -1))


def test_one_trainer_epoch_changes_the_encoder_and_saves_a_loadable_checkpoint(tiny_model, tmp_path):  # noqa: F811
    path, tokenizer = tiny_model
    settings = TrainSettings.for_method(
        "safer", model=path, epochs=1, batch_size=8, max_length=16, lr=1e-3, dev_examples=8, dev_adversary_steps=2
    )
    train = encode_examples(tokenizer, _examples(16), 16)
    dev = encode_examples(tokenizer, _examples(8, seed=1), 16)
    trainer = Trainer(settings, tokenizer, train, dev, _table(tokenizer), tmp_path, num_classes=2, progress=False)
    before = {k: v.clone() for k, v in trainer.objective.model.encoder.state_dict().items()}
    best = trainer.run()
    after = trainer.objective.model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert 0 < trainer.history[0]["substituted"] < 1  # some tokens swapped, never all
    assert json.loads((best / "rift_fast.json").read_text())["settings"]["method"] == "safer"
    model = load_trained_classifier(best)
    batch = tokenizer(["the good movie"], return_tensors="pt")
    assert model(batch["input_ids"], batch["attention_mask"])[0].shape == (1, 2)
