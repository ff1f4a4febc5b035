from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from engine.cli.runs import render
from engine.errors import DataError, UsageError
from engine.store import runs, tracking


def record(run_id: str, status: str = "succeeded", **extra: object) -> dict:
    return {"id": run_id, "name": "churn", "kind": "run", "status": status, "started_at": f"2026-11-27T10:00:{run_id[-2:]}",
            "run_dir": f"/runs/{run_id}", "pid": 1, "host": "elsewhere", **extra}


def test_upsert_get_and_search(tmp_path: Path) -> None:
    store = tracking.SqliteRunStore(tmp_path / "mlops.db")
    tracking.track(store, record("run-01", "running"), None)
    tracking.track(store, record("run-01"), {"model": {"_target_": "a.B", "C": 0.5}, "seed": 7},
                   {"roc_auc": 0.81, "threshold": 0.5, "note": "text"})
    run = store.get("run-01")
    assert run["status"] == "succeeded"
    assert run["params"]["model.C"] == "0.5" and run["params"]["model._target_"] == "a.B"
    assert run["metrics"] == {"roc_auc": 0.81, "threshold": 0.5}
    assert run["tags"] == {"kind": "run", "model": "B"}
    assert [r["id"] for r in store.search()] == ["run-01"]


def test_flatten() -> None:
    assert tracking.flatten({"model": {"C": 1, "x": {"y": [1, 2]}}, "seed": 7, "empty": {}}) == {
        "model.C": 1, "model.x.y": [1, 2], "seed": 7, "empty": {}}


def _many(path: str, worker: int, count: int) -> None:
    store = tracking.SqliteRunStore(Path(path))
    for i in range(count):
        tracking.track(store, record(f"w{worker}-{i:03d}"), {"model": {"_target_": "m.M"}, "i": i},
                       {"roc_auc": i / count})


def test_eight_workers_times_100_runs_on_a_fresh_store_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "mlops.db"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_many, args=(str(path), w, 100)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    rows = tracking.SqliteRunStore(path).search()
    assert len(rows) == 8 * 100
    assert all(len(r["params"]) == 2 and "roc_auc" in r["metrics"] for r in rows)


def test_a_corrupted_store_is_a_clear_error_and_reindex_recovers(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    for i in range(3):
        run_dir = outputs / "runs" / f"r{i}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps(record(f"run-0{i}", run_dir=str(run_dir))))
        (run_dir / "config.resolved.yaml").write_text("seed: 7\nmodel:\n  _target_: m.Forest\n")
        (run_dir / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": 0.7 + i / 100}}))
    db = outputs / "mlops.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="mlops runs reindex"):
        tracking.SqliteRunStore(db).search()
    assert runs.reindex(db, outputs) == 3
    rows = tracking.SqliteRunStore(db).search()
    assert sorted(r["metrics"]["roc_auc"] for r in rows) == [0.7, 0.71, 0.72]
    assert list(outputs.glob("mlops.db.old-*"))  # the damaged file is kept aside, not deleted


def test_a_running_run_whose_process_is_gone_becomes_interrupted(tmp_path: Path) -> None:
    import socket

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dead = record("run-99", "running", pid=2**22 + 12345, host=socket.gethostname(), run_dir=str(run_dir))
    (run_dir / "run.json").write_text(json.dumps(dead))
    store = tracking.SqliteRunStore(tmp_path / "mlops.db")
    tracking.track(store, dead, None)
    (row,) = runs.all_runs(store)
    assert row["status"] == "interrupted"
    assert store.get("run-99")["status"] == "interrupted"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    alive = record("run-98", "running", pid=os.getpid(), host=socket.gethostname())
    assert tracking.alive(alive) is True


ROWS = [
    {"id": "aaa111", "status": "succeeded", "name": "churn", "kind": "run", "started_at": "2026-11-01T10:00",
     "run_dir": "/x/a", "metrics": {"roc_auc": 0.82}, "params": {"model._target_": "sk.RandomForestClassifier",
                                                                  "split.test_size": "0.25"}, "tags": {}},
    {"id": "aab222", "status": "failed", "name": "churn", "kind": "run", "started_at": "2026-11-02T10:00",
     "run_dir": "/x/b", "metrics": {}, "params": {"model._target_": "sk.LogisticRegression",
                                                  "split.test_size": "0.3"}, "tags": {}},
    {"id": "bbb333", "status": "succeeded", "name": "churn", "kind": "run", "started_at": "2026-11-03T10:00",
     "run_dir": "/x/c", "metrics": {"roc_auc": 0.78}, "params": {"model._target_": "sk.LogisticRegression",
                                                                  "split.test_size": "0.25"}, "tags": {}},
]


@pytest.mark.parametrize(("where", "ids"), [
    ("metrics.roc_auc > 0.8", ["aaa111"]),
    ("metrics.roc_auc > 0.7 and params.model._target_ ~ Forest", ["aaa111"]),
    ("params.model._target_ ~ Logistic or metrics.roc_auc >= 0.82", ["bbb333", "aab222", "aaa111"]),
    ("status in (failed, interrupted)", ["aab222"]),
    ("not status = failed and params.split.test_size = 0.25", ["bbb333", "aaa111"]),
    ("(status = succeeded or status = failed) and started_at > 2026-11-01T12", ["bbb333", "aab222"]),
    ("params.model._target_ !~ Forest", ["bbb333", "aab222"]),
])
def test_where_filters(where: str, ids: list[str]) -> None:
    assert [r["id"] for r in runs.select(ROWS, where, None, None, None)] == ids


@pytest.mark.parametrize("where", ["metrics.roc_auc >", "status in (a", "(status = x", "x ~ '['", "status @ 3"])
def test_bad_filters_are_usage_errors(where: str) -> None:
    with pytest.raises(UsageError, match="--where"):
        runs.select(ROWS, where, None, None, None)


def test_sorting_puts_the_best_metric_first_and_missing_last() -> None:
    assert [r["id"] for r in runs.select(ROWS, None, "metrics.roc_auc", None, None)] == ["aaa111", "bbb333", "aab222"]
    assert [r["id"] for r in runs.select(ROWS, None, "roc_auc", False, None)] == ["bbb333", "aaa111", "aab222"]
    assert [r["id"] for r in runs.select(ROWS, None, None, None, 2)] == ["bbb333", "aab222"]


def test_resolving_a_run_argument(tmp_path: Path) -> None:
    assert runs.resolve(None, "bbb", ROWS)["id"] == "bbb333"  # type: ignore[arg-type]
    assert runs.resolve(None, "latest", ROWS)["id"] == "bbb333"  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="'aa' matches 2 runs"):
        runs.resolve(None, "aa", ROWS)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no run matches 'zz'"):
        runs.resolve(None, "zz", ROWS)  # type: ignore[arg-type]


def test_render_formats() -> None:
    table = render(ROWS, ["id", "metrics.roc_auc"], "table")
    assert table.splitlines()[1].split() == ["aaa111", "0.8200"]
    csv_text = render(ROWS, ["id", "metrics.roc_auc"], "csv")
    assert csv_text.splitlines() == ["id,metrics.roc_auc", "aaa111,0.82", "aab222,", "bbb333,0.78"]
    assert json.loads(render(ROWS, ["id"], "json")) == [{"id": "aaa111"}, {"id": "aab222"}, {"id": "bbb333"}]


def test_an_unknown_store_scheme_lists_the_schemes_and_hides_the_password() -> None:
    with pytest.raises(UsageError, match="no run store for 'mysql'") as caught:
        tracking.open_store("mysql://admin:hunter2@db:3306/mlops", Path("."))
    message = str(caught.value)
    assert "sqlite:///PATH" in message and "postgresql+psycopg://" in message
    assert "hunter2" not in message and "\n" not in message


def test_the_store_finds_the_top_runs_by_a_metric_itself(tmp_path: Path) -> None:
    store = tracking.SqliteRunStore(tmp_path / "mlops.db")
    for i in range(30):
        tracking.track(store, record(f"run-{i:02d}"), {"i": i}, {"roc_auc": (i * 7 % 30) / 30})
    tracking.track(store, record("run-xx"), {"i": -1}, {})  # no roc_auc: never in a top list
    top = store.search(("roc_auc", True, 3))
    assert [r["metrics"]["roc_auc"] for r in top] == [29 / 30, 28 / 30, 27 / 30]
    assert all(len(r["params"]) == 1 for r in top)
    bottom = store.search(("roc_auc", False, 2))
    assert [r["metrics"]["roc_auc"] for r in bottom] == [0.0, 1 / 30]
    everything = runs.select(store.search(), None, "metrics.roc_auc", None, 3)
    assert [r["id"] for r in everything] == [r["id"] for r in top]


def test_where_null_unknown_fields_and_latest_succeeded() -> None:
    assert [r["id"] for r in runs.select(ROWS, "metrics.roc_auc = null", None, None, None)] == ["aab222"]
    assert len(runs.select(ROWS, "metrics.roc_auc != null", None, None, None)) == 2
    with pytest.raises(UsageError, match="unknown field 'metric.roc_auc'"):
        runs.select(ROWS, "metric.roc_auc > 0.8", None, None, None)
    assert runs.resolve(None, "latest", ROWS, succeeded=True)["id"] == "bbb333"  # type: ignore[arg-type]
    failed_last = [*ROWS, {**ROWS[1], "id": "ccc444", "started_at": "2026-11-04T10:00"}]
    assert runs.resolve(None, "latest", failed_last)["id"] == "ccc444"  # type: ignore[arg-type]
    assert runs.resolve(None, "latest", failed_last, succeeded=True)["id"] == "bbb333"  # type: ignore[arg-type]


def test_a_dead_run_whose_directory_is_gone_is_closed_from_the_store(tmp_path: Path) -> None:
    import socket

    store = tracking.SqliteRunStore(tmp_path / "mlops.db")
    tracking.track(store, record("run-77", "running", pid=2**22 + 999, host=socket.gethostname(),
                                 run_dir=str(tmp_path / "gone")), None)
    (row,) = runs.all_runs(store)
    assert row["status"] == "interrupted" and store.get("run-77")["status"] == "interrupted"


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    store = tracking.SqliteRunStore(tmp_path / "outputs" / "mlops.db")
    assert store.search() == [] and store.search(("roc_auc", True, 3)) == [] and store.get("x") is None
    assert runs.all_runs(store) == []
    assert list(tmp_path.iterdir()) == []
    tracking.track(store, record("run-01"), None)  # a write creates it
    assert [r["id"] for r in store.search()] == ["run-01"]


def test_a_zero_byte_store_is_reported_with_the_reindex_hint_never_reset(tmp_path: Path) -> None:
    db = tmp_path / "mlops.db"
    store = tracking.SqliteRunStore(db)
    tracking.track(store, record("run-01"), None)
    db.write_bytes(b"")  # truncated
    for call in (store.search, lambda: store.get("run-01"), lambda: tracking.track(store, record("run-02"), None)):
        with pytest.raises(DataError, match=f"^data error at run store {db}: the file is empty \\(0 bytes\\), "
                                            "expected an SQLite database; rebuild it .* mlops runs reindex$"):
            call()
    assert db.read_bytes() == b""


def test_a_reader_waits_for_a_first_writer_creating_the_store(tmp_path: Path) -> None:
    import threading
    import time

    from engine.files import locked

    db = tmp_path / "mlops.db"
    store = tracking.SqliteRunStore(db)
    found: list = []
    with locked(store.lock_path):  # as a first writer holds it between creating the file and its schema
        db.write_bytes(b"")
        reader = threading.Thread(target=lambda: found.append(store.search()))
        reader.start()
        time.sleep(0.3)
        assert not found  # waiting, not reporting a damaged store
        db.unlink()
        other = tracking.SqliteRunStore(tmp_path / "other.db")
        tracking.track(other, record("run-01"), None)
        (tmp_path / "other.db").rename(db)
    reader.join(timeout=30)
    assert [[r["id"] for r in rows] for rows in found] == [["run-01"]]


def test_an_interrupt_just_after_commit_stays_an_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM landing right after COMMIT: nothing to roll back, and the failed
    ROLLBACK used to replace the interrupt with a DataError, which a run only logs."""
    import contextlib
    import sqlite3

    store = tracking.open_store(f"sqlite:///{tmp_path / 'mlops.db'}", tmp_path)
    connect = store._connect

    class Interrupting:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __getattr__(self, name: str) -> object:
            return getattr(self.conn, name)

        def execute(self, sql: str, *args: object) -> object:
            done = self.conn.execute(sql, *args)
            if sql == "COMMIT":
                raise KeyboardInterrupt
            return done

    @contextlib.contextmanager
    def interrupting():  # noqa: ANN202
        with connect() as conn:
            yield Interrupting(conn)

    monkeypatch.setattr(store, "_connect", interrupting)
    with pytest.raises(KeyboardInterrupt):
        store.upsert(record("run-1"))
    monkeypatch.undo()
    assert store.get("run-1")["status"] == "succeeded"  # committed before the interrupt
