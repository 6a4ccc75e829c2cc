"""The core records every part of rift_fast passes around: a labelled :class:`Example`, a task's splits
(:class:`TaskData`) and the rule that draws an attacked pool (:class:`PoolRule`).

They import nothing from the rest of the package, so attacks, training and evaluation can use them
without loading the dataset loaders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One labelled input; for NLI ``text`` is the premise and ``text_pair`` the (attacked) hypothesis."""

    text: str
    label: int
    text_pair: str | None = None


@dataclass(frozen=True)
class PoolRule:
    """How the attacked test pool of a dataset preset is drawn: a sample of ``size`` test examples
    (the published pool size, the default of ``--num-examples``), stratified by label with the seed.
    ``source``: where the size comes from."""

    size: int
    source: str


@dataclass
class TaskData:
    """A task's splits and label names.

    ``pool_rule``: how :func:`test_pool` draws the attacked pool (None: RIFT's seeded shuffle);
    ``identity``: what the data is (source, columns, where each split came from, content digests), as
    recorded in run settings and compared on resume; ``provenance``: split name -> where it came from
    (e.g. carved from train), printed by :meth:`describe`.
    """

    name: str
    label_names: tuple[str, ...]
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    is_pair: bool
    pool_rule: PoolRule | None = None
    identity: dict = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """Sizes and label counts of each split, one line per split (with where it came from, when known)."""
        kind = "sentence pairs" if self.is_pair else "single texts"
        lines = [f"{self.name} ({kind}, labels {', '.join(self.label_names)})"]
        for split_name, examples in (("train", self.train), ("dev", self.dev), ("test", self.test)):
            counts = Counter(example.label for example in examples)
            per_label = " ".join(f"{name}={counts[index]}" for index, name in enumerate(self.label_names))
            origin = f"  ({self.provenance[split_name]})" if split_name in self.provenance else ""
            lines.append(f"  {split_name:<5} {len(examples):>7}  {per_label}{origin}")
        return "\n".join(lines)
