"""TextFooler (Jin et al. 2020, "Is BERT Really Robust? A Strong Baseline for Natural Language Attack on
Text Classification and Entailment", AAAI) as TextAttack 0.3.11 assembles it
(``textattack/attack_recipes/textfooler_jin_2019.py``): the 50 nearest words of counter-fitted word
vectors with cosine >= 0.5, the same universal part of speech (nouns and verbs swap), sentence similarity
>= 0.840845057 (angular) over 15-word windows against the text before each swap, greedy swaps in order of
deletion importance. The differences common to the greedy recipes are listed in
:mod:`rift_fast.attacks.recipes.greedy`."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.embedding import EmbeddingCosine, EmbeddingNeighbourSwap
from rift_fast.attacks.recipes.greedy import (
    GreedyOptions,
    GreedyRecipe,
    SimilaritySetting,
    load_word_embedding,
    part_of_speech_constraints,
)
from rift_fast.attacks.recipes.options import PartOfSpeechOption, SentenceEncoderOptions, WordEmbeddingOptions
from rift_fast.attacks.sentence_encoder import PUBLISHED_SENTENCE_SIMILARITY, PUBLISHED_SIMILARITY_WINDOW
from rift_fast.attacks.text_constraints import TextConstraint
from rift_fast.attacks.transformation import Transformation
from rift_fast.synonyms import SynonymIndex
from rift_fast.synonyms.named_vectors import DEFAULT_WORD_VECTORS


@dataclass(frozen=True)
class TextFoolerOptions(GreedyOptions, PartOfSpeechOption, SentenceEncoderOptions, WordEmbeddingOptions):
    """TextFooler's options: word embedding neighbours, sentence encoder, tagger, budgets (the fields of
    its pieces; ``sentence_similarity`` and ``similarity_window`` unset: 0.840845057 and 15)."""


class TextFoolerRecipe(GreedyRecipe[TextFoolerOptions]):
    """TextFooler (Jin et al. 2020) as TextAttack 0.3.11: the ``neighbours`` (50) nearest words of
    ``word_vectors`` with cosine >= ``min_cosine`` (0.5), the same universal part of speech (nouns and
    verbs swap), sentence similarity >= ``sentence_similarity`` (0.840845057, angular) over a
    ``similarity_window`` (15)-word window against the text before each swap, greedy swaps in order of
    deletion importance. The synonym index is not used. ``word_vectors``: a name of
    :data:`rift_fast.synonyms.named_vectors.NAMED_VECTORS` or a text file (None: the embedded
    counter-fitted vectors)."""

    name, label, summary = "textfooler", "TextFooler", "TextFooler (Jin et al. 2020), neighbours of --word-vectors"
    options_type = TextFoolerOptions
    similarity = SimilaritySetting(PUBLISHED_SENTENCE_SIMILARITY, PUBLISHED_SIMILARITY_WINDOW, "angular", False)

    def ranking(self, options: TextFoolerOptions) -> str:
        return "delete"

    def word_constraints(self, options: TextFoolerOptions) -> list[Constraint]:
        constraints = super().word_constraints(options)
        if options.min_cosine is not None:
            constraints.append(EmbeddingCosine(load_word_embedding(_vectors_path(options)), options.min_cosine))
        return constraints + part_of_speech_constraints(options)

    def text_constraints(self, options: TextFoolerOptions) -> list[TextConstraint]:
        return [self.similarity.constraint(options)]

    def transformation(self, synonyms: SynonymIndex, options: TextFoolerOptions) -> Transformation:
        return EmbeddingNeighbourSwap(load_word_embedding(_vectors_path(options)), options.neighbours)

    def settings_text(self, options: TextFoolerOptions) -> str:
        cosine = "no cosine bound" if options.min_cosine is None else f"cosine >= {options.min_cosine}"
        return (
            f"{options.neighbours} embedding neighbours, {cosine}, POS tagger {options.pos_tagger}, "
            f"{self.similarity.describe(options)}, {super().settings_text(options)}"
        )


def _vectors_path(options: WordEmbeddingOptions) -> str:
    """``options.word_vectors``, by default the embedded counter-fitted vectors."""
    return options.word_vectors or DEFAULT_WORD_VECTORS
