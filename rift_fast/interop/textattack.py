"""TextAttack on rift_fast's models and synonym sets: same model, examples and synonym choices,
TextAttack's own search engine.

TextAttack is not part of rift_fast's install (textattack 0.3.11 needs flair, which pins
``transformers<5``); it lives in its own environment, made by ``bash benchmarks/setup_textattack_env.sh``
(``.venv-textattack/``). Importing this module without TextAttack raises an ImportError that says so.

What is here:

- :class:`RiftModelWrapper`: a TextAttack ``ModelWrapper`` around a Hugging Face sequence classifier
  and its tokenizer, answering through :class:`rift_fast.attacks.VictimModel` (length-sorted batches,
  dynamic padding, truncation to the model's length, the same probabilities as rift_fast's attacks).
- :class:`SynonymWordSwap`: a TextAttack ``WordSwap`` over a :class:`rift_fast.synonyms.SynonymIndex`
  that yields exactly the substitution choices of :func:`rift_fast.attacks.build_target` (lower-cased
  look-up, the original word excluded, the case of the original matched with ``match_case``, duplicates
  dropped).
- :func:`build_pwws` and :func:`build_genetic`: TextAttack's PWWS (Ren et al. 2019) and Alzantot GA
  recipes with that transformation and rift_fast's constraints: stop words = scikit-learn's
  ``ENGLISH_STOP_WORDS`` (compared lower-cased, as rift_fast does), ``RepeatModification`` (both recipes
  have it), the hypothesis only for sentence pairs; no language-model filter, no word-embedding-distance
  filter (the neighbour sets already are within distance 0.5) and no maximum-modification budget (the
  published setting). The GA gets the same population and number of generations as rift_fast's.

TextAttack's search methods are kept as they are. Their semantics differ from rift_fast's searches in
these ways (so equal settings need not give equal robust accuracy):

PWWS (``GreedyWordSwapWIR("weighted-saliency")``)
  * Word order: softmax(saliency) * max_s (1 - p_y(x with swap s)); rift_fast (Ren et al.) uses
    softmax(saliency) * (p_y(x) - min_s p_y(x with swap s)). The two differ by softmax(saliency) * (1 - p_y(x)),
    which is not constant across words, so the orders can differ.
  * Substitution: TextAttack re-scores every synonym of the next word on the CURRENT (already modified)
    text and keeps the best one only if it raises the score; rift_fast applies each word's best synonym
    found on the original text, as Ren et al. do, without re-scoring (one query per step).
  * Ties in the word order follow a Python set's order in TextAttack, position order in rift_fast.

GA (``AlzantotGeneticAlgorithm``)
  * Parent selection: TextAttack draws parents with probability exp(-score / 0.3) normalised, where
    score = 1 - p_y: a softmax that favours the members with the LOWER attack score (higher p_y);
    rift_fast draws in proportion to 1 - p_y (Alzantot et al. / Jia et al.).
  * Mutation: TextAttack picks the word with probability proportional to its number of candidates, keeps
    the best swap only if it raises the score, else tries another word; a word once changed is never
    changed again (RepeatModification, and its weight is set to 0). rift_fast picks uniformly among the
    attackable words, tries every choice of that word including the original and the other synonyms
    (so a changed word may change again or revert) and keeps the best.
  * Termination: both check for success at the start of each generation, but TextAttack returns the
    elite of the last population without looking at the children of the last generation; rift_fast
    checks the last population too.
  * Crossover children are queried once each in TextAttack (rift_fast queries only their mutations).

Both engines
  * Words: TextAttack's ``AttackedText`` splits words on whitespace and keeps inner hyphens, digits and
    underscores (``well-made`` is one word, with no synonyms); rift_fast's words are runs of letters with
    inner apostrophes (``well`` and ``made``). So rift_fast may see a few more attackable words.
  * Goal: TextAttack's ``UntargetedClassification`` scores 1 - p_y; for sentence pairs rift_fast uses
    the margin p_y - max_{c != y} p_c instead (the success test, a changed argmax, is the same).
  * Query counts differ: TextAttack's ``num_queries`` counts every text its search asks about, answers
    from its cache included; rift_fast counts the distinct texts scored per example (the clean one
    included). The rows the model actually scored are the comparable measure of work.
  * Modification budget: both allow ceil(ratio x words) changed words, but rift_fast takes the product in
    decimal and TextAttack in floating point, so where ratio x words is a whole number that floating point
    overshoots (0.3 x 10), TextAttack allows one word more.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

try:
    import textattack  # noqa: F401  (the top-level package, not this module: absolute import)
    from textattack import Attack
    from textattack.constraints.overlap import LevenshteinEditDistance, MaxWordsPerturbed
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.goal_functions import UntargetedClassification
    from textattack.models.wrappers import ModelWrapper
    from textattack.search_methods import AlzantotGeneticAlgorithm, GreedyWordSwapWIR
    from textattack.transformations import WordSwap
except ImportError as error:  # pragma: no cover - exercised only without TextAttack
    raise ImportError(
        "rift_fast.interop.textattack needs TextAttack, which is kept out of rift_fast's own install "
        "(textattack 0.3.11 pins transformers<5 through flair). Create its environment with "
        "`bash benchmarks/setup_textattack_env.sh` and run with `.venv-textattack/bin/python`. "
        f"(import failed: {error})"
    ) from error

from rift_fast.attacks.constraints import Constraints, MaxModificationRatio, StopWords
from rift_fast.attacks.search import check_ga_settings
from rift_fast.attacks.text_constraints import EditDistanceBudget
from rift_fast.attacks.transformation import substitution_candidates
from rift_fast.attacks.victim import VictimModel
from rift_fast.data import Example
from rift_fast.synonyms import SynonymIndex

PAIR_COLUMNS = ["premise", "hypothesis"]

__all__ = [
    "PAIR_COLUMNS",
    "CaseInsensitiveStopwordModification",
    "RiftModelWrapper",
    "SynonymWordSwap",
    "build_genetic",
    "build_pwws",
    "rift_constraints",
    "textattack_input",
]


class RiftModelWrapper(ModelWrapper):
    """TextAttack ``ModelWrapper`` of a Hugging Face classifier, answered by rift_fast's VictimModel.

    Each call tokenises only the given texts, sorted by length, in batches of ``batch_size`` padded to
    the longest of the batch (TextAttack's stock ``HuggingFaceModelWrapper`` pads every query to
    ``max_length``, 512 for BERT-like tokenizers). Returns [N, C] float64 probabilities. TextAttack's goal
    function still cuts its queries into chunks of its ``model_batch_size`` before calling the wrapper;
    :func:`build_pwws` / :func:`build_genetic` set that to ``batch_size`` too.
    """

    def __init__(self, model, tokenizer, batch_size: int = 64, max_length: int | None = None):
        self.victim = VictimModel(model, tokenizer, max_length=max_length, batch_size=batch_size)
        self.model = self.victim.model

    @property
    def tokenizer(self):
        return self.victim.tokenizer

    @property
    def batch_size(self) -> int:
        return self.victim.batch_size

    @property
    def forward_seconds(self) -> float:
        """Seconds spent inside the model's forward pass so far."""
        return self.victim.forward_seconds

    def __call__(self, text_input_list):
        queries = []
        for item in text_input_list:
            if isinstance(item, str):
                queries.append((item, None))
            elif len(item) == 1:
                queries.append((item[0], None))
            elif len(item) == 2:
                queries.append((item[0], item[1]))
            else:
                raise ValueError(f"expected a text or a (text, text_pair) tuple, got {len(item)} columns")
        return self.victim.probabilities(queries)

    def _tokenize(self, inputs):
        encoded = self.tokenizer(list(inputs), truncation=True, max_length=self.victim.max_length)["input_ids"]
        return [self.tokenizer.convert_ids_to_tokens(ids) for ids in encoded]


class SynonymWordSwap(WordSwap):
    """Swaps a word for one of its synonyms in a :class:`SynonymIndex`, as rift_fast's transformation does:
    the lower-cased word is looked up, the word itself is left out, each synonym takes the case of the
    word (UPPER, Title or as given) and duplicates are dropped, in the index's order."""

    def __init__(self, synonyms: SynonymIndex):
        super().__init__()
        self.synonyms = synonyms
        self.synonym_source = synonyms.source  # an attribute: TextAttack's repr formats from __dict__

    def _get_replacement_words(self, word: str) -> list[str]:
        return substitution_candidates(word, self.synonyms)

    def extra_repr_keys(self):
        return ["synonym_source"]


class CaseInsensitiveStopwordModification(StopwordModification):
    """TextAttack's stop-word constraint compared on the lower-cased word (rift_fast skips ``The`` as it
    skips ``the``; TextAttack's own constraint compares the word as written)."""

    def __init__(self, stopwords: Iterable[str]):
        super().__init__(stopwords={w.lower() for w in stopwords})

    def _get_modifiable_indices(self, current_text):
        return {i for i, word in enumerate(current_text.words) if word.lower() not in self.stopwords}


# rift_fast's constraint classes in TextAttack form (one line per constraint class that has one).
TEXTATTACK_CONSTRAINTS = {
    StopWords: lambda constraint: CaseInsensitiveStopwordModification(constraint.words),
    MaxModificationRatio: lambda constraint: MaxWordsPerturbed(max_percent=constraint.ratio),
    EditDistanceBudget: lambda constraint: LevenshteinEditDistance(constraint.max_distance),
}


def rift_constraints(constraints: Constraints | None = None, pair: bool = False) -> list:
    """``constraints`` (default: rift_fast's, scikit-learn's stop words) in TextAttack form, after
    TextAttack's "no word changed twice", and for sentence pairs the premise left alone. Raises
    ValueError for a constraint with no TextAttack form (a language-model filter)."""
    converted = [RepeatModification()]
    for constraint in (constraints or Constraints()).constraints:
        if type(constraint) not in TEXTATTACK_CONSTRAINTS:
            raise ValueError(f"constraint {constraint.name!r} has no TextAttack form")
        converted.append(TEXTATTACK_CONSTRAINTS[type(constraint)](constraint))
    if pair:
        converted.append(InputColumnModification(PAIR_COLUMNS, {"premise"}))
    return converted


def _goal(model_wrapper, model_batch_size: int | None) -> UntargetedClassification:
    batch = model_batch_size or getattr(model_wrapper, "batch_size", None) or 32
    return UntargetedClassification(model_wrapper, model_batch_size=batch)


def build_pwws(
    model_wrapper,
    synonyms: SynonymIndex,
    constraints: Constraints | None = None,
    unknown_token: str | None = None,
    pair: bool = False,
    model_batch_size: int | None = None,
) -> Attack:
    """TextAttack's PWWSRen2019 recipe with :class:`SynonymWordSwap` instead of WordNet.

    ``unknown_token`` defaults to the wrapper's tokenizer's unknown token (rift_fast's PWWS uses the
    same). ``model_batch_size`` defaults to the wrapper's ``batch_size`` (:class:`RiftModelWrapper`) or
    TextAttack's 32 (its stock wrappers).
    """
    tokenizer = getattr(model_wrapper, "tokenizer", None)
    unknown = unknown_token or getattr(tokenizer, "unk_token", None) or "[UNK]"
    return Attack(
        _goal(model_wrapper, model_batch_size),
        rift_constraints(constraints, pair),
        SynonymWordSwap(synonyms),
        GreedyWordSwapWIR("weighted-saliency", unk_token=unknown),
    )


def build_genetic(
    model_wrapper,
    synonyms: SynonymIndex,
    population: int = 60,
    generations: int = 20,
    constraints: Constraints | None = None,
    pair: bool = False,
    model_batch_size: int | None = None,
) -> Attack:
    """TextAttack's GeneticAlgorithmAlzantot2018 recipe with :class:`SynonymWordSwap` and without its
    language-model, embedding-distance and 20 % words-perturbed constraints; ``population`` and
    ``generations`` are its ``pop_size`` and ``max_iters`` (the recipe's defaults: 60 and 20)."""
    check_ga_settings(population, generations)
    search = AlzantotGeneticAlgorithm(pop_size=population, max_iters=generations, post_crossover_check=False)
    return Attack(
        _goal(model_wrapper, model_batch_size), rift_constraints(constraints, pair), SynonymWordSwap(synonyms), search
    )


def textattack_input(example: Example):
    """The input TextAttack's ``Attack.attack`` takes for a rift_fast Example."""
    if example.text_pair is None:
        return example.text
    return OrderedDict(zip(PAIR_COLUMNS, (example.text, example.text_pair)))
