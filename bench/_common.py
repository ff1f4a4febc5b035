"""Helpers the benchmark scripts share (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def copy_conf(source: Path, project: Path) -> None:
    """Copy a conf/ tree into ``project``, leaving this machine's conf/local/default.yaml behind
    (every other group's default.yaml is copied)."""
    shutil.copytree(source, project / "conf",
                    ignore=lambda folder, names: ["default.yaml"] if Path(folder).name == "local" else [])


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


def engine_under_test(tmp: Path, code: str, root: Path, bench: str) -> tuple[Path, dict[str, str], str]:
    """The engine code a benchmark runs, the environment of its commands and the mlops command.

    Args:
        tmp: The benchmark's temp folder.
        code: ``head``: a clean clone of the repository's HEAD in ``tmp`` (others'
            uncommitted edits cannot change the figures mid-run); ``working``: the
            working tree as it is.
        root: The repository.
        bench: The benchmark's name, for the error message.

    Returns:
        The source folder, the environment (the engine's and MLflow's variables removed)
        and the path of the ``mlops`` command.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("HYDRA_FULL_ERROR", "MLOPS_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLOPS_REGISTRY"):
        env.pop(name, None)
    source = root
    if code == "head":
        source = tmp / "engine-head"
        subprocess.run(["git", "clone", "--quiet", "--shared", str(root), str(source)], check=True)
        env["PYTHONPATH"] = str(source)
    beside = Path(sys.executable).parent / "mlops"
    found = str(beside) if beside.exists() else shutil.which("mlops")
    if not found:
        raise SystemExit(f"{bench}: cannot find the mlops command next to this Python or on PATH")
    return source, env, found


def print_model_file_costs(costs: dict[str, Any]) -> None:
    print("\nmodel file: save + load, skops (ours) vs the zlib pickle it replaced "
          "(medians, ms; sizes in KiB)")
    print(f"  {'model':<34} {'save':>16} {'load':>16} {'save+load':>18} {'size':>18}")
    for label, row in costs.items():
        if not isinstance(row, dict):
            continue
        s, z = row["skops"], row["zlib_pickle"]
        print(f"  {label:<34} {s['save_s'] * 1e3:6.0f} vs {z['save_s'] * 1e3:5.0f}  "
              f"{s['load_s'] * 1e3:6.0f} vs {z['load_s'] * 1e3:5.0f}  "
              f"{s['total_s'] * 1e3:6.0f} vs {z['total_s'] * 1e3:5.0f} "
              f"{s['bytes'] / 1024:7.0f} vs {z['bytes'] / 1024:6.0f}")
        print(f"  {'':<34} {'x' + format(row['ratio_save'], '.1f'):>16} {'x' + format(row['ratio_load'], '.1f'):>16} "
              f"{'x' + format(row['ratio_total'], '.1f'):>18} {'x' + format(row['ratio_bytes'], '.1f'):>18}")
    print(f"  first use in a process: import skops.io {costs['skops_import_s']:.2f} s (once per process)")
