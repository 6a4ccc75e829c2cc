"""WordNet 3.0 synonyms and antonyms of single words (nltk over the embedded database)."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def wordnet_reader():
    """nltk's WordNet reader over the embedded WordNet 3.0 (see :func:`rift_fast.resources.wordnet_nltk_root`)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from rift_fast.resources import wordnet_nltk_root

    root = str(wordnet_nltk_root())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    return WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)


def _single_word(lemma_name: str) -> str | None:
    name = lemma_name.lower()
    return name if name.isalpha() else None


def wordnet_relations(words: list[str], max_senses: int | None = None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Synonyms and antonyms of each word among ``words`` (single alphabetic lemmas, in WordNet order).

    Synonyms are the lemmas of the word's synsets (the ``max_senses`` most frequent senses, or all);
    antonyms those of the word's own lemmas. Only words of the given list appear, on both sides.
    """
    wordnet = wordnet_reader()
    vocabulary = set(words)
    synonyms: dict[str, list[str]] = {}
    antonyms: dict[str, list[str]] = {}
    for word in words:
        found_synonyms: dict[str, None] = {}
        found_antonyms: dict[str, None] = {}
        for synset in wordnet.synsets(word)[:max_senses]:
            for lemma in synset.lemmas():
                name = _single_word(lemma.name())
                if name and name != word and name in vocabulary:
                    found_synonyms[name] = None
                if lemma.name().lower() == word:
                    for opposite in lemma.antonyms():
                        other = _single_word(opposite.name())
                        if other and other in vocabulary:
                            found_antonyms[other] = None
        if found_synonyms:
            synonyms[word] = list(found_synonyms)
        if found_antonyms:
            antonyms[word] = list(found_antonyms)
    return synonyms, antonyms
