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
- :func:`build_textfooler`, :func:`build_bert_attack` and :func:`build_bae`: TextAttack 0.3.11's
  ``TextFoolerJin2019``, ``BERTAttackLi2020`` and ``BAEGarg2019`` rebuilt from TextAttack's own classes
  with the same thresholds, windows, candidate counts, metrics and searches, but with what is offline
  here: word vectors the caller gives (:class:`NearestNeighbourEmbedding`, over the file rift_fast's
  ``textfooler`` reads), a masked language model folder instead of ``bert-base-uncased``, rift_fast's
  sentence encoder instead of the Universal Sentence Encoder (:class:`RiftSentenceEncoder`, which keeps
  TextAttack's windowing and threshold test), rift_fast's stop words, and the part-of-speech constraint
  only when asked for (NLTK's tagger, whose data no package ships). :func:`build_deepwordbug` is
  TextAttack's ``DeepWordBugGao2018`` recipe as published.

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

The greedy recipes (``GreedyWordSwapWIR``; rift_fast's ``textfooler``, ``deepwordbug``, ``bert-attack`` and
``bae`` with ``textattack_parity``, which gives TextAttack's word ranking for DeepWordBug and its K=8 for
BERT-Attack)
  * Word importance: TextAttack probes every word the stop-word and repeat constraints allow; rift_fast
    only the words with at least one candidate that passes the word constraints (BAE: every allowed word,
    its candidates come later). Words without candidates never change a text, so the order of the others
    is the same, but TextAttack spends queries on them. Ties: TextAttack sorts with NumPy's unstable
    quicksort over a set's order, rift_fast by position.
  * Everything else of the search is the same: one word per step in importance order, its candidates
    filtered by the constraints against the text the search holds, the best kept only if it raises the
    goal score, and among several that flip the label the one with the highest similarity score.

TextFooler (:func:`build_textfooler`)
  * Neighbours: TextAttack ranks the vectors' rows by Euclidean distance as they are stored, rift_fast by
    cosine (FAISS inner product on unit rows): the same order only on unit-length rows, which the peer
    benchmark writes. Equal distances may come in another order.
  * Candidates: rift_fast leaves out neighbours that are not a single word (letters with inner
    apostrophes) or that are the word itself up to case or accents; TextAttack leaves out only the word
    as written. The same on vectors of lower-case ASCII words (the benchmark's).
  * Case: both give UPPER, lower and Title words the neighbour in that case; for a mixed-case word
    (``McDonald``) TextAttack keeps the neighbour as stored, rift_fast capitalises its first letter.
  * Sentence similarity: one encoder and the same choice of window words on both sides, but TextAttack
    encodes the stretch of the text from the window's first word to its last (punctuation and spacing
    included: ``good, not great``), rift_fast the window's words joined by single spaces (``good not
    great``), so the scores differ a little. TextAttack computes the angular similarity in float64 torch
    with a clamp, rift_fast in float64 NumPy after renormalising.
  * Stop words: rift_fast's list on both sides (the recipe's own is TextFooler's 266-word list).
  * Part of speech: off on both sides unless ``part_of_speech`` (rift_fast: ``pos_tagger="nltk"``).

DeepWordBug (:func:`build_deepwordbug`: TextAttack's recipe as published)
  * Random edits: TextAttack draws the place and letter of each edit from Python's and NumPy's global
    generators at every call; rift_fast from a generator seeded with the seed and the word. Same kinds of
    edit (one of each per word), different draws: the adversarial texts differ example by example.
  * Letters: TextAttack substitutes and inserts upper- and lower-case letters, rift_fast lower case only.
  * Stop words: the recipe's ``StopwordModification()`` reads NLTK's English list (in the environment of
    ``setup_textattack_env.sh``: scikit-learn's 318 words, rift_fast's list) and compares the word as
    written (``The`` may change); rift_fast compares it lower-cased.
  * Edit budget: rift_fast sums the changed words' Levenshtein distances, TextAttack measures the whole
    texts (see :class:`~rift_fast.attacks.text_constraints.EditDistanceBudget`: never looser).

BERT-Attack and BAE (:func:`build_bert_attack`, :func:`build_bae`)
  * The masked LM, K, thresholds, windows and budgets are the same; candidates follow each engine's own
    masked-LM code (see also :mod:`rift_fast.attacks.masked_lm`).
  * BERT-Attack: TextAttack predicts from the text the search holds (after earlier swaps), rift_fast once
    from the original text (the paper's way). For a word of several tokens TextAttack walks the product
    of every piece's top K tokens in order and keeps the first K one-word results (its sort by perplexity
    is discarded: ``sorted`` without assignment); rift_fast takes the pieces' top 4, the first 24
    combinations, ranked by perplexity (the authors' cap).
  * BAE: both mask the word in the text the search holds.
  * TextAttack may propose the masked LM's special tokens (``[SEP]`` enters the text as ``SEP``);
    rift_fast leaves them out.
  * Stop words: rift_fast's list on both sides (the recipes' own: NLTK's list, compared as written).

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
    overshoots (0.3 x 10), TextAttack allows one word more. On a text longer than the model's window,
    rift_fast counts only the words the model reads (and attacks no other); TextAttack counts every word.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import numpy as np
import torch

try:
    import textattack  # noqa: F401  (the top-level package, not this module: absolute import)
    from textattack import Attack
    from textattack.attack_recipes import DeepWordBugGao2018
    from textattack.constraints.grammaticality import PartOfSpeech as TextAttackPartOfSpeech
    from textattack.constraints.overlap import LevenshteinEditDistance, MaxWordsPerturbed
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder as TextAttackSentenceEncoder
    from textattack.goal_functions import UntargetedClassification
    from textattack.models.wrappers import ModelWrapper
    from textattack.search_methods import AlzantotGeneticAlgorithm, GreedyWordSwapWIR
    from textattack.shared import WordEmbedding as TextAttackWordEmbedding
    from textattack.transformations import WordSwap, WordSwapEmbedding, WordSwapMaskedLM
except ImportError as error:  # pragma: no cover - exercised only without TextAttack
    raise ImportError(
        "rift_fast.interop.textattack needs TextAttack, which is kept out of rift_fast's own install "
        "(textattack 0.3.11 pins transformers<5 through flair). Create its environment with "
        "`bash benchmarks/setup_textattack_env.sh` and run with `.venv-textattack/bin/python`. "
        f"(import failed: {error})"
    ) from error

from rift_fast.attacks.constraints import Constraints, MaxModificationRatio, StopWords
from rift_fast.attacks.embedding import PUBLISHED_MIN_COSINE, PUBLISHED_NEIGHBOURS
from rift_fast.attacks.masked_lm import BAE_CANDIDATES
from rift_fast.attacks.recipes.bae import BAE_SENTENCE_SIMILARITY, BAE_SIMILARITY_WINDOW
from rift_fast.attacks.recipes.bert_attack import (
    BERT_ATTACK_MAX_MODIFICATION,
    BERT_ATTACK_SENTENCE_SIMILARITY,
    TEXTATTACK_BERT_ATTACK_CANDIDATES,
)
from rift_fast.attacks.search import check_ga_settings
from rift_fast.attacks.sentence_encoder import (
    PUBLISHED_SENTENCE_SIMILARITY,
    PUBLISHED_SIMILARITY_WINDOW,
    SentenceEncoder,
)
from rift_fast.attacks.text_constraints import EditDistanceBudget
from rift_fast.attacks.transformation import substitution_candidates
from rift_fast.attacks.victim import VictimModel
from rift_fast.core.records import Example
from rift_fast.synonyms import SynonymIndex
from rift_fast.synonyms.vectors import WordVectors

PAIR_COLUMNS = ["premise", "hypothesis"]

__all__ = [
    "PAIR_COLUMNS",
    "CaseInsensitiveStopwordModification",
    "RiftModelWrapper",
    "SynonymWordSwap",
    "NearestNeighbourEmbedding",
    "RiftSentenceEncoder",
    "build_bae",
    "build_bert_attack",
    "build_deepwordbug",
    "build_genetic",
    "build_pwws",
    "build_textfooler",
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
        queries: list[tuple[str, str | None]] = []
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


class RiftSentenceEncoder(TextAttackSentenceEncoder):
    """TextAttack's sentence-encoder constraint answered by rift_fast's :class:`SentenceEncoder` (mean-pooled,
    unit-normalised embeddings, cached per text), so that both engines judge windows with one encoder.

    ``threshold``, ``metric`` (``"angular"`` or ``"cosine"``), ``window_size`` (words; None: the whole
    texts), ``compare_against_original`` and ``skip_text_shorter_than_window`` are TextAttack's
    ``SentenceEncoder`` arguments, used by TextAttack's own code (its windows, its similarity, its
    threshold test). Embeddings are handed over in float64 (TextAttack computes the similarity in the
    dtype it gets; rift_fast renormalises in float64)."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        threshold: float,
        metric: str,
        window_size: int | None,
        compare_against_original: bool,
        skip_text_shorter_than_window: bool = False,
    ):
        super().__init__(
            threshold=threshold,
            metric=metric,
            compare_against_original=compare_against_original,
            window_size=window_size,
            skip_text_shorter_than_window=skip_text_shorter_than_window,
        )
        self.encoder = encoder
        self.encoder_name = encoder.name  # an attribute: TextAttack's repr formats from __dict__

    def encode(self, sentences) -> torch.Tensor:
        """[N, D] float64 embeddings of ``sentences``."""
        return torch.from_numpy(self.encoder.encode(list(sentences)).astype(np.float64))

    def extra_repr_keys(self):
        return ["encoder_name", *super().extra_repr_keys()]


class NearestNeighbourEmbedding(TextAttackWordEmbedding):
    """TextAttack's ``WordEmbedding`` over rift_fast :class:`WordVectors` (words as given, the first row of a
    repeated word wins, as in rift_fast's :class:`~rift_fast.attacks.embedding.WordEmbedding`).

    :meth:`nearest_neighbours` is TextAttack 0.3.11's own computation without a precomputed neighbour matrix
    (the ``topn`` rows nearest by Euclidean distance, the first one, the word itself, dropped), which
    TextAttack cannot run as released: it slices the (values, indices) pair that ``topk`` returns instead of
    the indices and fails. On unit-length vectors the Euclidean order is the cosine order rift_fast uses.
    ``source`` names the vectors in TextAttack's repr."""

    def __init__(self, vectors: WordVectors, source: str):
        word2index: dict[str, int] = {}
        for row, word in enumerate(vectors.words):
            word2index.setdefault(word, row)
        super().__init__(np.asarray(vectors.vectors, dtype=np.float32), word2index, dict(enumerate(vectors.words)))
        self.source = source
        self._matrix = torch.from_numpy(self.embedding_matrix)

    def nearest_neighbours(self, index, topn):
        if isinstance(index, str):
            index = self._word2index[index]
        if (index, topn) not in self._nn_cache:
            distances = torch.norm(self._matrix - self._matrix[index], dim=1)
            self._nn_cache[index, topn] = distances.topk(topn + 1, largest=False).indices[1:].tolist()
        return self._nn_cache[index, topn]

    def __repr__(self) -> str:
        return f"NearestNeighbourEmbedding({self.source}, {len(self._index2word)} words)"


def _part_of_speech(part_of_speech: bool) -> list:
    """TextAttack's PartOfSpeech with NLTK's tagger (its default, the tagger rift_fast's constraint uses), or none."""
    return [TextAttackPartOfSpeech(tagger_type="nltk", allow_verb_noun_swap=True)] if part_of_speech else []


def build_textfooler(
    model_wrapper,
    embedding: NearestNeighbourEmbedding,
    encoder: SentenceEncoder,
    neighbours: int = PUBLISHED_NEIGHBOURS,
    min_cosine: float | None = PUBLISHED_MIN_COSINE,
    part_of_speech: bool = False,
    threshold: float = PUBLISHED_SENTENCE_SIMILARITY,
    window: int = PUBLISHED_SIMILARITY_WINDOW,
    constraints: Constraints | None = None,
    pair: bool = False,
    model_batch_size: int | None = None,
) -> Attack:
    """TextAttack 0.3.11's ``TextFoolerJin2019`` recipe from its own classes, with ``embedding`` instead of the
    downloaded counter-fitted vectors, ``encoder`` instead of the Universal Sentence Encoder and rift_fast's
    stop words (``constraints``) instead of TextFooler's list: ``WordSwapEmbedding(max_candidates=neighbours)``,
    ``WordEmbeddingDistance(min_cos_sim=min_cosine)`` (left out when None), ``PartOfSpeech`` (NLTK, nouns and
    verbs swap) only when ``part_of_speech``, angular similarity >= ``threshold`` between ``window``-word
    windows against the text before each swap (shorter texts pass), ``GreedyWordSwapWIR("delete")``."""
    converted = rift_constraints(constraints, pair)
    if min_cosine is not None:
        converted.append(WordEmbeddingDistance(embedding=embedding, min_cos_sim=min_cosine))
    converted += _part_of_speech(part_of_speech)
    converted.append(
        RiftSentenceEncoder(
            encoder, threshold, "angular", window, compare_against_original=False, skip_text_shorter_than_window=True
        )
    )
    return Attack(
        _goal(model_wrapper, model_batch_size),
        converted,
        WordSwapEmbedding(max_candidates=neighbours, embedding=embedding),
        GreedyWordSwapWIR(wir_method="delete"),
    )


def build_deepwordbug(model_wrapper, model_batch_size: int | None = None) -> Attack:
    """TextAttack 0.3.11's ``DeepWordBugGao2018`` recipe as published (all four character edits, its default
    stop words, ``LevenshteinEditDistance(30)``, ``GreedyWordSwapWIR("unk")``), its goal answering in chunks of
    ``model_batch_size`` (default: the wrapper's ``batch_size`` or TextAttack's 32)."""
    attack = DeepWordBugGao2018.build(model_wrapper)
    attack.goal_function.batch_size = _goal(model_wrapper, model_batch_size).batch_size
    return attack


TEXTATTACK_MLM_BATCH_SIZE = 16  # WordSwapMaskedLM's default batch_size (TextAttack 0.3.11)


def _masked_lm_swap(method: str, masked_lm, mlm_tokenizer, candidates: int, batch_size: int, **options):
    """TextAttack's ``WordSwapMaskedLM`` of ``method`` ("bert-attack" or "bae") over a given masked LM and its
    tokenizer, proposing ``candidates`` words and scoring ``batch_size`` texts a pass; ``options`` are its
    other arguments."""
    return WordSwapMaskedLM(
        method=method,
        masked_language_model=masked_lm,
        tokenizer=mlm_tokenizer,
        max_candidates=candidates,
        batch_size=batch_size,
        **options,
    )


def build_bert_attack(
    model_wrapper,
    masked_lm,
    mlm_tokenizer,
    encoder: SentenceEncoder,
    candidates: int = TEXTATTACK_BERT_ATTACK_CANDIDATES,
    max_modification: float = BERT_ATTACK_MAX_MODIFICATION,
    threshold: float = BERT_ATTACK_SENTENCE_SIMILARITY,
    mlm_batch_size: int = TEXTATTACK_MLM_BATCH_SIZE,
    model_batch_size: int | None = None,
) -> Attack:
    """TextAttack 0.3.11's ``BERTAttackLi2020`` from its own classes, with the masked language model
    ``masked_lm`` (a Hugging Face ``AutoModelForMaskedLM``) and its fast tokenizer ``mlm_tokenizer``
    instead of ``bert-base-uncased``, ``encoder`` instead of the Universal Sentence Encoder and rift_fast's
    stop words: ``WordSwapMaskedLM("bert-attack", max_candidates=candidates)``,
    ``MaxWordsPerturbed(max_percent=max_modification)``, cosine >= ``threshold`` between the whole original
    and proposed texts, ``GreedyWordSwapWIR("unk")``; the masked LM scores ``mlm_batch_size`` texts a pass."""
    converted = rift_constraints(Constraints([StopWords(), MaxModificationRatio(max_modification)]))
    converted.append(RiftSentenceEncoder(encoder, threshold, "cosine", None, compare_against_original=True))
    transformation = _masked_lm_swap("bert-attack", masked_lm, mlm_tokenizer, candidates, mlm_batch_size)
    return Attack(
        _goal(model_wrapper, model_batch_size), converted, transformation, GreedyWordSwapWIR(wir_method="unk")
    )


def build_bae(
    model_wrapper,
    masked_lm,
    mlm_tokenizer,
    encoder: SentenceEncoder,
    candidates: int = BAE_CANDIDATES,
    part_of_speech: bool = False,
    threshold: float = BAE_SENTENCE_SIMILARITY,
    window: int = BAE_SIMILARITY_WINDOW,
    mlm_batch_size: int = TEXTATTACK_MLM_BATCH_SIZE,
    model_batch_size: int | None = None,
) -> Attack:
    """TextAttack 0.3.11's ``BAEGarg2019`` (BAE-R) from its own classes, with the masked language model
    ``masked_lm`` and its fast tokenizer ``mlm_tokenizer``, ``encoder`` instead of the Universal Sentence
    Encoder and rift_fast's stop words: ``WordSwapMaskedLM("bae", max_candidates=candidates,
    min_confidence=0)``, ``PartOfSpeech`` (NLTK) only when ``part_of_speech``, cosine >= ``threshold``
    between ``window``-word windows of the original and the proposed text (shorter texts pass),
    ``GreedyWordSwapWIR("delete")``; the masked LM scores ``mlm_batch_size`` texts a pass."""
    converted = rift_constraints() + _part_of_speech(part_of_speech)
    converted.append(
        RiftSentenceEncoder(
            encoder, threshold, "cosine", window, compare_against_original=True, skip_text_shorter_than_window=True
        )
    )
    transformation = _masked_lm_swap("bae", masked_lm, mlm_tokenizer, candidates, mlm_batch_size, min_confidence=0.0)
    return Attack(
        _goal(model_wrapper, model_batch_size), converted, transformation, GreedyWordSwapWIR(wir_method="delete")
    )


def textattack_input(example: Example):
    """The input TextAttack's ``Attack.attack`` takes for a rift_fast Example."""
    if example.text_pair is None:
        return example.text
    return OrderedDict(zip(PAIR_COLUMNS, (example.text, example.text_pair)))
