"""Sharing one attack's pool among the processes of a ``torchrun`` job, on one node or many.

- **Balanced work**: the examples still to attack are put longest first, cut into chunks of about one
  cost in words (:func:`cost_chunks`: a long review alone, short texts together) and handed out
  by an atomic counter in ``torch.distributed``'s own key-value store (the rendezvous store), so a
  process that finishes early takes more (:class:`ChunkQueue`).
- **Sharding-free outcomes**: every random draw of an attack is seeded from the run's seed and the
  example's pool index (the GA's generator, the character edits' words), so which process attacks an
  example, and beside which others, does not change its result.
- **No shared filesystem**: results travel through collectives (:func:`gather_to_first`,
  :func:`all_gather`), never through another process's files, and a merge that lacks any example of the
  pool fails naming the missing ones (:func:`merge_results`).
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from rift_fast.attacks.runner import ExampleResult
from rift_fast.core.records import Example
from rift_fast.core.settings_diff import settings_differences

CHUNKS_PER_RANK = 4  # chunks per process on average (by cost): small enough to balance, large enough to batch
SHOWN_MISSING = 20  # missing examples named in full in an error; the rest are counted
# Settings that name where an input is, not what it is: nodes may keep one model or data set at other
# paths; its content digest (model_sha256, data) is compared instead.
LOCATION_SETTINGS = ("model", "data_source")


class IncompleteMerge(ValueError):
    """The merged results lack examples of the pool (a process died, or its results never arrived)."""


def attacked_words(example: Example) -> int:
    """Words of the attacked side of ``example`` (the hypothesis of a pair): its cost estimate."""
    return len((example.text_pair if example.text_pair is not None else example.text).split())


def longest_first(examples: list[Example], indices: Iterable[int]) -> list[int]:
    """``indices`` of the pool ``examples`` ordered by attacked words, longest first (ties: by index)."""
    return sorted(indices, key=lambda i: (-attacked_words(examples[i]), i))


def cost_chunks(examples: list[Example], order: list[int], world: int, examples_per_round: int) -> list[list[int]]:
    """``order`` (pool indices, longest first) cut into consecutive chunks of about an equal cost in
    attacked words: the pool's words over ``world`` x :data:`CHUNKS_PER_RANK`, at most
    ``examples_per_round`` examples and at least one each. The long examples come alone, first, and go to
    different processes; the short ones follow in fuller chunks that fill the ends.

    Args:
        examples: the pool.
        order: the indices of ``examples`` to hand out, in the order to hand them out.
        world: processes sharing the queue.
        examples_per_round: the most examples a chunk (one round of the attack) holds.

    Returns:
        The chunks, lists of pool indices, in ``order``.
    """
    costs = {i: max(1, attacked_words(examples[i])) for i in order}
    budget = sum(costs.values()) / (world * CHUNKS_PER_RANK)
    chunks: list[list[int]] = []
    spent = 0
    for i in order:
        if not chunks or len(chunks[-1]) == examples_per_round or spent + costs[i] > budget:
            chunks.append([])
            spent = 0
        chunks[-1].append(i)
        spent += costs[i]
    return chunks


class ChunkQueue:
    """``chunks`` handed out in order: chunk ``k`` goes to the process whose call of ``take`` returned
    ``k``. With a counter shared by every process (:func:`store_counter`), each chunk goes to exactly one
    of them."""

    def __init__(self, chunks: list[list[int]], take: Callable[[], int]):
        self.chunks = chunks
        self.take = take

    def __iter__(self) -> Iterator[list[int]]:
        while (k := self.take()) < len(self.chunks):
            yield self.chunks[k]


def local_counter() -> Callable[[], int]:
    """A counter for one process: 0, 1, 2, ..."""
    return itertools.count().__next__


def store_counter(key: str, store: Any = None) -> Callable[[], int]:
    """A counter shared by every process that reaches ``store``: ``store.add(key, 1)``, atomic, so that
    two processes never get the same number.

    Args:
        key: the counter's name in the store; one per queue.
        store: a ``torch.distributed.Store`` (default: the rendezvous store of the default process group).

    Returns:
        A function returning the next number (0, 1, 2, ... across all processes together).
    """
    if store is None:
        import torch.distributed as dist

        store = dist.distributed_c10d._get_default_store()
    return lambda: store.add(key, 1) - 1


def all_gather(payload: Any, world: int) -> list[Any]:
    """Every process's ``payload`` (picklable), by rank, on every process (``[payload]`` for one)."""
    if world == 1:
        return [payload]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, payload)
    return gathered


def gather_to_first(payload: Any, rank: int, world: int) -> list[Any] | None:
    """Every process's ``payload`` by rank on rank 0; None on the others."""
    if world == 1:
        return [payload]
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(payload, gathered, dst=0)
    return gathered


def settings_mismatches(settings_by_rank: list[dict]) -> list[str]:
    """One line per setting in which a process differs from rank 0 (``rank r: name: a (rank 0) vs b
    (rank r)``); the paths of :data:`LOCATION_SETTINGS` are not compared, their contents' digests are."""
    first = {k: v for k, v in settings_by_rank[0].items() if k not in LOCATION_SETTINGS}
    lines = []
    for rank, settings in enumerate(settings_by_rank[1:], start=1):
        other = {k: v for k, v in settings.items() if k not in LOCATION_SETTINGS}
        lines += [f"rank {rank}: {line}" for line in settings_differences(first, other, ("rank 0", f"rank {rank}"))]
    return lines


def describe_indices(indices: list[int]) -> str:
    """``indices`` in words, at most :data:`SHOWN_MISSING` named: ``3, 7, 9`` or ``3, 7, ... (25 in all)``."""
    shown = ", ".join(map(str, indices[:SHOWN_MISSING]))
    return shown if len(indices) <= SHOWN_MISSING else f"{shown}, ... ({len(indices)} in all)"


def merge_results(pool_size: int, pieces: Iterable[list[ExampleResult]]) -> list[ExampleResult]:
    """The results of ``pieces`` (from every process and checkpoint; an example may come twice, as each
    process on a node reads that node's checkpoints) as one list by pool index.

    Args:
        pool_size: examples in the pool; every index ``0 .. pool_size - 1`` must be present.
        pieces: lists of results.

    Returns:
        One result per example, sorted by index.

    Raises:
        IncompleteMerge: some examples have no result; the message names them.
    """
    by_index: dict[int, ExampleResult] = {}
    for piece in pieces:
        for result in piece:
            by_index.setdefault(result.index, result)
    missing = [i for i in range(pool_size) if i not in by_index]
    if missing:
        raise IncompleteMerge(
            f"the results lack {len(missing)} of the {pool_size} examples of the pool (pool indices "
            f"{describe_indices(missing)}): no process reported them. Nothing was written; run again with "
            "--resume to attack only those"
        )
    return [by_index[i] for i in range(pool_size)]


@dataclass
class RankRecord:
    """What one process did in this session: ``examples`` attacked, their ``queries``, its wall and
    forward-pass seconds, and ``idle_seconds``: how long it waited at the end for the slowest process."""

    rank: int
    host: str
    examples: int
    queries: int
    wall_seconds: float
    forward_seconds: float
    idle_seconds: float = 0.0

    @property
    def forward_share(self) -> float | None:
        """Share of the wall time spent in forward passes (None for no time)."""
        return self.forward_seconds / self.wall_seconds if self.wall_seconds else None

    def to_json(self) -> dict:
        return asdict(self) | {"forward_share": self.forward_share}


def rank_record(rank: int, results: list[ExampleResult], wall_seconds: float, forward_seconds: float) -> RankRecord:
    """The :class:`RankRecord` of process ``rank`` that attacked ``results`` this session."""
    queries = sum(r.queries for r in results)
    return RankRecord(rank, socket.gethostname(), len(results), queries, wall_seconds, forward_seconds)
