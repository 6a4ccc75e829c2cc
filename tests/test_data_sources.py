"""Any dataset (rift_fast.data.sources): local CSV / TSV / JSONL files, Hugging Face datasets read by the
real ``datasets`` loaders from local folders, presets, label mapping, carved splits, derived max length,
and bad input. No hub access: hub calls are either local folders or a patched ``load_dataset`` that
checks what a preset asks the hub for."""

import csv
import json
import logging
import math
from collections import Counter

import datasets
import numpy as np
import pytest
from tiny_tokenizers import FAMILIES, tokenizer_of_family

from rift_fast.core.digests import file_digest
from rift_fast.core.records import Example
from rift_fast.data import sources as data_sources
from rift_fast.data.sources import DATASET_PRESETS, DatasetOptions, derived_max_length, load_data
from rift_fast.data.tasks import NLI_LABELS, test_pool
from rift_fast.models import LabelMismatchError, load_sequence_classifier, map_labels

# Texts users bring: accents, Cyrillic, Japanese, curly quotes, apostrophes, digits, dashes.
TEXTS = [
    "Un film magnifique, très “réussi” — 10/10",
    "Ужасный фильм, 2 часа впустую",
    "映画はとても良かった 5つ星",
    "Boring; I’d give it 3 stars at most",
    "Naïve plot but a great 2nd act",
    "The ‘twist’ was obvious after 20 minutes",
]
SENTIMENT = ("negative", "positive")


def _sentiment_rows(count, offset=0):
    """(text, label name) rows; labels alternate positive / negative."""
    return [(f"{TEXTS[i % len(TEXTS)]} #{i + offset}", SENTIMENT[(i + 1) % 2]) for i in range(count)]


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_tsv(path, header, rows):
    """GLUE-style TSV: tab-separated, no quoting (a quote is part of the text)."""
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in [header, *rows]), encoding="utf-8")
    return path


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


# --- local files ------------------------------------------------------------------------------------------------


def test_csv_with_named_columns_carves_dev_and_test_from_train_and_says_so(tmp_path, caplog):
    path = _write_csv(
        tmp_path / "reviews.csv",
        ["id", "review", "sentiment"],
        [(i, t, lab) for i, (t, lab) in enumerate(_sentiment_rows(40))],
    )
    options = DatasetOptions(str(path), text_column="review", label_column="sentiment")
    with caplog.at_level(logging.INFO, logger="rift_fast.data.sources"):
        task = load_data(options, seed=0)
    assert task.label_names == SENTIMENT and not task.is_pair  # names of train, sorted
    assert (len(task.train), len(task.dev), len(task.test)) == (32, 4, 4)
    assert Counter(e.label for e in task.dev) == {0: 2, 1: 2} and Counter(e.label for e in task.test) == {0: 2, 1: 2}
    everything = {e.text for e in task.train + task.dev + task.test}
    assert len(everything) == 40 and "Un film magnifique, très “réussi” — 10/10 #0" in everything
    assert task.train[0].label == SENTIMENT.index(
        next(lab for t, lab in _sentiment_rows(40) if t == task.train[0].text)
    )
    carved = "carved from train: 4 examples (10%), stratified, seed 0"
    assert task.provenance == {"train": f"file {path}", "test": carved, "dev": carved}
    assert (
        f"the dev split is missing; {carved}" in caplog.text and f"the test split is missing; {carved}" in caplog.text
    )
    assert carved in task.describe()
    assert task.identity["files"] == {str(path): file_digest(path)}
    assert task.identity["columns"] == {"text": "review", "text_pair": None, "label": "sentiment"}
    assert task.identity["splits"] == task.provenance
    again, other = load_data(options, seed=0), load_data(options, seed=1)
    assert again.test == task.test and again.train == task.train and other.test != task.test


def test_tsv_folder_with_validation_file_and_sentence_pairs_in_id_form(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    header = ["premise", "hypothesis", "label"]
    train = [(f"A “quoted” premise {i} — ünïcode", f"hypothesis №{i}", str(i % 3)) for i in range(30)]
    _write_tsv(folder / "train.tsv", header, train)
    _write_tsv(folder / "validation.tsv", header, [("p ‘x’", "h 1", "2"), ("p 2", 'h "2', "0")])
    options = DatasetOptions(str(folder), text_column="premise", text_pair_column="hypothesis", label_names=NLI_LABELS)
    task = load_data(options, seed=0)
    assert task.is_pair and task.label_names == NLI_LABELS
    assert task.dev == [Example("p ‘x’", 2, "h 1"), Example("p 2", 0, 'h "2')]  # TSV: quotes are text
    assert (len(task.train), len(task.test)) == (27, 3)
    assert task.provenance["dev"] == f"file {folder / 'validation.tsv'}"
    assert set(task.identity["files"]) == {str(folder / "train.tsv"), str(folder / "validation.tsv")}


def test_jsonl_files_with_names_in_another_order_than_the_label_set(tmp_path):
    rows = _sentiment_rows(20)
    train = _write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": lab, "extra": 1} for t, lab in rows])
    test = _write_jsonl(
        tmp_path / "test.jsonl",
        [{"text": "Ça m’a plu", "label": "positive"}, {"text": "Nope", "label": "negative"}] * 2,
    )
    options = DatasetOptions(str(train), test_file=str(test), label_names=("positive", "negative"))
    task = load_data(options, seed=0)
    assert task.label_names == ("positive", "negative")
    assert task.test == [Example("Ça m’a plu", 0), Example("Nope", 1)] * 2
    assert "test" not in task.provenance or task.provenance["test"] == f"file {test}"
    assert len(task.dev) == 2  # carved: 10% of 20


def test_ids_without_names_take_generic_names_that_map_by_id(tmp_path):
    rows = [(t, str(i % 3)) for i, (t, _) in enumerate(_sentiment_rows(30))]
    task = load_data(DatasetOptions(str(_write_csv(tmp_path / "topics.csv", ["text", "label"], rows))))
    assert task.label_names == ("LABEL_0", "LABEL_1", "LABEL_2")
    mapping = map_labels(("World", "Sports", "Business"), task.label_names)  # a model with real names
    assert mapping.rule == "ids" and mapping.is_identity


def test_multi_line_csv_record_is_reported_at_its_first_line(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text(
        'text,label\n"first line\nsecond line",positive\n"ok",negative\n"bad one",neutral\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"multi\.csv line 5: label 'neutral' is not in the label set"):
        load_data(DatasetOptions(str(path), label_names=SENTIMENT))


# --- Hugging Face datasets, read by the real loaders from local folders ------------------------------------------


@pytest.fixture(autouse=True)
def datasets_cache_in_tmp(tmp_path, monkeypatch):
    """``datasets`` caches what it prepares from local data files under the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def _class_label_dataset(labels, names, prefix, pair=False):
    features = {"premise": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))}
    columns = {
        "premise": [f"{prefix} “premise” {i} — {TEXTS[i % len(TEXTS)]}" for i in range(len(labels))],
        "label": labels,
    }
    if pair:
        features["hypothesis"] = datasets.Value("string")
        columns["hypothesis"] = [f"hypothesis {i}" for i in range(len(labels))]
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _save_mnli_copy(folder):
    """A save_to_disk copy in GLUE's MNLI layout: -1 (no gold label) in train and in the hidden test splits."""
    splits = {
        "train": [i % 3 for i in range(60)] + [-1, -1],
        "validation_matched": [0, 1, 2, 0, 1, 2],
        "validation_mismatched": [2, 2, 1, 1, 0, 0],
        "test_matched": [-1] * 3,
    }
    dataset = datasets.DatasetDict(
        {name: _class_label_dataset(labels, NLI_LABELS, name, pair=True) for name, labels in splits.items()}
    )
    dataset.save_to_disk(str(folder))
    return folder


def test_mnli_preset_from_a_local_copy_uses_matched_or_mismatched_dev_as_test(tmp_path, caplog):
    folder = _save_mnli_copy(tmp_path / "glue_mnli")
    with caplog.at_level(logging.INFO, logger="rift_fast.data.sources"):
        matched = load_data(DatasetOptions("mnli", data_source=str(folder)), seed=0)
    mismatched = load_data(DatasetOptions("mnli_mismatched", data_source=str(folder)), seed=0)
    assert matched.is_pair and matched.label_names == NLI_LABELS
    assert [e.label for e in matched.test] == [0, 1, 2, 0, 1, 2] and matched.test[0].text_pair == "hypothesis 0"
    assert [e.label for e in mismatched.test] == [2, 2, 1, 1, 0, 0]
    assert (len(matched.train), len(matched.dev)) == (54, 6)  # 60 labelled; dev carved: 10%
    assert matched.train == mismatched.train and matched.dev == mismatched.dev
    assert "dropped 2 records without a gold label" in caplog.text
    assert matched.provenance["test"].endswith("split 'validation_matched'")
    assert (
        matched.identity["source"] == "preset mnli" and str(folder / "dataset_dict.json") in matched.identity["files"]
    )
    assert matched.pool_rule.size == 1000


def test_hf_dataset_by_name_and_config_through_load_dataset(tmp_path):
    """``hf:NAME`` with ``--dataset-config`` goes through ``datasets.load_dataset(NAME, CONFIG)``: here a
    local folder whose README declares two configs (as hub datasets do)."""
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    _write_csv(
        folder / "small.csv",
        ["sentence", "topic"],
        [(t, ["World", "Sports"][i % 2]) for i, (t, _) in enumerate(_sentiment_rows(20))],
    )
    _write_csv(
        folder / "large.csv",
        ["sentence", "topic"],
        [(t, ["World", "Sports"][i % 2]) for i, (t, _) in enumerate(_sentiment_rows(40))],
    )
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: small\n  data_files:\n  - split: train\n    path: small.csv\n"
        "- config_name: large\n  data_files:\n  - split: train\n    path: large.csv\n---\n"
    )
    options = DatasetOptions(f"hf:{folder}", dataset_config="large", text_column="sentence", label_column="topic")
    task = load_data(options, seed=0)
    assert task.label_names == ("Sports", "World")
    assert len(task.train) + len(task.dev) + len(task.test) == 40
    assert task.identity["config"] == "large" and task.identity["source"] == f"hf:{folder}"
    assert (
        len(
            load_data(
                DatasetOptions(f"hf:{folder}", dataset_config="small", text_column="sentence", label_column="topic")
            ).train
        )
        == 16
    )
    with pytest.raises(ValueError, match="'nope' not found"):
        load_data(DatasetOptions(f"hf:{folder}", dataset_config="nope"))


def test_mr_preset_reads_a_local_folder_of_split_files_with_names_in_another_order(tmp_path):
    folder = tmp_path / "rotten_tomatoes"
    folder.mkdir()
    for split, count in (("train", 20), ("validation", 4), ("test", 6)):
        _write_csv(folder / f"{split}.csv", ["text", "label"], [(t, lab) for t, lab in _sentiment_rows(count)])
    task = load_data(DatasetOptions("mr", data_source=str(folder)), seed=0)
    assert task.label_names == SENTIMENT and [len(task.train), len(task.dev), len(task.test)] == [20, 4, 6]
    assert task.test[0] == Example(f"{TEXTS[0]} #0", 1)  # "positive" is id 1 of the preset, first in the file


@pytest.fixture
def recorded_hub(monkeypatch):
    """``datasets.load_dataset`` replaced by one that records (name, config) and serves small splits."""
    calls = []

    def load_dataset(name, config=None):
        calls.append((name, config))
        presets = [p for p in DATASET_PRESETS.values() if (p.hub, p.config) == (name, config)]
        preset = presets[0]
        splits = {s for p in presets for s in (p.splits.train, p.splits.dev, p.splits.test)} - {None}
        count = len(preset.label_names)
        columns = [c for c in (preset.text_column, preset.pair_column) if c]
        return datasets.DatasetDict(
            {
                split: datasets.Dataset.from_dict(
                    {
                        **{c: [f"{split} {c} {i} ‘ü’" for i in range(20 * count)] for c in columns},
                        "label": [i % count for i in range(20 * count)],
                    },
                    features=datasets.Features(
                        {
                            **{c: datasets.Value("string") for c in columns},
                            "label": datasets.ClassLabel(num_classes=count),
                        }
                    ),
                )
                for split in splits
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("name", sorted(DATASET_PRESETS))
def test_each_preset_asks_the_hub_for_its_dataset_and_maps_its_columns(recorded_hub, name):
    preset = DATASET_PRESETS[name]
    task = load_data(DatasetOptions(name), seed=0)
    assert recorded_hub == [(preset.hub, preset.config)]
    assert task.label_names == preset.label_names and task.is_pair == (preset.pair_column is not None)
    assert task.test[0].text.startswith(preset.splits.test) and task.pool_rule == preset.pool_rule
    assert ("carved" in task.provenance["dev"]) == (preset.splits.dev is None)
    assert preset.reference


def test_unreachable_hub_says_what_to_do(monkeypatch):
    def offline(name, config=None):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(OSError, match="could not load Hugging Face dataset 'fancyzhx/ag_news'.*--data-source"):
        load_data(DatasetOptions("ag_news"))


# --- test pool rule -----------------------------------------------------------------------------------------------


def test_a_preset_pool_is_stratified_by_label_and_seeded(tmp_path):
    folder = _save_mnli_copy(tmp_path / "glue_mnli")
    task = load_data(DatasetOptions("mnli", data_source=str(folder)), seed=0)
    task.test = task.train  # 54 examples, 18 per label
    pool = test_pool(task, 9, seed=0)
    assert Counter(e.label for e in pool) == {0: 3, 1: 3, 2: 3}
    assert pool == test_pool(task, 9, seed=0) and pool != test_pool(task, 9, seed=1)
    assert sorted(test_pool(task, 54, seed=0), key=task.test.index) == task.test


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file_name, content, options, message",
    [
        (
            "a.csv",
            "text,label\nhi,positive\n",
            {"text_column": "review"},
            r"a\.csv line 1: no column 'review'; the columns are 'text', 'label'",
        ),
        (
            "a.jsonl",
            '{"txt": "hi", "label": 1}\n',
            {},
            r"a\.jsonl line 1: no column 'text'; the columns are 'txt', 'label'",
        ),
        ("a.csv", "", {}, r"a\.csv: empty file"),
        ("a.csv", "text,label\n", {}, r"a\.csv: no records \(the file holds a header only\)"),
        ("a.jsonl", "\n\n", {}, r"a\.jsonl: no records"),
        (
            "a.csv",
            "text,label\nhi,positive\nho,1\n",
            {},
            r"mixed label types.*'positive' at .*a\.csv line 2.*1 at .*a\.csv line 3",
        ),
        (
            "a.csv",
            "text,label\nhi,positive\nho,neutral\n",
            {"label_names": SENTIMENT},
            r"a\.csv line 3: label 'neutral' is not in the label set: \['negative', 'positive'\]",
        ),
        (
            "a.csv",
            "text,label\nhi,0\nho,2\n",
            {"label_names": SENTIMENT},
            r"a\.csv line 3: label 2 is not in the label set: ids 0\.\.1",
        ),
        ("a.csv", "text,label\nhi,0\n  ,1\n", {}, r"a\.csv line 3: empty text"),
        ("a.csv", "text,label\nhi,0,extra\n", {}, r"a\.csv line 2: 3 fields, the header has 2"),
        (
            "a.jsonl",
            '{"text": "hi", "label": 1.5}\n',
            {},
            r"a\.jsonl line 1: label 1\.5 is neither a name nor an integer id",
        ),
        ("a.txt", "hi\n", {}, r"a\.txt: unknown file type '\.txt'"),
    ],
)
def test_bad_files_are_refused_with_file_and_line(tmp_path, file_name, content, options, message):
    path = tmp_path / file_name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_data(DatasetOptions(str(path), **options))


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncafé crème,positive\n".encode("latin-1"))
    message = r"latin1\.csv: not UTF-8 text \(invalid continuation byte\); save it as UTF-8"
    with pytest.raises(ValueError, match=message):
        load_data(DatasetOptions(str(path)))


def test_a_label_of_dev_outside_the_training_labels_names_the_file_and_line(tmp_path):
    train = _write_csv(tmp_path / "train.csv", ["text", "label"], _sentiment_rows(20))
    dev = _write_csv(tmp_path / "dev.csv", ["text", "label"], [("fine", "positive"), ("meh", "mixed")])
    with pytest.raises(ValueError, match=r"dev\.csv line 3: label 'mixed' is not in the label set"):
        load_data(DatasetOptions(str(train), dev_file=str(dev)))


def test_an_unknown_column_of_an_hf_dataset_lists_its_columns(tmp_path):
    folder = _save_mnli_copy(tmp_path / "glue_mnli")
    with pytest.raises(
        ValueError, match=r"split 'train': no column 'sentence'; the columns are 'premise', 'label', 'hypothesis'"
    ):
        load_data(DatasetOptions(str(folder), text_column="sentence"))


def test_options_that_do_not_apply_are_refused(tmp_path):
    train = _write_csv(tmp_path / "train.csv", ["text", "label"], _sentiment_rows(20))
    with pytest.raises(ValueError, match="--text-column do not apply to the task imdb"):
        load_data(DatasetOptions("imdb", text_column="review"))
    with pytest.raises(ValueError, match="--dataset-config do not apply to local files"):
        load_data(DatasetOptions(str(train), dataset_config="mnli"))
    with pytest.raises(ValueError, match="--dev-file do not apply to a Hugging Face dataset"):
        load_data(DatasetOptions("hf:ag_news", dev_file=str(train)))
    with pytest.raises(ValueError, match="--data-source goes with a task or a preset"):
        load_data(DatasetOptions(str(train), data_source="x"))


def test_a_split_too_small_to_carve_is_refused_naming_the_split(tmp_path):
    rows = [("good", "positive")] * 5 + [("bad", "negative")]
    path = _write_csv(tmp_path / "tiny.csv", ["text", "label"], rows)
    with pytest.raises(
        ValueError, match=r"the test split is missing and cannot be carved from train: .*every label needs 2"
    ):
        load_data(DatasetOptions(str(path)))


def _classifier_folder(folder, id2label):
    from transformers import BertConfig, BertForSequenceClassification

    from rift_fast.models import load_tokenizer

    load_tokenizer("embedded").save_pretrained(folder)
    config = BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    config.num_labels, config.id2label = len(id2label), dict(enumerate(id2label))
    config.label2id = {name: index for index, name in enumerate(id2label)}
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_a_model_whose_label_count_differs_from_the_dataset_is_refused_and_names_are_mapped(tmp_path):
    rows = [(t, ["World", "Sports", "Business"][i % 3]) for i, (t, _) in enumerate(_sentiment_rows(30))]
    task = load_data(DatasetOptions(str(_write_csv(tmp_path / "topics.csv", ["text", "label"], rows))))
    two_class = _classifier_folder(tmp_path / "two", ["negative", "positive"])
    with pytest.raises(
        LabelMismatchError, match=r"label counts differ: the model has 2 labels .* the task has 3 labels"
    ):
        load_sequence_classifier(str(two_class), task.label_names)
    reordered = _classifier_folder(tmp_path / "three", ["World", "Business", "Sports"])
    _, _, mapping = load_sequence_classifier(str(reordered), task.label_names)
    assert task.label_names == ("Business", "Sports", "World") and mapping.model_index == (1, 2, 0)


# --- max length derived from the data ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_derived_max_length_is_a_high_percentile_capped_by_the_model(tmp_path, family):
    tokenizer = tokenizer_of_family(family, ["the", "film", "was", "good", "bad"], tmp_path)
    examples = [Example(" ".join(["the film was good"] * (1 + i % 10)) + " “née” 42", i % 2) for i in range(100)]
    lengths = [len(tokenizer(e.text)["input_ids"]) for e in examples]
    expected = math.ceil(float(np.percentile(lengths, data_sources.LENGTH_PERCENTILE)))
    length, how = derived_max_length(tokenizer, examples, usable=10_000, seed=0)
    assert length == expected and max(lengths) >= length > min(lengths)
    assert "95th percentile of the token lengths of 100 training examples" in how
    assert derived_max_length(tokenizer, examples, usable=12)[0] == 12
    pairs = [Example("the film", 0, "was good " * (1 + i % 4)) for i in range(20)]
    pair_lengths = [len(tokenizer(e.text, e.text_pair)["input_ids"]) for e in pairs]
    assert derived_max_length(tokenizer, pairs, usable=10_000)[0] == math.ceil(float(np.percentile(pair_lengths, 95)))


def test_a_saved_split_without_gold_labels_is_carved_and_a_single_saved_dataset_is_train(tmp_path, caplog):
    names = ("World", "Sports")
    dataset = datasets.DatasetDict(
        train=_class_label_dataset([i % 2 for i in range(40)], names, "train"),
        test=_class_label_dataset([-1] * 5, names, "test"),
    )
    dataset.save_to_disk(str(tmp_path / "topics"))
    with caplog.at_level(logging.INFO, logger="rift_fast.data.sources"):
        task = load_data(DatasetOptions(str(tmp_path / "topics"), text_column="premise"), seed=0)
    assert task.label_names == names and (len(task.train), len(task.dev), len(task.test)) == (32, 4, 4)
    assert "the test split is empty (no gold labels); carved from train" in caplog.text
    assert "dropped 5 records without a gold label" in caplog.text
    dataset["train"].save_to_disk(str(tmp_path / "single"))
    single = load_data(DatasetOptions(str(tmp_path / "single"), text_column="premise"), seed=0)
    assert single.train == task.train and single.test == task.test  # the same carving of the same train
    with pytest.raises(ValueError, match=r"no 'train' split; the splits are 'test'"):
        datasets.DatasetDict(test=dataset["train"]).save_to_disk(str(tmp_path / "no_train"))
        load_data(DatasetOptions(str(tmp_path / "no_train"), text_column="premise"))
