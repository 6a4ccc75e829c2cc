"""Evaluation protocols: named sets of attack settings that published evaluations use.

- ``rift``: the RIFT evaluation (Dong et al., NeurIPS 2021): PWWS and GA with the
  published settings, no modification or query budget (every recipe option's default).
- ``textdefender``: TextDefender (Li et al., EMNLP 2021, "Searching for an Effective Defender:
  Benchmarking Defense against Adversarial Word Substitution"), from its public code
  (github.com/RockyLzy/TextDefender): ``args.py`` sets ``modify_ratio = 0.3``, ``neighbour_vocab_size =
  50``, ``sentence_similarity = 0.840845057``, ``query_budget_size = neighbour_vocab_size`` and
  ``attack_numbers = 1000``; its modified TextAttack multiplies the query budget by the text's number of
  words (``goal_function.py``: ``query_budget = query_budget_size * attacked_text.num_words``);
  ``utils/textattack_utils.py`` adds ``MaxWordsPerturbed(max_percent=modify_ratio)`` and the sentence
  encoder (angular, window 15, against the text before each swap) to every attack, and for TextFooler
  replaces the candidates by the 50 nearest embedding neighbours and drops the embedding-cosine
  constraint, for DeepWordBug draws 50 random character edits per word
  (``RandomCompositeTransformation(total_count=neighbour_vocab_size)``); it runs TextAttack's recipes,
  so the protocol turns on ``textattack_parity`` (TextAttack's word ranking and its rounding of the
  modification budget); ``main.py`` attacks only texts with more than 4 space-separated tokens
  (``len(text_a.split(' ')) > 4``; the premise of a pair) and draws 1,000 of them.

A user's explicit option overrides a protocol's value, and the settings JSON records every value used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rift_fast.attacks.recipes import RecipeOptions
from rift_fast.core.records import Example


@dataclass(frozen=True)
class Protocol:
    """A named evaluation setting: ``options`` (the recipe options it sets, by name), ``pool_size``
    (examples attacked; None: the command's default), ``min_tokens`` (texts need more than this many
    space-separated tokens in their first text; None: no rule) and ``source`` (where the values come from)."""

    name: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    pool_size: int | None = None
    min_tokens: int | None = None

    def admits(self, example: Example) -> bool:
        """Whether ``example`` passes the protocol's length rule."""
        return self.min_tokens is None or len(example.text.split(" ")) > self.min_tokens

    def recipe_options(self, overrides: dict[str, Any]) -> RecipeOptions:
        """:class:`RecipeOptions` with the protocol's values, then ``overrides`` (None values ignored).
        Raises ValueError naming an unknown option."""
        return RecipeOptions(**{**self.options, **{k: v for k, v in overrides.items() if v is not None}})

    def describe(self) -> dict:
        """The protocol's own settings, for run records."""
        return {
            "name": self.name,
            "source": self.source,
            "pool_size": self.pool_size,
            "min_tokens_exclusive": self.min_tokens,
        }


# TextDefender's values (see the module docstring for where each comes from).
TEXTDEFENDER_MODIFY_RATIO = 0.3
TEXTDEFENDER_NEIGHBOURS = 50
TEXTDEFENDER_SENTENCE_SIMILARITY = 0.840845057
TEXTDEFENDER_QUERIES_PER_WORD = TEXTDEFENDER_NEIGHBOURS  # query_budget_size = neighbour_vocab_size
TEXTDEFENDER_POOL_SIZE = 1000
TEXTDEFENDER_MIN_TOKENS = 4  # len(text_a.split(' ')) > 4

PROTOCOLS = {
    "rift": Protocol("rift", "RIFT (Dong et al., NeurIPS 2021): published PWWS and GA settings"),
    "textdefender": Protocol(
        "textdefender",
        "TextDefender (Li et al. 2021), github.com/RockyLzy/TextDefender args.py, main.py, utils/textattack_utils.py",
        options={
            "max_modification_ratio": TEXTDEFENDER_MODIFY_RATIO,
            "neighbours": TEXTDEFENDER_NEIGHBOURS,
            "min_cosine": None,
            "sentence_similarity": TEXTDEFENDER_SENTENCE_SIMILARITY,
            "query_budget_per_word": TEXTDEFENDER_QUERIES_PER_WORD,
            "character_edit_draws": TEXTDEFENDER_NEIGHBOURS,
            "textattack_parity": True,
        },
        pool_size=TEXTDEFENDER_POOL_SIZE,
        min_tokens=TEXTDEFENDER_MIN_TOKENS,
    ),
}


def protocol(name: str) -> Protocol:
    """The protocol called ``name``; raises ValueError naming the known ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]
