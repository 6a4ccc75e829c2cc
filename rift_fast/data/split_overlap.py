"""Test texts that are training texts: the attacked pool (or a resumed run's held-out splits) checked
against the texts a checkpoint was trained and selected on.

A checkpoint of ``python -m rift_fast.train`` keeps the digest of every text of its training, dev and
test splits (:data:`SPLIT_DIGESTS_FILE`, see :func:`rift_fast.core.digests.text_digest`). Another seed,
other data options or a test file carve other splits from the same data, and then the texts being
evaluated include texts the model was trained on, which inflates clean and robust accuracy without
any sign. Such an overlap is refused with the number of texts and the fix; an overlap that the
training run had as well (the data holds a text twice, once on each side) is only reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from rift_fast.core.digests import split_text_digests, text_digest
from rift_fast.core.records import Example
from rift_fast.data.sources import CARVED_ORIGIN, FILES_SOURCE
from rift_fast.models.checkpoint_config import METADATA_FILE, SPLIT_DIGESTS_FILE

logger = logging.getLogger(__name__)

SPLIT_ROLES = ("train", "dev", "test")
EXCERPT_CHARACTERS = 60  # of the first overlapping text, quoted in the refusal


class TrainingTextsInPool(ValueError):
    """Texts being evaluated were texts the checkpoint was trained (or selected) on."""


def split_digests(train: list[Example], dev: list[Example], test: list[Example]) -> dict[str, list[str]]:
    """``{"train": [...], "dev": [...], "test": [...]}``: each split's sorted distinct text digests."""
    return {role: split_text_digests(examples) for role, examples in zip(SPLIT_ROLES, (train, dev, test))}


def recorded_split_digests(folder: str | Path) -> dict[str, set[str]] | None:
    """The split digests a checkpoint keeps (role -> set of text digests); None for a checkpoint
    written before they were kept."""
    path = Path(folder) / SPLIT_DIGESTS_FILE
    if not path.is_file():
        return None
    return {role: set(values) for role, values in json.loads(path.read_text(encoding="utf-8")).items()}


def overlapping_positions(examples: Sequence[Example], digests: set[str]) -> list[int]:
    """Positions in ``examples`` whose text digest is in ``digests``."""
    return [position for position, example in enumerate(examples) if text_digest(example) in digests]


def _fix(recorded_metadata: dict, seed: int, identity: dict) -> str:
    """The remedy for a carving that differs from training's, in words."""
    trained_seed = recorded_metadata.get("settings", {}).get("seed")
    test_origin = str(identity.get("splits", {}).get("test", ""))
    fixes = []
    if trained_seed is not None and trained_seed != seed:
        fixes.append(
            f"use the training seed, --seed {trained_seed} (this run: --seed {seed}), so that the splits are "
            "carved as in training"
        )
    if identity.get("source") != FILES_SOURCE:
        fixes.append("use the training run's --dataset and data options")
    elif test_origin and not test_origin.startswith(CARVED_ORIGIN):
        fixes.append(f"give a --test-file that holds none of the training texts (the test split now is {test_origin})")
    else:
        fixes.append("give held-out texts with --test-file")
    return "; or ".join(fixes)


def check_against_checkpoint(
    checkpoint: str | Path,
    examples: Sequence[Example],
    roles: Sequence[str],
    seed: int,
    identity: dict,
    what: str,
) -> None:
    """Refuse ``examples`` (the texts a run evaluates) when any is a text of the checkpoint's ``roles``
    splits (``train``, ``dev``).

    Args:
        checkpoint: a checkpoint folder of ``python -m rift_fast.train``.
        examples: the evaluated examples (an attack's pool, a resumed run's test split).
        roles: the checkpoint's splits they must not share a text with.
        seed: this run's ``--seed``.
        identity: this run's data identity (:attr:`rift_fast.core.records.TaskData.identity`).
        what: the examples in words, e.g. ``"attacked texts"``.

    Raises:
        TrainingTextsInPool: naming the count per split, the first such text and the fix (the
            training seed, or ``--test-file``). An overlap the training run's own splits had (the
            same training split: the data holds the text twice) is logged as a warning instead.
    """
    folder = Path(checkpoint)
    recorded = recorded_split_digests(folder)
    metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    if recorded is None:
        logger.warning(
            "%s keeps no split digests (written by an earlier rift_fast): its training texts are not "
            "checked against the %s",
            folder,
            what,
        )
        return
    found = {role: overlapping_positions(examples, recorded.get(role, set())) for role in roles}
    count = len({position for positions in found.values() for position in positions})
    if not count:
        return
    first = min(position for positions in found.values() for position in positions)
    per_split = ", ".join(f"{len(positions)} {role}" for role, positions in found.items() if positions)
    excerpt = examples[first].text_pair or examples[first].text
    stated = (
        f"{count} of the {len(examples)} {what} are texts {folder} was trained or selected on ({per_split}; "
        f"the first, #{first}: {excerpt[:EXCERPT_CHARACTERS]!r})"
    )
    trained_on = metadata.get("data", {}).get("examples_sha256", {}).get("train")
    if trained_on is not None and trained_on == identity.get("examples_sha256", {}).get("train"):
        logger.warning(
            "%s. The training run carved the same splits: the data holds these texts more than once, "
            "on both sides of the split; remove the duplicates to evaluate on unseen texts only",
            stated,
        )
        return
    raise TrainingTextsInPool(
        f"{stated}. The data is split differently from training: {_fix(metadata, seed, identity)}"
    )
