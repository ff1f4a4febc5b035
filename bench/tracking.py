"""Benchmark: the metadata store, on SQLite and on a local PostgreSQL, in one run.

1. Logging one run's record (50 params, 10 metrics, 3 artifact paths as tags): median of
   many runs; targets at most 10 ms on SQLite, 15 ms on PostgreSQL. With mlflow
   installed, the same record through MLflow's own client on the same kind of store
   (SQLite; the same PostgreSQL server), side by side, and the ratio (target: MLflow at
   least 5x slower on PostgreSQL).
2. The top 10 runs by a metric over 100,000 runs (``mlops runs --sort metrics.roc_auc
   --limit 10``): target at most 50 ms on both. The population is bulk-loaded (the same
   record per run), then the store's own query is timed.
3. 8 processes x 100 runs each into a fresh PostgreSQL store (they create its schema
   together): every run must be there, no process may fail.

PostgreSQL: ``MLOPS_BENCH_POSTGRES_URI`` (a database the bench may fill: it makes its
own databases beside it), else a throw-away cluster started like the tests' (initdb
and pg_ctl in a temp folder), else the PostgreSQL figures are left out.

    python bench/tracking.py [--runs 200] [--population 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli.runs import DEFAULT_COLUMNS, render  # noqa: E402
from engine.store import runs, tracking  # noqa: E402

LOG_TARGET_MS = {"sqlite": 10.0, "postgresql": 15.0}
TOP_TARGET_MS = 50.0
MLFLOW_RATIO_TARGET = 5.0
WORKERS, PER_WORKER = 8, 100


def record(i: int) -> tuple[dict, dict, dict]:
    run = {"id": f"{i:032x}", "name": "bench", "kind": "run", "status": "succeeded",
           "started_at": f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}", "run_dir": f"/runs/{i}",
           "pid": 1, "host": "bench", "provenance": {"git": {"commit": "abc", "dirty": False}},
           "data": {"orders": {"fingerprint": "sha256:" + "0" * 64}}, "model": {"sha256": "1" * 64}}
    params = {"model": {f"p{j}": j * 0.5 for j in range(20)}, "features": {f"f{j}": f"v{j}" for j in range(20)},
              "split": {f"s{j}": j for j in range(10)}}
    metrics = {f"m{j}": (i * 7919 + j) % 1000 / 1000 for j in range(9)} | {"roc_auc": (i * 7919) % 10007 / 10007}
    return run, params, metrics


def tags_of(i: int) -> dict[str, str]:
    return {"kind": "run", **{f"artifact.{n}": f"/runs/{i}/{n}" for n in ("model.joblib", "metrics.json",
                                                                        "predictions.parquet")}}


def log_one(store: tracking.RunStore, i: int) -> None:
    run, params, metrics = record(i)
    store.upsert(tracking.summary(run, None), params=tracking.flatten(params), metrics=metrics, tags=tags_of(i))


def bench_log(store: tracking.RunStore, n: int) -> list[float]:
    log_one(store, -1)  # schema creation is not part of logging a run
    times = []
    for i in range(n):
        start = time.perf_counter()
        log_one(store, i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def bench_mlflow(uri: str, n: int, root: Path) -> list[float] | None:
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        return None
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"bench-{time.time_ns()}", artifact_location=str(root / "mlflow-artifacts"))
    artifact = root / "artifact.txt"
    artifact.write_text("x")
    times = []
    for i in range(n):
        _, params, metrics = record(i)
        start = time.perf_counter()
        run = client.create_run(experiment, tags={"mlflow.runName": f"run-{i}"})
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in tracking.flatten(params).items()])
        for _ in range(3):
            client.log_artifact(run.info.run_id, str(artifact))
        client.set_terminated(run.info.run_id)
        times.append((time.perf_counter() - start) * 1000)
    return times


def rows_of(population: int) -> Iterator[tuple[dict[str, Any], list[tuple], list[tuple], list[tuple]]]:
    """Each run's row and its params, metrics and tags rows, as the store writes them."""
    for i in range(population):
        run, params, metrics = record(i)
        row = {name: tracking._column(value) for name, value in tracking.summary(run, None).items()}
        yield (row, [(row["id"], k, tracking._text(v)) for k, v in tracking.flatten(params).items()],
               [(row["id"], k, v) for k, v in metrics.items()], [(row["id"], k, v) for k, v in tags_of(i).items()])


def fill_sqlite(store: tracking.SqliteRunStore, population: int) -> None:
    import sqlite3

    store.exists(create=True)
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("BEGIN")
    names = tracking.RUN_FIELDS
    for row, params, metrics, tags in rows_of(population):
        conn.execute(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                     [row[n] for n in names])
        for table, values in (("params", params), ("metrics", metrics), ("tags", tags)):
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", values)
    conn.execute("COMMIT")
    conn.close()


def fill_postgres(store: Any, population: int) -> None:
    log_one(store, -1)  # creates the schema
    names = tracking.RUN_FIELDS
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY runs ({', '.join(names)}) FROM STDIN") as runs_copy:
            for row, _, _, _ in rows_of(population):
                runs_copy.write_row([row[n] for n in names])
        for index, table in ((1, "params"), (2, "metrics"), (3, "tags")):
            with cursor.copy(f"COPY {table} (run_id, key, value) FROM STDIN") as copy:
                for parts in rows_of(population):
                    for values in parts[index]:
                        copy.write_row(values)
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def bench_top(store: tracking.RunStore, repeats: int = 20) -> list[float]:
    store.search(("roc_auc", True, 10))  # a connection and the schema check are not part of it
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        top = store.search(("roc_auc", True, 10))
        rows = runs.select(top, None, "metrics.roc_auc", None, 10)
        render(rows, list(DEFAULT_COLUMNS), "table")
        times.append((time.perf_counter() - start) * 1000)
    assert len(rows) == 10
    return times


def _worker(uri: str, first: int, count: int, queue: Any) -> None:
    errors = 0
    store = tracking.open_store(uri, Path.cwd())
    for i in range(first, first + count):
        try:
            log_one(store, i)
        except Exception as exc:  # counted and named: the bench reports every failure
            errors += 1
            print(f"worker {first // count}: run {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
    queue.put(errors)


def bench_writers(uri: str) -> tuple[int, int, float]:
    """(lost runs, errors, seconds) of WORKERS processes x PER_WORKER runs into a fresh store."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = time.perf_counter()
    workers = [context.Process(target=_worker, args=(uri, w * PER_WORKER, PER_WORKER, queue))
               for w in range(WORKERS)]
    for worker in workers:
        worker.start()
    errors = sum(queue.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join()
    errors += sum(1 for w in workers if w.exitcode != 0)
    seconds = time.perf_counter() - start
    found = len(tracking.open_store(uri, Path.cwd()).search(tag=("kind", "run")))
    return WORKERS * PER_WORKER - found, errors, seconds


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """A PostgreSQL superuser URI: MLOPS_BENCH_POSTGRES_URI, a throw-away cluster, or None."""
    if os.environ.get("MLOPS_BENCH_POSTGRES_URI"):
        yield os.environ["MLOPS_BENCH_POSTGRES_URI"]
        return
    try:
        import psycopg  # noqa: F401

        from tests import postgres
    except ImportError:
        yield None
        return
    with postgres.cluster() as started:
        yield None if started is None else started.uri


def median_line(label: str, times: list[float], target: float | None) -> str:
    ms = statistics.median(times)
    verdict = "" if target is None else f"   {'PASS' if ms <= target else 'MISS'} (target <= {target:g} ms)"
    return f"  {label:<28} median {ms:7.2f} ms   p90 {sorted(times)[int(len(times) * 0.9)]:7.2f} ms{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops its cluster
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp, postgres_server() as server:
        root = Path(tmp)
        stores: dict[str, tracking.RunStore] = {"sqlite": tracking.SqliteRunStore(root / "log.db")}
        mlflow_uris = {"sqlite": f"sqlite:///{root / 'mlflow.db'}"}
        if server is not None:
            from tests.postgres import create_database

            stores["postgresql"] = tracking.open_store(create_database(server), root)
            mlflow_uris["postgresql"] = create_database(server)
        print(f"log one run (50 params, 10 metrics, 3 artifact paths), {args.runs} runs:")
        for backend, store in stores.items():
            ours = bench_log(store, args.runs)
            print(median_line(f"engine, {backend}", ours, LOG_TARGET_MS[backend]))
            figures[f"{backend}_log_ms"] = statistics.median(ours)
            theirs = bench_mlflow(mlflow_uris[backend], min(args.runs, 50), root)
            if theirs is None:
                print("  MLflow client                not installed (pip install mlflow): no side-by-side figure")
                continue
            ratio = statistics.median(theirs) / statistics.median(ours)
            figures[f"{backend}_mlflow_log_ms"], figures[f"{backend}_mlflow_ratio"] = statistics.median(theirs), ratio
            target = f"   {'PASS' if ratio >= MLFLOW_RATIO_TARGET else 'MISS'} (target >= {MLFLOW_RATIO_TARGET:g}x)" \
                if backend == "postgresql" else ""
            print(median_line(f"MLflow client, {backend}", theirs, None) + f"   MLflow / engine = {ratio:.1f}x{target}")
        print(f"top 10 by metrics.roc_auc over {args.population:,} runs:")
        for backend in stores:
            start = time.perf_counter()
            if backend == "sqlite":
                populated: tracking.RunStore = tracking.SqliteRunStore(root / "top.db")
                fill_sqlite(populated, args.population)  # type: ignore[arg-type]
            else:
                populated = tracking.open_store(create_database(server), root)  # type: ignore[arg-type]
                fill_postgres(populated, args.population)
            loaded = time.perf_counter() - start
            top = bench_top(populated)
            print(median_line(f"engine, {backend}", top, TOP_TARGET_MS) + f"   (bulk load {loaded:.0f} s)")
            figures[f"{backend}_top10_ms"] = statistics.median(top)
        if server is not None:
            lost, errors, seconds = bench_writers(create_database(server))
            verdict = "PASS" if lost == errors == 0 else "MISS"
            print(f"{WORKERS} processes x {PER_WORKER} runs into a fresh PostgreSQL store: {lost} lost, {errors} "
                  f"errors in {seconds:.1f} s   {verdict} (target 0 lost, 0 errors)")
            figures |= {"postgresql_writers_lost": lost, "postgresql_writers_errors": errors}
        else:
            print("PostgreSQL: not installed and MLOPS_BENCH_POSTGRES_URI not set: no PostgreSQL figures")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
