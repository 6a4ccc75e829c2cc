"""Recipes of the greedy word-importance attacks: TextFooler (Jin et al. 2020) and DeepWordBug (Gao et
al. 2018), assembled as TextAttack 0.3.11 assembles them (``textattack/attack_recipes/
textfooler_jin_2019.py`` and ``deepwordbug_gao_2018.py``), with these differences:

- sentence encoder: any Hugging Face encoder with mean pooling (default: the packaged all-MiniLM-L6-v2)
  instead of the TensorFlow Universal Sentence Encoder; its name is in the settings;
- stop words: rift_fast's default list (scikit-learn's 318 words) instead of TextFooler's own list;
- DeepWordBug ranks words by the paper's Combined Score; ``textattack_parity`` ranks them as TextAttack's
  recipe does (an unknown token in the word's place);
- the remaining differences of the search are listed in :class:`rift_fast.attacks.greedy.GreedyWordSwap`.
"""

from __future__ import annotations

import functools
import os
from abc import abstractmethod

import torch

from rift_fast.attacks.character_edits import CharacterEdits
from rift_fast.attacks.constraints import Constraint
from rift_fast.attacks.embedding import EmbeddingCosine, EmbeddingNeighbourSwap, WordEmbedding
from rift_fast.attacks.goal import UntargetedClassification
from rift_fast.attacks.greedy import GreedyWordSwap
from rift_fast.attacks.part_of_speech import NltkPerceptronTagger, PartOfSpeech
from rift_fast.attacks.recipes import Recipe, RecipeOptions, register_recipe
from rift_fast.attacks.search import SearchMethod
from rift_fast.attacks.sentence_encoder import SentenceEncoder, SentenceSimilarity
from rift_fast.attacks.text_constraints import (
    EditDistanceBudget,
    QueryBudget,
    SearchTimeConstraints,
    TextConstraint,
)
from rift_fast.attacks.transformation import Transformation
from rift_fast.attacks.victim import VictimModel
from rift_fast.synonyms import SynonymIndex

POS_TAGGERS = ("nltk", "none")


@functools.cache
def load_word_embedding(path: str) -> WordEmbedding:
    """The word vectors at ``path``, loaded once per process."""
    return WordEmbedding.from_file(path)


@functools.cache
def load_sentence_encoder(name: str) -> SentenceEncoder:
    """The sentence encoder ``name``, loaded once per process (on this process's GPU when there is one:
    ``LOCAL_RANK`` under torchrun, as the attack command places the victim)."""
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    return SentenceEncoder(name, device=device)


def query_budget(options: RecipeOptions) -> QueryBudget | None:
    """The query budget ``options`` set, or None (errors: :class:`QueryBudget`)."""
    if options.query_budget is None and options.query_budget_per_word is None:
        return None
    return QueryBudget(options.query_budget, options.query_budget_per_word)


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
        return GreedyWordSwap(goal, self.ranking(options), self.text_constraints(options), query_budget(options))


@register_recipe
class TextFoolerRecipe(GreedyRecipe):
    """TextFooler (Jin et al. 2020) as TextAttack 0.3.11: the ``neighbours`` (50) nearest words of
    ``word_vectors`` with cosine >= ``min_cosine`` (0.5), the same universal part of speech (nouns and
    verbs swap), sentence similarity >= ``sentence_similarity`` (0.840845057, angular) over a
    ``similarity_window`` (15)-word window against the text before each swap, greedy swaps in order of
    deletion importance. The synonym index is not used. Raises ValueError without ``word_vectors``."""

    name, label, summary = "textfooler", "TextFooler", "TextFooler (Jin et al. 2020), needs --word-vectors"

    def ranking(self, options: RecipeOptions) -> str:
        return "delete"

    def word_constraints(self, options: RecipeOptions) -> list[Constraint]:
        constraints = super().word_constraints(options)
        if options.min_cosine is not None:
            constraints.append(EmbeddingCosine(load_word_embedding(_vectors_path(options)), options.min_cosine))
        if options.pos_tagger not in POS_TAGGERS:
            raise ValueError(f"--pos-tagger must be one of {POS_TAGGERS}, got {options.pos_tagger!r}")
        if options.pos_tagger == "nltk":
            tagger = NltkPerceptronTagger()
            constraints.append(PartOfSpeech(tagger, tagger.name))
        return constraints

    def text_constraints(self, options: RecipeOptions) -> list[TextConstraint]:
        encoder = load_sentence_encoder(options.sentence_encoder)
        return [SentenceSimilarity(encoder, options.sentence_similarity, options.similarity_window)]

    def transformation(self, synonyms: SynonymIndex, options: RecipeOptions) -> Transformation:
        return EmbeddingNeighbourSwap(load_word_embedding(_vectors_path(options)), options.neighbours)

    def describe(self, options: RecipeOptions) -> str:
        cosine = "no cosine bound" if options.min_cosine is None else f"cosine >= {options.min_cosine}"
        return (
            f"{options.neighbours} embedding neighbours, {cosine}, POS tagger {options.pos_tagger}, "
            f"sentence similarity >= {options.sentence_similarity} over {options.similarity_window} words "
            f"({options.sentence_encoder}), {super().describe(options)}"
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


def _vectors_path(options: RecipeOptions) -> str:
    if options.word_vectors is None:
        raise ValueError(
            "textfooler needs word vectors (--word-vectors PATH: a 'word v1 ... vD' text file such as the "
            "counter-fitted vectors of Mrksic et al. 2016)"
        )
    return options.word_vectors


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
