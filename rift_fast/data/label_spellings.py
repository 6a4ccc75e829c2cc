"""Label names as people type them: ``Positive``, ``positive `` and ``POSITIVE`` (or the NFC and NFD
spellings of ``négatif``) are one class; ``postive`` beside ``positive`` is a typo, not a class.

Names are compared in :func:`rift_fast.models.labels.canonical_label` form. A name written several
ways is one class (reported with the lines of each spelling); a rare name within a few edits of a
frequent one is refused as a typo, and any class with very few rows is reported by name with its
lines, suggesting ``--label-names``.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rift_fast.core.words import levenshtein
from rift_fast.models.labels import canonical_label

logger = logging.getLogger(__name__)

RARE_LABEL_ROWS = 5  # a class with fewer rows than this (or than RARE_LABEL_SHARE of all rows) is reported
RARE_LABEL_SHARE = 0.01
TYPO_FREQUENCY_RATIO = 10  # a near name is a typo when the other is at least this many times as frequent
LINES_SHOWN = 3  # lines quoted per name


@dataclass(frozen=True)
class LabelRecord:
    """One labelled record: its label as written (outer whitespace stripped) and where it is."""

    label: str
    where: str


def _lines(wheres: Sequence[str]) -> str:
    shown = ", ".join(wheres[:LINES_SHOWN])
    return shown + (f" and {len(wheres) - LINES_SHOWN} more" if len(wheres) > LINES_SHOWN else "")


def typo_distance(first: str, second: str) -> int:
    """The most edits by which two names (canonical forms) may differ and still be taken for one
    another: 1 when either is shorter than 6 characters, else 2."""
    return 1 if min(len(first), len(second)) < 6 else 2


def spelled_names(records: Sequence[LabelRecord]) -> dict[str, str]:
    """canonical form -> the spelling that names the class: the most frequent one (ties: the first in
    sorted order)."""
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        spellings[canonical_label(record.label)][record.label] += 1
    return {key: min(counts, key=lambda name: (-counts[name], name)) for key, counts in spellings.items()}


def report_spellings(records: Sequence[LabelRecord], option: str = "--label-names") -> None:
    """Log a warning for each class written in several ways (each spelling, its count and lines)."""
    by_spelling: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_spelling[canonical_label(record.label)][record.label].append(record.where)
    for spellings in by_spelling.values():
        if len(spellings) < 2:
            continue
        described = "; ".join(
            f"{name!r} ({len(wheres)} rows: {_lines(wheres)})"
            for name, wheres in sorted(spellings.items(), key=lambda item: -len(item[1]))
        )
        logger.warning(
            "one label written %d ways, taken as one class (names are compared regardless of case, outer "
            "whitespace and Unicode normalisation): %s. Write it one way, or name the classes with %s",
            len(spellings),
            described,
            option,
        )


def check_label_counts(
    label_names: Sequence[str], records: Sequence[LabelRecord], option: str = "--label-names"
) -> None:
    """Refuse a rare class whose name is a few edits from a frequent one (a typo), and report every
    other class with very few rows, by name with its lines.

    Args:
        label_names: the classes' names in id order.
        records: every labelled record (all splits), its label as written.
        option: the option that names the classes, for the suggestion.

    Raises:
        ValueError: naming the typo, its rows and lines, the name it is near, and the fix.
    """
    wheres: dict[str, list[str]] = defaultdict(list)
    for record in records:
        wheres[canonical_label(record.label)].append(record.where)
    total = len(records)
    rare_below = max(RARE_LABEL_ROWS, RARE_LABEL_SHARE * total)
    keys = {canonical_label(name): name for name in label_names}
    for key, name in keys.items():
        count = len(wheres[key])
        near = [
            other
            for other in keys
            if other != key
            and levenshtein(key, other) <= typo_distance(key, other)
            and len(wheres[other]) >= TYPO_FREQUENCY_RATIO * max(count, 1)
        ]
        if near and count < rare_below:
            other = max(near, key=lambda candidate: len(wheres[candidate]))
            suggested = ",".join(n for k, n in keys.items() if k != key)
            raise ValueError(
                f"label {name!r} ({count} rows: {_lines(wheres[key])}) is {levenshtein(key, other)} edit(s) from "
                f"{keys[other]!r} ({len(wheres[other])} rows): a typo would make a class of its own. Correct those "
                f"lines, or name the classes with {option} {suggested} (a label outside them is then refused "
                "by line)"
            )
        if count < rare_below:
            logger.warning(
                "label %r has only %d of %d rows (%s): a class this small cannot be split stratified or learned; "
                "if it is a mistake, correct those lines or name the classes with %s",
                name,
                count,
                total,
                _lines(wheres[key]),
                option,
            )


def nearest_name(label: str, label_names: Sequence[str]) -> str | None:
    """The name in ``label_names`` within :func:`typo_distance` of ``label`` (canonical forms), the
    nearest first; None when there is none."""
    key = canonical_label(label)
    scored = [(levenshtein(key, canonical_label(name)), name) for name in label_names]
    near = [(distance, name) for distance, name in scored if distance <= typo_distance(key, canonical_label(name))]
    return min(near)[1] if near else None
