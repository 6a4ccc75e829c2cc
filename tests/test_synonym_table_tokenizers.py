"""The training-time one-token synonym table over the three tokenizer families (WordPiece, byte-level
BPE with ``Ġ``, SentencePiece / Unigram with ``▁``): accented words, words that fall apart into pieces,
unknown characters, the same context for a word and its synonyms, and the coverage it states."""

from __future__ import annotations

import logging

import pytest
from tiny_tokenizers import byte_level_bpe, sentencepiece_unigram, wordpiece

from rift_fast.synonyms import SynonymIndex, TableCoverage

WORDS = ["good", "fine", "naïve", "café", "movie", "bad", "poor", "the"]  # whole in every tokenizer
INDEX = SynonymIndex(
    {
        "good": ["fine", "naïve", "superb"],  # "superb" is several pieces everywhere: left out
        "café": ["bistro", "movie"],  # "bistro" is several pieces, "movie" one token
        "superb": ["good"],  # the word itself is several pieces: no row
        "日": ["good"],  # the unknown token (WordPiece, Unigram) or bytes (BPE): no row
        "bad": ["日"],  # its only synonym is unknown: no row
        "poor": [],
    }
)
# Tokenizer entries with synonyms: "good" and "café" in each distinct form the tokenizer has (uncased
# WordPiece: one form; cased Unigram: lower / capitalised; cased BPE: those, after a space or not).
TOKEN_ROWS = {"wordpiece": 2, "bpe": 8, "unigram": 4}


@pytest.fixture(params=sorted(TOKEN_ROWS))
def family_and_tokenizer(request, tmp_path):
    family = request.param
    if family == "wordpiece":
        return family, wordpiece(WORDS, tmp_path)
    return family, byte_level_bpe(WORDS) if family == "bpe" else sentencepiece_unigram(WORDS)


def _only_token(tokenizer, text: str) -> int:
    (token,) = tokenizer(text, add_special_tokens=False)["input_ids"]
    return token


def test_the_table_keeps_one_token_words_and_synonyms_in_the_same_context(family_and_tokenizer, caplog):
    family, tokenizer = family_and_tokenizer
    with caplog.at_level(logging.INFO, logger="rift_fast.synonyms.index"):
        table, coverage = INDEX.vocab_table_with_coverage(tokenizer, k=3)
    assert coverage == TableCoverage(words_with_synonyms=5, words_covered=2, token_rows=TOKEN_ROWS[family])
    assert coverage.describe() in caplog.text
    assert int((table[:, 0] >= 0).sum()) == TOKEN_ROWS[family]
    for text in ("good", " good", "Good", " Good"):  # each form lists its synonyms in the same form
        prefix, word = text[:-4], text[-4:]
        same_case = str.lower if word.islower() else str.capitalize
        expected = [_only_token(tokenizer, prefix + same_case(w)) for w in ("fine", "naïve")]
        assert table[_only_token(tokenizer, text)].tolist() == expected + [-1]
    for text in ("café", " café"):
        assert table[_only_token(tokenizer, text)].tolist() == [_only_token(tokenizer, text[:-4] + "movie"), -1, -1]


def test_unknown_and_special_tokens_never_enter_the_table(family_and_tokenizer):
    _, tokenizer = family_and_tokenizer
    table = INDEX.vocab_table(tokenizer, k=3)
    rows = set((table[:, 0] >= 0).nonzero().flatten().tolist())
    synonyms = set(table[table >= 0].tolist())
    assert tokenizer.unk_token_id in tokenizer.all_special_ids
    assert not (rows | synonyms) & set(tokenizer.all_special_ids)
