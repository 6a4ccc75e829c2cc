"""What the greedy word-importance recipes (TextFooler, DeepWordBug, BERT-Attack, BAE) share: the
:class:`GreedyRecipe` base searched by :class:`~rift_fast.attacks.search.GreedyWordSwap`, their options
base :class:`GreedyOptions` (the query budget that only their search enforces), the sentence-similarity
setting of a recipe, the part-of-speech constraint and the loaders of word vectors, sentence encoders and
masked language models (each loaded once per process).

They are assembled as TextAttack 0.3.11 assembles them, with these differences common to all:

- sentence encoder: any Hugging Face encoder with mean pooling (default: the packaged all-MiniLM-L6-v2)
  instead of the TensorFlow Universal Sentence Encoder; its name is in the settings;
- stop words: rift_fast's default list (scikit-learn's 318 words) instead of TextFooler's own list;
- the remaining differences of the search are listed in :class:`rift_fast.attacks.search.GreedyWordSwap`.
"""

from __future__ import annotations

import functools
import os
from abc import abstractmethod
from dataclasses import dataclass
from typing import TypeVar

import torch

from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.embedding import WordEmbedding
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.masked_lm import MaskedLanguageModel
from rift_fast.attacks.part_of_speech import NltkPerceptronTagger, PartOfSpeech
from rift_fast.attacks.recipes.base import RECIPES, Recipe, RecipeOptions
from rift_fast.attacks.recipes.options import (
    POS_TAGGERS,
    ModificationBudgetOption,
    PartOfSpeechOption,
    QueryBudgetOptions,
    SentenceEncoderOptions,
)
from rift_fast.attacks.search import GreedyWordSwap, SearchMethod
from rift_fast.attacks.sentence_encoder import SentenceEncoder, SentenceSimilarity
from rift_fast.attacks.text_constraints import QueryBudget, SearchTimeConstraints, TextConstraint
from rift_fast.attacks.transformation import PendingChoices
from rift_fast.attacks.victim import VictimModel
from rift_fast.synonyms import SynonymIndex


@dataclass(frozen=True)
class GreedyOptions(QueryBudgetOptions, ModificationBudgetOption):
    """The options every greedy recipe reads: the modification budget and the query budget."""


GreedyOptionsType = TypeVar("GreedyOptionsType", bound=GreedyOptions)


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


def query_budget(options: QueryBudgetOptions) -> QueryBudget | None:
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

    def resolved(self, options: SentenceEncoderOptions) -> tuple[float, int | None]:
        """(threshold, window) after ``options``' overrides."""
        threshold = self.threshold if options.sentence_similarity is None else options.sentence_similarity
        return threshold, self.window if options.similarity_window is None else options.similarity_window

    def constraint(self, options: SentenceEncoderOptions) -> SentenceSimilarity:
        """The constraint, with ``options.sentence_encoder`` (texts shorter than a window pass)."""
        threshold, window = self.resolved(options)
        encoder = load_sentence_encoder(options.sentence_encoder)
        return SentenceSimilarity(encoder, threshold, window, self.metric, self.against_original)

    def describe(self, options: SentenceEncoderOptions) -> str:
        """The constraint in words, for results tables."""
        threshold, window = self.resolved(options)
        span = "the whole texts" if window is None else f"{window}-word windows"
        reference = "the original" if self.against_original else "the text before each swap"
        return (
            f"sentence similarity ({self.metric}) >= {threshold} over {span} against {reference} "
            f"({options.sentence_encoder})"
        )


class GreedyRecipe(Recipe[GreedyOptionsType]):
    """A recipe searched by :class:`GreedyWordSwap`; subclasses give the ranking and the constraints."""

    @abstractmethod
    def ranking(self, options: GreedyOptionsType) -> str:
        """The word ranking of :data:`rift_fast.attacks.search.greedy_word_importance.RANKINGS`."""

    @abstractmethod
    def text_constraints(self, options: GreedyOptionsType) -> list[TextConstraint]:
        """The constraints the search checks on each proposed text."""

    def constraints(self, options: GreedyOptionsType) -> SearchTimeConstraints:
        return SearchTimeConstraints(
            self.word_constraints(options), self.text_constraints(options), query_budget(options)
        )

    def search(
        self,
        goal: UntargetedClassification,
        victim: VictimModel,
        synonyms: SynonymIndex,
        options: GreedyOptionsType,
    ) -> SearchMethod:
        transformation = self.transformation(synonyms, options)
        pending = (
            PendingChoices(transformation, self.constraints(options)) if transformation.reads_current_text else None
        )
        return GreedyWordSwap(
            goal, self.ranking(options), self.text_constraints(options), query_budget(options), pending=pending
        )


def part_of_speech_constraints(options: PartOfSpeechOption) -> list[Constraint]:
    """The part-of-speech constraint of ``options.pos_tagger`` (none for ``none``).

    Raises:
        ValueError: for a tagger not in :data:`POS_TAGGERS`.
    """
    if options.pos_tagger not in POS_TAGGERS:
        raise ValueError(f"--pos-tagger must be one of {POS_TAGGERS}, got {options.pos_tagger!r}")
    if options.pos_tagger == "none":
        return []
    tagger = NltkPerceptronTagger()
    return [PartOfSpeech(tagger, tagger.name)]


def refuse_unenforced_options(recipe: str, options: RecipeOptions) -> None:
    """Raises ValueError when ``options`` set a query budget that recipe ``recipe``'s search does not read
    (only the greedy recipes enforce one so far)."""
    budget = options.value("query_budget") is not None or options.value("query_budget_per_word") is not None
    if budget and not isinstance(RECIPES.get(recipe), GreedyRecipe):
        greedy = sorted(name for name, r in RECIPES.items() if isinstance(r, GreedyRecipe))
        raise ValueError(
            f"attack {recipe!r} does not enforce a query budget; a budget (set by --query-budget, "
            f"--query-budget-per-word or the protocol) works with {', '.join(greedy)}"
        )
