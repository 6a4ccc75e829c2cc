"""Class-balanced batches, as RIFT builds them from one loader per class (its MI term's negatives).

Every batch holds ``batch_size / num_classes`` examples of each class, class by class (all of class
0, then class 1, ...: the layout of concatenated per-class loaders). Each epoch draws one random
permutation per class (classes in increasing label order) from a ``torch.Generator`` seeded with
``seed + epoch`` (call :meth:`ClassBalancedBatchSampler.set_epoch` before each epoch, as with
``DistributedSampler``). An epoch has ``min_c floor(n_c / per_class)`` batches: it ends when the
smallest class runs out, like zipped per-class loaders with ``drop_last``, so larger classes are
subsampled (a different random subset each epoch) and no example repeats within an epoch.

Distributed: with ``world_size`` ranks each global batch is split per class: rank r takes the r-th
contiguous share (``per_class / world_size`` examples) of every class block, so each rank's batch is
class-balanced too (the InfoNCE negatives stay within a class on every rank) and the ranks together
cover exactly the single-process global batch. ``batch_size`` is the GLOBAL batch size and must be
divisible by ``num_classes * world_size``.

Position within an epoch: the epoch's global batches depend on the seed and the epoch only, never on
the ranks, so a position is one global count, ``consumed_samples`` (examples of the epoch all ranks
have trained on together: global batches done x ``batch_size``). ``set_epoch(epoch, consumed_samples)``
starts the iteration after them, so a run stopped mid-epoch with N ranks continues with M ranks on
exactly the rest of the epoch's order: nothing consumed is seen again, nothing left is skipped.

Length grouping (``length_group`` > 0, with the examples' token counts in ``lengths``): each class's
drawn examples are cut into chunks of ``length_group`` batches' worth and sorted by length within a
chunk, so the b-th examples of every class have similar lengths; the epoch's batches are then shuffled.
Batches keep their class balance but carry little padding (the idea of Hugging Face's
``group_by_length``, done per class). On Rotten Tomatoes (batch 32, length 64) groups of 8 batches pad
31k tokens per 1,000 examples instead of 53k.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices: this rank's share of each class-balanced global batch.

    labels: the dataset's integer labels (sequence or 1-D tensor); batch_size: the global batch
    size; seed: base seed (epoch e uses ``seed + e``); num_classes: the label count (default: the
    distinct labels present; giving it makes a class with no example an error).
    Use as ``DataLoader(dataset, batch_sampler=sampler)``.
    """

    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_classes: int | None = None,
        lengths: Sequence[int] | None = None,
        length_group: int = 0,
    ):
        labels = torch.as_tensor(labels).long().cpu()
        if labels.dim() != 1 or labels.numel() == 0:
            raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {tuple(labels.shape)}")
        if bool((labels < 0).any()):
            raise ValueError("labels must be non-negative")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        classes = list(range(num_classes)) if num_classes is not None else sorted(set(labels.tolist()))
        if num_classes is not None and int(labels.max()) >= num_classes:
            raise ValueError(f"label {int(labels.max())} is out of range for num_classes={num_classes}")
        if len(classes) < 1:
            raise ValueError("no classes")
        if batch_size < 1 or batch_size % len(classes):
            raise ValueError(f"batch_size {batch_size} is not divisible by the number of classes {len(classes)}")
        per_class = batch_size // len(classes)
        if per_class % world_size:
            raise ValueError(f"batch_size / num_classes = {per_class} is not divisible by world_size {world_size}")
        self.members = [torch.nonzero(labels == c, as_tuple=True)[0] for c in classes]
        for c, members in zip(classes, self.members):
            if len(members) < per_class:
                counts = ", ".join(f"class {k}: {len(m)}" for k, m in zip(classes, self.members))
                raise ValueError(
                    f"class {c} has {len(members)} examples, fewer than batch_size / num_classes = {per_class} "
                    f"({counts})"
                )
        if length_group < 0:
            raise ValueError(f"length_group must be 0 (off) or a number of batches, got {length_group}")
        if length_group and (lengths is None or len(lengths) != len(labels)):
            got = "none" if lengths is None else len(lengths)
            raise ValueError(f"length_group needs one length per example ({len(labels)}), got {got}")
        self.lengths = list(lengths) if lengths is not None else []
        self.length_group = length_group
        self.classes = classes
        self.batch_size = batch_size
        self.per_class = per_class
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.consumed_samples = 0
        self.num_batches = min(len(m) for m in self.members) // per_class

    def set_epoch(self, epoch: int, consumed_samples: int = 0) -> None:
        """Select the epoch whose permutations the next iteration uses, and where in it to start.

        Args:
            epoch: the epoch (0-based); its order is drawn from ``seed + epoch``.
            consumed_samples: examples of the epoch already trained on by all ranks together (a
                multiple of ``batch_size``, at most the epoch's size); the iteration yields the
                global batches after them.

        Raises:
            ValueError: ``consumed_samples`` is negative, not a whole number of global batches, or
                beyond the epoch.
        """
        if consumed_samples < 0 or consumed_samples % self.batch_size or consumed_samples > self.samples_per_epoch:
            raise ValueError(
                f"consumed_samples must be a multiple of the global batch size {self.batch_size} between 0 and "
                f"the epoch's {self.samples_per_epoch} samples, got {consumed_samples}"
            )
        self.epoch = epoch
        self.consumed_samples = consumed_samples

    @property
    def samples_per_epoch(self) -> int:
        """Examples one epoch trains on, all ranks together."""
        return self.num_batches * self.batch_size

    def __len__(self) -> int:
        """Batches of a whole epoch (the iteration yields those after ``consumed_samples`` only)."""
        return self.num_batches

    def global_batches(self) -> list[list[int]]:
        """This epoch's full (all-rank) batches, class-major."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        per = self.per_class
        drawn = per * self.num_batches
        picks = [m[torch.randperm(len(m), generator=generator)][:drawn].tolist() for m in self.members]
        if self.length_group:
            picks = [self._grouped_by_length(p) for p in picks]
        batches = [[i for p in picks for i in p[b * per : (b + 1) * per]] for b in range(self.num_batches)]
        if self.length_group:
            batches = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def _grouped_by_length(self, indices: list[int]) -> list[int]:
        """``indices`` sorted by length within each chunk of ``length_group`` batches' share of a class."""
        chunk = self.per_class * self.length_group
        return [
            i
            for start in range(0, len(indices), chunk)
            for i in sorted(indices[start : start + chunk], key=self.lengths.__getitem__)
        ]

    def __iter__(self) -> Iterator[list[int]]:
        share = self.per_class // self.world_size
        start = self.rank * share
        for batch in self.global_batches()[self.consumed_samples // self.batch_size :]:
            yield [
                i
                for k in range(len(self.classes))
                for i in batch[k * self.per_class + start : k * self.per_class + start + share]
            ]
