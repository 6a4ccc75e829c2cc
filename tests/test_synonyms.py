"""Synonym index: vector files, FAISS kNN, the neighbour JSON, WordNet, counter-fitting, vocab table, cache."""

import json

import numpy as np
import pytest
import torch

from rift_fast.synonyms import SynonymIndex, WordVectors, cached_index, load_text_vectors
from rift_fast.synonyms.counterfit import CounterFitSettings, counter_fit
from rift_fast.synonyms.knn import bounded_knn, bounded_knn_reference


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ vectors file
def test_text_vectors_load(tmp_path):
    vectors = load_text_vectors(_write(tmp_path / "v.txt", "good 1 0 0\nbad -1 0.5 0\n\nfine 0.9 0.1 0\n"))
    assert vectors.words == ["good", "bad", "fine"]
    assert vectors.vectors.shape == (3, 3) and vectors.vectors.dtype == np.float32
    np.testing.assert_allclose(vectors.vectors[1], [-1, 0.5, 0])


@pytest.mark.parametrize(
    "text,message",
    [
        ("good 1 0 0\nbad 1 0\n", r"v.txt:2: word 'bad' has 2 values, expected 3"),
        ("good 1 0 0\nbad 1 x 0\n", r"v.txt:2: non-numeric value 'x' for word 'bad'"),
        ("good 1 nan 0\n", r"v.txt:1: non-finite value"),
        ("", r"no word vectors found \(empty file\)"),
        ("lonely\n", r"v.txt:1: expected 'word v1 ... vD'"),
    ],
)
def test_malformed_vectors_file(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_text_vectors(_write(tmp_path / "v.txt", text))


def test_missing_vectors_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="word vectors file not found: .*nope.txt"):
        load_text_vectors(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------------------- kNN
@pytest.mark.parametrize(
    "count,dimension,k,bound", [(200, 8, 8, 1.5), (500, 16, 3, 2.5), (50, 4, 8, 0.3), (3, 2, 8, 10.0)]
)
def test_faiss_knn_equals_brute_force(count, dimension, k, bound):
    vectors = np.random.default_rng(count).normal(size=(count, dimension)).astype(np.float32)
    candidates = np.random.default_rng(1).random(count) > 0.2
    assert bounded_knn(vectors, k, bound) == bounded_knn_reference(vectors, k, bound)
    assert bounded_knn(vectors, k, bound, candidates) == bounded_knn_reference(vectors, k, bound, candidates)


def test_word_vector_index_respects_bound_and_stop_words():
    words = ["good", "fine", "nice", "the", "awful"]
    vectors = np.array([[1, 0], [0.9, 0.1], [0.8, 0.0], [0.95, 0.0], [-1, 0]], dtype=np.float32)
    index = SynonymIndex.from_word_vectors(WordVectors(words, vectors), k=8, max_distance=0.5, stop_words={"the"})
    assert index["good"] == ["fine", "nice"]
    assert index["the"] == [] and "the" not in index["good"]
    assert index["awful"] == []
    assert index.num_words_with_synonyms() == 3


# ------------------------------------------------------------------------------- neighbour JSON
def test_real_neighbour_json(counterfitted_neighbours_path):
    index = SynonymIndex.from_neighbour_json(counterfitted_neighbours_path)
    assert len(index) == 49975
    assert index.num_words_with_synonyms() == 25591
    assert all(len(others) <= 8 for others in index.values())
    assert "film" in index.synonyms("movie")
    assert index.synonyms("Movie") == index.synonyms("movie")
    assert index.synonyms("qwertyuiop") == []


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"good": "fine"}', "the neighbours of 'good' must be a list of strings"),
        ('{"good": [1]}', "the neighbours of 'good' must be a list of strings"),
    ],
)
def test_malformed_neighbour_json(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        SynonymIndex.from_neighbour_json(_write(tmp_path / "n.json", text))


def test_missing_neighbour_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="neighbour JSON not found"):
        SynonymIndex.from_neighbour_json(tmp_path / "absent.json")


# ----------------------------------------------------------------------------- WordNet, counter-fit
def test_wordnet_synonyms_ranked_by_vectors():
    words = ["terrible", "awful", "dreadful", "fine", "the"]
    vectors = np.array([[1, 0], [0.2, 1], [0.9, 0.1], [0, 1], [1, 1]], dtype=np.float32)
    index = SynonymIndex.from_wordnet(words, ranking=WordVectors(words, vectors))
    assert index["terrible"] == ["dreadful", "awful"]
    assert index["the"] == []


def test_counter_fitting_attracts_synonyms_and_repels_antonyms():
    rng = np.random.default_rng(0)
    words = ["good", "fine", "bad", "table"]
    vectors = rng.normal(size=(4, 6)).astype(np.float32)
    vectors[2] = vectors[0] + 0.3 * rng.normal(size=6)  # antonyms often start close in distributional space
    fitted = counter_fit(words, vectors, {"good": ["fine"]}, {"good": ["bad"]}, CounterFitSettings(steps=200))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.allclose(np.linalg.norm(fitted, axis=1), 1, atol=1e-5)
    assert fitted[0] @ fitted[1] > unit[0] @ unit[1] + 0.1  # synonyms closer
    assert unit[0] @ unit[2] > 0.5 and fitted[0] @ fitted[2] < 0.05  # antonyms pushed to orthogonal


# -------------------------------------------------------------------------------- vocab table
@pytest.fixture
def tiny_tokenizer(tmp_path):
    from transformers import BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "good",
        "fine",
        "nice",
        "bad",
        "awful",
        "the",
        "super",
        "##b",
    ]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(
        str(tmp_path / "vocab.txt"), do_lower_case=True
    )  # positional: vocab_file (v4) / vocab (v5)


def test_vocab_table_maps_single_token_words(tiny_tokenizer):
    index = SynonymIndex({"good": ["fine", "superb", "nice"], "bad": ["awful"], "superb": ["good"], "the": []})
    table = index.vocab_table(tiny_tokenizer, k=3)
    assert table.shape == (len(tiny_tokenizer), 3) and table.dtype == torch.long
    vocab = tiny_tokenizer.get_vocab()
    assert table[vocab["good"]].tolist() == [vocab["fine"], vocab["nice"], -1]  # "superb" is two pieces
    assert table[vocab["bad"]].tolist() == [vocab["awful"], -1, -1]
    assert (table[vocab["the"]] == -1).all() and (table[vocab["##b"]] == -1).all()
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.vocab_table(tiny_tokenizer, k=0)


# ------------------------------------------------------------------------------------------ cache
def test_cache_reuses_and_rebuilds_corrupt_file(tmp_path, caplog):
    builds = []

    def build():
        builds.append(1)
        return SynonymIndex({"good": ["fine"]}, source="test")

    settings = {"source": "test", "k": 8}
    first = cached_index(settings, build, cache_folder=tmp_path)
    second = cached_index(settings, build, cache_folder=tmp_path)
    assert len(builds) == 1 and second.to_json() == first.to_json() and second.source == "test"

    (cache_file,) = tmp_path.glob("*.json")
    payload = json.loads(cache_file.read_text())
    payload["neighbours"]["good"] = ["evil"]  # tampered content: checksum no longer matches
    cache_file.write_text(json.dumps(payload))
    assert cached_index(settings, build, cache_folder=tmp_path).to_json() == {"good": ["fine"]}
    assert len(builds) == 2 and "is corrupt" in caplog.text

    cache_file.write_text(cache_file.read_text()[:20])  # truncated file
    assert cached_index(settings, build, cache_folder=tmp_path).to_json() == {"good": ["fine"]}
    assert len(builds) == 3

    cached_index({"source": "test", "k": 4}, build, cache_folder=tmp_path)  # other settings, other entry
    assert len(builds) == 4 and len(list(tmp_path.glob("*.json"))) == 2
