"""The training-time one-token synonym table over the three tokenizer families (WordPiece, byte-level
BPE with ``Ġ``, SentencePiece / Unigram with ``▁``): accented words, words that fall apart into pieces,
unknown characters, the same context for a word and its synonyms, and the coverage it states."""

from __future__ import annotations

import logging

import pytest
from tiny_tokenizers import (
    byte_level_bpe,
    sentencepiece_bpe_byte_fallback,
    sentencepiece_unigram,
    tokenizer_of_family,
    wordpiece,
)

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
TOKEN_ROWS = {"wordpiece": 2, "byte_level_bpe": 8, "sentencepiece_unigram": 4}


@pytest.fixture(params=sorted(TOKEN_ROWS))
def family_and_tokenizer(request, tmp_path):
    return request.param, tokenizer_of_family(request.param, WORDS, tmp_path)


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


# ------------------------------------------------------------- coverage whatever the punctuation before a word
SYNONYMS_OF = {
    "movie": ["film", "picture", "feature", "flick", "cinema", "show", "story", "drama"],
    "good": ["fine", "great", "nice", "decent", "solid", "sound", "superb", "grand"],
}
COVERAGE_INDEX = SynonymIndex(SYNONYMS_OF)
COVERAGE_WORDS = sorted({w for word, others in SYNONYMS_OF.items() for w in [word, *others]} | {"the", "was"})
# Where a word stands: after a space, at the start (lower case and capitalised), right after punctuation.
CONTEXTS = [
    "the {} was",
    "{} was",
    "{} was!",
    "the ({}) was",
    'the "{}" was',
    "the [{}] was",
    "the '{}' was",
    "the -{}- was",
    "the “{}” was",
    "the/{} was",
    "The {}, was",
    "the ({}) was!",
    '"{}" was!',
]  # a context ending in "!" holds the word capitalised
FAMILIES = ["wordpiece", "byte_level_bpe", "sentencepiece_unigram", "sentencepiece_bpe_byte_fallback"]


def _family_tokenizer(family, folder):
    if family == "wordpiece":
        return wordpiece(COVERAGE_WORDS, folder)
    if family == "byte_level_bpe":
        return byte_level_bpe(COVERAGE_WORDS)
    if family == "sentencepiece_unigram":
        return sentencepiece_unigram(COVERAGE_WORDS, bare_pieces=True)
    return sentencepiece_bpe_byte_fallback(COVERAGE_WORDS)


def _word_token(tokenizer, context: str, word: str) -> int | None:
    """The one token of ``word`` in ``context`` (the token whose characters are the word's), or None."""
    text = context.format(word)
    start = context.index("{}")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [
        token
        for token, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"])
        if a < start + len(word) and b > start
    ]
    spans = [(a, b) for a, b in encoded["offset_mapping"] if a < start + len(word) and b > start]
    if len(inside) != 1 or text[spans[0][0] : spans[0][1]].strip() != word:
        return None
    return inside[0]


def table_coverage(tokenizer, table, context: str) -> float:
    """The share of (word, synonym) candidates of :data:`SYNONYMS_OF` that the one-token table offers for
    the word in ``context``, each as the very token the tokenizer gives the synonym in that context."""
    found = 0
    for word, others in SYNONYMS_OF.items():
        case = str.capitalize if context.endswith("!") else str
        token = _word_token(tokenizer, context, case(word))
        if token is None:
            continue
        row = set(table[token].tolist())
        found += sum(_word_token(tokenizer, context, case(other)) in row for other in others)
    return found / sum(len(others) for others in SYNONYMS_OF.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_table_coverage_does_not_depend_on_the_punctuation_before_a_word(family, tmp_path):
    tokenizer = _family_tokenizer(family, tmp_path)
    table = COVERAGE_INDEX.vocab_table(tokenizer, k=8)
    coverage = {context: table_coverage(tokenizer, table, context) for context in CONTEXTS}
    assert coverage == {context: 1.0 for context in CONTEXTS}  # 16 of 16 candidates in every context


@pytest.mark.parametrize("family", ["sentencepiece_unigram", "sentencepiece_bpe_byte_fallback"])
def test_a_word_after_a_bracket_is_the_bare_piece_with_its_own_row(family, tmp_path):
    # The instance: "(movie)" is the piece "movie", not "▁movie"; both have the 8 synonyms.
    tokenizer = _family_tokenizer(family, tmp_path)
    table = COVERAGE_INDEX.vocab_table(tokenizer, k=8)
    after_space, after_bracket = _word_token(tokenizer, "a {} b", "movie"), _word_token(tokenizer, "a ({}) b", "movie")
    assert tokenizer.convert_ids_to_tokens([after_space, after_bracket]) == ["▁movie", "movie"]
    assert tokenizer.convert_ids_to_tokens(table[after_bracket].tolist()) == SYNONYMS_OF["movie"]
    assert tokenizer.convert_ids_to_tokens(table[after_space].tolist()) == [f"▁{w}" for w in SYNONYMS_OF["movie"]]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("context", CONTEXTS[:1] + CONTEXTS[3:])
def test_the_gradient_search_ranks_every_candidate_whatever_the_punctuation(family, context, tmp_path):
    from test_token_splicing import PositionalTokenScores

    from rift_fast.attacks import Constraints, GradientGuidedGreedy, SynonymSwap, UntargetedClassification, VictimModel
    from rift_fast.attacks.transformation import build_target
    from rift_fast.core.records import Example

    tokenizer = _family_tokenizer(family, tmp_path)
    victim = VictimModel(PositionalTokenScores(tokenizer), tokenizer, max_length=32, batch_size=4)
    table = COVERAGE_INDEX.vocab_table(tokenizer, k=8)
    search = GradientGuidedGreedy(UntargetedClassification(), victim, table, candidates=8, backend="reference")
    target = build_target(0, Example(context.format("movie"), 0), SynonymSwap(COVERAGE_INDEX), Constraints([]))
    ranked = search._ranked_swaps([target], {0: {}}, attacked_side=0)[0]
    position = target.spans.words.index("movie")
    assert sorted(slot for word, slot in ranked if word == position) == list(range(1, 9))  # 8 of 8 candidates
