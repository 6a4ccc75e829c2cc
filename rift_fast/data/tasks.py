"""Task data: the embedded Rotten Tomatoes default, IMDB, SNLI and SST-2, validated record by record.

Every loader returns a :class:`TaskData` with train / dev / test lists of :class:`Example`. Hub
sources go through ``datasets.load_dataset``; local sources are the official file layouts. Bad
records raise ``ValueError`` naming the file (or hub split) and the line (or record index). Any other
dataset (a Hugging Face dataset by name, local CSV / TSV / JSONL files, the AG News, MNLI, QNLI, Yelp
and MR presets) loads through :mod:`rift_fast.data.sources` into the same :class:`TaskData`.
"""

from __future__ import annotations

import bz2
import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from itertools import repeat
from pathlib import Path

import torch
from sklearn.model_selection import train_test_split

from rift_fast.core.records import Example, TaskData
from rift_fast.core.resources import rotten_tomatoes_csv

PathLike = str | os.PathLike

SENTIMENT_LABELS = ("negative", "positive")
NLI_LABELS = ("entailment", "neutral", "contradiction")
IMDB_HUB = "imdb"
SNLI_HUB = "snli"
SST2_HUB = "sst2"
ROTTEN_TOMATOES_CATEGORIES = {"rotten": 0, "fresh": 1}
ROTTEN_TOMATOES_DROPPED = "plot"
SNLI_SPLIT_FILES = {"train": "snli_1.0_train.jsonl", "dev": "snli_1.0_dev.jsonl", "test": "snli_1.0_test.jsonl"}
SNLI_NO_GOLD_LABEL = "-"
EVALUATED_SPLITS = ("test", "dev")  # the splits an attack pool may come from


def checked_text(text: object, where: str) -> str:
    """``text`` stripped; ``ValueError`` when it is missing (None), not a string (naming its type) or
    empty after stripping."""
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError(f"{where}: empty text {text!r}")
    if not isinstance(text, str):
        raise ValueError(f"{where}: a text must be a string, got {type(text).__name__} {text!r}")
    return text.strip()


def _checked_label(value: object, allowed: Mapping, where: str) -> int:
    """The label id ``allowed[value]``; ``ValueError`` naming the value and the allowed set otherwise."""
    if value not in allowed:
        raise ValueError(f"{where}: label {value!r} is not one of {sorted(allowed, key=str)}")
    return allowed[value]


def existing_path(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return path


def stratified_split(examples: list[Example], held_out: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(rest, held_out examples), stratified by label and deterministic for ``seed``. Raises ValueError
    when ``held_out`` is not in 1..len-1 or cannot give every label its share (a label with one example,
    fewer held-out examples than labels)."""
    if not 0 < held_out < len(examples):
        raise ValueError(f"cannot hold out {held_out} of {len(examples)} examples")
    counts = Counter(example.label for example in examples)
    if min(counts.values()) < 2 or not len(counts) <= held_out <= len(examples) - len(counts):
        raise ValueError(
            f"cannot hold out {held_out} of {len(examples)} examples stratified by label: every label needs "
            f"2 examples or more and a share on both sides (counts per label id: {dict(sorted(counts.items()))})"
        )
    rest, held = train_test_split(
        examples, test_size=held_out, random_state=seed, stratify=[example.label for example in examples]
    )
    return rest, held


def stratified_sample(examples: list[Example], size: int | None, seed: int) -> list[Example]:
    """``size`` of ``examples``, stratified by label and deterministic for ``seed`` (all of them when
    ``size`` is None or not smaller than their number).

    Args:
        examples: the examples to sample from (a training split).
        size: how many to keep; None keeps them all.
        seed: the seed of the draw.

    Returns:
        The kept examples.
    """
    if size is None or size >= len(examples):
        return examples
    kept, _ = train_test_split(examples, train_size=size, random_state=seed, stratify=[e.label for e in examples])
    return kept


def _carve_dev(train: list[Example], dev_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, dev) with ``dev_fraction`` of ``train`` held out as dev."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    return stratified_split(train, round(len(train) * dev_fraction), seed)


def _hub_examples(
    split,
    where: str,
    text_column: str,
    label_column: str,
    num_labels: int,
    pair_column: str | None = None,
    skipped_label: int | None = None,
    clean: Callable[[str], str] | None = None,
) -> list[Example]:
    """Validated examples of one ``datasets`` split (texts passed through ``clean`` first); rows labelled
    ``skipped_label`` are dropped."""
    allowed = {label: label for label in range(num_labels)}
    pairs = split[pair_column] if pair_column else repeat(None)
    examples = []
    for index, (text, text_pair, label) in enumerate(zip(split[text_column], pairs, split[label_column])):
        if label == skipped_label:
            continue
        record = f"{where} record {index}"
        if clean is not None and isinstance(text, str):
            text = clean(text)
        text_pair = checked_text(text_pair, record) if pair_column else None
        examples.append(Example(checked_text(text, record), _checked_label(label, allowed, record), text_pair))
    return examples


def load_rotten_tomatoes(
    seed: int = 0, dev_fraction: float = 0.1, test_fraction: float = 0.1, source: PathLike | None = None
) -> TaskData:
    """Rotten Tomatoes snippets (fresh = positive, rotten = negative), split stratified with ``seed``.

    ``source`` is a CSV (``.csv`` or ``.csv.bz2``) with columns ``category`` and ``text``; by default
    the embedded corpus. ``plot`` rows are dropped, texts stripped, exact duplicate texts kept once.
    """
    if not (0 < dev_fraction and 0 < test_fraction and dev_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < dev_fraction, 0 < test_fraction, sum < 1; got {dev_fraction}, {test_fraction}")
    path = existing_path(source) if source is not None else rotten_tomatoes_csv()
    examples, seen_texts = [], set()
    for where, row in header_records(path, ",", ("category", "text")):
        category = row["category"].strip()
        if category == ROTTEN_TOMATOES_DROPPED:
            continue
        label = _checked_label(category, ROTTEN_TOMATOES_CATEGORIES, where)
        text = checked_text(row["text"], where)
        if text not in seen_texts:
            seen_texts.add(text)
            examples.append(Example(text, label))
    rest, test = stratified_split(examples, round(len(examples) * test_fraction), seed)
    train, dev = stratified_split(rest, round(len(examples) * dev_fraction), seed)
    return TaskData("rotten_tomatoes", SENTIMENT_LABELS, train, dev, test, is_pair=False)


def _clean_imdb(text: str) -> str:
    return text.replace("<br />", " ")


def _read_imdb_split(folder: Path) -> list[Example]:
    """Examples of ``folder/neg/*.txt`` (0) and ``folder/pos/*.txt`` (1), in file-name order."""
    examples = []
    for label, polarity in enumerate(("neg", "pos")):
        for file in sorted(existing_path(folder / polarity).glob("*.txt")):
            text = file.read_text(encoding="utf-8-sig")  # a byte-order mark is not text
            examples.append(Example(checked_text(_clean_imdb(text), str(file)), label))
    return examples


def load_imdb(source: PathLike = IMDB_HUB, seed: int = 0, dev_fraction: float = 0.1) -> TaskData:
    """IMDB reviews from the hub (``"imdb"``) or an ``aclImdb/`` folder; dev is carved from train."""
    if source == IMDB_HUB:
        import datasets

        hub = datasets.load_dataset(IMDB_HUB)
        train, test = (
            _hub_examples(hub[split], f"{IMDB_HUB} (hub) split {split!r}", "text", "label", 2, clean=_clean_imdb)
            for split in ("train", "test")
        )
    else:
        root = existing_path(source)
        train, test = _read_imdb_split(root / "train"), _read_imdb_split(root / "test")
    train, dev = _carve_dev(train, dev_fraction, seed)
    return TaskData("imdb", SENTIMENT_LABELS, train, dev, test, is_pair=False)


def json_records(path: Path) -> Iterator[tuple[str, dict]]:
    """(``"<path> line <n>"``, object) of every non-blank line of a JSON-lines file (UTF-8, a BOM
    allowed). Raises ValueError naming the file and line for malformed JSON or a line that is not an object."""
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path} line {line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: malformed JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def _read_snli_jsonl(path: PathLike) -> list[Example]:
    """Examples of an official SNLI jsonl file; pairs without a gold label (``"-"``) are dropped."""
    allowed = {name: index for index, name in enumerate(NLI_LABELS)}
    examples = []
    for where, record in json_records(existing_path(path)):
        if not {"sentence1", "sentence2", "gold_label"} <= record.keys():
            raise ValueError(f"{where}: expected an object with sentence1, sentence2 and gold_label")
        if record["gold_label"] == SNLI_NO_GOLD_LABEL:
            continue
        label = _checked_label(record["gold_label"], allowed, where)
        examples.append(
            Example(checked_text(record["sentence1"], where), label, checked_text(record["sentence2"], where))
        )
    return examples


def load_snli(source: PathLike | Mapping[str, PathLike] = SNLI_HUB) -> TaskData:
    """SNLI from the hub (``"snli"``), a folder of ``snli_1.0_{train,dev,test}.jsonl``, or a mapping
    ``{"train": path, "dev": path, "test": path}`` of jsonl files. Official splits; no seed needed."""
    if isinstance(source, Mapping):
        if set(source) != set(SNLI_SPLIT_FILES):
            raise ValueError(f"SNLI jsonl paths need exactly the keys {sorted(SNLI_SPLIT_FILES)}, got {sorted(source)}")
        train, dev, test = (_read_snli_jsonl(source[split]) for split in ("train", "dev", "test"))
    elif source == SNLI_HUB:
        import datasets

        hub = datasets.load_dataset(SNLI_HUB)
        train, dev, test = (
            _hub_examples(
                hub[split],
                f"{SNLI_HUB} (hub) split {split!r}",
                "premise",
                "label",
                len(NLI_LABELS),
                pair_column="hypothesis",
                skipped_label=-1,
            )
            for split in ("train", "validation", "test")
        )
    else:
        folder = existing_path(source)
        train, dev, test = (_read_snli_jsonl(folder / SNLI_SPLIT_FILES[split]) for split in ("train", "dev", "test"))
    return TaskData("snli", NLI_LABELS, train, dev, test, is_pair=True)


def delimited_records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of every non-blank record of a CSV (quoted fields may span lines) or a
    TSV (no quoting, as GLUE writes them; ``delimiter`` a tab); the header is the first record. The one
    reader of every delimited file: UTF-8 with or without a byte-order mark, LF or CRLF line endings,
    blank lines skipped; ``.bz2`` files are decompressed."""
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    opener: Callable = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        if delimiter == ",":
            reader = csv.reader(handle, delimiter=delimiter)
        else:
            reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE)
        first_line = 1
        for fields_ in reader:
            if len(fields_) > 1 or (fields_ and fields_[0].strip()):  # a blank line: no field, or only spaces
                yield first_line, fields_
            first_line = reader.line_num + 1


def header_records(path: Path, delimiter: str, needed: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """(``"<path> line <n>"``, {column: field}) of every record of a delimited file (read by
    :func:`delimited_records`) whose header names at least the columns ``needed``. Raises ValueError
    naming the file and line for an empty file, a header without a needed column, or a record whose
    field count differs from the header's."""
    records = delimited_records(path, delimiter)
    first = next(records, None)
    if first is None:
        raise ValueError(f"{path}: empty file (expected a header naming the columns {list(needed)})")
    header = [name.strip() for name in first[1]]
    missing = [name for name in needed if name not in header]
    if missing:
        raise ValueError(f"{path} line {first[0]}: header {header} lacks column(s) {missing}")
    for line, fields_ in records:
        where = f"{path} line {line}"
        if len(fields_) != len(header):
            raise ValueError(f"{where}: {len(fields_)} fields, the header has {len(header)}")
        yield where, dict(zip(header, fields_))


def _read_sst2_tsv(path: Path) -> list[Example]:
    """Examples of a GLUE SST-2 tsv file whose header names ``sentence`` and ``label`` columns."""
    allowed = {"0": 0, "1": 1}
    return [
        Example(checked_text(record["sentence"], where), _checked_label(record["label"].strip(), allowed, where))
        for where, record in header_records(existing_path(path), "\t", ("sentence", "label"))
    ]


def load_sst2(source: PathLike = SST2_HUB, seed: int = 0, dev_fraction: float = 0.1) -> TaskData:
    """SST-2 from the hub (GLUE ``sst2``) or a folder of GLUE ``train.tsv`` / ``dev.tsv``.

    GLUE's test labels are hidden, so its validation split is the test set and dev is carved from train.
    """
    if source == SST2_HUB:
        import datasets

        hub = datasets.load_dataset("glue", SST2_HUB)
        train, test = (
            _hub_examples(hub[split], f"glue/{SST2_HUB} (hub) split {split!r}", "sentence", "label", 2)
            for split in ("train", "validation")
        )
    else:
        folder = existing_path(source)
        train, test = _read_sst2_tsv(folder / "train.tsv"), _read_sst2_tsv(folder / "dev.tsv")
    train, dev = _carve_dev(train, dev_fraction, seed)
    return TaskData("sst2", SENTIMENT_LABELS, train, dev, test, is_pair=False)


TASK_LOADERS: dict[str, Callable[[PathLike | None, int], TaskData]] = {
    "rotten_tomatoes": lambda source, seed: load_rotten_tomatoes(seed=seed, source=source),
    "imdb": lambda source, seed: load_imdb(IMDB_HUB if source is None else source, seed=seed),
    "snli": lambda source, seed: load_snli(SNLI_HUB if source is None else source),
    "sst2": lambda source, seed: load_sst2(SST2_HUB if source is None else source, seed=seed),
}


def load_task(name: str, source: PathLike | None = None, seed: int = 0) -> TaskData:
    """The task ``name`` from ``source`` (its loader's default when None); ``seed`` fixes carved splits."""
    if name not in TASK_LOADERS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASK_LOADERS))}")
    return TASK_LOADERS[name](source, seed)


def test_pool(task: TaskData, num_examples: int, seed: int = 0, split: str = "test") -> list[Example]:
    """The evaluation pool of ``num_examples`` examples of ``split`` (``"test"``, or ``"dev"`` to choose
    settings without touching the test set), drawn with ``seed``: by default the first ``num_examples``
    of the split shuffled with ``seed`` (RIFT's rule); under a :class:`PoolRule` a sample stratified by
    label (the whole split, shuffled, when ``num_examples`` is all of it). Raises ValueError for another
    split name or a size outside 1..len(split)."""
    if split not in EVALUATED_SPLITS:
        raise ValueError(f"unknown split {split!r}; pools come from {' or '.join(EVALUATED_SPLITS)}")
    examples = getattr(task, split)
    if not 0 < num_examples <= len(examples):
        origin = f" ({task.provenance[split]})" if split in task.provenance else ""
        raise ValueError(
            f"asked for {num_examples} {split} examples; the {split} split of {task.name}{origin} has {len(examples)}"
        )
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))
    shuffled = [examples[index] for index in order.tolist()]
    if task.pool_rule is None or num_examples == len(shuffled):
        return shuffled[:num_examples]
    _, pool = stratified_split(shuffled, num_examples, seed)
    return pool


test_pool.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, although its name starts with "test_"
