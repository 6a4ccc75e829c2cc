"""What a word is, and how a word is looked up: the one rule shared by attacks and synonym sources.

A word is a maximal run of letters of any script, combining marks and digits (a letter or digit
first), in which runs may be joined by one inner apostrophe of any kind (``don't``, ``don’t``), one
inner hyphen (``well-made``) or default-ignorable characters (Unicode's Default_Ignorable_Code_Point:
the soft hyphen, zero-width space, (non-)joiner and word joiner, the byte order mark, bidirectional
marks, variation selectors; invisible, and deleted by many tokenizers' normalisers). So
``won\xadder\xadful`` (soft hyphens) is one word, as Unicode word segmentation (UAX #29) and the
tokenizers that delete the soft hyphen read it, and so is ``good\u200bmovie``. Default-ignorable
characters at a word's edge are not part of it. Anything else separates words: spaces,
punctuation, quotes, dashes, underscores, symbols and emoji. Apostrophes and hyphens at a word's
edge are not part of it (``‘word’`` is the word ``word``), so no word ever touches a letter, digit
or inner joining character of another word: replacing one whole word by another whole word never
merges it with its neighbours. Numbers are words (``2nd``, ``3D``, ``42``; ``3.5`` is the words
``3`` and ``5``). Scripts written without spaces (Chinese, Japanese, Thai) give one word per run
between spaces or punctuation. Where this rule departs from UAX #29, it is on purpose: inner hyphens
join (UAX #29 splits ``well-made``), ``3.5`` is two words (UAX #29: one), and every default-ignorable
character joins (UAX #29 splits at a zero-width space).

A word is looked up under :func:`lookup_form` (default-ignorable characters removed, every
apostrophe as ``'``, Unicode NFKC, lower case), then, when that form is unknown, under
:func:`accent_stripped` (that form decomposed, its non-spacing marks removed): :func:`lookup_forms`
lists the two in that order.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Iterable

import regex

APOSTROPHES = "'’‘ʼ‛´`＇"
HYPHENS = "-‐‑"
DEFAULT_IGNORABLE = r"\p{Default_Ignorable_Code_Point}"  # soft hyphen, zero-width space and joiners, ...
_LETTER_OR_DIGIT = rf"[[\p{{L}}\p{{N}}]--{DEFAULT_IGNORABLE}]"  # not the invisible Hangul fillers
_RUN = rf"{_LETTER_OR_DIGIT}[\p{{M}}{_LETTER_OR_DIGIT}]*"
_JOIN = rf"{DEFAULT_IGNORABLE}*[{regex.escape(APOSTROPHES + HYPHENS)}]{DEFAULT_IGNORABLE}*|{DEFAULT_IGNORABLE}+"
WORD_PATTERN = regex.compile(rf"{_RUN}(?:(?:{_JOIN}){_RUN})*", flags=regex.V1)
_DEFAULT_IGNORABLE_PATTERN = regex.compile(DEFAULT_IGNORABLE)
_APOSTROPHE_AS_ASCII = str.maketrans({mark: "'" for mark in APOSTROPHES})


def word_spans(text: str) -> tuple[tuple[int, int], ...]:
    """The (start, end) character spans of the words of ``text``, in order (see the module docstring)."""
    return tuple(match.span() for match in WORD_PATTERN.finditer(text))


def is_single_word(text: str) -> bool:
    """Whether ``text`` is exactly one word, with nothing around it."""
    return WORD_PATTERN.fullmatch(text) is not None


def without_default_ignorables(text: str) -> str:
    """``text`` without its default-ignorable characters (``won\xadder\xadful`` -> ``wonderful``)."""
    return _DEFAULT_IGNORABLE_PATTERN.sub("", text)


def lookup_form(word: str) -> str:
    """``word`` as synonym sources are asked about it: default-ignorable characters removed,
    apostrophes as ``'``, NFKC, lower case."""
    visible = without_default_ignorables(word.translate(_APOSTROPHE_AS_ASCII))
    return unicodedata.normalize("NFKC", visible).lower()


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


def levenshtein(first: str, second: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions; each costs 1) of two strings."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, start=1):
        current = [i]
        for j, b in enumerate(second, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]
