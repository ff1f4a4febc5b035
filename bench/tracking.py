"""Benchmark: the metadata store.

1. Logging one run's record (50 params, 10 metrics, 3 artifact paths as tags) into the
   SQLite store: median of many runs, target at most 10 ms. With mlflow installed, the
   same record through MLflow's own client on SQLite, side by side, and the ratio.
2. The top 10 runs by a metric over 10,000 runs (``mlops runs --sort metrics.roc_auc
   --limit 10``): target at most 20 ms.

    python bench/tracking.py [--runs 200] [--population 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from engine.store import runs, tracking

LOG_TARGET_MS = 10.0
TOP_TARGET_MS = 20.0


def record(i: int) -> tuple[dict, dict, dict]:
    run = {"id": f"{i:032x}", "name": "bench", "kind": "run", "status": "succeeded",
           "started_at": f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}", "run_dir": f"/runs/{i}",
           "pid": 1, "host": "bench", "provenance": {"git": {"commit": "abc", "dirty": False}},
           "data": {"orders": {"fingerprint": "sha256:" + "0" * 64}}, "model": {"sha256": "1" * 64}}
    params = {"model": {f"p{j}": j * 0.5 for j in range(20)}, "features": {f"f{j}": f"v{j}" for j in range(20)},
              "split": {f"s{j}": j for j in range(10)}}
    metrics = {f"m{j}": (i * 7919 + j) % 1000 / 1000 for j in range(9)} | {"roc_auc": (i * 7919) % 10007 / 10007}
    return run, params, metrics


def log_one(store: tracking.RunStore, i: int) -> None:
    run, params, metrics = record(i)
    tags = {"kind": "run", **{f"artifact.{n}": f"/runs/{i}/{n}" for n in ("model.joblib", "metrics.json",
                                                                          "predictions.parquet")}}
    store.upsert(tracking.summary(run, None), params=tracking.flatten(params), metrics=metrics, tags=tags)


def bench_log(n: int, root: Path) -> list[float]:
    store = tracking.SqliteRunStore(root / "log.db")
    log_one(store, -1)  # schema creation is not part of logging a run
    times = []
    for i in range(n):
        start = time.perf_counter()
        log_one(store, i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def bench_mlflow(n: int, root: Path) -> list[float] | None:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        return None
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.create_experiment("bench", artifact_location=str(root / "mlflow-artifacts"))
    artifact = root / "artifact.txt"
    artifact.write_text("x")
    times = []
    for i in range(n):
        _, params, metrics = record(i)
        start = time.perf_counter()
        run = client.create_run(experiment, tags={"mlflow.runName": f"run-{i}"})
        from mlflow.entities import Metric, Param

        client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in tracking.flatten(params).items()])
        for _ in range(3):
            client.log_artifact(run.info.run_id, str(artifact))
        client.set_terminated(run.info.run_id)
        times.append((time.perf_counter() - start) * 1000)
    return times


def bench_top(population: int, root: Path, repeats: int = 20) -> list[float]:
    store = tracking.SqliteRunStore(root / "top.db")
    for i in range(population):
        log_one(store, i)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        top = store.search(("roc_auc", True, 10))
        rows = runs.select(top, None, "metrics.roc_auc", None, 10)
        runs.render(rows, list(runs.DEFAULT_COLUMNS), "table")
        times.append((time.perf_counter() - start) * 1000)
    assert len(rows) == 10
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--population", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        root = Path(tmp)
        ours = bench_log(args.runs, root)
        theirs = bench_mlflow(min(args.runs, 50), root)
        top = bench_top(args.population, root)
    log_ms, top_ms = statistics.median(ours), statistics.median(top)
    print(f"log one run (50 params, 10 metrics, 3 artifact paths), {args.runs} runs:")
    print(f"  engine SQLite store   median {log_ms:6.2f} ms   p90 {sorted(ours)[int(len(ours) * 0.9)]:6.2f} ms"
          f"   {'PASS' if log_ms <= LOG_TARGET_MS else 'MISS'} (target <= {LOG_TARGET_MS:g} ms)")
    figures = {"log_ms": log_ms, "top10_ms": top_ms}
    if theirs is None:
        print("  MLflow client         not installed (pip install mlflow): no side-by-side figure")
    else:
        mlflow_ms = statistics.median(theirs)
        figures |= {"mlflow_log_ms": mlflow_ms, "ratio": mlflow_ms / log_ms}
        print(f"  MLflow client, SQLite median {mlflow_ms:6.2f} ms   MLflow / engine = {mlflow_ms / log_ms:.1f}x")
    print(f"top 10 by metrics.roc_auc over {args.population} runs: median {top_ms:.2f} ms   "
          f"{'PASS' if top_ms <= TOP_TARGET_MS else 'MISS'} (target <= {TOP_TARGET_MS:g} ms)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
