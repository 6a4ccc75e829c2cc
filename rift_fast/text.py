"""What a word is, and how a word is looked up: the one rule shared by attacks and synonym sources.

A word is a maximal run of letters of any script, combining marks and digits (a letter or digit
first), in which runs may be joined by one inner apostrophe of any kind (``don't``, ``don’t``), one
inner hyphen (``well-made``) or a zero-width (non-)joiner. Anything else separates words: spaces,
punctuation, quotes, dashes, underscores, symbols and emoji. Apostrophes and hyphens at a word's
edge are not part of it (``‘word’`` is the word ``word``), so no word ever touches a letter, digit
or inner joining character of another word: replacing one whole word by another whole word never
merges it with its neighbours. Numbers are words (``2nd``, ``3D``, ``42``; ``3.5`` is the words
``3`` and ``5``). Scripts written without spaces (Chinese, Japanese, Thai) give one word per run
between spaces or punctuation.

A word is looked up under :func:`lookup_form` (every apostrophe as ``'``, Unicode NFKC, lower
case), then, when that form is unknown, under :func:`accent_stripped` (that form decomposed, its
non-spacing marks removed): :func:`lookup_forms` lists the two in that order.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Iterable

import regex

APOSTROPHES = "'’‘ʼ‛´`＇"
HYPHENS = "-‐‑"
JOINERS = "\u200c\u200d"  # zero-width non-joiner and joiner (Persian, Indic scripts)
_RUN = r"[\p{L}\p{N}][\p{L}\p{M}\p{N}]*"
_INNER = regex.escape(APOSTROPHES + HYPHENS + JOINERS)
WORD_PATTERN = regex.compile(rf"{_RUN}(?:[{_INNER}]{_RUN})*")
_APOSTROPHE_AS_ASCII = str.maketrans({mark: "'" for mark in APOSTROPHES})


def word_spans(text: str) -> tuple[tuple[int, int], ...]:
    """The (start, end) character spans of the words of ``text``, in order (see the module docstring)."""
    return tuple(match.span() for match in WORD_PATTERN.finditer(text))


def is_single_word(text: str) -> bool:
    """Whether ``text`` is exactly one word, with nothing around it."""
    return WORD_PATTERN.fullmatch(text) is not None


def lookup_form(word: str) -> str:
    """``word`` as synonym sources are asked about it: apostrophes as ``'``, NFKC, lower case."""
    return unicodedata.normalize("NFKC", word.translate(_APOSTROPHE_AS_ASCII)).lower()


@functools.lru_cache(maxsize=1 << 16)  # called per synonym of every candidate word
def accent_stripped(word: str) -> str:
    """:func:`lookup_form` of ``word`` without accents: decomposed (NFKD), non-spacing marks (Mn)
    removed, recomposed (NFC). ``naïve`` -> ``naive``; letters without a decomposition stay (``ø``)."""
    decomposed = unicodedata.normalize("NFKD", lookup_form(word))
    kept = "".join(character for character in decomposed if unicodedata.category(character) != "Mn")
    return unicodedata.normalize("NFC", kept)


def lookup_forms(word: str) -> tuple[str, ...]:
    """The forms ``word`` is looked up under, in order: its lookup form, then its accent-stripped
    form when that differs."""
    return tuple(dict.fromkeys((lookup_form(word), accent_stripped(word))))


def vocabulary(texts: Iterable[str]) -> list[str]:
    """The sorted distinct lookup forms of the words of ``texts`` (``"Great, boring."`` -> great, boring)."""
    return sorted({lookup_form(text[start:end]) for text in texts for start, end in word_spans(text)})
