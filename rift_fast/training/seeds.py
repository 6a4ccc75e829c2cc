"""``--seeds`` under ``torchrun``: whole seeds dealt out to the processes, one process per seed's run.

Each seed is an independent run (training, then evaluation), so the processes need not train one model
together: process ``r`` of ``N`` runs seeds ``r, r + N, ...`` of the list alone, in its own
``seed-N`` folder on its own node, exactly as one process would (a seed's results do not depend on how
many processes the job has), and evaluates it too, where DDP would leave all but rank 0 idle for every
evaluation. Rank 0 then gathers every seed's rows through a collective (no shared filesystem needed)
and pools them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

# How long the processes wait for one another's seeds in the final gather: the longest gap between the
# first and the last process to finish (a whole seed's run when the seeds do not divide evenly).
SEED_GATHER_TIMEOUT = timedelta(days=7)


def join_seed_group() -> tuple[int, int]:
    """(rank, world size) of this process; under ``torchrun`` it first joins a gloo process group whose
    collectives wait up to :data:`SEED_GATHER_TIMEOUT` (the final gather waits for the slowest seed).

    Returns:
        ``(0, 1)`` without torchrun.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=SEED_GATHER_TIMEOUT)
    return dist.get_rank(), world


def seeds_of_rank(seeds: list[int], rank: int, world: int) -> list[int]:
    """The seeds process ``rank`` of ``world`` runs: every ``world``-th of ``seeds`` (repeats dropped),
    from its ``rank``-th; none when there are fewer seeds than processes."""
    return list(dict.fromkeys(seeds))[rank::world]


def gather_seed_rows(rows_by_seed: dict[int, list[dict[str, Any]]], rank: int, world: int) -> dict | None:
    """Every process's results rows, by seed, on rank 0, then leaves the process group.

    Args:
        rows_by_seed: this process's seeds' rows (picklable).
        rank: this process's rank.
        world: the number of processes (1: no collective).

    Returns:
        The rows of every seed of every process on rank 0; None on the other ranks.
    """
    if world == 1:
        return dict(rows_by_seed)
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(rows_by_seed, gathered, dst=0)
    dist.destroy_process_group()
    if gathered is None:
        return None
    return {seed: rows for piece in gathered for seed, rows in piece.items()}
