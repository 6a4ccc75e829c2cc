"""Sharing one attack's pool among the processes of a ``torchrun`` job, on one node or many.

- **Balanced work**: the examples still to attack are put longest first, cut into chunks of about one
  cost in words (:func:`cost_chunks`: a long review alone, short texts together) and handed out
  by an atomic counter in ``torch.distributed``'s own key-value store (the rendezvous store), so a
  process that finishes early takes more (:class:`ChunkQueue`).
- **Sharding-free outcomes**: every random draw of an attack is seeded from the run's seed and the
  example's pool index (the GA's generator, the character edits' words), so which process attacks an
  example, and beside which others, does not change its result.
- **No shared filesystem**: results travel through ``torch.distributed`` (the start's settings by
  :func:`all_gather`; each process's results, when it is done, through the rendezvous store:
  :func:`publish_piece`, :func:`collect_pieces`), never through another process's files, and a merge
  that lacks any example of the pool fails naming the missing ones (:func:`merge_results`).
- **A process that dies**: every process keeps a heartbeat in the store while it works
  (:class:`Heartbeat`); the others go on taking chunks from the queue, and rank 0 waits for each
  process's results only while its heartbeat goes on, so a dead process is named and its examples are
  reported missing (nothing written) instead of the run hanging; its finished examples stay in its own
  checkpoint, where ``--resume`` finds them.
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import threading
import time
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
EXIT_AFTER_CHUNKS_VARIABLE = "RIFT_FAST_EXIT_AFTER_CHUNKS"  # the tests' stand-in for a kill: exit_if_told
HEARTBEAT_SECONDS = 2.0  # how often a working process says it is alive
LOST_AFTER_SECONDS = 30.0  # a process whose heartbeat stood still this long is taken as dead


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
        for finished in itertools.count():
            exit_if_told(EXIT_AFTER_CHUNKS_VARIABLE, finished)
            if (k := self.take()) >= len(self.chunks):
                return
            yield self.chunks[k]


def exit_if_told(variable: str, count: int) -> None:
    """End the process at once, as a kill would (no clean-up, exit status 1), when the environment
    variable ``variable`` reads ``R:K``, this process has torchrun's rank ``R`` and ``count`` (of chunks
    attacked, of training steps) has reached ``K``; unset: never. The tests stop a process mid-run with
    :data:`EXIT_AFTER_CHUNKS_VARIABLE` and :data:`rift_fast.training.loop.EXIT_AFTER_STEPS_VARIABLE`."""
    told = os.environ.get(variable)
    if told is None:
        return
    rank, limit = (int(part) for part in told.split(":"))
    if rank == int(os.environ.get("RANK", "0")) and count >= limit:
        os._exit(1)


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
    store = default_store() if store is None else store
    return lambda: store.add(key, 1) - 1


def default_store() -> Any:
    """The key-value store of the default process group (under torchrun, its rendezvous store)."""
    import torch.distributed as dist

    return dist.distributed_c10d._get_default_store()


def all_gather(payload: Any, world: int) -> list[Any]:
    """Every process's ``payload`` (picklable), by rank, on every process (``[payload]`` for one)."""
    if world == 1:
        return [payload]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, payload)
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


def merge_results(
    pool_size: int, pieces: Iterable[list[ExampleResult]], lost: Iterable[str] = ()
) -> list[ExampleResult]:
    """The results of ``pieces`` (from every process and checkpoint; an example may come twice, as each
    process on a node reads that node's checkpoints) as one list by pool index.

    Args:
        pool_size: examples in the pool; every index ``0 .. pool_size - 1`` must be present.
        pieces: lists of results.
        lost: the processes that died before reporting, in words (named when examples are missing).

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
        lost = list(lost)
        died = (
            f" Died before reporting: {', '.join(lost)} (the examples a process finished stay in its checkpoint "
            "on its node, where --resume finds them)."
            if lost
            else ""
        )
        raise IncompleteMerge(
            f"the results lack {len(missing)} of the {pool_size} examples of the pool (pool indices "
            f"{describe_indices(missing)}): no process reported them.{died} Nothing was written; run again with "
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


class Heartbeat:
    """While its ``with`` block runs, a thread counts up ``key`` in ``store`` every ``seconds``: this
    process is alive (:func:`collect_pieces` reads it). The thread uses its own clone of ``store`` (one
    connection per thread); a ``store`` of None does nothing (one process)."""

    def __init__(self, store: Any, key: str, seconds: float = HEARTBEAT_SECONDS):
        self.store: Any = store.clone() if store is not None else None
        self.key, self.seconds = key, seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="rift_fast heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            self.store.add(self.key, 1)
            if self.stopped.wait(self.seconds):
                return

    def __enter__(self) -> "Heartbeat":
        if self.store is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()


def publish_piece(store: Any, run_key: str, rank: int, piece: dict) -> None:
    """Put process ``rank``'s ``piece`` (picklable: its results and records) in ``store`` for rank 0,
    stamped with the time it finished (``finished_at``, seconds since the epoch: :func:`note_idle_seconds`)."""
    store.set(f"{run_key}/piece/{rank}", pickle.dumps(piece | {"finished_at": time.time()}))


def note_idle_seconds(pieces: Iterable[dict]) -> None:
    """Sets each piece's ``record.idle_seconds``: how long its process, done, waited for the last one."""
    pieces = list(pieces)
    last = max(piece["finished_at"] for piece in pieces)
    for piece in pieces:
        piece["record"].idle_seconds = last - piece["finished_at"]


def collect_pieces(
    store: Any, run_key: str, world: int, lost_after: float = LOST_AFTER_SECONDS, poll: float = 0.5
) -> tuple[dict[int, dict], list[int]]:
    """On rank 0: every process's piece (:func:`publish_piece`) as it arrives, until each process has
    either published or let its heartbeat (``<run_key>/alive/<rank>``, :class:`Heartbeat`) stand still
    for ``lost_after`` seconds.

    Args:
        store: the store every process reaches (the rendezvous store).
        run_key: this run's prefix of keys.
        world: the number of processes.
        lost_after: seconds of a still heartbeat after which a process is taken as dead.
        poll: seconds between two looks at the store.

    Returns:
        ``(pieces by rank, dead ranks)``.
    """
    pieces: dict[int, dict] = {}
    beats: dict[int, tuple[int, float]] = {}  # rank -> (last count seen, when it last changed)
    lost: list[int] = []
    while len(pieces) + len(lost) < world:
        now = time.monotonic()
        for rank in range(world):
            if rank in pieces or rank in lost:
                continue
            key = f"{run_key}/piece/{rank}"
            if store.check([key]):
                pieces[rank] = pickle.loads(store.get(key))
                store.delete_key(key)
                continue
            count = store.add(f"{run_key}/alive/{rank}", 0)
            if beats.get(rank, (None, 0.0))[0] != count:
                beats[rank] = (count, now)
            elif now - beats[rank][1] > lost_after:
                lost.append(rank)
        if len(pieces) + len(lost) < world:
            time.sleep(poll)
    return pieces, lost
