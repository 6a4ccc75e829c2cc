"""BERT-Attack (Li et al. 2020, "BERT-ATTACK: Adversarial Attack Against BERT Using BERT", EMNLP) as
TextAttack 0.3.11 assembles it (``textattack/attack_recipes/bert_attack_li_2020.py``), with the paper's
K=48 candidates (TextAttack 0.3.11: 8, ``textattack_parity``) and sub-word combinations capped as the
authors' code caps them; the masked-LM differences are listed in :mod:`rift_fast.attacks.masked_lm`, those
common to the greedy recipes in :mod:`rift_fast.attacks.recipes.greedy`."""

from __future__ import annotations

from dataclasses import dataclass

from rift_fast.attacks.masked_lm import BERT_ATTACK_CANDIDATES, BertAttackSwap
from rift_fast.attacks.recipes.greedy import (
    GreedyOptions,
    GreedyRecipe,
    SimilaritySetting,
    load_masked_language_model,
)
from rift_fast.attacks.recipes.options import MaskedLanguageModelOptions, SentenceEncoderOptions, TextAttackParityOption
from rift_fast.attacks.text_constraints import TextConstraint
from rift_fast.attacks.transformation import Transformation
from rift_fast.synonyms import SynonymIndex

# BERT-Attack as TextAttack 0.3.11 bert_attack_li_2020.py: MaxWordsPerturbed(max_percent=0.4) ("Word
# percentage allowed to change is set to 0.4", from the authors; their bertattack.py stops past
# int(0.4 * len(words)) changes) and UniversalSentenceEncoder(threshold=0.2, metric="cosine",
# compare_against_original=True, window_size=None): the whole texts.
BERT_ATTACK_MAX_MODIFICATION = 0.4
BERT_ATTACK_SENTENCE_SIMILARITY = 0.2
TEXTATTACK_BERT_ATTACK_CANDIDATES = 8  # TextAttack 0.3.11: WordSwapMaskedLM(method="bert-attack", max_candidates=8)


@dataclass(frozen=True)
class BertAttackOptions(GreedyOptions, TextAttackParityOption, MaskedLanguageModelOptions, SentenceEncoderOptions):
    """BERT-Attack's options: those of its pieces (unset ``max_modification_ratio``: 0.4; unset
    ``sentence_similarity``: 0.2 cosine over the whole texts; unset ``mlm_candidates``: 48, or 8 under
    ``textattack_parity``)."""


class BertAttackRecipe(GreedyRecipe[BertAttackOptions]):
    """BERT-Attack (Li et al. 2020) as TextAttack 0.3.11's ``BERTAttackLi2020``: words ranked by the drop
    of the goal when ``[UNK]`` replaces them, then greedy swaps among the ``mlm_candidates`` (48)
    candidates of :class:`BertAttackSwap` from the masked language model ``mlm``, at most 40% of the words
    changed (:data:`BERT_ATTACK_MAX_MODIFICATION`), sentence-encoder cosine >= 0.2 between the whole
    original and proposed texts (:data:`BERT_ATTACK_SENTENCE_SIMILARITY`; the encoder stands in for the
    Universal Sentence Encoder). ``sentence_similarity``, ``similarity_window`` and
    ``max_modification_ratio`` override the published values. The synonym index is not used. Raises
    :class:`~rift_fast.attacks.masked_lm.MaskedLanguageModelError` naming ``mlm`` when it cannot be loaded."""

    name, label, summary = "bert-attack", "BERT-Attack", "BERT-Attack (Li et al. 2020), masked-LM candidates (--mlm)"
    options_type = BertAttackOptions
    similarity = SimilaritySetting(BERT_ATTACK_SENTENCE_SIMILARITY, None, "cosine", True)

    def ranking(self, options: BertAttackOptions) -> str:
        return "unk"

    def max_modification_ratio(self, options: BertAttackOptions) -> float | None:
        ratio = options.max_modification_ratio
        return BERT_ATTACK_MAX_MODIFICATION if ratio is None else ratio

    def text_constraints(self, options: BertAttackOptions) -> list[TextConstraint]:
        return [self.similarity.constraint(options)]

    def candidates(self, options: BertAttackOptions) -> int:
        """K: ``mlm_candidates``, else the paper's 48, or TextAttack 0.3.11's 8 under ``textattack_parity``."""
        if options.mlm_candidates is not None:
            return options.mlm_candidates
        return TEXTATTACK_BERT_ATTACK_CANDIDATES if options.textattack_parity else BERT_ATTACK_CANDIDATES

    def transformation(self, synonyms: SynonymIndex, options: BertAttackOptions) -> Transformation:
        return BertAttackSwap(load_masked_language_model(options.mlm, options.mlm_batch_size), self.candidates(options))

    def settings_text(self, options: BertAttackOptions) -> str:
        return (
            f"{self.candidates(options)} candidates of {options.mlm}, {self.similarity.describe(options)}, "
            f"{super().settings_text(options)}"
        )
