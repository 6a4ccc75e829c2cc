"""WordNet 3.0 synonyms and antonyms of single words (nltk over the embedded database)."""

from __future__ import annotations

import functools

from rift_fast.core.words import is_single_word, lookup_form, lookup_forms


@functools.lru_cache(maxsize=1)
def wordnet_reader():
    """nltk's WordNet reader over the embedded WordNet 3.0 (see :func:`rift_fast.core.resources.wordnet_nltk_root`)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from rift_fast.core.resources import wordnet_nltk_root

    root = str(wordnet_nltk_root())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    return WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)


def _single_word(lemma_name: str) -> str | None:
    """The lemma in lower case when it is one word (WordNet writes spaces as ``_``), else None."""
    name = lemma_name.lower()
    return name if is_single_word(name) else None


def _senses(wordnet, word: str, max_senses: int | None) -> tuple[str, list]:
    """The form of ``word`` WordNet knows (the first of its lookup forms with synsets) and its
    ``max_senses`` first synsets in nltk's order; (its lookup form, []) when WordNet has none."""
    for form in lookup_forms(word):
        synsets = wordnet.synsets(form)
        if synsets:
            return form, synsets[:max_senses]
    return lookup_form(word), []


def wordnet_relations(
    words: list[str], max_senses: int | None = None
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Synonyms and antonyms of each of ``words`` in WordNet 3.0, a property of the word alone.

    A word is looked up under its lookup forms (:func:`rift_fast.core.words.lookup_forms`; nltk also
    reduces inflections: ``movies`` -> ``movie``). Its synonyms are the single-word lemmas (lower
    case) of its synsets, the word itself left out, in order: synsets as nltk lists them (noun,
    verb, adjective, adverb senses, each in WordNet's sense order, most frequent first; only the
    ``max_senses`` first, or all), lemmas in their synset's order, first occurrence kept. Its
    antonyms are the single-word antonyms of its own lemmas in those synsets. Returns
    ``(synonyms, antonyms)``, each ``{word as given: [words]}`` for the words that have any.
    """
    wordnet = wordnet_reader()
    synonyms: dict[str, list[str]] = {}
    antonyms: dict[str, list[str]] = {}
    for word in words:
        found_synonyms, found_antonyms = _relations_of(*_senses(wordnet, word, max_senses))
        if found_synonyms:
            synonyms[word] = found_synonyms
        if found_antonyms:
            antonyms[word] = found_antonyms
    return synonyms, antonyms


def _relations_of(form: str, synsets: list) -> tuple[list[str], list[str]]:
    """Synonyms and antonyms of the word WordNet knows as ``form``, from its ``synsets`` (in order)."""
    found_synonyms: dict[str, None] = {}
    found_antonyms: dict[str, None] = {}
    for synset in synsets:
        for lemma in synset.lemmas():
            name = _single_word(lemma.name())
            if name and name != form:
                found_synonyms[name] = None
            if lemma.name().lower() == form:
                for opposite in lemma.antonyms():
                    other = _single_word(opposite.name())
                    if other:
                        found_antonyms[other] = None
    return list(found_synonyms), list(found_antonyms)
