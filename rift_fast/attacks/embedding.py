"""Word-embedding neighbours for TextFooler-style attacks: a FAISS cosine index over user-supplied word
vectors (e.g. the counter-fitted PARAGRAM-SL999 vectors of Mrksic et al. 2016, which TextFooler and
TextAttack use), the candidate swap it serves, and the embedding-cosine constraint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.text import match_case
from rift_fast.attacks.transformation import Transformation
from rift_fast.core.words import accent_stripped, is_single_word, lookup_form
from rift_fast.synonyms.vectors import WordVectors, load_text_vectors

# TextFooler (Jin et al. 2020) as TextAttack 0.3.11 runs it: WordSwapEmbedding(max_candidates=50) and
# WordEmbeddingDistance(min_cos_sim=0.5) ("the paper claims 0.7, but ... the released code ... 0.5").
PUBLISHED_NEIGHBOURS = 50
PUBLISHED_MIN_COSINE = 0.5


class WordEmbedding:
    """Unit-normalised word vectors with an exact FAISS inner-product index (cosine similarity).

    Words are looked up in lookup form (:func:`rift_fast.core.words.lookup_form`: NFKC, lower case); the
    first of several rows with one lookup form wins. ``source`` names the vectors in run records.
    Raises ValueError for a zero vector (its cosine is undefined), naming the word.
    """

    def __init__(self, vectors: WordVectors, source: str):
        norms = np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
        zero = np.flatnonzero(norms[:, 0] == 0)
        if len(zero):
            raise ValueError(f"word vectors {source}: the vector of {vectors.words[zero[0]]!r} is all zeros")
        self.unit = np.ascontiguousarray(vectors.vectors / norms, dtype=np.float32)
        self.words = vectors.words
        self.source = source
        self.row_of: dict[str, int] = {}
        for row, word in enumerate(vectors.words):
            self.row_of.setdefault(lookup_form(word), row)
        self._index: Any = None  # a faiss.IndexFlatIP, built at the first lookup
        self._nearest: dict[tuple[int, int], tuple[tuple[str, float], ...]] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> WordEmbedding:
        """Vectors from a ``word v1 ... vD`` text file (errors: :func:`load_text_vectors`)."""
        return cls(load_text_vectors(path), source=f"vectors:{Path(path).name}")

    @classmethod
    def from_name_or_file(cls, name_or_path: str) -> WordEmbedding:
        """Vectors by name (:data:`rift_fast.synonyms.named_vectors.NAMED_VECTORS`) or from a text file
        (errors: :func:`rift_fast.synonyms.named_vectors.load_word_vectors`)."""
        from rift_fast.synonyms.named_vectors import NAMED_VECTORS, load_word_vectors

        source = name_or_path if name_or_path in NAMED_VECTORS else f"vectors:{Path(name_or_path).name}"
        return cls(load_word_vectors(name_or_path), source=source)

    def cosine(self, first: str, second: str) -> float | None:
        """Cosine similarity of two words, or None when either has no vector."""
        a, b = self.row_of.get(lookup_form(first)), self.row_of.get(lookup_form(second))
        if a is None or b is None:
            return None
        return float(self.unit[a] @ self.unit[b])

    def nearest(self, word: str, k: int) -> tuple[tuple[str, float], ...]:
        """Up to ``k`` other words nearest to ``word`` by cosine, most similar first (ties by row), with
        their cosines; () for a word without a vector."""
        row = self.row_of.get(lookup_form(word))
        if row is None:
            return ()
        if (row, k) not in self._nearest:
            self._nearest[row, k] = self._search(row, k)
        return self._nearest[row, k]

    def _search(self, row: int, k: int) -> tuple[tuple[str, float], ...]:
        if self._index is None:
            import faiss

            self._index = faiss.IndexFlatIP(self.unit.shape[1])
            self._index.add(self.unit)
        scores, rows = self._index.search(self.unit[row : row + 1], min(k + 1, len(self.words)))
        pairs = sorted((-float(s), int(r)) for s, r in zip(scores[0], rows[0]) if r >= 0 and r != row)
        return tuple((self.words[r], -s) for s, r in pairs[:k])


class EmbeddingNeighbourSwap(Transformation):
    """Swap a word for one of its ``k`` nearest neighbours in a :class:`WordEmbedding` (TextAttack's
    ``WordSwapEmbedding``; TextFooler: k = 50), keeping the word's case; neighbours that are not single
    words, or that are the word itself in another case or without accents, are left out."""

    def __init__(self, embedding: WordEmbedding, k: int = PUBLISHED_NEIGHBOURS):
        if k < 1:
            raise ValueError(f"the number of embedding neighbours must be at least 1, got {k}")
        self.embedding = embedding
        self.k = k

    def candidates(self, word: str) -> list[str]:
        own = accent_stripped(word)
        neighbours = (match_case(word, n) for n, _ in self.embedding.nearest(word, self.k))
        return list(dict.fromkeys(n for n in neighbours if is_single_word(n) and accent_stripped(n) != own))

    def describe(self) -> dict:
        return {"transformation": "embedding_neighbour_swap", "vectors": self.embedding.source, "k": self.k}


class EmbeddingCosine(Constraint):
    """A replacement's word vector has cosine similarity at least ``min_cosine`` with the replaced
    word's (TextAttack's ``WordEmbeddingDistance(min_cos_sim)``; TextFooler 0.5). A word or replacement
    without a vector is rejected. Raises ValueError unless -1 <= min_cosine <= 1."""

    name = "embedding_cosine"

    def __init__(self, embedding: WordEmbedding, min_cosine: float = PUBLISHED_MIN_COSINE):
        if not -1 <= min_cosine <= 1:
            raise ValueError(f"min_cosine must be in [-1, 1], got {min_cosine}")
        self.embedding = embedding
        self.min_cosine = min_cosine

    def describe(self) -> dict:
        return {"min_cosine": self.min_cosine, "vectors": self.embedding.source}

    def keep(self, words: tuple[str, ...], position: int, candidates: list[str]) -> list[bool]:
        cosines = [self.embedding.cosine(words[position], c) for c in candidates]
        return [c is not None and c >= self.min_cosine for c in cosines]
