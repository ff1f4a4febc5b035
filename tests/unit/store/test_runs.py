"""engine.store.runs against hostile input: filters, sorting, reindexing and dead runs."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from engine.errors import DataError, UsageError
from engine.store import runs, tracking

ROWS = [
    {"id": "aaa111", "status": "succeeded", "name": "churn", "kind": "run", "started_at": "2026-11-01T10:00",
     "hypothesis": "a" * 40 + "b", "run_dir": "/x/a", "metrics": {"roc_auc": 0.82}, "params": {"seed": "7"},
     "tags": {"kind": "run"}},
    {"id": "bbb222", "status": "failed", "name": "churn", "kind": "run", "started_at": "2026-11-02T10:00",
     "hypothesis": None, "run_dir": "/x/b", "metrics": {}, "params": {"seed": "8"}, "tags": {}},
]


def ids(where: str | None = None, sort: str | None = None) -> list[str]:
    return [r["id"] for r in runs.select(ROWS, where, sort, None, None)]


def test_where_nested_beyond_the_limit_is_refused_by_depth() -> None:
    deep = "(" * 21 + "status = failed" + ")" * 21
    with pytest.raises(UsageError, match=r"^usage error: --where: expected parentheses nested at most 20 deep, got 21$"):
        ids(deep)
    assert ids("(" * 20 + "status = failed" + ")" * 20) == ["bbb222"]
    with pytest.raises(UsageError, match="got 400"):
        ids("(" * 400 + "status = failed" + ")" * 400)


def test_where_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^usage error: --where: expected at most 2000 characters, got 2\d\d\d$"):
        ids(" or ".join(["status = x"] * 200))


def test_long_chains_never_recurse() -> None:
    # 121 or-ed terms and 400 nots: flat lists and a loop, far below the recursion limit.
    assert ids(" or ".join(["status = x"] * 120 + ["status = failed"])) == ["bbb222"]
    assert ids("not " * 400 + "status = failed") == ["bbb222"]
    assert ids("not " * 399 + "status = failed") == ["aaa111"]
    assert ids(" and ".join(["name = churn"] * 100)) == ["bbb222", "aaa111"]


def test_a_catastrophic_regular_expression_is_stopped_by_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "REGEX_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"^usage error: --where: the regular expression '\(a\+\)\+\$' took more "
                                         r"than 0.2 s on one hypothesis value of 41 characters"):
        ids("hypothesis ~ '(a+)+$'")
    assert time.monotonic() - started < 5
    import signal

    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # the handler is put back
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert ids("hypothesis ~ 'a+b$'") == ["aaa111"]  # a sane pattern is untouched


def test_sort_on_a_field_no_run_has_lists_the_known_fields() -> None:
    with pytest.raises(UsageError, match=r"^usage error: --sort: no run has the field 'metrics.nope'; expected one "
                                         r"of: .*\bstatus\b.*metrics.roc_auc, tags.kind, params.seed$"):
        ids(sort="metrics.nope")
    assert ids(sort="metrics.roc_auc") == ["aaa111", "bbb222"]
    assert ids(sort="roc_auc") == ["aaa111", "bbb222"]  # a bare metric name
    assert ids(sort="ended_at") == ["aaa111", "bbb222"]  # a run column, even when every run lacks it
    assert runs.select([], None, "metrics.nope", None, None) == []  # nothing to sort


def record(run_id: str, run_dir: Path, status: str = "succeeded", **extra: object) -> dict:
    return {"id": run_id, "name": "churn", "kind": "run", "status": status, "started_at": f"2026-11-27T10:{run_id[-2:]}",
            "run_dir": str(run_dir), "pid": 1, "host": "elsewhere", "error": None, **extra}


def make_outputs(root: Path, n: int = 3) -> Path:
    outputs = root / "outputs"
    for i in range(n):
        run_dir = outputs / "runs" / f"r{i}"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps(record(f"run-0{i}", run_dir)))
        (run_dir / "config.resolved.yaml").write_text("seed: 7\nmodel:\n  _target_: m.Forest\n")
        (run_dir / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": 0.7 + i / 100}}))
    return outputs


def test_reindex_of_a_folder_without_runs_is_refused_and_keeps_the_index(tmp_path: Path) -> None:
    outputs = make_outputs(tmp_path)
    db = outputs / "mlops.db"
    assert runs.reindex(db, outputs) == 3
    before = db.read_bytes()
    (tmp_path / "empty").mkdir()
    for folder, what in ((tmp_path / "empty", "no run directories"), (tmp_path / "missing", "no such folder")):
        with pytest.raises(UsageError, match=f"^usage error: runs reindex --outputs {folder}: {what}.*the index "
                                             "is left as it is"):
            runs.reindex(db, folder)
    assert db.read_bytes() == before and len(tracking.SqliteRunStore(db).search()) == 3


def test_reindex_skips_and_names_each_run_dir_it_cannot_parse(tmp_path: Path) -> None:
    outputs = make_outputs(tmp_path, 5)
    (outputs / "runs" / "r0" / "run.json").write_text("[1, 2]")
    (outputs / "runs" / "r1" / "run.json").write_text('{"id": "x", ')
    (outputs / "runs" / "r2" / "config.resolved.yaml").write_text("a: [")
    odd = json.loads((outputs / "runs" / "r3" / "run.json").read_text())
    (outputs / "runs" / "r3" / "run.json").write_text(json.dumps({**odd, "provenance": [1]}))
    err = io.StringIO()
    assert runs.reindex(outputs / "mlops.db", outputs, err=err) == 1
    lines = err.getvalue().splitlines()
    assert [": ".join(line.split(": ")[:2]) for line in lines] == [
        f"mlops: skipped {outputs}/runs/r0/run.json", f"mlops: skipped {outputs}/runs/r1/run.json",
        f"mlops: skipped {outputs}/runs/r2/config.resolved.yaml", f"mlops: skipped {outputs}/runs/r3/run.json"]
    assert "expected a run record" in lines[0] and "not valid JSON" in lines[1] and "cannot be indexed" in lines[3]
    assert [r["id"] for r in tracking.SqliteRunStore(outputs / "mlops.db").search()] == ["run-04"]


def test_an_interrupted_reindex_leaves_the_old_index_and_no_temp_file(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = make_outputs(tmp_path)
    db = outputs / "mlops.db"
    runs.reindex(db, outputs)
    before = db.read_bytes()
    calls = []

    def killed(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt

    real = tracking.track
    monkeypatch.setattr(tracking, "track", lambda *a: (killed(*a), real(*a)))
    with pytest.raises(KeyboardInterrupt):
        runs.reindex(db, outputs)
    assert db.read_bytes() == before
    assert sorted(p.name for p in outputs.iterdir()) == ["mlops.db", "mlops.db.lock", "runs"]


def test_reindex_over_a_damaged_store_keeps_it_aside(tmp_path: Path) -> None:
    outputs = make_outputs(tmp_path)
    db = outputs / "mlops.db"
    db.write_bytes(b"")
    assert runs.reindex(db, outputs) == 3
    assert [p.read_bytes() for p in outputs.glob("mlops.db.old-*")] == [b""]
    assert len(tracking.SqliteRunStore(db).search()) == 3


def test_reindex_carries_the_registry_over_from_the_old_index(tmp_path: Path) -> None:
    outputs = make_outputs(tmp_path)
    db = outputs / "mlops.db"
    runs.reindex(db, outputs)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO registry_versions VALUES ('churn', 1, '{}')")
        conn.execute("INSERT INTO registry_aliases VALUES ('churn', 'champion', 1)")
        conn.executemany("INSERT INTO registry_alias_history (name, alias, version, previous, at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [("churn", "champion", 1, None, "t1"), ("churn", "champion", 1, 1, "t2")])
    conn.close()

    def registry_rows(path: Path) -> list[list[tuple[object, ...]]]:
        conn = sqlite3.connect(path)
        rows = [conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in runs.REGISTRY_TABLES]
        conn.close()
        return rows

    before = registry_rows(db)
    assert runs.reindex(db, outputs) == 3  # the run dirs do not hold the registry: the old index does
    assert registry_rows(db) == before and len(before[2]) == 2
    db.write_bytes(b"damaged")
    err = io.StringIO()
    assert runs.reindex(db, outputs, err=err) == 3
    assert "mlops: the registry's entries could not be carried over from" in err.getvalue()


def test_a_row_left_running_by_a_dead_process_after_success_is_shown_from_its_run_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    done = record("run-55", run_dir, metrics_note="x")
    (run_dir / "run.json").write_text(json.dumps(done))  # the run succeeded ...
    store = tracking.SqliteRunStore(tmp_path / "mlops.db")
    # ... but the store's last update was lost: it still says running, by a process now gone.
    tracking.track(store, {**done, "status": "running", "pid": 2**22 + 4321, "host": socket.gethostname()}, None)
    (row,) = runs.all_runs(store)
    assert row["status"] == "succeeded" and row["error"] is None
    assert store.get("run-55")["status"] == "succeeded"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"


def test_load_run_dir_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"^data error at {tmp_path}/run.json: cannot read it"):
        runs.load_run_dir(tmp_path)
    (tmp_path / "run.json").write_text('{"id": "", "status": "x"}')
    with pytest.raises(DataError, match="expected a run record"):
        runs.load_run_dir(tmp_path)
