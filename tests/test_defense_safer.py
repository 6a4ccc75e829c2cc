"""SAFER training: each token drawn uniformly from itself and its one-token synonyms (never from outside
them; a word without synonyms, padding and special tokens stay), one Trainer epoch and a loadable checkpoint."""

from collections import Counter

import pytest
import torch
from test_defense_infobert import assert_resume_equals_uninterrupted_run, assert_trains_and_loads, defense_trainer
from tiny_tokenizers import FAMILIES, tokenizer_of_family

from rift_fast.synonyms import SynonymIndex
from rift_fast.training.adversary import substitution_ids
from rift_fast.training.defenses import random_substitution

WORDS = ["the", "film", "movie", "picture", "café", "bistro", "naïve", "plot", "日本"]
SYNONYMS = {"film": ["movie", "picture"], "movie": ["film"], "café": ["bistro"], "naïve": ["plot"]}


@pytest.mark.parametrize("family", FAMILIES)
def test_draws_come_only_from_each_words_set_and_cover_it_uniformly(family, tmp_path):
    tokenizer = tokenizer_of_family(family, WORDS, tmp_path)
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


def test_one_trainer_epoch_changes_the_encoder_and_saves_a_loadable_checkpoint(tiny_model, tmp_path):
    trainer = defense_trainer(tiny_model, tmp_path, "safer")
    assert_trains_and_loads(trainer, "safer")
    assert 0 < trainer.history[0]["substituted"] < 1  # some tokens swapped, never all


def test_resume_equals_an_uninterrupted_run(tiny_model, tmp_path):
    assert_resume_equals_uninterrupted_run(tiny_model, tmp_path, "safer")
