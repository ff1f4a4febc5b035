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
