"""Alignment of a tokenizer's tokens with the words of a text, for any tokenizer.

Tokens are matched to words by their character offsets, never by their token strings: a token
string carries the tokenizer's own markers (``##`` in WordPiece, ``Ġ`` in byte-level BPE, ``▁`` in
SentencePiece), and SentencePiece offsets include the space before a word.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from typing import cast


def _trimmed(span: tuple[int, int], text: str) -> tuple[int, int]:
    """``span`` without the white space at its start and end."""
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def single_token_words(
    token_spans: Sequence[Sequence[int] | None], word_spans: list[tuple[int, int]], text: str
) -> dict[int, int]:
    """Token position -> word index, for the words of ``text`` that are exactly one token.

    ``token_spans``: per token, its (start, end) character span in ``text``, or None for a token of
    another input (special tokens, padding, the other side of a pair). ``word_spans``: the words'
    (start, end) spans, in order. A token belongs to the word its trimmed span starts in; a word is
    one token when exactly one non-empty token belongs to it and that token covers it exactly (a
    token that also covers punctuation or part of another word does not count).
    """
    starts = [start for start, _ in word_spans]
    tokens_of_word: dict[int, list[tuple[int, tuple[int, int]]]] = defaultdict(list)
    for token, span in enumerate(token_spans):
        if span is None:
            continue
        start, end = _trimmed(cast(tuple[int, int], tuple(span)), text)  # a (start, end) pair
        word = bisect.bisect_right(starts, start) - 1
        if start < end and word >= 0 and start < word_spans[word][1]:
            tokens_of_word[word].append((token, (start, end)))
    return {
        tokens[0][0]: word
        for word, tokens in tokens_of_word.items()
        if len(tokens) == 1 and tokens[0][1] == tuple(word_spans[word])
    }
