"""Drift at scale: ``mlops monitor``'s methods on the frozen profile against Evidently's DataDriftPreset.

    .venv-bench/bin/python bench/monitor.py        # --current-rows 1000000 --reference-rows 100000 --repeats 3

Needs the bench extra (``pip install -e ".[bench]"``: Evidently 0.7, which imports
pandas < 3). One run, one process per contender for the memory figures:

* data: 20 mixed columns (12 numeric: normal, log-normal, Poisson counts, a 0/1 flag;
  8 categorical with 3 to 40 categories), a 100,000-row reference and 1,000,000 current
  rows in which 5 columns drift (3 numeric, 2 categorical), seeded;
* ours: the reference profile is built once, as a training run does (timed apart: it is
  paid at training, not at monitoring); monitoring bins the current frame onto it and
  runs every column's test with Evidently's methods at this reference size (normalised
  Wasserstein for numbers, Jensen-Shannon for categories, threshold 0.1);
* Evidently: ``Report([DataDriftPreset()])`` on the same frames with the same column
  types, which picks the same methods at 100,000 reference rows.

Reports the median wall time of each, their ratio, whether both flag the same columns,
and each one's peak extra memory against the current frame's size (the resident
high-water mark of a fresh process, and tracemalloc's peak of numpy's and pandas'
allocations; the larger is compared). The machine
is shared: read the medians, not a single run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import frame_bytes, rss_peak, traced_peak, verdict  # noqa: E402

NUMERIC = 12
CATEGORICAL = 8
DRIFTED = {"num_00", "num_04", "num_09", "cat_01", "cat_05"}


def frames(reference_rows: int, current_rows: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference and the current frame: the same generator, five columns moved in the current one."""

    def make(rows: int, rng: np.random.Generator, drifted: bool) -> pd.DataFrame:
        out: dict[str, np.ndarray] = {}
        for i in range(NUMERIC):
            name = f"num_{i:02d}"
            shift = 0.3 if drifted and name in DRIFTED else 0.0
            kind = i % 4
            if kind == 0:
                out[name] = rng.normal(shift, 1.0, rows)
            elif kind == 1:
                out[name] = rng.lognormal(3 + shift, 0.5, rows)
            elif kind == 2:
                out[name] = rng.poisson(3 * (1 + shift), rows).astype(float)
            else:
                out[name] = (rng.uniform(size=rows) < 0.2 + shift / 3).astype(float)
        for i in range(CATEGORICAL):
            name = f"cat_{i:02d}"
            k = (3, 5, 8, 12, 20, 40, 4, 6)[i]
            weights = np.linspace(1, 2, k)
            if drifted and name in DRIFTED:
                weights = weights[::-1] ** 2
            labels = np.array([f"{name}_{j}" for j in range(k)], dtype=object)
            out[name] = labels[rng.choice(k, rows, p=weights / weights.sum())]
        return pd.DataFrame(out)

    rng = np.random.default_rng(seed)
    return make(reference_rows, rng, False), make(current_rows, rng, True)


def ours(reference: pd.DataFrame, current: pd.DataFrame, repeats: int) -> dict:
    from engine.config.monitor import MonitorSpec
    from engine.stages import monitor

    started = time.perf_counter()
    profile = monitor.profile(reference, np.full(10, 0.1), 0.5)
    profile_s = time.perf_counter() - started
    spec = MonitorSpec.from_config({"rules": {}})
    columns = list(profile["columns"])

    def check() -> list[dict]:
        return monitor.compare_columns(spec, profile, monitor.Current(current), columns)

    extra, _ = rss_peak(check)  # first: a fresh process's high-water mark
    traced = traced_peak(check)
    times, rows = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = check()
        times.append(time.perf_counter() - started)
    return {"seconds": times, "profile_seconds": profile_s, "peak_extra_bytes": extra, "traced_bytes": traced,
            "methods": sorted({r["method"] for r in rows}),
            "flagged": sorted(r["column"] for r in rows if r["drifted"]),
            "statistics": {r["column"]: r["statistic"] for r in rows}}


def evidently(reference: pd.DataFrame, current: pd.DataFrame, repeats: int) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[c for c in reference if c.startswith("num_")],
                                categorical_columns=[c for c in reference if c.startswith("cat_")])

    def check() -> dict:
        return Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                               Dataset.from_pandas(reference, data_definition=definition)).dict()

    extra, _ = rss_peak(check)  # first: a fresh process's high-water mark
    traced = traced_peak(check)
    times, result = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        result = check()
        times.append(time.perf_counter() - started)
    drift = [m for m in result["metrics"] if m["config"]["type"].endswith("ValueDrift")]
    return {"seconds": times, "peak_extra_bytes": extra, "traced_bytes": traced,
            "methods": sorted({m["config"]["method"] for m in drift}),
            "flagged": sorted(m["config"]["column"] for m in drift if m["value"] >= m["config"]["threshold"]),
            "statistics": {m["config"]["column"]: m["value"] for m in drift}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats", type=int, default=3)
    parser.add_argument("--only", choices=["ours", "evidently"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.only:  # one contender in this process: its memory figure is its own
        reference, current = frames(options.reference_rows, options.current_rows)
        run = ours if options.only == "ours" else evidently
        result = run(reference, current, options.repeats if options.only == "ours" else options.evidently_repeats)
        print(json.dumps({**result, "current_bytes": frame_bytes(current)}))
        return
    results = {}
    for name in ("ours", "evidently"):
        done = subprocess.run([sys.executable, __file__, "--only", name, *sys.argv[1:]], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{name} failed:\n{done.stderr}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    a, b = results["ours"], results["evidently"]
    ours_s, evidently_s = statistics.median(a["seconds"]), statistics.median(b["seconds"])
    ratio = evidently_s / ours_s
    memory = max(a["peak_extra_bytes"], a["traced_bytes"]) / a["current_bytes"]
    print(f"drift of {options.current_rows:,} current rows x {NUMERIC + CATEGORICAL} columns against "
          f"{options.reference_rows:,} reference rows (current frame {a['current_bytes'] / 2**20:,.0f} MiB)")
    print(f"  ours:      median {ours_s:.2f} s of {len(a['seconds'])} ({', '.join(f'{s:.2f}' for s in a['seconds'])}); "
          f"methods {', '.join(a['methods'])}; profile built once at training in {a['profile_seconds']:.2f} s")
    print(f"  Evidently: median {evidently_s:.2f} s of {len(b['seconds'])} "
          f"({', '.join(f'{s:.2f}' for s in b['seconds'])}); methods {', '.join(b['methods'])}")
    print(f"  speed-up: {ratio:.1f}x (target >= 10x): {verdict(ratio >= 10)}")
    same = a["flagged"] == b["flagged"]
    print(f"  flagged: ours {', '.join(a['flagged'])}; Evidently {', '.join(b['flagged'])}; "
          f"declared {', '.join(sorted(DRIFTED))}: {verdict(same)}")
    gaps = {c: abs(a["statistics"][c] - b["statistics"][c]) for c in a["statistics"]}
    worst = max(gaps, key=gaps.get)
    print(f"  largest statistic difference: {worst} ours {a['statistics'][worst]:.4f} Evidently "
          f"{b['statistics'][worst]:.4f}")
    mib = 2**20
    print(f"  peak extra memory (resident high-water / traced allocations): ours {a['peak_extra_bytes'] / mib:,.0f}"
          f" / {a['traced_bytes'] / mib:,.0f} MiB = {memory:.2f}x the current frame (target <= 1x): "
          f"{verdict(memory <= 1)}; Evidently {b['peak_extra_bytes'] / mib:,.0f} / {b['traced_bytes'] / mib:,.0f} MiB"
          f" = {max(b['peak_extra_bytes'], b['traced_bytes']) / b['current_bytes']:.2f}x")


if __name__ == "__main__":
    main()
