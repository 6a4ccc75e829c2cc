"""Recipes of the greedy word-importance attacks: TextFooler (Jin et al. 2020), DeepWordBug (Gao et
al. 2018), BERT-Attack (Li et al. 2020) and BAE-R (Garg & Ramakrishnan 2020), assembled as TextAttack
0.3.11 assembles them (``textattack/attack_recipes/textfooler_jin_2019.py``, ``deepwordbug_gao_2018.py``,
``bert_attack_li_2020.py`` and ``bae_garg_2019.py``), with these differences:

- sentence encoder: any Hugging Face encoder with mean pooling (default: the packaged all-MiniLM-L6-v2)
  instead of the TensorFlow Universal Sentence Encoder; its name is in the settings;
- stop words: rift_fast's default list (scikit-learn's 318 words) instead of TextFooler's own list;
- DeepWordBug ranks words by the paper's Combined Score; ``textattack_parity`` ranks them as TextAttack's
  recipe does (an unknown token in the word's place);
- BERT-Attack takes the paper's K=48 candidates (TextAttack 0.3.11: 8) and caps sub-word combinations as
  the authors' code does; the masked-LM differences are listed in :mod:`rift_fast.attacks.masked_lm`;
- the remaining differences of the search are listed in :class:`rift_fast.attacks.greedy.GreedyWordSwap`.
"""

from __future__ import annotations

import functools
import os
from abc import abstractmethod
from dataclasses import dataclass

import torch

from rift_fast.attacks.character_edits import CharacterEdits
from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.embedding import EmbeddingCosine, EmbeddingNeighbourSwap, WordEmbedding
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.greedy import GreedyWordSwap
from rift_fast.attacks.masked_lm import (
    BAE_CANDIDATES,
    BERT_ATTACK_CANDIDATES,
    BertAttackSwap,
    MaskedLanguageModel,
    MaskedWordSwap,
)
from rift_fast.attacks.part_of_speech import NltkPerceptronTagger, PartOfSpeech
from rift_fast.attacks.recipes import Recipe, RecipeOptions, register_recipe
from rift_fast.attacks.search import SearchMethod
from rift_fast.attacks.sentence_encoder import (
    PUBLISHED_SENTENCE_SIMILARITY,
    PUBLISHED_SIMILARITY_WINDOW,
    SentenceEncoder,
    SentenceSimilarity,
)
from rift_fast.attacks.text_constraints import (
    EditDistanceBudget,
    QueryBudget,
    SearchTimeConstraints,
    TextConstraint,
)
from rift_fast.attacks.transformation import PendingChoices, Transformation
from rift_fast.attacks.victim import VictimModel
from rift_fast.synonyms import SynonymIndex
from rift_fast.synonyms.named_vectors import DEFAULT_WORD_VECTORS

POS_TAGGERS = ("nltk", "none")
# BERT-Attack as TextAttack 0.3.11 bert_attack_li_2020.py: MaxWordsPerturbed(max_percent=0.4) ("Word
# percentage allowed to change is set to 0.4", from the authors; their bertattack.py stops past
# int(0.4 * len(words)) changes) and UniversalSentenceEncoder(threshold=0.2, metric="cosine",
# compare_against_original=True, window_size=None): the whole texts.
BERT_ATTACK_MAX_MODIFICATION = 0.4
BERT_ATTACK_SENTENCE_SIMILARITY = 0.2
TEXTATTACK_BERT_ATTACK_CANDIDATES = 8  # TextAttack 0.3.11: WordSwapMaskedLM(method="bert-attack", max_candidates=8)
# BAE-R as TextAttack 0.3.11 bae_garg_2019.py: UniversalSentenceEncoder(threshold=0.936338023,
# metric="cosine", compare_against_original=True, window_size=15, skip_text_shorter_than_window=True);
# 0.936338023 = 1 - (1 - 0.8) / pi, the paper's 0.8 adjusted as the authors' TextFooler-based code does.
BAE_SENTENCE_SIMILARITY = 0.936338023
BAE_SIMILARITY_WINDOW = 15


def _device() -> str:
    """This process's GPU when there is one (``LOCAL_RANK`` under torchrun, as the attack command places
    the victim), else the CPU."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"


@functools.cache
def load_word_embedding(name_or_path: str) -> WordEmbedding:
    """The word vectors named ``name_or_path`` or read from that file, loaded once per process."""
    return WordEmbedding.from_name_or_file(name_or_path)


@functools.cache
def load_sentence_encoder(name: str) -> SentenceEncoder:
    """The sentence encoder ``name``, loaded once per process (:func:`_device`)."""
    return SentenceEncoder(name, device=_device())


@functools.cache
def load_masked_language_model(name: str, batch_size: int) -> MaskedLanguageModel:
    """The masked language model ``name``, loaded once per process (:func:`_device`)."""
    return MaskedLanguageModel(name, device=_device(), batch_size=batch_size)


def query_budget(options: RecipeOptions) -> QueryBudget | None:
    """The query budget ``options`` set, or None (errors: :class:`QueryBudget`)."""
    if options.query_budget is None and options.query_budget_per_word is None:
        return None
    return QueryBudget(options.query_budget, options.query_budget_per_word)


@dataclass(frozen=True)
class SimilaritySetting:
    """A recipe's published sentence-similarity constraint: ``threshold``, ``window`` (words; None: the whole
    texts), ``metric`` and whether the original text is the reference (else the text before each swap);
    ``options.sentence_similarity`` and ``options.similarity_window`` override the first two."""

    threshold: float
    window: int | None
    metric: str
    against_original: bool

    def resolved(self, options: RecipeOptions) -> tuple[float, int | None]:
        """(threshold, window) after ``options``' overrides."""
        threshold = self.threshold if options.sentence_similarity is None else options.sentence_similarity
        return threshold, self.window if options.similarity_window is None else options.similarity_window

    def constraint(self, options: RecipeOptions) -> SentenceSimilarity:
        """The constraint, with ``options.sentence_encoder`` (texts shorter than a window pass)."""
        threshold, window = self.resolved(options)
        encoder = load_sentence_encoder(options.sentence_encoder)
        return SentenceSimilarity(encoder, threshold, window, self.metric, self.against_original)

    def describe(self, options: RecipeOptions) -> str:
        threshold, window = self.resolved(options)
        span = "the whole texts" if window is None else f"{window}-word windows"
        reference = "the original" if self.against_original else "the text before each swap"
        return (
            f"sentence similarity ({self.metric}) >= {threshold} over {span} against {reference} "
            f"({options.sentence_encoder})"
        )


class GreedyRecipe(Recipe):
    """A recipe searched by :class:`GreedyWordSwap`; subclasses give the ranking and the constraints."""

    @abstractmethod
    def ranking(self, options: RecipeOptions) -> str:
        """The word ranking of :data:`rift_fast.attacks.greedy.RANKINGS`."""

    @abstractmethod
    def text_constraints(self, options: RecipeOptions) -> list[TextConstraint]:
        """The constraints the search checks on each proposed text."""

    def constraints(self, options: RecipeOptions) -> SearchTimeConstraints:
        return SearchTimeConstraints(
            self.word_constraints(options), self.text_constraints(options), query_budget(options)
        )

    def search(
        self, goal: UntargetedClassification, victim: VictimModel, synonyms: SynonymIndex, options: RecipeOptions
    ) -> SearchMethod:
        transformation = self.transformation(synonyms, options)
        pending = (
            PendingChoices(transformation, self.constraints(options)) if transformation.reads_current_text else None
        )
        return GreedyWordSwap(
            goal, self.ranking(options), self.text_constraints(options), query_budget(options), pending=pending
        )


@register_recipe
class TextFoolerRecipe(GreedyRecipe):
    """TextFooler (Jin et al. 2020) as TextAttack 0.3.11: the ``neighbours`` (50) nearest words of
    ``word_vectors`` with cosine >= ``min_cosine`` (0.5), the same universal part of speech (nouns and
    verbs swap), sentence similarity >= ``sentence_similarity`` (0.840845057, angular) over a
    ``similarity_window`` (15)-word window against the text before each swap, greedy swaps in order of
    deletion importance. The synonym index is not used. ``word_vectors``: a name of
    :data:`rift_fast.synonyms.named_vectors.NAMED_VECTORS` or a text file (None: the embedded
    counter-fitted vectors)."""

    name, label, summary = "textfooler", "TextFooler", "TextFooler (Jin et al. 2020), neighbours of --word-vectors"
    reads_part_of_speech = reads_word_vectors = True

    def ranking(self, options: RecipeOptions) -> str:
        return "delete"

    def word_constraints(self, options: RecipeOptions) -> list[Constraint]:
        constraints = super().word_constraints(options)
        if options.min_cosine is not None:
            constraints.append(EmbeddingCosine(load_word_embedding(_vectors_path(options)), options.min_cosine))
        return constraints + _part_of_speech(options)

    similarity = SimilaritySetting(PUBLISHED_SENTENCE_SIMILARITY, PUBLISHED_SIMILARITY_WINDOW, "angular", False)

    def text_constraints(self, options: RecipeOptions) -> list[TextConstraint]:
        return [self.similarity.constraint(options)]

    def transformation(self, synonyms: SynonymIndex, options: RecipeOptions) -> Transformation:
        return EmbeddingNeighbourSwap(load_word_embedding(_vectors_path(options)), options.neighbours)

    def describe(self, options: RecipeOptions) -> str:
        cosine = "no cosine bound" if options.min_cosine is None else f"cosine >= {options.min_cosine}"
        return (
            f"{options.neighbours} embedding neighbours, {cosine}, POS tagger {options.pos_tagger}, "
            f"{self.similarity.describe(options)}, {super().describe(options)}"
        )


@register_recipe
class DeepWordBugRecipe(GreedyRecipe):
    """DeepWordBug (Gao et al. 2018): one random swap, substitution, deletion and insertion of a character
    per word, or ``character_edit_draws`` random edits (seeded with ``seed``); at most ``max_edit_distance``
    (30) Levenshtein edits in all; greedy edits in order of the Combined Score, or with
    ``textattack_parity`` of TextAttack's unknown-token importance (``GreedyWordSwapWIR``'s default, which
    its recipe keeps). The synonym index is not used."""

    name, label, summary = "deepwordbug", "DeepWordBug", "DeepWordBug character edits (Gao et al. 2018)"

    def ranking(self, options: RecipeOptions) -> str:
        return "unk" if options.textattack_parity else "combined"

    def text_constraints(self, options: RecipeOptions) -> list[TextConstraint]:
        return [EditDistanceBudget(options.max_edit_distance)]

    def transformation(self, synonyms: SynonymIndex, options: RecipeOptions) -> Transformation:
        return CharacterEdits(seed=options.seed, draws=options.character_edit_draws)

    def describe(self, options: RecipeOptions) -> str:
        return (
            f"{self.ranking(options)} word ranking, at most {options.max_edit_distance} character edits, "
            f"{super().describe(options)}"
        )


@register_recipe
class BertAttackRecipe(GreedyRecipe):
    """BERT-Attack (Li et al. 2020) as TextAttack 0.3.11's ``BERTAttackLi2020``: words ranked by the drop
    of the goal when ``[UNK]`` replaces them, then greedy swaps among the ``mlm_candidates`` (48)
    candidates of :class:`BertAttackSwap` from the masked language model ``mlm``, at most 40% of the words
    changed (:data:`BERT_ATTACK_MAX_MODIFICATION`), sentence-encoder cosine >= 0.2 between the whole
    original and proposed texts (:data:`BERT_ATTACK_SENTENCE_SIMILARITY`; the encoder stands in for the
    Universal Sentence Encoder). ``sentence_similarity``, ``similarity_window`` and
    ``max_modification_ratio`` override the published values. The synonym index is not used. Raises
    :class:`~rift_fast.attacks.masked_lm.MaskedLanguageModelError` naming ``mlm`` when it cannot be loaded."""

    name, label, summary = "bert-attack", "BERT-Attack", "BERT-Attack (Li et al. 2020), masked-LM candidates (--mlm)"

    def ranking(self, options: RecipeOptions) -> str:
        return "unk"

    def max_modification_ratio(self, options: RecipeOptions) -> float | None:
        ratio = options.max_modification_ratio
        return BERT_ATTACK_MAX_MODIFICATION if ratio is None else ratio

    similarity = SimilaritySetting(BERT_ATTACK_SENTENCE_SIMILARITY, None, "cosine", True)

    def text_constraints(self, options: RecipeOptions) -> list[TextConstraint]:
        return [self.similarity.constraint(options)]

    def candidates(self, options: RecipeOptions) -> int:
        """K: ``mlm_candidates``, else the paper's 48, or TextAttack 0.3.11's 8 under ``textattack_parity``."""
        if options.mlm_candidates is not None:
            return options.mlm_candidates
        return TEXTATTACK_BERT_ATTACK_CANDIDATES if options.textattack_parity else BERT_ATTACK_CANDIDATES

    def transformation(self, synonyms: SynonymIndex, options: RecipeOptions) -> Transformation:
        return BertAttackSwap(load_masked_language_model(options.mlm, options.mlm_batch_size), self.candidates(options))

    def describe(self, options: RecipeOptions) -> str:
        return (
            f"{self.candidates(options)} candidates of {options.mlm}, {self.similarity.describe(options)}, "
            f"{super().describe(options)}"
        )


@register_recipe
class BAERecipe(GreedyRecipe):
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
    reads_part_of_speech = True

    def ranking(self, options: RecipeOptions) -> str:
        return "delete"

    def word_constraints(self, options: RecipeOptions) -> list[Constraint]:
        return super().word_constraints(options) + _part_of_speech(options)

    similarity = SimilaritySetting(BAE_SENTENCE_SIMILARITY, BAE_SIMILARITY_WINDOW, "cosine", True)

    def text_constraints(self, options: RecipeOptions) -> list[TextConstraint]:
        return [self.similarity.constraint(options)]

    def transformation(self, synonyms: SynonymIndex, options: RecipeOptions) -> Transformation:
        model = load_masked_language_model(options.mlm, options.mlm_batch_size)
        return MaskedWordSwap(model, options.mlm_candidates or BAE_CANDIDATES)

    def describe(self, options: RecipeOptions) -> str:
        return (
            f"{options.mlm_candidates or BAE_CANDIDATES} masked predictions of {options.mlm}, POS tagger "
            f"{options.pos_tagger}, {self.similarity.describe(options)}, "
            f"{super().describe(options)}"
        )


def _part_of_speech(options: RecipeOptions) -> list[Constraint]:
    """The part-of-speech constraint of ``options.pos_tagger`` (none for ``none``)."""
    if options.pos_tagger not in POS_TAGGERS:
        raise ValueError(f"--pos-tagger must be one of {POS_TAGGERS}, got {options.pos_tagger!r}")
    if options.pos_tagger == "none":
        return []
    tagger = NltkPerceptronTagger()
    return [PartOfSpeech(tagger, tagger.name)]


def _vectors_path(options: RecipeOptions) -> str:
    """``options.word_vectors``, by default the embedded counter-fitted vectors."""
    return options.word_vectors or DEFAULT_WORD_VECTORS


def refuse_unenforced_options(recipe: str, options: RecipeOptions) -> None:
    """Raises ValueError when ``options`` set a query budget that recipe ``recipe``'s search does not read
    (only the greedy recipes enforce one so far)."""
    from rift_fast.attacks.recipes import RECIPES

    budget = options.query_budget is not None or options.query_budget_per_word is not None
    if budget and not isinstance(RECIPES.get(recipe), GreedyRecipe):
        greedy = sorted(name for name, r in RECIPES.items() if isinstance(r, GreedyRecipe))
        raise ValueError(
            f"attack {recipe!r} does not enforce a query budget; a budget (set by --query-budget, "
            f"--query-budget-per-word or the protocol) works with {', '.join(greedy)}"
        )
