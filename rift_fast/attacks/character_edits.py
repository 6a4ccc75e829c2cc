"""Character edits of DeepWordBug (Gao et al. 2018): swap two neighbouring characters, substitute,
delete or insert one character, each at a random place of the word."""

from __future__ import annotations

import string
import zlib

import numpy as np

from rift_fast.attacks.transformation import Transformation
from rift_fast.core.words import is_single_word

# Gao et al. (2018), Sec. 3.2, the four transformers; TextAttack 0.3.11's deepwordbug recipe composes
# WordSwapNeighboringCharacterSwap, WordSwapRandomCharacterSubstitution, WordSwapRandomCharacterDeletion
# and WordSwapRandomCharacterInsertion, one random edit of each kind per word.
CHARACTER_EDITS = ("swap", "substitute", "delete", "insert")
RANDOM_LETTERS = string.ascii_lowercase  # substituted and inserted characters


class CharacterEdits(Transformation):
    """Random character edits of a word, of the kinds in ``edits``.

    ``draws`` None: one edit of each kind (at most four candidates, TextAttack's recipe), in the order of
    :data:`CHARACTER_EDITS`; an integer: that many edits, each of a kind drawn uniformly, duplicates
    merged (TextDefender's ``RandomCompositeTransformation(total_count=50)``). A candidate that is not a
    single word (:mod:`rift_fast.core.words`) or equals the word is left out. The random places, kinds and
    letters come from a generator seeded with ``seed`` and the word itself, so a word gets the same
    candidates in every example and every batch. Raises ValueError for an unknown or empty ``edits`` or
    ``draws`` below 1."""

    def __init__(self, seed: int = 0, edits: tuple[str, ...] = CHARACTER_EDITS, draws: int | None = None):
        unknown = [e for e in edits if e not in CHARACTER_EDITS]
        if unknown or not edits:
            raise ValueError(f"character edits must be a non-empty subset of {CHARACTER_EDITS}, got {edits}")
        if draws is not None and draws < 1:
            raise ValueError(f"character edit draws must be at least 1, got {draws}")
        self.seed = seed
        self.edits = tuple(e for e in CHARACTER_EDITS if e in edits)
        self.draws = draws

    def describe(self) -> dict:
        described = {"transformation": "character_edits", "edits": list(self.edits), "seed": self.seed}
        return described if self.draws is None else {**described, "draws": self.draws}

    def candidates(self, word: str) -> list[str]:
        rng = np.random.default_rng([self.seed, zlib.crc32(word.encode("utf-8"))])
        kinds = (
            self.edits
            if self.draws is None
            else [self.edits[k] for k in rng.integers(len(self.edits), size=self.draws)]
        )
        edited = [self._edit(kind, word, rng) for kind in kinds]
        return list(dict.fromkeys(e for e in edited if e is not None and e != word and is_single_word(e)))

    @staticmethod
    def _edit(kind: str, word: str, rng: np.random.Generator) -> str | None:
        """One random edit of ``kind``; None when the word is too short for it."""
        letter = RANDOM_LETTERS[int(rng.integers(len(RANDOM_LETTERS)))]
        if kind == "swap":
            if len(word) < 2:
                return None
            i = int(rng.integers(len(word) - 1))
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if kind == "insert":
            i = int(rng.integers(len(word) + 1))
            return word[:i] + letter + word[i:]
        if len(word) < 2:  # deleting or substituting the only character leaves no word of it
            return None
        i = int(rng.integers(len(word)))
        return word[:i] + (letter if kind == "substitute" else "") + word[i + 1 :]
