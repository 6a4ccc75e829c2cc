"""Any dataset: a Hugging Face dataset by name and config, local CSV / TSV / JSONL files, a folder saved
with ``datasets``' ``save_to_disk``, and the presets AG News, MNLI, QNLI, Yelp polarity and MR, with a
column mapping; plus the tasks of :mod:`rift_fast.data.tasks`. Every source becomes one :class:`TaskData`.

``--dataset`` takes (see :class:`DatasetOptions`):

- a task of :mod:`rift_fast.data.tasks` (``rotten_tomatoes``, ``imdb``, ``snli``, ``sst2``), as before;
- a preset (:data:`DATASET_PRESETS`): its hub name, columns, label names, splits and test-pool rule;
  ``--data-source`` points it at a local copy that ``datasets.load_dataset`` reads (or a ``save_to_disk``
  folder);
- ``hf:NAME`` with ``--dataset-config CONFIG``: ``datasets.load_dataset(NAME, CONFIG)`` (a hub id, or a
  local folder of data files);
- a ``.csv``, ``.tsv`` or ``.jsonl`` file (the training split; ``--dev-file`` and ``--test-file`` for the
  others), or a folder holding ``train.<ext>`` and optionally ``dev.<ext>`` (or ``validation.<ext>``) and
  ``test.<ext>``, or a ``save_to_disk`` folder.

Columns come from ``--text-column`` (default ``text``), ``--text-pair-column`` (sentence pairs: the
attacked second text) and ``--label-column`` (default ``label``). Labels are names or integer ids, never
both in one column (:func:`resolve_labels`). A split missing from the source is carved from train,
stratified with the seed (10% each, as the task loaders carve dev), and logged. Bad input raises
ValueError naming the file and line (or hub split and record).
"""

from __future__ import annotations

import logging
import math
import os
import re
from argparse import ArgumentTypeError
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rift_fast.core.digests import examples_digest, file_digest
from rift_fast.core.records import Example, PoolRule, TaskData
from rift_fast.data.label_spellings import (
    LabelRecord,
    check_label_counts,
    nearest_name,
    report_spellings,
    spelled_names,
)
from rift_fast.data.tasks import (
    NLI_LABELS,
    SENTIMENT_LABELS,
    TASK_LOADERS,
    checked_text,
    delimited_records,
    existing_path,
    json_records,
    load_task,
    stratified_split,
)
from rift_fast.models.labels import canonical_label, generic_label_names

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

HF_PREFIX = "hf:"
SAVED_DATASET_MARKERS = ("dataset_dict.json", "state.json")  # written by DatasetDict / Dataset.save_to_disk
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None}  # file suffix -> CSV delimiter (None: JSON lines)
SPLIT_FILE_STEMS = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}
HUB_SPLIT_NAMES = {"train": ("train",), "dev": ("validation", "dev", "valid"), "test": ("test",)}
CARVED_ORIGIN = "carved from train"  # how a split's provenance starts when it was carved
FILES_SOURCE = "files"  # the data identity's source for local files (the only data --test-file goes with)
CARVED_FRACTION = 0.1  # share of the source's train held out for each missing split, as the task loaders carve dev
CLASS_LABEL_MISSING = -1  # datasets.ClassLabel's "no label" value (GLUE test splits, SNLI without gold label)
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"
COLUMN_OPTIONS = ("text_column", "text_pair_column", "label_column", "label_names")  # the mapping's DatasetOptions
LENGTH_PERCENTILE = 95  # a derived max length covers this share of the training inputs untruncated
LENGTH_SAMPLE = 10_000  # training examples tokenised to measure their lengths (a seeded sample)
INTEGER_ID = re.compile(r"[+-]?[0-9]+")
# The published evaluation protocols: 1,000 random test examples in Jia et al. (EMNLP 2019) and TextDefender
# (Li et al., EMNLP 2021, whose datasets include AG News).
PUBLISHED_POOL = PoolRule(1000, "1,000 test examples, as Jia et al. (2019) and TextDefender (Li et al. 2021)")


@dataclass(frozen=True)
class SplitSources:
    """The source split of each of train / dev / test; None: carved from train with the seed."""

    train: str
    dev: str | None
    test: str | None


@dataclass(frozen=True)
class DatasetPreset:
    """A dataset as papers use it: its hub name and config, column mapping, label names in the order of
    the hub's label ids, which hub split serves as dev and test, the label values that mean "no gold
    label" (dropped), how the attacked pool is drawn, and where it comes from."""

    hub: str
    config: str | None
    text_column: str
    pair_column: str | None
    label_column: str
    label_names: tuple[str, ...]
    splits: SplitSources
    pool_rule: PoolRule
    reference: str
    unlabelled: tuple[object, ...] = ()


_GLUE_UNLABELLED = (CLASS_LABEL_MISSING, "-")  # GLUE hides test labels as -1; MultiNLI's jsonl writes "-"
_MNLI = DatasetPreset(
    "nyu-mll/glue",
    "mnli",
    "premise",
    "hypothesis",
    "label",
    NLI_LABELS,
    SplitSources("train", None, "validation_matched"),
    PUBLISHED_POOL,
    "MultiNLI (Williams et al., NAACL 2018) from GLUE (Wang et al., ICLR 2019): test labels are hidden, "
    "so the matched dev set is the test set and dev is carved from train",
    _GLUE_UNLABELLED,
)
DATASET_PRESETS = {
    "ag_news": DatasetPreset(
        "fancyzhx/ag_news",
        None,
        "text",
        None,
        "label",
        ("World", "Sports", "Business", "Sci/Tech"),
        SplitSources("train", None, "test"),
        PUBLISHED_POOL,
        "AG News topics (Zhang, Zhao & LeCun, NeurIPS 2015): 120,000 train, 7,600 test",
    ),
    "mnli": _MNLI,
    "mnli_mismatched": replace(
        _MNLI,
        splits=SplitSources("train", None, "validation_mismatched"),
        reference="MultiNLI as 'mnli', with the mismatched dev set (other genres) as the test set; train and the "
        "carved dev are those of 'mnli' for the same seed",
    ),
    "qnli": DatasetPreset(
        "nyu-mll/glue",
        "qnli",
        "question",
        "sentence",
        "label",
        ("entailment", "not_entailment"),
        SplitSources("train", None, "validation"),
        PUBLISHED_POOL,
        "QNLI from GLUE (Wang et al., ICLR 2019; questions of SQuAD, Rajpurkar et al. 2016): the sentence is "
        "the attacked text; test labels are hidden, so dev is the test set and dev is carved from train",
        _GLUE_UNLABELLED,
    ),
    "yelp_polarity": DatasetPreset(
        "fancyzhx/yelp_polarity",
        None,
        "text",
        None,
        "label",
        SENTIMENT_LABELS,
        SplitSources("train", None, "test"),
        PUBLISHED_POOL,
        "Yelp review polarity (Zhang, Zhao & LeCun, NeurIPS 2015): hub ids 0 / 1 (class names '1' / '2') are "
        "negative / positive; 560,000 train, 38,000 test",
    ),
    "mr": DatasetPreset(
        "cornell-movie-review-data/rotten_tomatoes",
        None,
        "text",
        None,
        "label",
        SENTIMENT_LABELS,
        SplitSources("train", "validation", "test"),
        PUBLISHED_POOL,
        "MR, movie-review sentences (Pang & Lee, ACL 2005): 8,530 train, 1,066 validation, 1,066 test",
    ),
}


@dataclass(frozen=True)
class DatasetOptions:
    """What the command lines' data options name (see the module docstring). None: not given."""

    dataset: str
    data_source: str | None = None
    dataset_config: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    dev_file: str | None = None
    test_file: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> DatasetOptions:
        """The options of an argparse namespace holding every field of this class."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def columns(self, preset: DatasetPreset | None = None) -> dict[str, str | None]:
        """The column mapping: the flags where given, else the preset's, else ``text`` / ``label``."""
        return {
            "text": self.text_column or (preset.text_column if preset else DEFAULT_TEXT_COLUMN),
            "text_pair": self.text_pair_column or (preset.pair_column if preset else None),
            "label": self.label_column or (preset.label_column if preset else DEFAULT_LABEL_COLUMN),
        }


@dataclass
class RawSplit:
    """One split as read: its origin (a file, or a hub split), where each record is (``path line n`` or
    ``hub split record i``), its texts and raw label values, and the label names the source declares
    (a ClassLabel)."""

    origin: str
    where: list[str]
    texts: list[object]
    pairs: list[object] | None
    labels: list[object]
    declared_names: tuple[str, ...] | None = None


def _checked_column(column: str, existing: Sequence[str], where: str) -> str:
    if column not in existing:
        raise ValueError(f"{where}: no column {column!r}; the columns are {', '.join(map(repr, existing))}")
    return column


def _read_delimited(path: Path, delimiter: str, columns: dict[str, str | None]) -> RawSplit:
    records = delimited_records(path, delimiter)
    header_record = next(records, None)
    if header_record is None:
        raise ValueError(f"{path}: empty file (expected a header naming the columns, then one record per line)")
    header = header_record[1]
    index = {name: header.index(_checked_column(name, header, f"{path} line 1")) for name in columns.values() if name}
    split = RawSplit(f"file {path}", [], [], [] if columns["text_pair"] else None, [])
    for line, values in records:
        where = f"{path} line {line}"
        if len(values) != len(header):
            raise ValueError(f"{where}: {len(values)} fields, the header has {len(header)}")
        _append(split, where, {name: values[position] for name, position in index.items()}, columns)
    return split


def _read_jsonl(path: Path, columns: dict[str, str | None]) -> RawSplit:
    split = RawSplit(f"file {path}", [], [], [] if columns["text_pair"] else None, [])
    for where, record in json_records(path):
        for name in columns.values():
            if name:
                _checked_column(name, list(record), where)
        _append(split, where, record, columns)
    return split


def _append(split: RawSplit, where: str, record: dict, columns: dict[str, str | None]) -> None:
    split.where.append(where)
    split.texts.append(record[columns["text"]])
    if split.pairs is not None:
        split.pairs.append(record[columns["text_pair"]])
    split.labels.append(record[columns["label"]])


def read_table(path: Path, columns: dict[str, str | None]) -> RawSplit:
    """The records of a ``.csv``, ``.tsv`` or ``.jsonl`` file under the column mapping ``columns``
    (``text``, ``text_pair``, ``label`` -> column name). Raises ValueError for another suffix, a file
    that is not UTF-8, an empty file, a column that does not exist (listing those that do) or a
    malformed record (file and line)."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}")
    delimiter = TABLE_SUFFIXES[suffix]
    try:
        split = _read_jsonl(path, columns) if delimiter is None else _read_delimited(path, delimiter, columns)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
    if not split.where:
        raise ValueError(f"{path}: no records (the file holds {'a header only' if delimiter else 'no JSON line'})")
    return split


def _hub_split(dataset: Any, name: str, where: str, columns: dict[str, str | None]) -> RawSplit:
    """The records of one ``datasets.Dataset`` split; its label names when the label column is a ClassLabel."""
    import datasets

    for column in columns.values():
        if column:
            _checked_column(column, dataset.column_names, f"{where} split {name!r}")
    feature = dataset.features[columns["label"]]
    names = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    pair_column = columns["text_pair"]
    return RawSplit(
        f"{where} split {name!r}",
        [f"{where} split {name!r} record {index}" for index in range(len(dataset))],
        list(dataset[columns["text"]]),
        list(dataset[pair_column]) if pair_column else None,
        list(dataset[columns["label"]]),
        names,
    )


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``save_to_disk`` (a DatasetDict or one Dataset)."""
    return any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS)


def _load_hub(name: str, config: str | None) -> Any:
    """``datasets.load_dataset(name, config)``, or ``load_from_disk`` for a ``save_to_disk`` folder;
    OSError naming the dataset when it cannot be reached."""
    import datasets

    if is_saved_dataset(Path(name)):
        loaded = datasets.load_from_disk(name)
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)
    try:
        return datasets.load_dataset(name, config)
    except ConnectionError as error:
        raise OSError(
            f"could not load Hugging Face dataset {name!r} (config {config!r}): {error}; without network "
            "access give a local copy (--data-source for a preset, a local folder after hf:, or files)"
        ) from error


def _hub_splits(
    name: str, config: str | None, columns: dict[str, str | None], wanted: SplitSources | None
) -> dict[str, RawSplit]:
    """train / dev / test splits of a hub dataset (``wanted``: the source split of each; None: the usual
    names, :data:`HUB_SPLIT_NAMES`); a split it lacks is absent from the result."""
    tables = _table_files(Path(name), wanted) if config is None else None
    if tables is not None:
        return {role: read_table(path, columns) for role, path in tables.items()}
    loaded = _load_hub(name, config)
    where = name + (f" config {config!r}" if config else "") + ("" if Path(name).exists() else " (hub)")
    chosen: dict[str, str | None]
    if wanted is None:
        chosen = {role: next((s for s in names if s in loaded), None) for role, names in HUB_SPLIT_NAMES.items()}
        if chosen["train"] is None:
            raise ValueError(f"{where}: no 'train' split; the splits are {', '.join(map(repr, loaded))}")
    else:
        chosen = {"train": wanted.train, "dev": wanted.dev, "test": wanted.test}
    splits = {}
    for role, split_name in chosen.items():
        if split_name is None:
            continue
        if split_name not in loaded:
            raise ValueError(f"{where}: no split {split_name!r}; the splits are {', '.join(map(repr, loaded))}")
        splits[role] = _hub_split(loaded[split_name], split_name, where, columns)
    return splits


def _table_files(folder: Path, wanted: SplitSources | None) -> dict[str, Path] | None:
    """The split files of a local folder of CSV / TSV / JSONL files named after the source splits
    (``<split>.csv``, ...; ``wanted``: those names, None: :data:`HUB_SPLIT_NAMES`), by role, so that they
    are read as ``--dataset FILE`` reads files (:func:`read_table`); None when ``folder`` is not such a
    folder (no training file), which then goes to ``datasets``."""
    if not folder.is_dir() or is_saved_dataset(folder):
        return None
    names = (
        dict(HUB_SPLIT_NAMES)
        if wanted is None
        else {role: (name,) for role, name in (("train", wanted.train), ("dev", wanted.dev), ("test", wanted.test))}
    )
    found = _split_files(folder, names)
    if "train" not in found:
        return None
    lacking = [stems[0] for role, stems in names.items() if wanted is not None and stems[0] and role not in found]
    if lacking:
        suffixes = "/".join(TABLE_SUFFIXES)
        raise ValueError(f"{folder}: no file for the split(s) {lacking} (expected <split>{suffixes})")
    return found


def _file_splits(options: DatasetOptions, columns: dict[str, str | None]) -> tuple[dict[str, RawSplit], dict]:
    """train / dev / test of a file or a folder of files, and the SHA-256 of every file read."""
    path = existing_path(options.dataset)
    if path.is_dir():
        files = _split_files_in(path)
        if options.dev_file or options.test_file:
            raise ValueError(f"--dev-file / --test-file go with a training file, not the folder {path}")
    else:
        files = {"train": path}
        files.update(
            {
                role: existing_path(file)
                for role, file in (("dev", options.dev_file), ("test", options.test_file))
                if file
            }
        )
    splits = {role: read_table(file, columns) for role, file in files.items()}
    return splits, {str(file): file_digest(file) for file in files.values()}


def _split_files(folder: Path, stems_by_role: Mapping[str, Sequence[str | None]]) -> dict[str, Path]:
    """The table file of each role in ``folder``: one ``<stem><suffix>`` per role among its ``stems``
    (None stems skipped) and :data:`TABLE_SUFFIXES`; roles without a file are left out. Raises
    ValueError naming the files when a role has more than one."""
    found = {}
    for role, stems in stems_by_role.items():
        candidates = [folder / f"{stem}{suffix}" for stem in stems if stem for suffix in TABLE_SUFFIXES]
        existing = [candidate for candidate in candidates if candidate.is_file()]
        if len(existing) > 1:
            raise ValueError(f"{folder}: more than one {role} file: {', '.join(p.name for p in existing)}")
        if existing:
            found[role] = existing[0]
    return found


def _split_files_in(folder: Path) -> dict[str, Path]:
    """``train.<ext>`` and, when present, ``dev.<ext>`` or ``validation.<ext>`` and ``test.<ext>`` in ``folder``."""
    found = _split_files(folder, SPLIT_FILE_STEMS)
    if "train" not in found:
        names = ", ".join(f"train{suffix}" for suffix in TABLE_SUFFIXES)
        raise FileNotFoundError(f"{folder}: no training file ({names}) and no save_to_disk dataset")
    return found


def _label_kind(value: object, names: dict[str, str] | None, where: str) -> tuple[str, object]:
    """("name", the stripped name) or ("id", the integer) of a raw label value; ``names``: canonical form
    (:func:`canonical_label`) -> declared name, a value in one of those forms being that name."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where}: label {value!r} is neither a name nor an integer id")
    if isinstance(value, int):
        return "id", value
    text = value.strip()
    if not text:
        raise ValueError(f"{where}: empty label")
    if names is not None and canonical_label(text) in names:
        return "name", text
    if INTEGER_ID.fullmatch(text):
        return "id", int(text)
    return "name", text


def resolve_labels(
    splits: dict[str, RawSplit], names: tuple[str, ...] | None, unlabelled: tuple[object, ...] = ()
) -> tuple[tuple[str, ...], dict[str, list[int | None]]]:
    """(label names, per split the label id of each record, None for a record to drop).

    Raw values are names or integer ids: a value equal to one of ``names`` is that name, another
    integer (or integer string, as CSV files hold them) is an id into ``names``. One column holding
    both kinds is refused. Without ``names``: the names a ClassLabel column declares; else ids take the
    generic names ``LABEL_0`` ... (as transformers names unnamed labels) and names are those of the
    training split, sorted. Values in ``unlabelled`` (and -1 in a ClassLabel column, datasets' "no
    label") mark records without a gold label. Raises ValueError naming the file and line (or split and
    record) of a value outside the label set, and the first record of each kind for mixed labels.
    """
    declared = names or next((s.declared_names for s in splits.values() if s.declared_names), None)
    declared_forms = {canonical_label(name): name for name in declared} if declared else None
    parsed: dict[str, list[tuple[str, Any, str] | None]] = {}
    first_of_kind: dict[str, str] = {}
    for role, split in splits.items():
        dropped = set(unlabelled) | ({CLASS_LABEL_MISSING} if split.declared_names else set())
        parsed[role] = []
        for where, value in zip(split.where, split.labels):
            kind, label = _label_kind(value, declared_forms, where)
            if label in dropped:
                parsed[role].append(None)
                continue
            first_of_kind.setdefault(kind, f"{label!r} at {where}")
            parsed[role].append((kind, label, where))
    if len(first_of_kind) > 1:
        raise ValueError(
            "mixed label types in one column: names and integer ids (first name "
            f"{first_of_kind['name']}; first id {first_of_kind['id']}); write every label the same way"
        )
    label_names = declared or _inferred_names(next(iter(first_of_kind), "id"), parsed)
    named = [LabelRecord(r[1], r[2]) for rows in parsed.values() for r in rows if r is not None and r[0] == "name"]
    report_spellings(named)
    lookup = {canonical_label(name): index for index, name in enumerate(label_names)}
    ids = {
        role: [None if r is None else _label_id(r, lookup, label_names) for r in rows] for role, rows in parsed.items()
    }
    counted = [
        LabelRecord(label_names[index], r[2])
        for role, rows in parsed.items()
        for r, index in zip(rows, ids[role])
        if r is not None and index is not None and r[0] == "name"  # ids have no spelling to mistype
    ]
    check_label_counts(label_names, counted)
    return label_names, ids


def _inferred_names(kind: str, parsed: dict[str, list[tuple[str, Any, str] | None]]) -> tuple[str, ...]:
    """Generic names for ids (up to the largest id seen), else the training split's names (one per
    :func:`canonical_label` form, as most often spelled), sorted."""
    if kind == "id":
        largest = max((r[1] for rows in parsed.values() for r in rows if r is not None), default=-1)
        return generic_label_names(largest + 1)
    return tuple(sorted(spelled_names([LabelRecord(r[1], r[2]) for r in parsed["train"] if r is not None]).values()))


def _label_id(record: tuple, lookup: dict[str, int], label_names: tuple[str, ...]) -> int:
    """The class id of a parsed record; ``lookup``: canonical form of each name -> its id."""
    kind, label, where = record
    if kind == "name" and canonical_label(label) in lookup:
        return lookup[canonical_label(label)]
    if kind == "id" and 0 <= label < len(label_names):
        return label
    allowed = f"ids 0..{len(label_names) - 1} or names {list(label_names)}" if kind == "id" else list(label_names)
    near = nearest_name(label, label_names) if kind == "name" else None
    hint = f" (a typo of {near!r}?)" if near else ""
    raise ValueError(f"{where}: label {label!r} is not in the label set{hint}: {allowed}")


def _examples(split: RawSplit, ids: list[int | None]) -> list[Example]:
    examples = []
    pairs = split.pairs if split.pairs is not None else [None] * len(ids)
    for where, text, pair, label in zip(split.where, split.texts, pairs, ids):
        if label is None:
            continue
        text_pair = checked_text(pair, where) if split.pairs is not None else None
        examples.append(Example(checked_text(text, where), label, text_pair))
    dropped = len(ids) - len(examples)
    if dropped:
        logger.info("%s: dropped %d records without a gold label", split.origin, dropped)
    return examples


def _carve_missing(
    name: str, splits: dict[str, list[Example]], provenance: dict[str, str], seed: int, label_names: Sequence[str]
) -> dict[str, list[Example]]:
    """``splits`` with test, then dev, carved from train when missing (each :data:`CARVED_FRACTION` of
    the source's train, stratified with ``seed``); ``provenance`` records and the log says so."""
    train = splits["train"]
    held_out = round(len(train) * CARVED_FRACTION)
    for role in ("test", "dev"):
        if splits.get(role):
            continue
        why = "empty (no gold labels)" if role in splits else "missing"
        try:
            train, splits[role] = stratified_split(train, held_out, seed)
        except ValueError as error:
            named = ", ".join(f"{index} = {label!r}" for index, label in enumerate(label_names))
            raise ValueError(
                f"{name}: the {role} split is {why} and cannot be carved from train: {error} (label ids: {named})"
            ) from None
        provenance[role] = f"{CARVED_ORIGIN}: {held_out} examples ({CARVED_FRACTION:.0%}), stratified, seed {seed}"
        logger.info("%s: the %s split is %s; %s", name, role, why, provenance[role])
    splits["train"] = train
    return splits


def _task_from_raw(
    name: str,
    raw: dict[str, RawSplit],
    options: DatasetOptions,
    seed: int,
    preset: DatasetPreset | None,
    identity: dict,
) -> TaskData:
    label_names, ids = resolve_labels(
        raw, options.label_names or (preset.label_names if preset else None), preset.unlabelled if preset else ()
    )
    examples = {role: _examples(split, ids[role]) for role, split in raw.items()}
    if not examples["train"]:
        raise ValueError(f"{name}: the training split ({raw['train'].origin}) has no labelled example")
    provenance = {role: split.origin for role, split in raw.items() if examples[role]}
    examples = _carve_missing(name, examples, provenance, seed, label_names)
    identity = {
        **identity,
        "label_names": list(label_names),
        "splits": provenance,
        "examples_sha256": {role: examples_digest(examples[role]) for role in ("train", "dev", "test")},
    }
    return TaskData(
        name,
        label_names,
        examples["train"],
        examples["dev"],
        examples["test"],
        is_pair=raw["train"].pairs is not None,
        pool_rule=preset.pool_rule if preset else None,
        identity=identity,
        provenance=provenance,
    )


def _refuse_options(options: DatasetOptions, given_for: str, names: Sequence[str]) -> None:
    given = [name for name in names if getattr(options, name) not in (None, ())]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"--dataset {options.dataset}: {flags} do not apply to {given_for}")


def load_data(options: DatasetOptions, seed: int = 0) -> TaskData:
    """The dataset ``options`` name, with its identity (source, config, columns, file digests, where each
    split came from, example digests) for the run settings. ``seed`` fixes carved splits.

    Raises ValueError for options that do not apply to the source, an unknown column (listing those that
    exist), an empty file, a label outside the label set (file and line), mixed label types, or a split
    that cannot be carved; FileNotFoundError for a missing file; OSError when a hub dataset is unreachable.
    """
    name = options.dataset
    if name in TASK_LOADERS:
        return _load_task_with_identity(options, seed)
    if name in DATASET_PRESETS:
        return _load_preset(options, seed)
    if options.data_source:
        raise ValueError(f"--data-source goes with a task or a preset, not --dataset {name}")
    if name.startswith(HF_PREFIX):
        return _load_hf(options, seed)
    return _load_files(options, seed)


def _load_task_with_identity(options: DatasetOptions, seed: int) -> TaskData:
    name = options.dataset
    _refuse_options(options, f"the task {name}", (*COLUMN_OPTIONS, "dataset_config", "dev_file", "test_file"))
    task = load_task(name, options.data_source, seed=seed)
    task.identity = {
        "source": f"task {name}",
        "data_source": options.data_source,
        "examples_sha256": {split: examples_digest(getattr(task, split)) for split in ("train", "dev", "test")},
    }
    return task


def _load_preset(options: DatasetOptions, seed: int) -> TaskData:
    name = options.dataset
    _refuse_options(options, f"the preset {name} (its config is fixed)", ("dataset_config", "dev_file", "test_file"))
    preset = DATASET_PRESETS[name]
    columns = options.columns(preset)
    source = options.data_source or preset.hub
    raw = _hub_splits(source, None if options.data_source else preset.config, columns, preset.splits)
    identity: dict[str, Any] = {"source": f"preset {name}", "hub": source, "config": preset.config, "columns": columns}
    if options.data_source:
        identity["files"] = _folder_digests(Path(source))
    return _task_from_raw(name, raw, options, seed, preset, identity)


def _load_hf(options: DatasetOptions, seed: int) -> TaskData:
    _refuse_options(options, "a Hugging Face dataset", ("dev_file", "test_file"))
    hub_name = options.dataset[len(HF_PREFIX) :]
    columns = options.columns()
    raw = _hub_splits(hub_name, options.dataset_config, columns, None)
    identity: dict[str, Any] = {"source": options.dataset, "config": options.dataset_config, "columns": columns}
    if Path(hub_name).is_dir():
        identity["files"] = _folder_digests(Path(hub_name))
    return _task_from_raw(options.dataset, raw, options, seed, None, identity)


def _load_files(options: DatasetOptions, seed: int) -> TaskData:
    _refuse_options(options, "local files", ("dataset_config",))
    columns = options.columns()
    if is_saved_dataset(Path(options.dataset)):
        raw = _hub_splits(options.dataset, None, columns, None)
        files = _folder_digests(Path(options.dataset))
    else:
        raw, files = _file_splits(options, columns)
    identity = {"source": FILES_SOURCE, "columns": columns, "files": files}
    return _task_from_raw(options.dataset, raw, options, seed, None, identity)


def _folder_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under a local dataset folder (a file path: of that file)."""
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(file): file_digest(file) for file in files}


def dataset_names() -> str:
    """The names ``--dataset`` takes besides ``hf:NAME`` and paths, for ``--help``."""
    presets = "; ".join(
        f"{name} ({preset.hub}{'/' + preset.config if preset.config else ''})"
        for name, preset in DATASET_PRESETS.items()
    )
    return f"tasks: {', '.join(sorted(TASK_LOADERS))}; presets: {presets}"


def derived_max_length(
    tokenizer: PreTrainedTokenizerBase, examples: list[Example], usable: int, seed: int = 0
) -> tuple[int, str]:
    """(max length, how it was derived) for a dataset without a preset: the :data:`LENGTH_PERCENTILE`-th
    percentile of the token lengths (special tokens included) of up to :data:`LENGTH_SAMPLE` of
    ``examples`` drawn with ``seed``, rounded up, capped by ``usable`` (the model's usable length,
    :func:`rift_fast.models.usable_max_length`). Raises ValueError for no examples."""
    if not examples:
        raise ValueError("cannot derive a max length from no examples")
    rng = np.random.default_rng(seed)
    chosen = (
        examples
        if len(examples) <= LENGTH_SAMPLE
        else [examples[i] for i in rng.choice(len(examples), LENGTH_SAMPLE, replace=False)]
    )
    pairs = [e.text_pair for e in chosen] if chosen[0].text_pair is not None else None
    # Truncating at the usable length keeps the tokenizer from warning about over-long inputs; longer
    # inputs count as ``usable`` tokens, which is where the cap would put them anyway.
    encoded = tokenizer([e.text for e in chosen], pairs, truncation=True, max_length=usable)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    percentile = math.ceil(float(np.percentile(lengths, LENGTH_PERCENTILE)))
    length = min(percentile, usable)
    how = (
        f"{LENGTH_PERCENTILE}th percentile of the token lengths of {len(chosen)} training examples "
        f"(seed {seed}): {percentile}, the model takes up to {usable}"
    )
    return length, how


def refuse_unknown_dataset(value: str) -> str:
    """argparse type of ``--dataset``: the value, when it is a task, a preset, ``hf:NAME`` or an existing path."""
    if (
        value in TASK_LOADERS
        or value in DATASET_PRESETS
        or (value.startswith(HF_PREFIX) and len(value) > len(HF_PREFIX))
    ):
        return value
    if value and os.path.exists(value):
        return value
    raise ArgumentTypeError(
        f"invalid dataset {value!r}: not a task ({', '.join(sorted(TASK_LOADERS))}), a preset "
        f"({', '.join(DATASET_PRESETS)}), hf:NAME, or an existing file or folder"
    )


def label_names_option(value: str) -> tuple[str, ...]:
    """argparse type of ``--label-names``: comma-separated names, each non-empty and given once."""
    names = tuple(name.strip() for name in value.split(","))
    if not all(names) or len({canonical_label(name) for name in names}) != len(names):
        raise ArgumentTypeError(
            f"expected distinct, non-empty comma-separated names (compared regardless of case and Unicode "
            f"normalisation), got {value!r}"
        )
    return names
