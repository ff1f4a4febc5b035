"""Helpers the benchmark scripts share (run as ``python bench/<name>.py``)."""

from __future__ import annotations

from pathlib import Path

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
