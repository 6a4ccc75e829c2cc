"""Token-span splicing: the token ids of an attack's queries built from the example's ids, without
rendering or tokenising each query.

Each attacked text is tokenised once, with character offsets. The *region* of a word is its
characters plus the white space right before it (where byte-level BPE and SentencePiece put their
``Ġ``/``▁`` markers); its tokens are those whose offsets fall in the region. Each substitute word is
tokenised once per position, in its context: the gap text before and after the word (up to the
neighbouring words) around it, so word-initial markers come out as in the full text. A query's ids
are the example's ids with each substituted word's region tokens replaced by the substitute's,
truncated to the model's window (the longer side first for pairs, as Hugging Face's
``longest_first``) between the tokenizer's special tokens.

Exactness, checked at three levels (any failure routes the query to the text path, never a wrong id):

- per word: the word's region tokens in the full text equal its region tokens tokenised in context,
  every token touching the region lies inside it, and the context's own tokens are the same for the
  original and the substitute word (a tokenizer looking across word boundaries fails here); a word
  separated from a neighbouring word only by characters the normaliser deletes (``good\x7fmovie``
  reads as ``goodmovie`` to BERT's normaliser) is not spliced, as the tokenizer reads the two as
  one: its queries take the text path, counted under :data:`NEXT_TO_DELETED`;
- per tokenizer: :meth:`TokenSplicer.probe` splices random substitutions into a probe set of sentences
  (accents, curly quotes, digits, pairs, texts past the window) and compares with ``tokenizer(text)``;
  a tokenizer failing it is not spliced at all (logged once);
- per run: ``verify`` re-tokenises N random spliced queries per call and raises
  :class:`SplicingMismatch` on any difference (``--verify-splicing N``).

Queries are built with :func:`rift_fast.ops.build_perturbation_batch` on the victim's device: each
example's row is laid out with a fixed number of slots per edited word (the most pieces any of its
substitutes needs, unused slots hold :attr:`TokenSplicer.hole`), so substitutions are fixed-position
edits the op applies and de-duplicates; the distinct rows then come to the host, where the holes are
squeezed out, the rows truncated (numpy) and hashed (BLAKE2b of the int32 ids: the answer cache's
key). Everything per query is vectorised; Python loops run per example and per distinct
substitution, not per query.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
import torch
from tokenizers import Tokenizer

from rift_fast.attacks.text import Query, Substitutes
from rift_fast.ops.build_perturbation_batch import build_perturbation_batch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rift_fast.attacks.transformation import Target

logger = logging.getLogger(__name__)

# How one word is substituted: (word position, its first token, its number of tokens, the new word's ids).
Piece = tuple[int, int, int, tuple[int, ...]]
# The parts of a model input, in order (the columns of a slot layout; PADDING_PART after the end).
PREFIX_PART, OTHER_PART, MIDDLE_PART, ATTACKED_PART, SUFFIX_PART, PADDING_PART = range(6)


# The splicer's count of substitutions left to the text path because a character the normaliser
# deletes is all that separates the word from a neighbouring word.
NEXT_TO_DELETED = "substitutions next to characters the normaliser deletes (text path)"


class SplicingMismatch(ValueError):
    """A spliced query's ids differ from the tokenizer's ids of the rendered text."""


ROW_DTYPE = np.int32  # token ids of a row: every vocabulary fits, and rows hash twice as fast as in int64
ROW_TYPE_DTYPE = np.int8  # token type ids of a row (0 and 1 in practice)


Encoded = tuple[list[int], list[int], list[int]]  # a text's token ids, start and end character offsets


class TokenRow(NamedTuple):
    """The model input of one query: ``ids`` [n] int32 and ``type_ids`` [n] int8 (None when the
    tokenizer returns no token type ids); ``key`` is a 16-byte BLAKE2b digest of both."""

    ids: np.ndarray
    type_ids: np.ndarray | None
    key: bytes

    @staticmethod
    def of(ids: np.ndarray, type_ids: np.ndarray | None) -> TokenRow:
        """The row of C-contiguous ``ids`` (:data:`ROW_DTYPE`) and ``type_ids`` (:data:`ROW_TYPE_DTYPE`),
        hashed in place."""
        digest = hashlib.blake2b(ids.data, digest_size=16)
        if type_ids is not None:
            digest.update(type_ids.data)
        return TokenRow(ids, type_ids, digest.digest())


def tokenised_rows(tokenizer: PreTrainedTokenizerBase, queries: list[Query], max_length: int) -> list[TokenRow]:
    """The text path: each query tokenised whole, truncated to ``max_length`` tokens (the longer side
    first for pairs); type ids kept when the tokenizer returns them."""
    texts = [q[0] for q in queries]
    pairs = [cast(str, q[1]) for q in queries] if queries[0][1] is not None else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    types = encoded.get("token_type_ids")
    return [
        TokenRow.of(
            np.asarray(ids, dtype=ROW_DTYPE), np.asarray(types[k], dtype=ROW_TYPE_DTYPE) if types is not None else None
        )
        for k, ids in enumerate(encoded["input_ids"])
    ]


@dataclass(frozen=True)
class SpecialTemplate:
    """Where a tokenizer puts its special tokens: ``prefix`` + other side + ``middle`` + attacked side
    + ``suffix`` (lists of ids), and the token type id of each of those five parts (None: no type ids)."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    types: tuple[int, int, int, int, int] | None

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def special_template(tokenizer: PreTrainedTokenizerBase, pair: bool) -> SpecialTemplate | None:
    """The template of ``tokenizer`` read off its encoding of a probe (``"a b"``, with ``"c d"`` as the
    pair); None when the parts are not contiguous or a part mixes token type ids."""
    encoded = tokenizer("a b", "c d" if pair else None)
    sides = encoded.sequence_ids()
    ids = encoded["input_ids"]
    types = encoded.get("token_type_ids")
    attacked = 1 if pair else 0
    parts: list[list[int]] = [[] for _ in range(5)]  # prefix, other side, middle, attacked side, suffix
    part = 0
    for position, side in enumerate(sides):
        wanted = 3 if side == attacked else 1 if side == 0 else None
        if wanted is not None:
            if part > wanted:
                return None
            part = wanted
        elif part in (1, 3):
            part += 1
        parts[part].append(position)
    if not parts[3] or (pair and not parts[1]):
        return None
    part_types = []
    for positions in parts:
        values = {types[p] for p in positions} if types is not None else set()
        if len(values) > 1:
            return None
        part_types.append(values.pop() if values else 0)
    return SpecialTemplate(
        tuple(ids[p] for p in parts[0]),
        tuple(ids[p] for p in parts[2]),
        tuple(ids[p] for p in parts[4]),
        tuple(part_types) if types is not None else None,  # type: ignore[arg-type]  # five parts
    )


# Normalisers that map each character (or a run of white space) on its own: word-local, so a word's
# tokens cannot depend on its neighbours through them. "Precompiled" is SentencePiece's character map.
WORD_LOCAL_NORMALISERS = {
    "NFC",
    "NFD",
    "NFKC",
    "NFKD",
    "Lowercase",
    "StripAccents",
    "BertNormalizer",
    "Strip",
    "Prepend",
    "Precompiled",
    "Nmt",
}
_WHITESPACE_PATTERN = re.compile(r"(?:\\s|[ \t\n]|[{}0-9,+*?])+")


def cross_word_normaliser(definition: str) -> str | None:
    """The first step of a fast tokenizer's normaliser (``definition``: the backend tokenizer's JSON)
    that may look across word boundaries (a replacement whose pattern mixes word and non-word
    characters, a regex not made of white space only, or a normaliser this module does not know), as
    JSON; None when every step is word-local."""
    description = json.loads(definition).get("normalizer")
    steps = [description] if description else []
    while steps:
        step = steps.pop()
        kind = step.get("type")
        if kind == "Sequence":
            steps += step["normalizers"]
        elif kind == "Replace":
            pattern = step["pattern"]
            if "Regex" in pattern and not _WHITESPACE_PATTERN.fullmatch(pattern["Regex"]):
                return json.dumps(step)
            text = pattern.get("String", "")
            has_word = any(c.isalnum() for c in text + step["content"])
            has_other = any(not c.isalnum() for c in text + step["content"])
            if "String" in pattern and has_word and has_other:
                return json.dumps(step)
        elif kind not in WORD_LOCAL_NORMALISERS:
            return json.dumps(step)
    return None


def longest_first(other: np.ndarray, attacked: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens kept of each side [N] int64 under Hugging Face's ``longest_first`` truncation of a pair to
    ``budget`` tokens (special tokens excluded): the shorter side keeps up to half, the longer the
    rest; on a tie the second (attacked) side keeps the odd token."""
    over = other + attacked > budget
    other_first = attacked >= other
    kept_other = np.where(other_first, np.minimum(other, budget // 2), budget - np.minimum(attacked, budget // 2))
    kept_other = np.where(over, kept_other, other)
    kept_attacked = np.where(over, budget - kept_other, attacked)
    return kept_other, kept_attacked


@dataclass
class _Context:
    """A word tokenised in its context: its region's ids (None when a token crosses the region's
    edge) and the ids of the context around it."""

    region: tuple[int, ...] | None
    around: tuple[tuple[int, ...], tuple[int, ...]]


@dataclass
class _Example:
    """A registered target's tokens: the attacked side's ids and offsets, the other side's ids."""

    target: Target
    ids: np.ndarray  # [n] int64, attacked side, no special tokens
    starts: list[int]  # [n] char offsets
    ends: list[int]
    other: np.ndarray  # [m] int64, the other side of a pair (empty for single texts)
    regions: dict[int, tuple[int, int] | None] = field(default_factory=dict)  # word -> token range
    contexts: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # word -> gaps, white space
    ordered: bool = True  # offsets non-decreasing (else no word of this example is spliced)
    pieces: dict[tuple[int, str], int] = field(default_factory=dict)  # (word, substitute) -> piece number, -1: none
    piece_list: list[Piece] = field(default_factory=list)  # the pieces by number
    # piece_list as arrays, up to date after piece_arrays(): [P, 4] int64 (word, first token, tokens,
    # number of new ids), the new ids of every piece [T] int64, and where each piece's ids start in them [P] int64
    piece_fields: np.ndarray = field(default_factory=lambda: np.empty((0, 4), dtype=np.int64))
    piece_tokens: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    piece_token_starts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def piece_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(``piece_fields``, ``piece_tokens``, ``piece_token_starts``), extended with the pieces
        added to ``piece_list`` since the last call."""
        done = len(self.piece_fields)
        if done < len(self.piece_list):
            new = self.piece_list[done:]
            fields = np.asarray([(word, first, count, len(ids)) for word, first, count, ids in new], dtype=np.int64)
            lengths = fields[:, 3]
            tokens = np.fromiter(chain.from_iterable(piece[3] for piece in new), dtype=np.int64, count=lengths.sum())
            starts = len(self.piece_tokens) + np.cumsum(lengths) - lengths
            self.piece_fields = np.concatenate([self.piece_fields, fields])
            self.piece_tokens = np.concatenate([self.piece_tokens, tokens])
            self.piece_token_starts = np.concatenate([self.piece_token_starts, starts])
        return self.piece_fields, self.piece_tokens, self.piece_token_starts


def _region_tokens(starts: list[int], ends: list[int], low: int, high: int) -> tuple[int, int] | None:
    """The token range [a, b) of the characters [low, high), or None when a token crosses its edge.

    ``starts`` and ``ends`` [n]: the tokens' character offsets, non-decreasing (as tokenizers give
    them). A token belongs to the range when its characters meet it, or when it is empty (a marker
    such as a lone ``Ġ``) and stands inside it. A range no token meets (a word the normaliser
    removes) is empty, placed after the tokens that end by ``low``. Plain Python: the ranges hold a
    few tokens."""
    first_candidate = bisect_left(ends, low)  # tokens before it end before the range
    last_candidate = bisect_left(starts, high)  # tokens from here start after it
    touching = [
        k
        for k in range(first_candidate, last_candidate)
        if (ends[k] > low and starts[k] < ends[k]) or (starts[k] == ends[k] and starts[k] >= low)
    ]
    if not touching:  # an empty range stands after every token that ends by its start
        after = bisect_right(ends, low)
        return after, after
    first, last = touching[0], touching[-1] + 1
    if last - first != len(touching) or any(starts[k] < low or ends[k] > high for k in range(first, last)):
        return None
    return first, last


def _non_decreasing(values: list[int]) -> bool:
    return list(values) == sorted(values)  # Timsort: one pass over a sorted list


def _leading_space(text: str, start: int, floor: int) -> int:
    """How many white-space characters stand right before ``start`` (not before ``floor``)."""
    begin = start
    while begin > floor and text[begin - 1].isspace():
        begin -= 1
    return start - begin


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ..., n - 1 for each n of ``lengths`` [K] int64, concatenated: [sum(lengths)] int64."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


class _Slots(NamedTuple):
    """The edited words of one call's slot layouts [G], sorted by example row then word: ``row``; the
    word's ``first`` token and its number of ``tokens`` in the example; ``slot_count``, its slots (the
    most tokens among the word itself and its substitutes); ``shortest``, the fewest tokens among the
    word itself and its substitutes; ``row_first``, the index of its row's first slot. All int64."""

    row: np.ndarray
    first: np.ndarray
    tokens: np.ndarray
    slot_count: np.ndarray
    shortest: np.ndarray
    row_first: np.ndarray


def _gathered_pieces(examples: list[_Example], rows: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fields [D, 4] int64: word, first token, tokens, number of new ids; the new ids [T] int64, piece
    after piece) of the pieces ``numbers`` [D] of the examples at ``rows`` [D] (sorted) of ``examples``."""
    bounds = np.searchsorted(rows, np.arange(len(examples) + 1))
    fields, tokens = [np.empty((0, 4), dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for row, example in enumerate(examples):
        chosen = numbers[bounds[row] : bounds[row + 1]]
        if len(chosen):
            example_fields, example_tokens, token_starts = example.piece_arrays()
            fields.append(example_fields[chosen])
            lengths = fields[-1][:, 3]
            tokens.append(example_tokens[np.repeat(token_starts[chosen], lengths) + _ranks(lengths)])
    return np.concatenate(fields), np.concatenate(tokens)


def _slots_of(rows: np.ndarray, fields: np.ndarray) -> tuple[_Slots, np.ndarray]:
    """The slots of the pieces (example row ``rows`` [D], ``fields`` [D, 4] as from
    :func:`_gathered_pieces`) and the slot of each piece [D] int64."""
    words, new_lengths = fields[:, 0], fields[:, 3]
    span = int(words.max()) + 1 if len(words) else 1
    keys, first_piece, piece_slot = np.unique(rows * span + words, return_index=True, return_inverse=True)
    slot_rows = keys // span
    tokens = fields[first_piece, 2]
    count, shortest = tokens.copy(), tokens.copy()
    np.maximum.at(count, piece_slot, new_lengths)
    np.minimum.at(shortest, piece_slot, new_lengths)
    row_first = np.searchsorted(slot_rows, slot_rows)
    return _Slots(slot_rows, fields[first_piece, 1], tokens, count, shortest, row_first), piece_slot


_PROBED: dict[tuple[bytes, int, bool], str | None] = {}  # probe outcomes, see TokenSplicer.probe
_CROSS_WORD_STEPS: dict[bytes, str | None] = {}  # tokenizer JSON digest -> cross_word_normaliser of it
_BACKEND_COPIES: dict[bytes, Tokenizer] = {}  # tokenizer JSON digest -> its copy (see _backend_copy)


def _backend_copy(digest: bytes, definition: str) -> Tokenizer:
    """A backend tokenizer built from ``definition`` (its JSON, digest ``digest``) that never truncates
    or pads, built once per process (30 ms for a 30k vocabulary) and shared: splicers only encode."""
    if digest not in _BACKEND_COPIES:
        backend = Tokenizer.from_str(definition)
        backend.no_truncation()
        backend.no_padding()
        _BACKEND_COPIES[digest] = backend
    return _BACKEND_COPIES[digest]


class TokenSplicer:
    """Builds the token ids of attack queries by splicing (see the module docstring).

    ``max_length``: the model's window in tokens (special tokens included); ``pair``: whether the
    task's inputs are sentence pairs (the second side is attacked). ``available`` is False (and
    ``reason`` says why) when this tokenizer cannot be spliced; the engine then uses the text path.
    ``counts`` tallies what happened: spliced and text-path queries, substitute words that tokenise
    to nothing or to the unknown token, words whose splicing is not exact.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, pair: bool, device: torch.device) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pair = pair
        self.device = device
        self.hole = len(tokenizer)  # no token has this id
        self.unknown_id = tokenizer.unk_token_id
        self.counts: Counter[str] = Counter()
        self._examples: dict[int, _Example] = {}
        self._contexts: dict[tuple[str, str, str], _Context] = {}
        self._deleted_gaps: dict[str, bool] = {}  # gap text -> whether the normaliser deletes all of it
        self._encoded_ahead: dict[str, Encoded] = {}  # texts encoded by visible_spans, for register
        self.template = special_template(tokenizer, pair) if tokenizer.is_fast else None
        self._definition = tokenizer.backend_tokenizer.to_str() if tokenizer.is_fast else ""  # its full JSON
        self._digest = hashlib.blake2b(self._definition.encode()).digest()
        self.reason = self._unsupported()
        self.available = self.reason is None
        if tokenizer.is_fast:  # a copy of the backend that never truncates or pads (see _encode)
            self._backend = _backend_copy(self._digest, self._definition)
        self.budget = max_length - (self.template.size if self.template else 0)  # tokens of the texts
        template = (self.template.prefix, self.template.middle, self.template.suffix) if self.template else ((),) * 3
        self._template_ids = tuple(np.asarray(part, dtype=np.int64) for part in template)  # prefix, middle, suffix

    def _unsupported(self) -> str | None:
        if not self.tokenizer.is_fast:
            return "a slow (Python) tokenizer gives no character offsets"
        if self.template is None:
            return "its special tokens do not follow a prefix/middle/suffix template"
        if self.tokenizer.truncation_side != "right":
            return f"truncation_side={self.tokenizer.truncation_side!r} (only 'right' is spliced)"
        if self._digest not in _CROSS_WORD_STEPS:  # parsing the JSON costs ~20 ms per 30k vocabulary
            _CROSS_WORD_STEPS[self._digest] = cross_word_normaliser(self._definition)
        step = _CROSS_WORD_STEPS[self._digest]
        if step is not None:
            return f"its normaliser step {step} may look across word boundaries"
        return None

    def register(self, targets: list[Target]) -> None:
        """Tokenise each target's sides once, with offsets."""
        new = [t for t in targets if t.index not in self._examples]
        if not new:
            return
        attacked = self._encodings([t.spans.text for t in new])
        self._encoded_ahead.clear()
        others = self._encode([t.example.text for t in new]) if self.pair else None
        for k, target in enumerate(new):
            ids, starts, ends = attacked[k]
            self._examples[target.index] = _Example(
                target,
                np.asarray(ids, dtype=np.int64),
                starts,
                ends,
                np.asarray(others[k][0] if others is not None else [], dtype=np.int64),
                ordered=_non_decreasing(starts) and _non_decreasing(ends),
            )

    def visible_spans(self, texts: list[str]) -> list[tuple[tuple[int, int], bool]]:
        """For each single text (not a pair): the characters ``(start, end)`` the model reads and whether
        the text is truncated, as :meth:`VictimModel.visible_span` gives them under this splicer's right
        truncation (the first ``budget`` tokens kept). The encodings are kept for :meth:`register`."""
        encodings = self._encodings(texts)
        spans = []
        for text, (_, starts, ends) in zip(texts, encodings):
            if len(starts) <= self.budget:
                spans.append(((0, len(text)), False))
            elif self.budget <= 0:
                spans.append(((0, 0), True))
            else:
                spans.append(((min(starts[: self.budget]), max(ends[: self.budget])), True))
        self._encoded_ahead.update(zip(texts, encodings))
        return spans

    def _encodings(self, texts: list[str]) -> list[Encoded]:
        """:meth:`_encode` of ``texts``, reading those :meth:`visible_spans` encoded from its store."""
        new = [text for text in dict.fromkeys(texts) if text not in self._encoded_ahead]
        found = {**self._encoded_ahead, **dict(zip(new, self._encode(new) if new else []))}
        return [found[text] for text in texts]

    def _encode(self, texts: list[str]) -> list[Encoded]:
        """(ids, start offsets, end offsets) of each text, without special tokens, truncation or padding
        (the backend tokenizer called directly: the wrapper's conversions cost more than the encoding)."""
        result = []
        for encoding in self._backend.encode_batch(texts, add_special_tokens=False):
            starts, ends = zip(*encoding.offsets) if encoding.offsets else ((), ())
            result.append((encoding.ids, list(starts), list(ends)))
        return result

    def release(self, index: int) -> None:
        self._examples.pop(index, None)

    @staticmethod
    def _context_parts(example: _Example, position: int) -> tuple[str, str, int]:
        """The gap text before and after word ``position`` and the white space right before it."""
        found = example.contexts.get(position)
        if found is None:
            spans = example.target.spans
            start, end = spans.spans[position]
            previous_end = spans.spans[position - 1][1] if position else 0
            next_start = spans.spans[position + 1][0] if position + 1 < len(spans) else len(spans.text)
            found = (
                spans.text[previous_end:start],
                spans.text[end:next_start],
                _leading_space(spans.text, start, previous_end),
            )
            example.contexts[position] = found
        return found

    def _tokenise_contexts(self, keys: list[tuple[str, str, str]]) -> None:
        """Tokenise ``left + word + right`` for each new key, keeping its region ids and context ids."""
        keys = [key for key in dict.fromkeys(keys) if key not in self._contexts]
        if not keys:
            return
        for (left, word, right), (ids, starts, ends) in zip(keys, self._encode(["".join(key) for key in keys])):
            low = len(left) - _leading_space(left, len(left), 0)
            ordered = _non_decreasing(starts) and _non_decreasing(ends)
            found = _region_tokens(starts, ends, low, len(left) + len(word)) if ordered else None
            if found is None:
                self._contexts[(left, word, right)] = _Context(None, ((), ()))
                continue
            first, last = found
            self._contexts[(left, word, right)] = _Context(
                tuple(ids[first:last]), (tuple(ids[:first]), tuple(ids[last:]))
            )

    def pieces(self, requests: list[tuple[int, Substitutes]]) -> list[list[int] | None]:
        """Per request (example index, substitutes): the number of each substituted word's
        :data:`Piece` in its example's ``piece_list``, or None when a substitution cannot be spliced
        exactly."""
        result: list[list[int] | None] = []
        unknown: list[int] = []  # requests with a substitution never seen
        for k, (index, substitutes) in enumerate(requests):
            known = self._examples[index].pieces
            try:
                result.append([known[item] for item in substitutes])
            except KeyError:
                result.append(None)
                unknown.append(k)
        if unknown:
            self._add_pieces([requests[k] for k in unknown])
            for k in unknown:
                index, substitutes = requests[k]
                result[k] = [self._examples[index].pieces[item] for item in substitutes]
        return [None if numbers is None or -1 in numbers else numbers for numbers in result]

    def _add_pieces(self, requests: list[tuple[int, Substitutes]]) -> None:
        """Work out (tokenising in context once each) the pieces of the substitutions not seen yet."""
        missing = list(
            dict.fromkeys(
                (index, item)
                for index, substitutes in requests
                for item in substitutes
                if item not in self._examples[index].pieces
            )
        )
        wanted = []
        for index, (position, word) in missing:
            example = self._examples[index]
            left, right, _ = self._context_parts(example, position)
            wanted += [(left, word, right), (left, example.target.spans.words[position], right)]
        self._tokenise_contexts(wanted)
        for index, (position, word) in missing:
            example = self._examples[index]
            piece = self._piece(example, position, word)
            example.pieces[(position, word)] = len(example.piece_list) if piece is not None else -1
            if piece is not None:
                example.piece_list.append(piece)

    def _region(self, example: _Example, position: int) -> tuple[int, int] | None:
        """Token range of word ``position``'s region in the full text, None when not exact there."""
        if position not in example.regions:
            spans = example.target.spans
            start, end = spans.spans[position]
            left, right, space = self._context_parts(example, position)
            found = _region_tokens(example.starts, example.ends, start - space, end) if example.ordered else None
            original = self._contexts[(left, spans.words[position], right)]
            if found is not None and original.region != tuple(example.ids[found[0] : found[1]].tolist()):
                found = None
            example.regions[position] = found
        return example.regions[position]

    def _deleted_by_normaliser(self, gap: str) -> bool:
        """Whether ``gap`` (text between two words) is not empty and the normaliser deletes all of it."""
        if gap not in self._deleted_gaps:
            normaliser = self._backend.normalizer
            self._deleted_gaps[gap] = bool(gap) and normaliser is not None and not normaliser.normalize_str(gap)
        return self._deleted_gaps[gap]

    def _joined_to_a_neighbour(self, example: _Example, position: int) -> bool:
        """Whether only characters the normaliser deletes separate word ``position`` from the word
        before or after it (the tokenizer then reads the two words as one)."""
        left, right, _ = self._context_parts(example, position)
        before = position > 0 and self._deleted_by_normaliser(left)
        return before or (position + 1 < len(example.target.spans) and self._deleted_by_normaliser(right))

    def _piece(self, example: _Example, position: int, word: str) -> Piece | None:
        """How word ``position`` of ``example`` becomes ``word``, or None when that is not exact."""
        if self._joined_to_a_neighbour(example, position):
            self.counts[NEXT_TO_DELETED] += 1
            return None
        region = self._region(example, position)
        left, right, _ = self._context_parts(example, position)
        original = self._contexts[(left, example.target.spans.words[position], right)]
        context = self._contexts[(left, word, right)]
        if region is None or context.region is None or context.around != original.around:
            self.counts["substitutions not spliced exactly"] += 1
            return None
        if not context.region:
            self.counts["substitutes with no token"] += 1
        elif self.unknown_id is not None and self.unknown_id in context.region:
            self.counts["substitutes with an unknown token"] += 1
        return position, region[0], region[1] - region[0], context.region

    def build(self, requests: list[tuple[int, Substitutes]]) -> list[TokenRow | None]:
        """The model input of each request (example index, substitutes), None for those that cannot be
        spliced exactly (the caller renders and tokenises them)."""
        pieces = self.pieces(requests)
        spliced = [k for k, p in enumerate(pieces) if p is not None]
        rows: list[TokenRow | None] = [None] * len(requests)
        if spliced:
            built = self._splice([requests[k][0] for k in spliced], [cast(list[int], pieces[k]) for k in spliced])
            for k, row in zip(spliced, built):
                rows[k] = row
        self.counts["spliced queries"] += len(spliced)
        self.counts["text-path queries"] += len(requests) - len(spliced)
        return rows

    def _splice(self, indices: list[int], pieces: list[list[int]]) -> list[TokenRow]:
        """Rows of the requests (example index, piece numbers): slot layouts of the call's examples,
        edits through build_perturbation_batch, holes squeezed out and the sides truncated."""
        examples = [self._examples[index] for index in dict.fromkeys(indices)]
        row_of = {example.target.index: row for row, example in enumerate(examples)}
        request_rows = np.fromiter((row_of[index] for index in indices), dtype=np.int64, count=len(indices))
        sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        numbers = np.fromiter(chain.from_iterable(pieces), dtype=np.int64, count=int(sizes.sum()))
        span = int(numbers.max()) + 1 if len(numbers) else 1
        distinct, occurrence_piece = np.unique(np.repeat(request_rows, sizes) * span + numbers, return_inverse=True)
        piece_rows, piece_numbers = np.divmod(distinct, span)
        fields, tokens = _gathered_pieces(examples, piece_rows, piece_numbers)
        slots, piece_slot = _slots_of(piece_rows, fields)
        base, parts, slot_columns, left_out = self._layouts(examples, slots)
        edits = self._edits(
            piece_rows,
            fields[:, 3],
            tokens,
            (slot_columns[piece_slot], slots.slot_count[piece_slot]),
            (occurrence_piece, np.repeat(np.arange(len(pieces)), sizes)),
        )
        unmodified = np.flatnonzero(sizes == 0)  # each gets one identity edit
        identity = (request_rows[unmodified], np.zeros_like(unmodified), base[request_rows[unmodified], 0], unmodified)
        edit_example, edit_position, edit_token, edit_group = (
            self._on_device(np.concatenate([column, extra])) for column, extra in zip(edits, identity)
        )
        batch = build_perturbation_batch(self._on_device(base), edit_example, edit_position, edit_token, edit_group)
        other_lengths = np.fromiter((len(example.other) for example in examples), dtype=np.int64, count=len(examples))
        rows, row_example = batch.query_ids.cpu().numpy(), batch.query_example.cpu().numpy()
        kept, types, lengths = self._squeeze(rows, row_example, parts, np.stack([other_lengths, left_out], axis=1))
        unique = self._token_rows(kept, types, lengths)
        return [unique[u] for u in batch.inverse.tolist()]

    def _edits(
        self,
        piece_rows: np.ndarray,
        new_lengths: np.ndarray,
        tokens: np.ndarray,
        piece_slots: tuple[np.ndarray, np.ndarray],
        occurrences: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The edits (example row, column, token, group) [M] int64 that write each occurrence's piece
        into its slots: the new word's ids, then holes up to the slot count. Per distinct piece [D]:
        its layout row ``piece_rows``, ``new_lengths`` (its ids, piece after piece in ``tokens``) and
        ``piece_slots`` (first column, slot count); ``occurrences`` [O]: (distinct piece, group)."""
        first_columns, counts = piece_slots
        occurrence_piece, occurrence_group = occurrences
        padded = np.full(int(counts.sum()), self.hole, dtype=np.int64)
        token_starts = np.cumsum(counts) - counts
        padded[np.repeat(token_starts, new_lengths) + _ranks(new_lengths)] = tokens
        repeats = counts[occurrence_piece]
        within = _ranks(repeats)
        return (
            np.repeat(piece_rows[occurrence_piece], repeats),
            np.repeat(first_columns[occurrence_piece], repeats) + within,
            padded[np.repeat(token_starts[occurrence_piece], repeats) + within],
            np.repeat(occurrence_group, repeats),
        )

    def _on_device(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the splicer's device: from pinned memory without waiting on a GPU."""
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _layouts(
        self, examples: list[_Example], slots: _Slots
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The slot layouts of ``examples`` [E], one row each: (ids [E, W] int64, holes past a row's
        end; template part of each column [E, W] int64 (0 prefix, 1 other side, 2 middle, 3 attacked
        side, 4 suffix, 5 past the end); first column of each of ``slots`` [G] int64; attacked-side
        tokens left out [E] int64). A row is: prefix, other side (up to the budget), middle, the
        attacked side with each slot's tokens followed by holes up to its count, suffix. The
        attacked side is kept up to the budget plus the tokens that substitutes shorter than their
        words may free, so every row still has all the tokens its window needs."""
        rows = len(examples)
        token_counts = np.fromiter((len(example.ids) for example in examples), dtype=np.int64, count=rows)
        slack = np.bincount(slots.row, weights=slots.tokens - slots.shortest, minlength=rows).astype(np.int64)
        last_slot_end = np.zeros(rows, dtype=np.int64)
        np.maximum.at(last_slot_end, slots.row, slots.first + slots.tokens)
        end = np.maximum(np.minimum(token_counts, self.budget + slack), last_slot_end)
        extra = slots.slot_count - slots.tokens
        offsets = np.cumsum(end) - end
        attacked = np.concatenate([example.ids[:stop] for example, stop in zip(examples, end.tolist())])
        attacked = np.insert(attacked, np.repeat(offsets[slots.row] + slots.first + slots.tokens, extra), self.hole)
        others = [example.other[: self.budget] for example in examples]
        prefix, middle, suffix = self._template_ids
        part_lengths = np.zeros((rows, PADDING_PART), dtype=np.int64)  # the parts before the padding
        part_lengths[:] = (len(prefix), 0, len(middle), 0, len(suffix))
        part_lengths[:, OTHER_PART] = [len(other) for other in others]
        part_lengths[:, ATTACKED_PART] = end + np.bincount(slots.row, weights=extra, minlength=rows).astype(np.int64)
        part_ends = np.cumsum(part_lengths, axis=1)
        part_starts = part_ends - part_lengths
        # At least one column: an unmodified request's identity edit writes column 0 (a hole past the end).
        base = np.full((rows, max(1, int(part_ends[:, -1].max()))), self.hole, dtype=np.int64)
        tiled = [np.tile(part, rows) for part in (prefix, middle, suffix)]
        for part, values in enumerate((tiled[0], np.concatenate(others), tiled[1], attacked, tiled[2])):
            lengths = part_lengths[:, part]
            columns = np.repeat(part_starts[:, part], lengths) + _ranks(lengths)
            base[np.repeat(np.arange(rows), lengths), columns] = values
        parts = (np.arange(base.shape[1]) >= part_ends[:, :, None]).sum(axis=1)  # PADDING_PART past the end
        shift = np.cumsum(extra) - extra  # holes inserted before each slot, counted from the first row
        slot_columns = part_starts[slots.row, ATTACKED_PART] + slots.first + shift - shift[slots.row_first]
        return base, parts, slot_columns, token_counts - end

    def _squeeze(
        self, rows: np.ndarray, row_example: np.ndarray, parts: np.ndarray, sides: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Holes removed and the sides truncated: (the kept ids [T] :data:`ROW_DTYPE`, row after row;
        their type ids [T] :data:`ROW_TYPE_DTYPE` or None; lengths [U] int64). ``rows`` [U, W] int64
        are laid out as example ``row_example`` [U] of ``parts`` [E, W] (each column's template
        part, see :meth:`_layouts`; 5 for padding); ``sides`` [E, 2]: the other side's full length
        and the attacked side's tokens left out of the layout, per example. On the host, where the
        rows are hashed next."""
        assert self.template is not None  # splicing is available
        others, tails = sides[row_example].T
        attacked = (parts == ATTACKED_PART)[row_example] & (rows != self.hole)
        attacked_rank = np.cumsum(attacked, axis=1, dtype=np.int32)
        attacked_full = attacked_rank[:, -1] + tails
        keep = ((parts == PREFIX_PART) | (parts == MIDDLE_PART) | (parts == SUFFIX_PART))[row_example]
        if self.pair:
            other = (parts == OTHER_PART)[row_example]
            kept_other, kept_attacked = longest_first(others, attacked_full, self.budget)
            keep |= other & (np.cumsum(other, axis=1, dtype=np.int32) <= kept_other[:, None])
        else:
            kept_attacked = np.minimum(attacked_full, self.budget)
        keep |= attacked & (attacked_rank <= kept_attacked[:, None])
        kept = rows[keep].astype(ROW_DTYPE)
        types = None
        if self.template.types is not None and len(set(self.template.types)) == 1:
            types = np.full(len(kept), self.template.types[0], dtype=ROW_TYPE_DTYPE)
        elif self.template.types is not None:
            types = np.asarray([*self.template.types, 0], dtype=ROW_TYPE_DTYPE)[parts][row_example][keep]
        return kept, types, keep.sum(1)

    def _token_rows(self, ids: np.ndarray, types: np.ndarray | None, lengths: np.ndarray) -> list[TokenRow]:
        """The rows of ``ids`` [T] (and ``types`` [T] or None) cut into ``lengths`` [U]."""
        ends = np.cumsum(lengths).tolist()
        return [
            TokenRow.of(ids[start:end], types[start:end] if types is not None else None)
            for start, end in zip([0, *ends[:-1]], ends)
        ]

    def probe(self, targets: list[Target], words: list[str], queries: int = 200, seed: int = 0) -> str | None:
        """Splice ``queries`` random substitutions (0 to 3 words each, from ``words``) into ``targets``
        (probe texts, see :data:`PROBE_TEXTS`; their indices must not be those of real targets) and
        compare with ``tokenizer(text)``: None when all agree, else a description of the first
        difference (and this splicer is switched off: ``available`` False, ``reason`` set). The
        outcome is remembered per tokenizer (its full JSON), window and pairing for this process."""
        memo_key = (self._digest, self.max_length, self.pair)
        if memo_key not in _PROBED:
            _PROBED[memo_key] = self._probe(targets, words, queries, seed)
        problem = _PROBED[memo_key]
        if problem is not None:
            self.available, self.reason = False, f"the probe found a spliced query that differs: {problem}"
        return problem

    def _probe(self, targets: list[Target], words: list[str], queries: int, seed: int) -> str | None:
        rng = random.Random(seed)
        targets = [t for t in targets if (t.example.text_pair is not None) == self.pair]
        self.register(targets)
        requests = []
        for _ in range(queries):
            target = rng.choice(targets)
            positions = rng.sample(range(len(target.spans)), k=min(len(target.spans), rng.randint(0, 3)))
            requests.append((target, tuple(sorted((p, rng.choice(words)) for p in positions))))
        rows = self.build([(t.index, s) for t, s in requests])
        expected = tokenised_rows(self.tokenizer, [t.query_with(dict(s)) for t, s in requests], self.max_length)
        problem = None
        for (target, substitutes), row, reference in zip(requests, rows, expected):
            if row is not None and row.key != reference.key:
                problem = self.mismatch(target, dict(substitutes), row)
                break
        for target in targets:
            self.release(target.index)
        self.counts.clear()
        return problem

    def reference(self, target: Target, substitutes: dict[int, str]) -> TokenRow:
        """The row of a query by the text path: rendered, then tokenised whole."""
        return tokenised_rows(self.tokenizer, [target.query_with(substitutes)], self.max_length)[0]

    def mismatch(self, target: Target, substitutes: dict[int, str], row: TokenRow) -> str | None:
        """None when ``row`` equals the text path's row of the query, else what differs."""
        expected = self.reference(target, substitutes)
        if expected.key == row.key:
            return None
        want, got = expected.ids.tolist(), row.ids.tolist()
        first = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        window = slice(max(0, first - 3), first + 4)
        return (
            f"example {target.index}, query {target.query_with(substitutes)!r}: from token {first} the "
            f"tokenizer gives {want[window]} but splicing {got[window]} "
            f"({len(want)} and {len(got)} tokens, type ids {'equal' if want == got else 'not compared'})"
        )


# The probe of every tokenizer before splicing (TokenSplicer.probe): accents, curly quotes, digits,
# hyphens and apostrophes inside words, runs of spaces, non-Latin scripts, pairs, and a text longer
# than most windows.
PROBE_TEXTS: list[tuple[str, str | None]] = [
    ("A  naïve, ‘charming’ film — 3.5 stars from 42 critics; it’s well-made!", None),
    ("Don't see it... the plot's twists (and its 2nd act) are DULL, dull, dull.", None),
    ("Ça ne marche pas: the café scenes in Zürich, São Paulo and Kyōto feel ünnecessary.", None),
    ("Видеть это стоит, 映画 は 良い, and    the ending\tworks\nwell.", None),
    ("It was “great” & I'd watch it again in 2024 #1 film :) " * 40, None),
    ("A man is playing a guitar on stage.", "The man ISN'T playing — he’s singing naïvely at 9pm."),
    ("Two dogs run through the snow. " * 30, "Some animals are outside, running in 3 feet of snow!"),
    ("Résumé: nothing.", "A résumé shows 1,000 jobs... or none?"),
    ("A won\xadder\xadful,\u200b un\ufffdseen film\u2060 (good\x7fbad) \ufeffends\u200b.", None),
]
PROBE_WORDS = ["film", "Movie", "GOOD", "naïve", "café", "don't", "well-made", "2nd", "42", "São", "映画", "x", "é"]
