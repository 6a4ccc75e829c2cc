"""One live run per output: an exclusive lock held for a run's whole life on what it writes (an attack's
results and checkpoint, a training run's output folder).

The lock is an operating-system file lock (``filelock``) on ``<output>.lock``, so it is released when
the process ends, however it ends; a stale lock file left behind by a killed run does not block the
next one. Beside it, ``<output>.lock.owner`` names the run that holds it (process id, host, command
line, start time), so that a refused run can say which run is using the output.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_SUFFIX = ".lock"
OWNER_SUFFIX = ".owner"


class OutputInUse(OSError):
    """Another live run holds the lock on the output this run would write."""


def lock_path(output: str | Path, rank: int = 0) -> Path:
    """The lock file of ``output`` for process ``rank`` of a distributed run: ``<output>.lock`` for
    rank 0 (and a single process), ``<output>.rank<r>.lock`` for the others."""
    output = Path(output)
    suffix = LOCK_SUFFIX if rank == 0 else f".rank{rank}{LOCK_SUFFIX}"
    return output.with_name(output.name + suffix)


def _owner_of(lock: Path) -> str:
    """The run recorded as holding ``lock``, in words (or that it is unknown)."""
    try:
        owner = json.loads((lock.with_name(lock.name + OWNER_SUFFIX)).read_text(encoding="utf-8"))
        return f"process {owner['pid']} on {owner['host']}, started {owner['started']}: {' '.join(owner['command'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that did not record itself"


@contextmanager
def exclusive_run(output: str | Path, what: str, rank: int = 0) -> Iterator[Path]:
    """Hold the lock of ``output`` (see :func:`lock_path`) for the body of the ``with``.

    Args:
        output: the file or folder the run writes.
        what: how the refusal names it (e.g. ``--output results.json``).
        rank: this process's rank in a distributed run (0 for a single process).

    Yields:
        The lock file's path.

    Raises:
        OutputInUse: another live run holds the lock; the message names it.
    """
    path = lock_path(output, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputInUse(
            f"{what} is in use by another live run ({_owner_of(path)}); wait for it to end, or give this "
            f"run another output (lock: {path})"
        ) from None
    owner = path.with_name(path.name + OWNER_SUFFIX)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": [sys.executable, *sys.argv],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        owner.write_text(json.dumps(record), encoding="utf-8")
        yield path
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
