"""Freed host memory kept in the heap (glibc mallopt), so that repeated forward passes reuse it."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from rift_fast.core import host_memory
from rift_fast.core.host_memory import retain_freed_host_memory

# Allocates, touches and frees a working set of COUNT blocks of MIB MiB, three times, and prints the free
# memory the heap keeps afterwards (mallinfo2's fordblks, MiB).
ROUNDS_SCRIPT = """
import ctypes, json, sys, torch
from rift_fast.core.host_memory import retain_freed_host_memory
setting, mib, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
taken = retain_freed_host_memory(large_blocks_in_heap=setting == "large") if setting != "default" else None
class MallocInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallocInfo
for round in range(3):
    working_set = [torch.empty(mib << 20, dtype=torch.uint8).fill_(round) for _ in range(count)]
    del working_set
print(json.dumps({"taken": taken, "kept_mib": mallinfo2().fordblks >> 20}))
"""
WORKING_SET_MIB = 8 * 16

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")


def freed_and_kept(setting: str, mib: int = 16, count: int = 8) -> dict:
    """Whether the setting was taken and the freed MiB the heap keeps, in a fresh process with ``setting``
    ("retained", "large": large blocks in the heap too, or "default") after rounds of ``count`` blocks of
    ``mib`` MiB (16 MiB: below glibc's 32 MiB mmap ceiling)."""
    command = [sys.executable, "-c", ROUNDS_SCRIPT, setting, str(mib), str(count)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@glibc_only
def test_a_freed_working_set_stays_in_the_heap_when_retained():
    # glibc's default keeps a varying part of it (its thresholds move with the allocation history), so
    # only the retained side is asserted; benchmarks/bench_host_memory.py measures the difference.
    retained = freed_and_kept("retained")
    assert retained["taken"] is True
    assert retained["kept_mib"] >= WORKING_SET_MIB  # the next forward reuses it without page faults


@glibc_only
def test_blocks_over_the_mmap_ceiling_stay_only_when_large_blocks_are_in_the_heap():
    # 3 blocks of 48 MiB: glibc maps each apart and unmaps it when freed, unless it maps none
    assert freed_and_kept("retained", mib=48, count=3)["kept_mib"] < 48
    large = freed_and_kept("large", mib=48, count=3)
    assert large["taken"] is True and large["kept_mib"] >= 3 * 48


def test_both_thresholds_are_set(monkeypatch):
    calls = []

    class RecordingLibc:
        @staticmethod
        def mallopt(parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: RecordingLibc())
    monkeypatch.setattr(host_memory, "_setting", "default")  # restored after the test: pytest's process unchanged
    assert retain_freed_host_memory(1 << 28, large_blocks_in_heap=False) is True
    assert host_memory.host_memory_setting() == "retained"
    assert sorted(calls) == [(-3, host_memory.HEAP_BLOCK_BYTES), (-1, 1 << 28)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    calls.clear()
    assert retain_freed_host_memory(1 << 28) is True  # by default every block comes from the heap
    assert sorted(calls) == [(-4, 0), (-3, host_memory.HEAP_BLOCK_BYTES), (-1, 1 << 28)]  # and M_MMAP_MAX = 0
    assert host_memory.host_memory_setting() == "retained-large-in-heap"
    assert retain_freed_host_memory(1 << 28, large_blocks_in_heap=False) is True
    assert host_memory.host_memory_setting() == "retained-large-in-heap"  # M_MMAP_MAX stays 0: not undone


@pytest.mark.parametrize("limit", [0, -1, 1 << 31, 1 << 40])
def test_limit_outside_a_c_int_is_refused_naming_it(limit):
    with pytest.raises(ValueError, match=str(limit)):
        retain_freed_host_memory(limit)


def test_other_c_libraries_are_left_as_they_are(monkeypatch):
    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("", ""))
    assert retain_freed_host_memory() is False


@glibc_only
def test_a_refused_setting_is_reported(monkeypatch, caplog):
    class RefusingLibc:
        @staticmethod
        def mallopt(parameter: int, value: int) -> int:
            return 0

    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: RefusingLibc())
    monkeypatch.setattr(host_memory, "_setting", "default")
    assert retain_freed_host_memory() is False
    assert "refused" in caplog.text
    assert host_memory.host_memory_setting() == "default"
