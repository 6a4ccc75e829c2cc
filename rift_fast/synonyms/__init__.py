"""Synonym sets for attacks and training: see :mod:`rift_fast.synonyms.index`."""

from rift_fast.synonyms.index import (
    EmbeddedSynonymSettings,
    SynonymIndex,
    TableCoverage,
    cached_index,
    embedded_index,
    two_hop_vocab_table,
)
from rift_fast.synonyms.vectors import WordVectors, load_embedded_glove, load_text_vectors

__all__ = [
    "EmbeddedSynonymSettings",
    "SynonymIndex",
    "TableCoverage",
    "WordVectors",
    "cached_index",
    "embedded_index",
    "load_embedded_glove",
    "load_text_vectors",
    "two_hop_vocab_table",
]
