"""Tests of rift_fast.data.tasks: the embedded Rotten Tomatoes split, local file layouts, hub calls, bad input."""

import json
import re
from collections import Counter

import datasets
import pytest

from rift_fast.core.records import Example, TaskData
from rift_fast.data import tasks as data


@pytest.fixture(scope="module")
def rotten_tomatoes():
    return data.load_rotten_tomatoes(seed=0)


def _texts(examples):
    return {example.text for example in examples}


def _labels(examples):
    return Counter(example.label for example in examples)


# --- embedded Rotten Tomatoes ---------------------------------------------------------------------------------


def test_rotten_tomatoes_splits_add_up_without_overlap(rotten_tomatoes):
    task = rotten_tomatoes
    total = len(task.train) + len(task.dev) + len(task.test)
    assert total == 12752  # 7,403 fresh + 5,405 rotten less 56 duplicate texts
    assert (len(task.dev), len(task.test)) == (round(0.1 * total), round(0.1 * total))
    assert _texts(task.train) | _texts(task.dev) | _texts(task.test) == _texts(task.train + task.dev + task.test)
    assert len(_texts(task.train + task.dev + task.test)) == total
    assert task.label_names == ("negative", "positive") and not task.is_pair


def test_rotten_tomatoes_labels_are_stratified_and_plot_rows_dropped(rotten_tomatoes):
    task = rotten_tomatoes
    everything = task.train + task.dev + task.test
    assert set(_labels(everything)) == {0, 1}
    positive_share = _labels(everything)[1] / len(everything)
    for split in (task.train, task.dev, task.test):
        assert set(_labels(split)) == {0, 1}
        assert abs(_labels(split)[1] / len(split) - positive_share) < 0.01
    assert all(example.text == example.text.strip() and example.text_pair is None for example in everything)
    assert "negative=" in task.describe() and "test " in task.describe()


def test_rotten_tomatoes_split_is_deterministic_per_seed(rotten_tomatoes):
    again = data.load_rotten_tomatoes(seed=0)
    other = data.load_rotten_tomatoes(seed=1)
    assert again.test == rotten_tomatoes.test and again.train == rotten_tomatoes.train
    assert _texts(other.test) != _texts(rotten_tomatoes.test)


def _write_rotten_tomatoes_csv(path, rows):
    lines = ["category,text,movie_name"] + [f'{category},"{text}",some_movie' for category, text in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rotten_tomatoes_local_csv_drops_plot_and_duplicates(tmp_path):
    rows = [("fresh", f"good {i}") for i in range(10)] + [("rotten", f"bad {i}") for i in range(10)]
    rows += [("plot", ""), ("fresh", " good 0 ")]
    task = data.load_task("rotten_tomatoes", source=_write_rotten_tomatoes_csv(tmp_path / "rt.csv", rows))
    assert len(task.train) + len(task.dev) + len(task.test) == 20
    assert (len(task.dev), len(task.test)) == (2, 2)


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (("fresh", "   "), r"rt\.csv line 4: empty text"),
        (("stale", "text"), r"rt\.csv line 4: label 'stale' is not one of \['fresh', 'rotten'\]"),
    ],
)
def test_rotten_tomatoes_bad_rows_name_file_and_line(tmp_path, bad_row, message):
    rows = [("fresh", "good"), ("rotten", "bad"), bad_row]
    with pytest.raises(ValueError, match=message):
        data.load_rotten_tomatoes(source=_write_rotten_tomatoes_csv(tmp_path / "rt.csv", rows))


# --- IMDB -----------------------------------------------------------------------------------------------------


def _write_acl_imdb(root, per_class=10):
    for split in ("train", "test"):
        for polarity in ("pos", "neg"):
            folder = root / split / polarity
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}_7.txt").write_text(f"{split} {polarity} review {i}.<br /><br />The end.")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled")
    return root


def test_imdb_folder(tmp_path):
    root = _write_acl_imdb(tmp_path / "aclImdb")
    task = data.load_imdb(str(root), seed=0, dev_fraction=0.2)
    assert (len(task.train), len(task.dev), len(task.test)) == (16, 4, 20)
    assert _labels(task.dev) == {0: 2, 1: 2} and _labels(task.test) == {0: 10, 1: 10}
    assert all("<br" not in example.text for example in task.train + task.dev + task.test)
    assert all((example.label == 1) == (" pos " in example.text) for example in task.test)
    assert "unlabelled" not in _texts(task.train + task.dev)
    assert data.load_imdb(root, seed=0, dev_fraction=0.2).dev == task.dev


def test_imdb_empty_review_names_the_file(tmp_path):
    root = _write_acl_imdb(tmp_path / "aclImdb")
    (root / "test" / "neg" / "3_2.txt").write_text("<br />  ")
    with pytest.raises(ValueError, match=r"test/neg/3_2\.txt: empty text"):
        data.load_imdb(root)


def test_imdb_missing_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        data.load_task("imdb", source=str(tmp_path / "nowhere"))
    root = _write_acl_imdb(tmp_path / "aclImdb")
    for file in (root / "test" / "pos").iterdir():
        file.unlink()
    (root / "test" / "pos").rmdir()
    with pytest.raises(FileNotFoundError, match=r"aclImdb/test/pos"):
        data.load_imdb(root)


# --- SNLI -----------------------------------------------------------------------------------------------------


def _snli_line(premise, hypothesis, gold_label):
    return json.dumps({"sentence1": premise, "sentence2": hypothesis, "gold_label": gold_label, "pairID": "x"})


def _write_snli(folder, extra_dev_lines=()):
    folder.mkdir(parents=True, exist_ok=True)
    labels = ["entailment", "neutral", "contradiction"]
    for split in ("train", "dev", "test"):
        lines = [_snli_line(f"{split} premise {i}", f"hypothesis {i}", labels[i % 3]) for i in range(6)]
        lines.insert(2, _snli_line("A premise.", "No consensus.", "-"))
        if split == "dev":
            lines += list(extra_dev_lines)
        (folder / f"snli_1.0_{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_snli_folder_drops_pairs_without_gold_label(tmp_path):
    task = data.load_task("snli", source=str(_write_snli(tmp_path / "snli_1.0")))
    assert task.is_pair and task.label_names == ("entailment", "neutral", "contradiction")
    assert [len(split) for split in (task.train, task.dev, task.test)] == [6, 6, 6]
    assert task.train[:3] == [Example(f"train premise {i}", i, f"hypothesis {i}") for i in range(3)]
    assert "No consensus." not in {example.text_pair for example in task.train}


def test_snli_explicit_jsonl_paths(tmp_path):
    folder = _write_snli(tmp_path / "snli")
    paths = {split: folder / f"snli_1.0_{split}.jsonl" for split in ("train", "test")}
    paths["dev"] = folder / "snli_1.0_test.jsonl"
    task = data.load_snli(paths)
    assert task.dev == task.test and task.dev[0].text == "test premise 0"
    with pytest.raises(ValueError, match=r"keys \['dev', 'test', 'train'\]"):
        data.load_snli({"train": paths["train"]})


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", r"snli_1\.0_dev\.jsonl line 8: malformed JSON"),
        (_snli_line("premise", " ", "neutral"), r"snli_1\.0_dev\.jsonl line 8: empty text"),
        (
            json.dumps({"sentence1": "premise", "sentence2": 42, "gold_label": "neutral"}),
            r"snli_1\.0_dev\.jsonl line 8: a text must be a string, got int 42",
        ),
        (
            _snli_line("premise", "hypothesis", "maybe"),
            r"snli_1\.0_dev\.jsonl line 8: label 'maybe' is not one of \['contradiction', 'entailment', 'neutral'\]",
        ),
        (json.dumps({"sentence1": "premise"}), r"snli_1\.0_dev\.jsonl line 8: expected an object"),
    ],
)
def test_snli_bad_lines_name_file_and_line(tmp_path, bad_line, message):
    folder = _write_snli(tmp_path / "snli", extra_dev_lines=[bad_line])
    with pytest.raises(ValueError, match=message):
        data.load_snli(folder)


def test_snli_missing_file_names_the_path(tmp_path):
    folder = _write_snli(tmp_path / "snli")
    (folder / "snli_1.0_test.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"snli_1\.0_test\.jsonl"):
        data.load_snli(folder)


# --- SST-2 ----------------------------------------------------------------------------------------------------


def _write_sst2(folder, dev_rows=None):
    folder.mkdir(parents=True, exist_ok=True)
    train_rows = [(f"train sentence {i} ", str(i % 2)) for i in range(20)]
    dev_rows = dev_rows or [(f"dev sentence {i}", str(i % 2)) for i in range(4)]
    for name, rows in (("train.tsv", train_rows), ("dev.tsv", dev_rows)):
        (folder / name).write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))
    return folder


def test_sst2_folder_uses_dev_tsv_as_test(tmp_path):
    task = data.load_sst2(_write_sst2(tmp_path / "SST-2"), seed=3, dev_fraction=0.2)
    assert (len(task.train), len(task.dev), len(task.test)) == (16, 4, 4)
    assert task.test[1] == Example("dev sentence 1", 1)
    assert _labels(task.dev) == {0: 2, 1: 2}
    assert all(example.text == example.text.strip() for example in task.train)


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (("", "1"), r"dev\.tsv line 3: empty text"),
        (("fine", "2"), r"dev\.tsv line 3: label '2' is not one of \['0', '1'\]"),
    ],
)
def test_sst2_bad_rows_name_file_and_line(tmp_path, bad_row, message):
    folder = _write_sst2(tmp_path / "SST-2", dev_rows=[("ok", "0"), bad_row])
    with pytest.raises(ValueError, match=message):
        data.load_task("sst2", source=folder)


# --- hub sources (datasets.load_dataset patched: no network) ---------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch):
    """Replaces ``datasets.load_dataset``; records the call and serves the splits stored under its arguments."""
    calls, served = [], {}

    def load_dataset(*names):
        calls.append(names)
        return {split: datasets.Dataset.from_dict(columns) for split, columns in served[names].items()}

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls, served


def _sentiment_columns(text_column, count, prefix):
    return {text_column: [f"{prefix} text {i}<br />more" for i in range(count)], "label": [i % 2 for i in range(count)]}


def test_imdb_hub(fake_hub):
    calls, served = fake_hub
    served[("imdb",)] = {
        "train": _sentiment_columns("text", 20, "train"),
        "test": _sentiment_columns("text", 6, "test"),
        "unsupervised": {"text": ["u"], "label": [-1]},
    }
    task = data.load_task("imdb", seed=0)
    assert calls == [("imdb",)]
    assert (len(task.train), len(task.dev), len(task.test)) == (18, 2, 6)
    assert task.test[0] == Example("test text 0 more", 0)


def test_snli_hub_drops_label_minus_one(fake_hub):
    calls, served = fake_hub
    columns = {"premise": ["p0", "p1", "p2", "p3"], "hypothesis": ["h0", "h1", "h2", "h3"], "label": [0, -1, 2, 1]}
    served[("snli",)] = {"train": columns, "validation": columns, "test": columns}
    task = data.load_task("snli")
    assert calls == [("snli",)]
    assert task.dev == [Example("p0", 0, "h0"), Example("p2", 2, "h2"), Example("p3", 1, "h3")]


def test_snli_hub_bad_label_names_split_and_record(fake_hub):
    _, served = fake_hub
    good = {"premise": ["p"], "hypothesis": ["h"], "label": [0]}
    served[("snli",)] = {
        "train": {"premise": ["p", "q"], "hypothesis": ["h", "i"], "label": [0, 7]},
        "validation": good,
        "test": good,
    }
    with pytest.raises(ValueError, match=r"snli \(hub\) split 'train' record 1: label 7 is not one of \[0, 1, 2\]"):
        data.load_snli()


def test_snli_hub_empty_hypothesis_names_split_and_record(fake_hub):
    _, served = fake_hub
    good = {"premise": ["p"], "hypothesis": ["h"], "label": [0]}
    served[("snli",)] = {
        "train": good,
        "validation": good,
        "test": {"premise": ["p", "q"], "hypothesis": ["h", None], "label": [0, 1]},
    }
    with pytest.raises(ValueError, match=r"snli \(hub\) split 'test' record 1: empty text None"):
        data.load_snli()


def test_sst2_hub_uses_validation_as_test(fake_hub):
    calls, served = fake_hub
    served[("glue", "sst2")] = {
        "train": _sentiment_columns("sentence", 10, "train"),
        "validation": _sentiment_columns("sentence", 4, "validation"),
        "test": {"sentence": ["hidden"], "label": [-1]},
    }
    task = data.load_sst2(seed=0, dev_fraction=0.2)
    assert calls == [("glue", "sst2")]
    assert (len(task.train), len(task.dev), len(task.test)) == (8, 2, 4)
    assert {example.text.split()[0] for example in task.test} == {"validation"}


# --- registry and evaluation pool -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "mnli"])
def test_load_task_rejects_unknown_names(name):
    with pytest.raises(ValueError, match=rf"unknown task '{name}'; known tasks: imdb, rotten_tomatoes, snli, sst2"):
        data.load_task(name)


def _numbered_task(size):
    test = [Example(f"text {i}", i % 2) for i in range(size)]
    return TaskData("numbered", ("negative", "positive"), [], [], test, is_pair=False)


def test_test_pool_is_a_seeded_prefix_of_a_shuffle():
    task = _numbered_task(50)
    pool = data.test_pool(task, 10, seed=0)
    assert pool == data.test_pool(task, 10, seed=0)
    assert pool != data.test_pool(task, 10, seed=1)
    assert data.test_pool(task, 20, seed=0)[:10] == pool
    assert len(set(pool)) == 10 and pool != task.test[:10]
    assert sorted(data.test_pool(task, 50, seed=4), key=task.test.index) == task.test


def test_test_pool_too_large_names_both_sizes_and_where_the_split_came_from():
    with pytest.raises(ValueError, match=r"asked for 51 test examples; the test split of numbered has 50"):
        data.test_pool(_numbered_task(50), 51)
    task = _numbered_task(50)
    task.provenance = {"test": "file held_out.csv"}
    with pytest.raises(ValueError, match=r"the test split of numbered \(file held_out.csv\) has 50"):
        data.test_pool(task, 51)


def test_a_dev_pool_is_drawn_from_dev_with_the_same_rule_and_other_splits_are_refused():
    task = _numbered_task(50)
    task.dev = [Example(f"développement “{i}”", i % 2) for i in range(30)]
    pool = data.test_pool(task, 12, seed=3, split="dev")
    assert len(set(pool)) == 12 and set(pool) <= set(task.dev)
    assert pool == data.test_pool(task, 12, seed=3, split="dev")
    with pytest.raises(ValueError, match=r"asked for 31 dev examples; the dev split of numbered has 30"):
        data.test_pool(task, 31, split="dev")
    with pytest.raises(ValueError, match=r"unknown split 'train'; pools come from test or dev"):
        data.test_pool(task, 5, split="train")
