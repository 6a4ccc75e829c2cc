"""BAE-R (Garg & Ramakrishnan 2020, "BAE: BERT-based Adversarial Examples for Text Classification",
EMNLP) as TextAttack 0.3.11 assembles it (``textattack/attack_recipes/bae_garg_2019.py``); the masked-LM
differences are listed in :mod:`rift_fast.attacks.masked_lm`, those common to the greedy recipes in
:mod:`rift_fast.attacks.recipes.greedy`."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.masked_lm import BAE_CANDIDATES, MaskedWordSwap
from rift_fast.attacks.recipes.greedy import (
    GreedyOptions,
    GreedyRecipe,
    SimilaritySetting,
    load_masked_language_model,
    part_of_speech_constraints,
)
from rift_fast.attacks.recipes.options import MaskedLanguageModelOptions, PartOfSpeechOption, SentenceEncoderOptions
from rift_fast.attacks.text_constraints import TextConstraint
from rift_fast.attacks.transformation import Transformation
from rift_fast.synonyms import SynonymIndex

# BAE-R as TextAttack 0.3.11 bae_garg_2019.py: UniversalSentenceEncoder(threshold=0.936338023,
# metric="cosine", compare_against_original=True, window_size=15, skip_text_shorter_than_window=True);
# 0.936338023 = 1 - (1 - 0.8) / pi, the paper's 0.8 adjusted as the authors' TextFooler-based code does.
BAE_SENTENCE_SIMILARITY = 0.936338023
BAE_SIMILARITY_WINDOW = 15


@dataclass(frozen=True)
class BAEOptions(GreedyOptions, PartOfSpeechOption, MaskedLanguageModelOptions, SentenceEncoderOptions):
    """BAE-R's options: those of its pieces (unset ``sentence_similarity``: 0.936338023 cosine; unset
    ``similarity_window``: 15 words; unset ``mlm_candidates``: 50)."""


class BAERecipe(GreedyRecipe[BAEOptions]):
    """BAE-R (Garg & Ramakrishnan 2020) as TextAttack 0.3.11's ``BAEGarg2019``: words ranked by the drop of
    the goal when they are deleted, then greedy swaps among the ``mlm_candidates`` (50) predictions of
    the masked language model ``mlm`` at the masked word (:class:`MaskedWordSwap`) that keep the word's
    universal part of speech (nouns and verbs swap), with sentence-encoder cosine >= 0.936338023 between
    the 15-word windows around the word in the original and the proposed text (texts shorter than the
    window pass; :data:`BAE_SENTENCE_SIMILARITY`, :data:`BAE_SIMILARITY_WINDOW`; the encoder stands in for
    the Universal Sentence Encoder). Of several swaps that flip the label the one most similar to the
    original wins; else the one that lowers the true label's score most. ``sentence_similarity`` and
    ``similarity_window`` override the published values. The synonym index is not used. Raises
    :class:`~rift_fast.attacks.masked_lm.MaskedLanguageModelError` naming ``mlm`` when it cannot be loaded."""

    name, label, summary = "bae", "BAE-R", "BAE-R (Garg & Ramakrishnan 2020), masked-LM candidates (--mlm)"
    options_type = BAEOptions
    similarity = SimilaritySetting(BAE_SENTENCE_SIMILARITY, BAE_SIMILARITY_WINDOW, "cosine", True)

    def ranking(self, options: BAEOptions) -> str:
        return "delete"

    def word_constraints(self, options: BAEOptions) -> list[Constraint]:
        return super().word_constraints(options) + part_of_speech_constraints(options)

    def text_constraints(self, options: BAEOptions) -> list[TextConstraint]:
        return [self.similarity.constraint(options)]

    def transformation(self, synonyms: SynonymIndex, options: BAEOptions) -> Transformation:
        model = load_masked_language_model(options.mlm, options.mlm_batch_size)
        return MaskedWordSwap(model, options.mlm_candidates or BAE_CANDIDATES)

    def settings_text(self, options: BAEOptions) -> str:
        return (
            f"{options.mlm_candidates or BAE_CANDIDATES} masked predictions of {options.mlm}, POS tagger "
            f"{options.pos_tagger}, {self.similarity.describe(options)}, "
            f"{super().settings_text(options)}"
        )
