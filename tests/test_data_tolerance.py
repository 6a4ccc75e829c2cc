"""One reader path for every data source: the task loaders (SST-2, Rotten Tomatoes, IMDB, SNLI), the presets
read from a local folder, and plain files all take a UTF-8 byte-order mark, CRLF line endings and blank
lines, and give the same examples as a clean file."""

import bz2
import json

import pytest

from rift_fast.core.records import Example
from rift_fast.data.sources import DatasetOptions, load_data

SENTENCES = [f"a {'good' if k % 2 else 'dull'} film number {k} , with “quotes” and naïve words" for k in range(40)]
LABELS = [k % 2 for k in range(40)]
BOM = "\ufeff"
# How a file's lines may be written: (byte-order mark, line ending, blank lines between records and at the end).
VARIANTS = {
    "clean": ("", "\n", False),
    "bom": (BOM, "\n", False),
    "crlf": ("", "\r\n", False),
    "blank_lines": ("", "\n", True),
    "bom_crlf_blank_lines": (BOM, "\r\n", True),
}


def _lines(lines: list[str], variant: str) -> str:
    """``lines`` joined as the variant writes them."""
    bom, ending, blanks = VARIANTS[variant]
    separator = ending + (ending if blanks else "")
    return bom + separator.join(lines) + ending + (ending * 2 if blanks else "")


def _write(path, lines, variant):
    path.write_bytes(_lines(lines, variant).encode("utf-8"))
    return path


def _sst2_folder(folder, variant):
    folder.mkdir()
    rows = [f"{s}\t{y}" for s, y in zip(SENTENCES, LABELS)]
    _write(folder / "train.tsv", ["sentence\tlabel", *rows[:30]], variant)
    _write(folder / "dev.tsv", ["sentence\tlabel", *rows[30:]], variant)
    return folder


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_sst2_task_from_a_glue_folder_takes_what_the_file_reader_takes(tmp_path, variant):
    """The issue's instance (a BOM) and its kin: the task loader reads as ``--dataset FILE`` does."""
    folder = _sst2_folder(tmp_path / "glue", variant)
    task = load_data(DatasetOptions("sst2", data_source=str(folder)), seed=0)
    assert task.test == [Example(s, y) for s, y in zip(SENTENCES[30:], LABELS[30:])]
    assert len(task.train) + len(task.dev) == 30
    as_file = load_data(
        DatasetOptions(str(folder / "train.tsv"), text_column="sentence", test_file=str(folder / "dev.tsv"))
    )
    assert [e.text for e in as_file.test] == [e.text for e in task.test]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("compressed", [False, True])
def test_the_rotten_tomatoes_task_from_a_csv(tmp_path, variant, compressed):
    rows = [f'{"fresh" if y else "rotten"},"{s}",m{k}' for k, (s, y) in enumerate(zip(SENTENCES, LABELS))]
    text = _lines(["category,text,movie_name", *rows, 'plot,"a plot line",m'], variant)
    path = tmp_path / ("corpus.csv.bz2" if compressed else "corpus.csv")
    path.write_bytes(bz2.compress(text.encode()) if compressed else text.encode())
    task = load_data(DatasetOptions("rotten_tomatoes", data_source=str(path)), seed=0)
    examples = sorted(task.train + task.dev + task.test, key=lambda e: SENTENCES.index(e.text))
    assert examples == [Example(s, y) for s, y in zip(SENTENCES, LABELS)]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_snli_task_from_jsonl_files(tmp_path, variant):
    folder = tmp_path / "snli"
    folder.mkdir()
    names = ("entailment", "neutral", "contradiction")
    records = [
        json.dumps({"sentence1": s, "sentence2": f"h {k}", "gold_label": names[k % 3]}) for k, s in enumerate(SENTENCES)
    ]
    for split in ("train", "dev", "test"):
        _write(folder / f"snli_1.0_{split}.jsonl", records, variant)
    task = load_data(DatasetOptions("snli", data_source=str(folder)))
    assert task.test[:2] == [Example(SENTENCES[0], 0, "h 0"), Example(SENTENCES[1], 1, "h 1")]


def test_the_imdb_task_from_text_files_with_a_bom_and_crlf(tmp_path):
    for split in ("train", "test"):
        for polarity in ("neg", "pos"):
            folder = tmp_path / "aclImdb" / split / polarity
            folder.mkdir(parents=True)
            for k in range(12):
                text = f"{BOM}review {k} of {polarity}\r\nsecond line<br />end\r\n"
                (folder / f"{k}_1.txt").write_bytes(text.encode())
    task = load_data(DatasetOptions("imdb", data_source=str(tmp_path / "aclImdb")), seed=0)
    assert all(not e.text.startswith(BOM) for e in task.train + task.test)
    assert task.test[0] == Example("review 0 of neg\nsecond line end", 0)  # universal newlines


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_preset_from_a_local_folder_of_split_files(tmp_path, variant, suffix):
    """MR's splits as local files: read by the file reader, as ``--dataset FILE`` reads them."""
    folder = tmp_path / "mr"
    folder.mkdir()
    names = ("negative", "positive")
    for split, part in (("train", slice(0, 24)), ("validation", slice(24, 32)), ("test", slice(32, 40))):
        pairs = list(zip(SENTENCES[part], LABELS[part]))
        if suffix == ".jsonl":
            lines = [json.dumps({"text": s, "label": names[y]}) for s, y in pairs]
        else:
            separator = "," if suffix == ".csv" else "\t"
            quote = '"' if suffix == ".csv" else ""
            lines = [f"text{separator}label"] + [f"{quote}{s}{quote}{separator}{names[y]}" for s, y in pairs]
        _write(folder / f"{split}{suffix}", lines, variant)
    task = load_data(DatasetOptions("mr", data_source=str(folder)), seed=0)
    assert task.test == [Example(s, y) for s, y in zip(SENTENCES[32:], LABELS[32:])]
    assert (len(task.train), len(task.dev)) == (24, 8)
    assert task.provenance["test"] == f"file {folder / f'test{suffix}'}"


def test_an_nli_preset_from_tsv_files_named_after_its_splits(tmp_path):
    folder = tmp_path / "glue_mnli"
    folder.mkdir()
    rows = [f"premise {k}\thypothesis {k}\t{k % 3}" for k in range(30)]
    _write(folder / "train.tsv", ["premise\thypothesis\tlabel", *rows], "bom_crlf_blank_lines")
    _write(folder / "validation_matched.tsv", ["premise\thypothesis\tlabel", *rows[:6]], "bom")
    task = load_data(DatasetOptions("mnli", data_source=str(folder)), seed=0)
    assert task.test[1] == Example("premise 1", 1, "hypothesis 1") and len(task.test) == 6
    with pytest.raises(ValueError, match=r"no file for the split\(s\) \['validation_mismatched'\]"):
        load_data(DatasetOptions("mnli_mismatched", data_source=str(folder)), seed=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_plain_files_take_every_variant_alike(tmp_path, variant, suffix):
    if suffix == ".jsonl":
        lines = [json.dumps({"text": s, "label": y}) for s, y in zip(SENTENCES, LABELS)]
    else:
        separator = "," if suffix == ".csv" else "\t"
        quote = '"' if suffix == ".csv" else ""
        lines = [f"text{separator}label"] + [f"{quote}{s}{quote}{separator}{y}" for s, y in zip(SENTENCES, LABELS)]
    path = _write(tmp_path / f"train{suffix}", lines, variant)
    task = load_data(DatasetOptions(str(path)), seed=0)
    examples = sorted(task.train + task.dev + task.test, key=lambda e: SENTENCES.index(e.text))
    assert examples == [Example(s, y) for s, y in zip(SENTENCES, LABELS)]


def test_a_bad_record_is_still_named_by_its_file_and_line(tmp_path):
    folder = tmp_path / "glue"
    folder.mkdir()
    _write(folder / "train.tsv", ["sentence\tlabel", "fine\t1", "", "bad\t7"], "bom_crlf_blank_lines")
    _write(folder / "dev.tsv", ["sentence\tlabel", "fine\t0"], "clean")
    with pytest.raises(ValueError, match=f"{folder / 'train.tsv'} line 7"):
        load_data(DatasetOptions("sst2", data_source=str(folder)))
    _write(folder / "train.tsv", ["\ufeffsentence\tlabels", "fine\t1"], "clean")
    with pytest.raises(ValueError, match=r"line 1: header \['sentence', 'labels'\] lacks column\(s\) \['label'\]"):
        load_data(DatasetOptions("sst2", data_source=str(folder)))
