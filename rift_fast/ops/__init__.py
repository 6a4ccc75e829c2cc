"""Fused ops of rift_fast, usable from any PyTorch training or attack loop.

Each op has a plain torch ``*_reference`` beside it and picks its backend (CUDA, CuPy, Triton, C++
CPU or the reference) by device and availability; force one with ``backend=`` or the environment
variable ``RIFT_FAST_BACKEND``.

- :func:`gather_neighbours`: token ids [B, L] + neighbour table [V, K] -> substitution ids [B, L, 1 + K].
- :func:`convex_hull_embedding`: convex combination of each slot's full embedding-layer output (ASCC);
  :func:`convex_hull_word_embedding`: the same over word embeddings alone (encoders without a BERT-like
  embedding layer).
- :func:`class_conditional_infonce`: RIFT's mutual-information term, negatives within a class.
- :func:`substitution_scores`: first-order score of every synonym swap, fused with top-k selection.
- :func:`build_perturbation_batch`: apply grouped edits to token rows and de-duplicate the queries.
"""

from rift_fast.ops.build_perturbation_batch import (
    PerturbationBatch,
    build_perturbation_batch,
    build_perturbation_batch_reference,
)
from rift_fast.ops.class_conditional_infonce import class_conditional_infonce, class_conditional_infonce_reference
from rift_fast.ops.convex_hull_embedding import (
    convex_hull_embedding,
    convex_hull_embedding_from_bert,
    convex_hull_embedding_reference,
    convex_hull_word_embedding,
    convex_hull_word_embedding_reference,
)
from rift_fast.ops.dispatch import BACKENDS, BackendUnavailable, OpBackends, choose_backend
from rift_fast.ops.gather_neighbours import gather_neighbours, gather_neighbours_reference
from rift_fast.ops.substitution_scores import SubstitutionScores, substitution_scores, substitution_scores_reference

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "OpBackends",
    "PerturbationBatch",
    "SubstitutionScores",
    "build_perturbation_batch",
    "build_perturbation_batch_reference",
    "choose_backend",
    "class_conditional_infonce",
    "class_conditional_infonce_reference",
    "convex_hull_embedding",
    "convex_hull_embedding_from_bert",
    "convex_hull_embedding_reference",
    "convex_hull_word_embedding",
    "convex_hull_word_embedding_reference",
    "gather_neighbours",
    "gather_neighbours_reference",
    "substitution_scores",
    "substitution_scores_reference",
]
