"""Part-of-speech consistency (TextFooler, Jin et al. 2020): a replacement keeps the replaced word's
universal part of speech, nouns and verbs swapping freely.

The tagger is pluggable: any callable taking lists of words and returning one universal tag
(Petrov et al. 2012: NOUN, VERB, ADJ, ...) per word. :class:`NltkPerceptronTagger` is NLTK's averaged
perceptron (the tagger TextAttack 0.3.11 uses), read from NLTK's JSON data
``taggers/averaged_perceptron_tagger_eng``. No registry package ships that data (or any maintained
offline English tagger that fits here: spaCy's models are not on PyPI, flair's are on the Hugging Face
hub only), so it must be installed once with ``python -m nltk.downloader averaged_perceptron_tagger_eng``;
without it the constraint stops with that instruction, and ``--pos-tagger none`` runs without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rift_fast.attacks.text_constraints import Perturbation, TextConstraint

Tagger = Callable[[list[list[str]]], list[list[str]]]  # sentences (lists of words) -> universal tags per word
NLTK_TAGGER_RESOURCE = "taggers/averaged_perceptron_tagger_eng"
# TextAttack 0.3.11 PartOfSpeech: the word is tagged with 4 words of the reference text before it and
# 3 after it (words[i - 4 : i] and words[i + 1 : i + 4]).
CONTEXT_BEFORE, CONTEXT_AFTER = 4, 3
# Penn Treebank -> universal tags, the en-ptb mapping of Petrov, Das & McDonald (2012), "A Universal
# Part-of-Speech Tagset" (the table NLTK's map_tag reads); tags not listed map to X.
PTB_TO_UNIVERSAL = {
    **dict.fromkeys(["!", "#", "$", "''", "(", ")", ",", "-LRB-", "-RRB-", ".", ":", "?", "``"], "."),
    "CC": "CONJ",
    "CD": "NUM",
    **dict.fromkeys(["DT", "EX", "PDT", "WDT"], "DET"),
    **dict.fromkeys(["FW", "LS", "SYM", "UH"], "X"),
    "IN": "ADP",
    **dict.fromkeys(["JJ", "JJR", "JJS"], "ADJ"),
    **dict.fromkeys(["MD", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ"], "VERB"),
    **dict.fromkeys(["NN", "NNP", "NNPS", "NNS"], "NOUN"),
    **dict.fromkeys(["POS", "RP", "TO"], "PRT"),
    **dict.fromkeys(["PRP", "PRP$", "WP", "WP$"], "PRON"),
    **dict.fromkeys(["RB", "RBR", "RBS", "WRB"], "ADV"),
}


class TaggerUnavailableError(ValueError):
    """The part-of-speech tagger's data is not installed (the message says how to install it)."""


class NltkPerceptronTagger:
    """NLTK's averaged-perceptron English tagger, mapped to universal tags.

    Raises :class:`TaggerUnavailableError` naming the NLTK resource and the command that installs it
    when its data is not found on ``nltk.data.path``.
    """

    name = "nltk-averaged-perceptron"

    def __init__(self) -> None:
        import nltk
        from nltk.tag.perceptron import PerceptronTagger

        try:
            nltk.data.find(NLTK_TAGGER_RESOURCE + "/")
        except LookupError:
            raise TaggerUnavailableError(
                f"the part-of-speech tagger needs NLTK's {NLTK_TAGGER_RESOURCE!r} data, which is not installed: "
                "run `python -m nltk.downloader averaged_perceptron_tagger_eng` once (or pass --pos-tagger none "
                "to attack without the part-of-speech constraint)"
            ) from None
        self._tagger = PerceptronTagger(lang="eng")

    def __call__(self, sentences: list[list[str]]) -> list[list[str]]:
        return [[PTB_TO_UNIVERSAL.get(tag, "X") for _, tag in self._tagger.tag(words)] for words in sentences]


class PartOfSpeech(TextConstraint):
    """The replacement has the replaced word's universal tag (``allow_verb_noun_swap``: NOUN and VERB
    replace each other), both tagged in the same context: the word, with the 4 words before it and the
    3 after it in the original text (TextAttack 0.3.11 ``PartOfSpeech(allow_verb_noun_swap=True)``, the
    TextFooler setting). Tags are cached per context. ``tagger_name`` is recorded in the settings."""

    name = "part_of_speech"

    def __init__(self, tagger: Tagger, tagger_name: str, allow_verb_noun_swap: bool = True):
        self.tagger = tagger
        self.tagger_name = tagger_name
        self.allow_verb_noun_swap = allow_verb_noun_swap
        self._tags: dict[tuple[str, ...], tuple[str, ...]] = {}

    def describe(self) -> dict:
        return {
            "tagger": self.tagger_name,
            "tagset": "universal",
            "allow_verb_noun_swap": self.allow_verb_noun_swap,
            "context": f"{CONTEXT_BEFORE} words before, {CONTEXT_AFTER} after, from the original text",
        }

    def _tag_words(self, contexts: list[tuple[tuple[str, ...], int]]) -> list[str]:
        """The tag of word ``k`` of each ``(words, k)``, tagging each new context once."""
        new = list(dict.fromkeys(words for words, _ in contexts if words not in self._tags))
        for words, tags in zip(new, self.tagger([list(w) for w in new]) if new else []):
            if len(tags) != len(words):
                raise ValueError(f"tagger {self.tagger_name} gave {len(tags)} tags for {len(words)} words: {words}")
            self._tags[words] = tuple(tags)
        return [self._tags[words][k] for words, k in contexts]

    def _compatible(self, first: str, second: str) -> bool:
        return first == second or (self.allow_verb_noun_swap and {first, second} <= {"NOUN", "VERB"})

    def accepts(self, perturbations: Sequence[Perturbation]) -> list[bool]:
        contexts = []
        for p in perturbations:
            before = p.original[max(p.position - CONTEXT_BEFORE, 0) : p.position]
            after = p.original[p.position + 1 : p.position + 1 + CONTEXT_AFTER]
            contexts.append((before + (p.original[p.position],) + after, len(before)))
            contexts.append((before + (p.replacement,) + after, len(before)))
        tags = self._tag_words(contexts)
        return [self._compatible(tags[2 * k], tags[2 * k + 1]) for k in range(len(perturbations))]
