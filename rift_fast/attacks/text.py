"""Words of a text as character spans, so substitutions keep everything else of the text intact."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from rift_fast.core.words import word_spans

Query = tuple[str, str | None]  # (text, text_pair); text_pair is None for single-text tasks
Substitutes = tuple[tuple[int, str], ...]  # (word position, new word), by position
Edit = tuple[int, Substitutes]  # (example index, substitutes): one query of a registered target


@dataclass(frozen=True)
class WordSpans:
    """``text`` and the (start, end) character spans of its words (as :mod:`rift_fast.core.words` defines them)."""

    text: str

    @cached_property
    def spans(self) -> tuple[tuple[int, int], ...]:
        return word_spans(self.text)

    @cached_property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text[start:end] for start, end in self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def replace(self, substitutes: dict[int, str]) -> str:
        """The text with word ``i`` replaced by ``substitutes[i]`` for each given position (positions
        that are not words of the text are ignored); one piece per substitution, not per word."""
        pieces: list[str] = []
        cursor = 0
        for position in sorted(p for p in substitutes if 0 <= p < len(self.spans)):
            start, end = self.spans[position]
            pieces += (self.text[cursor:start], substitutes[position])
            cursor = end
        pieces.append(self.text[cursor:])
        return "".join(pieces)

    def replace_with_spans(self, substitutes: dict[int, str]) -> tuple[str, list[tuple[int, int]]]:
        """The replaced text and, for each word of this text, its character span in the new text."""
        pieces, spans, cursor, length = [], [], 0, 0
        for position, (start, end) in enumerate(self.spans):
            word = substitutes.get(position, self.text[start:end])
            pieces.append(self.text[cursor:start])
            length += start - cursor
            pieces.append(word)
            spans.append((length, length + len(word)))
            length += len(word)
            cursor = end
        pieces.append(self.text[cursor:])
        return "".join(pieces), spans


def match_case(template: str, word: str) -> str:
    """``word`` in the capitalisation of ``template`` (UPPER, Title or as given)."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
