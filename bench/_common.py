"""Helpers the benchmark scripts share (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def frame_bytes(df: pd.DataFrame) -> int:
    """A frame's size in memory, strings included."""
    return int(df.memory_usage(deep=True).sum())


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM, ...)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def traced_peak(call: Callable[[], Any]) -> int:
    """Peak bytes Python, numpy and pandas allocate during ``call()`` (tracemalloc;
    blind to Arrow's own buffers)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = call()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del result
    return peak


def rss_peak(call: Callable[[], Any]) -> tuple[int, int]:
    """(peak extra resident bytes during ``call()``, resident bytes before it), from the
    kernel's high-water mark, reset first; run one contender per fresh process."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status_kib("VmRSS")
    result = call()  # kept alive until the high-water mark is read
    peak = status_kib("VmHWM")
    del result
    return (peak - before) * 1024, before * 1024


def pid_status_kib(pid: int, field: str) -> int | None:
    """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM, ...); None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/stat), parents first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_rss_kib(pid: int) -> int:
    """Resident KiB of ``pid`` and its descendants together (shared pages counted once per process)."""
    return sum(pid_status_kib(p, "VmRSS") or 0 for p in process_tree(pid))
