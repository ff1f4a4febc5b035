"""The run store's contract, once per backend (as Hydra's ``LauncherTestSuite`` is
subclassed per launcher): SQLite, the embedded default, and PostgreSQL on a real server
(``postgres_uri``: ``MLOPS_TEST_POSTGRES_URI``, else a throw-away cluster, else skipped).

Both run the same queries: the leaderboard's top N, the run cache's tag lookup,
``--where``/``--sort`` over every run, compare's rows, heartbeats and the run history,
the schema check, the upgrade from the previous revision, and ``mlops db copy``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StoreError
from engine.store import copy, runcache, runs, schema, sql, tracking
from tests.unit.store import backends


def record(run_id: str, started: str = "2026-11-27T10:00:00", status: str = "succeeded",
           **fields: Any) -> dict[str, Any]:
    return {"id": run_id, "name": "churn", "kind": "run", "status": status, "started_at": started,
            "run_dir": f"/runs/{run_id}", "pid": 1, "host": "elsewhere",
            "provenance": {"git": {"commit": "abc123", "dirty": True}},
            "data": {"orders": {"fingerprint": "sha256:" + "0" * 64}}, "model": {"sha256": "1" * 64}, **fields}


def track(store: tracking.RunStore, run_id: str, auc: float | None, model: str = "LogisticRegression",
          started: str = "2026-11-27T10:00:00", **fields: Any) -> None:
    resolved = {"model": {"_target_": f"sklearn.linear_model.{model}", "C": 1.0}, "seed": 7, "hypothesis": "h"}
    metrics = {"roc_auc": auc, "recall": 0.5} if auc is not None else {"recall": 0.5}
    tracking.track(store, record(run_id, started, **fields), resolved, metrics)


class StoreContract:
    """What every run store does; a subclass provides ``uri`` (and so ``store``)."""

    @pytest.fixture
    def uri(self, tmp_path: Path) -> str:
        raise NotImplementedError

    @pytest.fixture
    def store(self, uri: str, tmp_path: Path) -> tracking.RunStore:
        return tracking.open_store(uri, tmp_path)

    def older_store(self, uri: str, tmp_path: Path) -> None:
        """Make the store at ``uri`` a store of the previous revision, with two runs in it."""
        target = copy.store_for(uri, tmp_path)

        def build(conn: Any) -> None:
            schema.upgrade(conn, schema.REVISIONS[-2])
            for run_id, auc in (("old1", 0.7), ("old2", 0.9)):
                conn.exec_driver_sql(f"INSERT INTO runs (id, name, kind, status, started_at, git_dirty, fingerprints) "
                                     f"VALUES ('{run_id}', 'churn', 'run', 'succeeded', '2026-01-0{run_id[-1]}', 1, "
                                     "'{\"orders\": \"sha256:ab\"}')")
                conn.exec_driver_sql(f"INSERT INTO params (run_id, key, value) VALUES ('{run_id}', 'model.C', '1.0')")
                conn.exec_driver_sql(f"INSERT INTO metrics (run_id, key, value) VALUES ('{run_id}', 'roc_auc', {auc})")
                conn.exec_driver_sql(f"INSERT INTO tags (run_id, key, value) VALUES ('{run_id}', 'kind', 'run')")

        target.run(build, check=False)
        target.dispose()

    # ------------------------------------------------------------ runs

    def test_reading_an_empty_store_finds_nothing(self, store: tracking.RunStore) -> None:
        assert store.search() == [] and store.get("nope") is None
        assert store.search(("roc_auc", True, 10)) == [] and store.search(tag=("cache_key", "x")) == []

    def test_a_run_comes_back_as_it_was_tracked(self, store: tracking.RunStore) -> None:
        track(store, "run-a", 0.81)
        row = store.get("run-a")
        assert row is not None
        assert row["status"] == "succeeded" and row["git_commit"] == "abc123" and row["git_dirty"] is True
        assert row["fingerprints"] == {"orders": "sha256:" + "0" * 64}
        assert row["metrics"] == {"roc_auc": 0.81, "recall": 0.5}
        assert row["params"]["model._target_"] == "sklearn.linear_model.LogisticRegression"
        assert row["params"]["model.C"] == "1.0" and row["tags"] == {"kind": "run", "model": "LogisticRegression"}

    def test_an_update_replaces_what_it_gives_and_keeps_the_rest(self, store: tracking.RunStore) -> None:
        track(store, "run-a", 0.81)
        store.upsert({**tracking.summary(record("run-a", status="failed"), None), "error": "boom"},
                     metrics={"roc_auc": 0.5})
        row = store.get("run-a")
        assert row is not None and row["status"] == "failed" and row["error"] == "boom"
        assert row["metrics"] == {"roc_auc": 0.5}
        assert row["params"]["model.C"] == "1.0"  # params not given: kept

    def test_the_top_runs_by_a_metric_come_from_the_store(self, store: tracking.RunStore) -> None:
        for i in range(12):
            track(store, f"run-{i:02d}", (i * 7 % 12) / 12, started=f"2026-11-27T10:00:{i:02d}")
        track(store, "run-none", None)
        best = store.search(("roc_auc", True, 3))
        assert [r["metrics"]["roc_auc"] for r in best] == [11 / 12, 10 / 12, 9 / 12]
        worst = store.search(("roc_auc", False, 2))
        assert [r["metrics"]["roc_auc"] for r in worst] == [0.0, 1 / 12]
        assert all(r["params"] for r in best)

    def test_where_sort_and_compare_read_the_same_rows(self, store: tracking.RunStore) -> None:
        track(store, "forest-1", 0.9, "RandomForestClassifier", "2026-11-27T10:00:01")
        track(store, "forest-2", 0.7, "RandomForestClassifier", "2026-11-27T10:00:02")
        track(store, "logit-1", 0.8, "LogisticRegression", "2026-11-27T10:00:03")
        rows = runs.all_runs(store)
        chosen = runs.select(rows, "metrics.roc_auc > 0.75 and params.model._target_ ~ Forest", "metrics.roc_auc",
                             None, None)
        assert [r["id"] for r in chosen] == ["forest-1"]
        ranked = runs.select(rows, None, "metrics.roc_auc", None, 2)
        assert [r["id"] for r in ranked] == ["forest-1", "logit-1"]
        assert runs.resolve(store, "logit", rows)["id"] == "logit-1"
        assert runs.resolve(store, "latest", rows)["id"] == "logit-1"

    def test_the_run_cache_finds_runs_by_their_key(self, store: tracking.RunStore, tmp_path: Path) -> None:
        tracking.track(store, record("cached", cache_key="sha256:k1"), {"seed": 1}, {"roc_auc": 0.8})
        tracking.track(store, record("other", cache_key="sha256:k2"), {"seed": 2}, {"roc_auc": 0.8})
        found = store.search(tag=("cache_key", "sha256:k1"))
        assert [r["id"] for r in found] == ["cached"]
        assert runcache.find(store, "sha256:k1", exclude="x") is None  # its run dir holds no model: not reused

    # ------------------------------------------------------------ heartbeats

    def test_a_run_that_stops_beating_is_lost_and_a_late_beat_keeps_both_facts(
            self, store: tracking.RunStore) -> None:
        old = (datetime.now(timezone.utc) - timedelta(seconds=10)).isoformat(timespec="milliseconds")
        store.upsert({**tracking.summary(record("beat", status="running"), None), "heartbeat_s": 1.0})
        assert runs.all_runs(store)[0]["status"] == "running"  # it beat just now
        store.upsert({**tracking.summary(record("beat", status="running"), None), "heartbeat_s": 1.0,
                      "heartbeat_at": old})
        row = store.get("beat")
        assert row is not None and row["heartbeat_at"] == old
        shown = runs.all_runs(store)[0]
        assert shown["status"] == "interrupted" and shown["error"].startswith(f"lost: no heartbeat since {old}")
        assert store.get("beat")["status"] == "interrupted"  # type: ignore[index]
        assert store.heartbeat("beat") == "interrupted"  # the late beat does not revive it
        assert store.heartbeat("beat") == "interrupted"
        assert [e["event"] for e in store.events("beat")] == ["lost", "late heartbeat"]
        store.upsert(tracking.summary(record("beat", status="succeeded"), None))  # it finished after all
        from engine.store.heartbeat import revive_if_lost

        assert revive_if_lost(store, "beat", "succeeded")
        assert [e["event"] for e in store.events("beat")] == ["lost", "late heartbeat", "revived"]
        assert store.get("beat")["status"] == "succeeded"  # type: ignore[index]
        assert store.get("beat")["heartbeat_at"] is not None  # type: ignore[index]  # the end keeps the last beat

    def test_a_run_that_beat_since_it_was_read_is_not_marked_lost(self, store: tracking.RunStore) -> None:
        old = (datetime.now(timezone.utc) - timedelta(seconds=10)).isoformat(timespec="milliseconds")
        store.upsert({**tracking.summary(record("beat", status="running"), None), "heartbeat_s": 1.0,
                      "heartbeat_at": old})
        store.heartbeat("beat")
        assert not store.mark_lost("beat", old, "lost: ...")
        assert store.get("beat")["status"] == "running" and store.events("beat") == []  # type: ignore[index]

    # ------------------------------------------------------------ schema

    def test_a_store_of_the_previous_revision_is_refused_then_upgraded_with_its_runs(
            self, uri: str, tmp_path: Path) -> None:
        self.older_store(uri, tmp_path)
        with pytest.raises(StoreError, match=f"older than this engine's {schema.HEAD}; upgrade it with: "
                                             "mlops db upgrade "):
            tracking.open_store(uri, tmp_path).search()
        target = copy.store_for(uri, tmp_path)
        assert copy.revision(target) == schema.REVISIONS[-2]
        assert copy.upgrade(target) == (schema.REVISIONS[-2], schema.HEAD)
        target.dispose()
        store = tracking.open_store(uri, tmp_path)
        rows = {r["id"]: r for r in store.search()}
        assert sorted(rows) == ["old1", "old2"]
        assert rows["old2"]["metrics"] == {"roc_auc": 0.9} and rows["old1"]["params"] == {"model.C": "1.0"}
        assert rows["old1"]["fingerprints"] == {"orders": "sha256:ab"} and rows["old1"]["git_dirty"] is True
        assert [r["id"] for r in store.search(("roc_auc", True, 1))] == ["old2"]
        store.heartbeat("old1")  # the new revision's column is there
        assert store.get("old1")["heartbeat_at"] is not None  # type: ignore[index]

    def test_a_store_newer_than_the_engine_is_refused(self, store: tracking.RunStore, uri: str,
                                                      tmp_path: Path) -> None:
        track(store, "run-a", 0.8)
        target = copy.store_for(uri, tmp_path)
        target.run(lambda conn: conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'"), check=False)
        if uri.startswith("sqlite"):
            target.run(lambda conn: conn.exec_driver_sql("PRAGMA user_version = 99"), check=False)
        target.dispose()
        with pytest.raises(StoreError, match="newer than this engine's .*upgrade mlops-engine"):
            tracking.open_store(uri, tmp_path).search()

    # ------------------------------------------------------------ copy

    def test_copy_to_the_other_backend_and_back_keeps_every_row(self, store: tracking.RunStore, uri: str,
                                                                 other_uri: str, tmp_path: Path) -> None:
        for i in range(5):
            track(store, f"run-{i}", i / 10, started=f"2026-11-27T10:00:0{i}")
        store.upsert({**tracking.summary(record("lost", status="running"), None), "heartbeat_s": 1.0})
        store.mark_lost("lost", store.get("lost")["heartbeat_at"], "lost: test")  # type: ignore[index]
        report = copy.copy(uri, other_uri, tmp_path)
        assert {t: r["source"][0] for t, r in report.items()} == {
            "runs": 6, "params": 20, "metrics": 10, "tags": 10, "run_events": 1, "registry_versions": 0,
            "registry_aliases": 0, "registry_alias_history": 0}
        assert all(r["source"] == r["target"] for r in report.values())
        again = copy.copy(uri, other_uri, tmp_path)  # idempotent: same rows, no duplicates
        assert {t: r["target"] for t, r in again.items()} == {t: r["target"] for t, r in report.items()}
        back = tmp_path / "back.db"
        copy.copy(other_uri, f"sqlite:///{back}", tmp_path)
        returned = tracking.open_store(f"sqlite:///{back}", tmp_path)
        assert sorted(r["id"] for r in returned.search()) == sorted(r["id"] for r in store.search())
        assert returned.get("run-3") == store.get("run-3")
        assert returned.events("lost")[0]["detail"] == "lost: test"


class TestSqliteStore(backends.Sqlite, StoreContract):
    pass


class TestPostgresStore(backends.Postgres, StoreContract):
    def test_an_upgrade_is_one_transaction(self, uri: str, tmp_path: Path) -> None:
        """A revision that fails takes the ones before it back with it: the store stays as it was."""
        target = copy.store_for(uri, tmp_path)
        target.run(lambda conn: schema.upgrade(conn, schema.REVISIONS[0]), check=False)
        target.run(lambda conn: conn.exec_driver_sql("INSERT INTO runs (id, status) VALUES ('kept', 'succeeded')"),
                   check=False)
        # a table in the way of the last revision: it fails after the others ran
        target.run(lambda conn: conn.exec_driver_sql("CREATE TABLE registry_aliases (x INTEGER)"), check=False)
        with pytest.raises(StoreError, match="registry_aliases"):
            copy.upgrade(target)
        assert copy.revision(target) == schema.REVISIONS[0]
        columns = target.run(lambda conn: list(conn.exec_driver_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'").scalars()), check=False)
        assert "heartbeat_at" not in (columns or [])  # revision 0002 was rolled back too
        assert target.run(lambda conn: conn.exec_driver_sql("SELECT id FROM runs").scalars().all(),
                          check=False) == ["kept"]
        target.dispose()


# ------------------------------------------------------------------ SQLite only

#: The SQLite store's tables as the engine wrote them before Alembic (PRAGMA user_version 1).
LEGACY_DDL = """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, name TEXT, kind TEXT, status TEXT, started_at TEXT, ended_at TEXT,
        duration_s REAL, run_dir TEXT, pid INTEGER, host TEXT, hypothesis TEXT, error TEXT,
        git_commit TEXT, git_dirty INTEGER, model_sha256 TEXT, config_sha256 TEXT,
        fingerprints TEXT);
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE params (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key));
    CREATE TABLE metrics (run_id TEXT, key TEXT, value REAL, PRIMARY KEY (run_id, key));
    CREATE INDEX metrics_key ON metrics (key, value);
    CREATE TABLE tags (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key));
    PRAGMA user_version = 1;
"""


def test_a_store_written_before_alembic_is_refused_then_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "mlops.db"
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_DDL)
    for i in range(3):
        conn.execute("INSERT INTO runs (id, status, started_at, git_dirty) VALUES (?, 'succeeded', ?, 0)",
                     (f"legacy{i}", f"2026-01-0{i + 1}"))
        conn.execute("INSERT INTO metrics VALUES (?, 'roc_auc', ?)", (f"legacy{i}", i / 10))
        conn.execute("INSERT INTO params VALUES (?, 'seed', ?)", (f"legacy{i}", str(i)))
    conn.commit()
    conn.close()
    store = tracking.open_store(f"sqlite:///{path}", tmp_path)
    with pytest.raises(StoreError, match=r"schema revision 0001, older than .* mlops db upgrade sqlite:///"):
        store.search()
    with pytest.raises(StoreError):
        track(store, "new", 0.5)  # a write is refused too: nothing is added to an old store
    target = copy.store_for(f"sqlite:///{path}", tmp_path)
    assert copy.revision(target) == "0001"
    assert copy.upgrade(target) == ("0001", schema.HEAD)
    rows = store.search()
    assert [r["id"] for r in rows] == ["legacy0", "legacy1", "legacy2"]
    assert [r["metrics"]["roc_auc"] for r in rows] == [0.0, 0.1, 0.2]
    assert rows[2]["params"] == {"seed": "2"}
    track(store, "new", 0.5)
    assert len(store.search()) == 4


def test_a_json_registry_beside_a_store_written_before_alembic_survives_the_upgrade(tmp_path: Path) -> None:
    """The registry an earlier engine kept in JSON files: refused with its store until the
    upgrade, then read from its file, and moved into the store's tables, history and all."""
    from engine.store.registry import Registry

    path = tmp_path / "mlops.db"
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_DDL)
    conn.execute("INSERT INTO runs (id, status, started_at) VALUES ('legacy0', 'succeeded', '2026-01-01')")
    conn.commit()
    conn.close()
    (tmp_path / "registry").mkdir()
    entry = {"name": "churn", "aliases": {"champion": 1},
             "versions": [{"version": 1, "run_id": "legacy0", "run_dir": "/runs/legacy0",
                           "model": "churn/1/model.skops", "model_sha256": "a" * 64, "metrics": {"roc_auc": 0.8},
                           "registered_at": "2026-01-01T00:00:00+00:00"}],
             "alias_history": [{"alias": "champion", "version": 1, "previous": None,
                                "at": "2026-01-02T00:00:00+00:00"}]}
    (tmp_path / "registry" / "churn.json").write_text(json.dumps(entry))
    uri = f"sqlite:///{path}"
    with pytest.raises(StoreError, match=r"^store error: the run store sqlite:///.* has schema revision 0001, older "
                                         r"than this engine's .*; upgrade it with: mlops db upgrade sqlite:///"):
        Registry(tmp_path / "registry", uri).read("churn")
    assert copy.upgrade(copy.store_for(uri, tmp_path)) == ("0001", schema.HEAD)
    registry = Registry(tmp_path / "registry", uri)
    assert registry.read("churn") == entry  # from its file: the store has no entry of that name yet
    registry.promote("churn", 1, "challenger")  # the first change moves it into the tables
    stored = registry.entries.read("churn")
    assert stored["versions"] == entry["versions"] and stored["aliases"] == {"champion": 1, "challenger": 1}
    assert stored["alias_history"][0] == entry["alias_history"][0] and len(stored["alias_history"]) == 2
    assert (tmp_path / "registry" / "churn.json.moved").is_file()
    assert not (tmp_path / "registry" / "churn.json").exists()
    assert [r["id"] for r in tracking.open_store(uri, tmp_path).search()] == ["legacy0"]


def test_the_embedded_store_is_created_with_the_tables_the_revisions_build(tmp_path: Path) -> None:
    """The SQLite store writes its head schema out (no SQLAlchemy import on that path):
    it must equal what Alembic's revisions build."""
    written = tracking.SqliteRunStore(tmp_path / "written.db")
    written.exists(create=True)
    migrated = copy.store_for(f"sqlite:///{tmp_path / 'migrated.db'}", tmp_path)
    migrated.run(schema.upgrade, check=False)
    migrated.dispose()

    def shape(path: Path) -> dict[str, Any]:
        conn = sqlite3.connect(path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        found: dict[str, Any] = {"user_version": conn.execute("PRAGMA user_version").fetchone()[0],
                                 "revision": conn.execute("SELECT version_num FROM alembic_version").fetchall()}
        for table in tables:
            found[table] = [(r[1], r[2].upper().replace("REAL", "FLOAT"), r[3], r[5])
                            for r in conn.execute(f"PRAGMA table_info({table})")]
            found[f"{table} indexes"] = sorted(
                (r[1], tuple(c[2] for c in conn.execute(f"PRAGMA index_info('{r[1]}')")))
                for r in conn.execute(f"PRAGMA index_list({table})") if not r[1].startswith("sqlite_autoindex"))
        conn.close()
        return found

    assert shape(tmp_path / "written.db") == shape(tmp_path / "migrated.db")
    assert set(shape(tmp_path / "written.db")) >= {f"{t}" for t in sql.TABLES}


def test_masked_uris_never_show_the_password() -> None:
    assert sql.masked("postgresql+psycopg://ann:s3cr3t@db:5433/mlops") == "postgresql+psycopg://ann:***@db:5433/mlops"
    assert "s3cr3t" not in sql.masked_text("error at postgresql://ann:s3cr3t@db/mlops: refused")
    assert sql.url_of("postgres://ann@db/mlops").drivername == "postgresql+psycopg"
