"""Option pieces that several recipes share, each declared once: a recipe's options dataclass inherits the
pieces it reads and adds its own fields.

Every field is declared with :func:`option`: its default is the published value (None where the published
value differs between recipes: each recipe's docstring says which it takes), and its metadata carry the
help text and value type from which the attack command builds one ``--flag`` per option
(:mod:`rift_fast.cli.protocol_arguments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rift_fast.attacks.embedding import PUBLISHED_MIN_COSINE, PUBLISHED_NEIGHBOURS
from rift_fast.attacks.masked_lm import DEFAULT_MASKED_LANGUAGE_MODEL
from rift_fast.models import EMBEDDED_MODEL_NAME
from rift_fast.synonyms.named_vectors import DEFAULT_WORD_VECTORS, NAMED_VECTORS

POS_TAGGERS = ("nltk", "none")


def option(
    default: Any,
    help: str,
    value_type: type = str,
    *,
    positive: bool = False,
    choices: tuple[str, ...] | None = None,
    flag: bool = True,
) -> Any:
    """A recipe option: a dataclass field whose metadata describe its command-line flag.

    Args:
        default: the published value (None: unset, the recipe's published value or no bound).
        help: the flag's help text, which names the units and the published value.
        value_type: the type of a value given on the command line (``bool``: a flag without a value that
            sets True).
        positive: the command line takes integers >= 1 only.
        choices: the values allowed, if only some are.
        flag: False for an option the commands declare themselves (``--seed``, ``--synonym-k``,
            ``--ga-population``, ...) or that only the Python API sets.

    Returns:
        The :func:`dataclasses.field` to assign in the options dataclass.
    """
    metadata = {"help": help, "type": value_type, "positive": positive, "choices": choices, "flag": flag}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ModificationBudgetOption:
    """What every recipe reads.

    Attributes:
        max_modification_ratio: share of the visible words that may change (None: the recipe's published
            budget; PWWS and GA have none).
    """

    max_modification_ratio: float | None = option(
        None, "share of the visible words that may change (None: the recipe's published budget)", float, flag=False
    )


@dataclass(frozen=True)
class SeedOption:
    """For recipes with random draws.

    Attributes:
        seed: seed of the recipe's random draws (the run's ``--seed``).
    """

    seed: int = option(0, "seed of the recipe's random draws", int, flag=False)


@dataclass(frozen=True)
class QueryBudgetOptions:
    """A query budget per example (at most one of the two; none by default), enforced by the greedy search.

    Attributes:
        query_budget: most model queries per example.
        query_budget_per_word: most model queries per word of the example's text.
    """

    query_budget: int | None = option(None, "most model queries per example", int)
    query_budget_per_word: int | None = option(None, "most queries per word of a text", int)


@dataclass(frozen=True)
class TextAttackParityOption:
    """For recipes whose paper and TextAttack 0.3.11 differ.

    Attributes:
        textattack_parity: follow TextAttack 0.3.11's recipe where it differs from the paper.
    """

    textattack_parity: bool = option(
        False,
        "follow TextAttack 0.3.11's recipe where it differs from the paper (DeepWordBug's word ranking, "
        "BERT-Attack's 8 candidates)",
        bool,
    )


@dataclass(frozen=True)
class PartOfSpeechOption:
    """For recipes whose swaps keep the word's universal part of speech.

    Attributes:
        pos_tagger: ``nltk`` (NLTK's averaged perceptron) or ``none`` (no part-of-speech constraint).
    """

    pos_tagger: str = option("nltk", "part-of-speech tagger (nltk)", choices=POS_TAGGERS)


@dataclass(frozen=True)
class WordEmbeddingOptions:
    """Candidates from the nearest neighbours in a word embedding (TextFooler).

    Attributes:
        word_vectors: a name of :data:`rift_fast.synonyms.named_vectors.NAMED_VECTORS` or the path of a
            ``word v1 ... vD`` text file (None: the embedded counter-fitted vectors).
        neighbours: nearest neighbours per word (K).
        min_cosine: least embedding cosine of a swap (None: no bound).
    """

    word_vectors: str | None = option(
        None,
        f"TextFooler's neighbours: {', '.join(sorted(NAMED_VECTORS))} (installed; unset: "
        f"{DEFAULT_WORD_VECTORS}) or a 'word v1 ... vD' text file",
    )
    neighbours: int = option(
        PUBLISHED_NEIGHBOURS, f"TextFooler: embedding neighbours per word ({PUBLISHED_NEIGHBOURS})", int, positive=True
    )
    min_cosine: float | None = option(
        PUBLISHED_MIN_COSINE, f"TextFooler: least embedding cosine ({PUBLISHED_MIN_COSINE})", float
    )


@dataclass(frozen=True)
class SentenceEncoderOptions:
    """A sentence-encoder similarity constraint (TextFooler, BERT-Attack, BAE).

    Attributes:
        sentence_encoder: Hugging Face encoder name or folder (``embedded``: the packaged all-MiniLM-L6-v2).
        sentence_similarity: least similarity in the recipe's metric (None: the recipe's published value).
        similarity_window: words per similarity window (None: the recipe's published window).
    """

    sentence_encoder: str = option(
        EMBEDDED_MODEL_NAME, "Hugging Face encoder name or folder ('embedded': all-MiniLM-L6-v2)"
    )
    sentence_similarity: float | None = option(
        None,
        "least sentence similarity, in the recipe's metric (TextFooler 0.8408 angular, BERT-Attack 0.2 cosine, "
        "BAE 0.9363 cosine)",
        float,
    )
    similarity_window: int | None = option(
        None, "words per similarity window (TextFooler and BAE 15; BERT-Attack: the whole text)", int, positive=True
    )


@dataclass(frozen=True)
class MaskedLanguageModelOptions:
    """Candidates from a masked language model (BERT-Attack, BAE).

    Attributes:
        mlm: the masked language model, Hugging Face name or folder.
        mlm_candidates: candidates per word, K (None: the recipe's published K).
        mlm_batch_size: texts per forward pass of the masked language model.
    """

    mlm: str = option(
        DEFAULT_MASKED_LANGUAGE_MODEL, "BERT-Attack / BAE: masked language model, Hugging Face name or folder"
    )
    mlm_candidates: int | None = option(None, "BERT-Attack / BAE: candidates per word (48 / 50)", int, positive=True)
    mlm_batch_size: int = option(32, "masked-LM texts per forward pass (32)", int, positive=True)
