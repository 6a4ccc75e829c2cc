"""Timing and peak-memory helpers shared by the per-op benchmark scripts.

Times come from the standard library's ``timeit`` with a clock that synchronises CUDA first; peak
memory is the CUDA allocator's peak on a GPU and, on the CPU, the peak-RSS growth of one call
measured in a fresh subprocess (the allocator keeps freed pages, so only a new process is exact).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import torch

NEIGHBOURS_VARIABLE = "RIFT_FAST_NEIGHBOURS"  # environment variable: the path of the counter-fitted neighbour sets


def neighbours_file() -> str | None:
    """The path that ``$RIFT_FAST_NEIGHBOURS`` names: ``counterfitted_neighbors.json``, the synonym sets
    of the published GA and PWWS evaluations (Jia et al., 2019: the 8 nearest counter-fitted vectors of
    Mrksic et al., 2016, within Euclidean distance 0.5), which users download; None when it is unset.

    Raises:
        FileNotFoundError: the variable names no file.
    """
    path = os.environ.get(NEIGHBOURS_VARIABLE)
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"${NEIGHBOURS_VARIABLE} names {path}, which is not a file")
    return path or None


def synonym_source(choice: str | None) -> str:
    """The synonym sets a benchmark reads: ``choice`` (a neighbour JSON, or ``embedded``) when given,
    else the file ``$RIFT_FAST_NEIGHBOURS`` names (:func:`neighbours_file`), else ``embedded``."""
    return choice or neighbours_file() or "embedded"


def _synchronised_clock() -> float:
    """perf_counter after the queued GPU work has finished (seconds)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def median_ms(run: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``run()`` in milliseconds over ``repeats`` calls after ``warmup`` calls."""
    timer = timeit.Timer(run, timer=_synchronised_clock)
    timer.timeit(number=warmup)
    return statistics.median(timer.repeat(repeat=repeats, number=1)) * 1e3


def cuda_peak_mib(run: Callable[[], object], device: torch.device) -> float:
    """Peak CUDA memory (MiB) allocated by one ``run()`` above what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def print_rss_growth(warm_run: Callable[[], object], run: Callable[[], object]) -> None:
    """Subprocess side of :func:`peak_mib` on the CPU: print, as JSON, the peak-RSS growth (MiB) of ``run()``
    after ``warm_run()`` (a tiny call that pages in the code, which would otherwise count)."""
    warm_run()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    run()
    print(json.dumps({"mib": (_status_kib("VmHWM") - before) / 1024}))


def peak_mib(run: Callable[[], object], device: torch.device, probe_command: list[str]) -> float:
    """Peak extra memory (MiB) of one ``run()``: the CUDA allocator's peak on a GPU; on the CPU, what
    ``python *probe_command`` (a script call ending in :func:`print_rss_growth`) prints."""
    if device.type == "cuda":
        return cuda_peak_mib(run, device)
    command = [sys.executable, *probe_command]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)["mib"]


def cpu_description() -> str:
    """The CPU's model name, its core count and whether it has native bfloat16 (avx512_bf16)."""
    name = platform.processor() or platform.machine()
    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        flags = next(line for line in cpuinfo.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    bf16 = "avx512_bf16" if "avx512_bf16" in flags.split() else "no avx512_bf16"
    return f"{name}, {os.cpu_count()} CPUs visible, {bf16}"


def checkout_commit() -> str | None:
    """The short commit of the checkout these benchmarks live in (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    return found.stdout.strip() or None


STARTED_AT_COMMIT = checkout_commit()  # the code a benchmark process runs: the commit when it started


def benchmark_record(measurement: str, title: str, command: str, machine: str, tables: list[dict], **fields) -> dict:
    """A record in the form of ``benchmarks/results/*.json`` (``render_results.py``), dated today, with
    the checkout's commit when the process started (:data:`STARTED_AT_COMMIT`: a commit made while a long
    benchmark runs is not the code it ran) and the topic "attacks" unless ``fields`` give another;
    ``fields`` are added."""
    return {
        "measurement": measurement,
        "title": title,
        "date": datetime.date.today().isoformat(),
        "command": command,
        "commit": STARTED_AT_COMMIT,
        "machine": machine,
        "topic": "attacks",
        "tables": tables,
        **fields,
    }


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` as indented JSON at ``path`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
