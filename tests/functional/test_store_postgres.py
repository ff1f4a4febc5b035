"""A team's store: the real ``mlops`` command against a real PostgreSQL server.

The server is ``postgres_uri`` (a database of its own on ``MLOPS_TEST_POSTGRES_URI`` or
on a throw-away cluster; skipped without PostgreSQL), except where a test restarts the
server: that one starts a private cluster, so no other test sees the restart.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.store import runs, schema, sql, tracking
from tests import postgres
from tests.conftest import MLOPS, run_mlops


def listed_rows(project: Path, uri: str, *columns: str) -> list[dict[str, Any]]:
    listed = run_mlops(project, "runs", "--tracking-uri", uri, "--format", "json", "--columns",
                       ",".join(("id", "status", *columns)))
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def run_on_another_host(project: Path, uri: str, host: str) -> subprocess.Popen[str]:
    """A training run long enough to beat a few times (every 0.5 s), as if on ``host``."""
    env = {**os.environ, "MLOPS_TRACKING_URI": uri, "MLOPS_HOST_ID": host, "MLOPS_HEARTBEAT_SECONDS": "0.5",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([MLOPS, "run", "data.generate.customers=20000", "model=random_forest"], cwd=project,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            text=True)


@pytest.mark.slow
def test_a_parallel_sweep_the_registry_and_load_model_on_postgresql(
        project: Path, postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TRACKING_URI", postgres_uri)
    done = run_mlops(project, "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "model=logistic,random_forest")
    assert done.returncode == 0, done.stderr
    assert "could not index" not in done.stdout + done.stderr
    assert not (project / "outputs" / "mlops.db").exists()  # every run went to the server
    for path in (project / "outputs").rglob("*"):  # the store's password is written nowhere
        assert not path.is_file() or postgres.password_of(postgres_uri).encode() not in path.read_bytes(), path
    listed = listed_rows(project, postgres_uri, "params.model._target_", "metrics.roc_auc")
    assert sorted(r["params.model._target_"].rsplit(".", 1)[-1] for r in listed) == \
        ["LogisticRegression", "RandomForestClassifier"]
    assert {r["status"] for r in listed} == {"succeeded"}
    best = run_mlops(project, "runs", "--sort", "metrics.roc_auc", "--limit", "1", "--format", "json")
    assert json.loads(best.stdout)[0]["metrics.roc_auc"] == max(r["metrics.roc_auc"] for r in listed)
    compared = run_mlops(project, "compare", listed[0]["id"], listed[1]["id"], "--all")
    assert compared.returncode == 0 and "model._target_" in compared.stdout, compared.stderr
    assert "tracking.uri" in compared.stdout and postgres.password_of(postgres_uri) not in compared.stdout
    registered = run_mlops(project, "registry", "register", listed[0]["id"][:8], "--name", "churn")
    assert registered.returncode == 0, registered.stderr
    assert run_mlops(project, "registry", "promote", "churn/1", "--alias", "champion").returncode == 0
    loaded = subprocess.run([sys.executable, "-c", "import engine; print(type(engine.load_model('churn@champion'))"
                             ".__name__)"], cwd=project, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "FixedThresholdClassifier", loaded.stderr
    # the run's row on the server is one of the records the model's sha256 is checked against
    run_id = run_mlops(project, "registry", "show", "churn@champion").stdout.split("run_id: ")[1].split()[0]
    server = sql.SqlRunStore(postgres_uri)
    server.run(lambda conn: conn.exec_driver_sql(f"UPDATE runs SET model_sha256 = '{'0' * 64}' WHERE id = '{run_id}'"))
    server.dispose()
    refused = subprocess.run([sys.executable, "-c", "import engine; engine.load_model('churn@champion')"],
                             cwd=project, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "the run store postgresql+psycopg://mlops:***@" in refused.stderr
    assert "000000000000" in refused.stderr and postgres.password_of(postgres_uri) not in refused.stderr
    current = run_mlops(project, "db", "current")
    assert current.returncode == 0 and current.stdout.rstrip().endswith("(head)"), current.stderr
    assert postgres.password_of(postgres_uri) not in current.stdout and "***" in current.stdout


def test_an_unreachable_server_wrong_credentials_and_an_unknown_scheme_are_one_line(
        project: Path, postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_STORE_RETRY_SECONDS", "1")
    closed = postgres_uri.replace(f":{sql.url_of(postgres_uri).port}/", f":{postgres.free_port()}/")
    started = time.monotonic()
    away = run_mlops(project, "runs", "--tracking-uri", closed)
    assert away.returncode == 2 and len(away.stderr.strip().splitlines()) == 1, away.stderr
    port = sql.url_of(closed).port
    assert f"cannot reach the PostgreSQL server at 127.0.0.1:{port}" in away.stderr and "tries" in away.stderr
    assert time.monotonic() - started < 30
    wrong = postgres.with_password(postgres_uri, "not-the-password-42")
    for args in (("runs", "--tracking-uri", wrong), ("db", "current", wrong), ("db", "upgrade", wrong)):
        refused = run_mlops(project, *args)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "password authentication failed" in refused.stderr
        assert "not-the-password-42" not in refused.stderr + refused.stdout
        assert "Traceback" not in refused.stderr
    unknown = run_mlops(project, "runs", "--tracking-uri", "mysql://ann:pw123@db/mlops")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "sqlite:///PATH, postgresql+psycopg://" in unknown.stderr and "pw123" not in unknown.stderr
    config = run_mlops(project, "check", "tracking.uri=mysql://db/mlops")
    assert config.returncode == 2 and "postgresql+psycopg://" in config.stderr, config.stderr


@pytest.mark.slow
def test_a_run_killed_on_another_host_is_shown_lost_after_the_heartbeat_timeout(
        project: Path, postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tracking.open_store(postgres_uri, project)
    job = run_on_another_host(project, postgres_uri, "node-17.cluster")
    try:
        beats: list[str] = []
        deadline = time.monotonic() + 120
        while len(set(beats)) < 3 and time.monotonic() < deadline and job.poll() is None:
            found = store.search()
            if found and found[0]["status"] == "running" and found[0]["heartbeat_at"]:
                beats.append(found[0]["heartbeat_at"])
            time.sleep(0.2)
        assert len(set(beats)) >= 3, "the running job's row never beat three times"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    killed = time.monotonic()
    (row,) = runs.all_runs(store)  # what mlops runs reads, at once
    assert row["status"] == "running" and row["host"] == "node-17.cluster"  # not late yet: 4 beats of 0.5 s
    assert time.monotonic() - killed < 1.5
    time.sleep(2.5)
    (row,) = listed_rows(project, postgres_uri, "error")
    assert row["status"] == "interrupted", row
    assert row["error"].startswith("lost: no heartbeat since ") and "node-17.cluster" in row["error"]
    shown = run_mlops(project, "show", row["id"], "--tracking-uri", postgres_uri)
    assert "history:" in shown.stdout and "lost: lost: no heartbeat since" in shown.stdout


@pytest.mark.slow
def test_a_server_restarted_during_a_16_job_sweep_loses_no_run(project: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with postgres.cluster() as server:
        if server is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
        uri = postgres.create_database(server.uri)
        monkeypatch.setenv("MLOPS_TRACKING_URI", uri)
        monkeypatch.setenv("MLOPS_HEARTBEAT_SECONDS", "0.5")
        store = sql.SqlRunStore(uri)
        # "-m" last (test_quality.py has it first)
        sweep = subprocess.Popen([MLOPS, "quality", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                  "seed=range(0,16)", "-m"], cwd=project, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 240
        while len(store.search()) < 3 and time.monotonic() < deadline and sweep.poll() is None:
            time.sleep(0.2)
        store.dispose()
        assert sweep.poll() is None, "the sweep ended before the server could be restarted"
        server.restart()
        output, _ = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, output[-3000:]
        assert "could not index" not in output and "not indexed" not in output, output[-3000:]
        found = sql.SqlRunStore(uri).search()
        assert len(found) == 16, [r["status"] for r in found]
        assert {r["status"] for r in found} == {"succeeded"}
        assert sorted(int(r["params"]["seed"]) for r in found) == list(range(16))


def test_an_old_sqlite_store_is_refused_in_one_line_until_db_upgrade(project: Path) -> None:
    from tests.unit.store.test_store_contract import LEGACY_DDL

    store = project / "outputs" / "mlops.db"
    store.parent.mkdir(parents=True)
    conn = sqlite3.connect(store)
    conn.executescript(LEGACY_DDL)
    conn.execute("INSERT INTO runs (id, name, kind, status, started_at) VALUES "
                 "('0123456789abcdef', 'churn', 'run', 'succeeded', '2026-01-01T00:00:00')")
    conn.commit()
    conn.close()
    refused = run_mlops(project, "runs")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "schema revision 0001, older than this engine's" in refused.stderr
    assert refused.stderr.strip().endswith(f"mlops db upgrade sqlite:///{store}")
    assert run_mlops(project, "db", "current").stdout.strip().endswith(f"0001 (older than this engine's "
                                                                        f"{schema.HEAD}; upgrade it with: "
                                                                        f"mlops db upgrade sqlite:///{store})")
    upgraded = run_mlops(project, "db", "upgrade")
    assert upgraded.returncode == 0 and f"from 0001 to {schema.HEAD}" in upgraded.stdout, upgraded.stderr
    again = run_mlops(project, "db", "upgrade")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    listed = listed_rows(project, f"sqlite:///{store}")
    assert [r["id"] for r in listed] == ["0123456789abcdef"]


@pytest.mark.slow
def test_db_copy_moves_an_sqlite_store_to_postgresql_and_the_counts_match(project: Path, postgres_uri: str) -> None:
    assert run_mlops(project, "run", "-m", "model=logistic,random_forest").returncode == 0
    assert run_mlops(project, "registry", "register", "latest", "--name", "churn").returncode == 0
    copied = run_mlops(project, "db", "copy", "sqlite:///outputs/mlops.db", postgres_uri)
    assert copied.returncode == 0, copied.stderr
    assert "verified:" in copied.stdout and postgres.password_of(postgres_uri) not in copied.stdout
    lines = {line.split()[0]: line.split() for line in copied.stdout.splitlines()[1:-1]}
    assert lines["runs"][1] == "2" and lines["runs"][4] == lines["runs"][6]  # source hash = destination hash
    assert lines["registry_versions"][1] == "1"  # the registry's rows came along, table to table
    shown = run_mlops(project, "registry", "show", "churn/1", "--tracking-uri", postgres_uri)
    assert shown.returncode == 0 and "model_sha256:" in shown.stdout, shown.stderr
    local = listed_rows(project, "sqlite:///outputs/mlops.db", "metrics.roc_auc")
    remote = listed_rows(project, postgres_uri, "metrics.roc_auc")
    assert sorted(map(json.dumps, local)) == sorted(map(json.dumps, remote))
    again = run_mlops(project, "db", "copy", "sqlite:///outputs/mlops.db", postgres_uri)  # idempotent
    assert again.returncode == 0 and again.stdout.splitlines()[1:] == copied.stdout.splitlines()[1:]
    same = run_mlops(project, "db", "copy", "sqlite:///outputs/mlops.db", "sqlite:///outputs/mlops.db")
    assert same.returncode == 2 and "the same store" in same.stderr
    for suffix in ("", "-wal", "-shm"):  # the team's registry is the store now: the local one is gone
        Path(f"{project / 'outputs' / 'mlops.db'}{suffix}").unlink(missing_ok=True)
    loaded = subprocess.run([sys.executable, "-c", "import engine; print(engine.load_model('churn/1'))"], cwd=project,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "MLOPS_TRACKING_URI": postgres_uri})
    assert loaded.returncode == 0 and "FixedThresholdClassifier" in loaded.stdout, loaded.stderr


@pytest.mark.slow
def test_a_run_marked_lost_that_beats_again_is_revived_only_when_it_finishes(
        project: Path, postgres_uri: str) -> None:
    store = tracking.open_store(postgres_uri, project)
    job = run_on_another_host(project, postgres_uri, "node-18.cluster")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            found = store.search()
            if found and found[0]["status"] == "running":
                break
            time.sleep(0.2)
        os.killpg(job.pid, signal.SIGSTOP)  # a host that stops answering, then comes back
        time.sleep(3)
        (row,) = runs.all_runs(store)
        assert row["status"] == "interrupted" and row["error"].startswith("lost: no heartbeat since")
        os.killpg(job.pid, signal.SIGCONT)
        assert job.wait(timeout=300) == 0
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    (row,) = listed_rows(project, postgres_uri)
    assert row["status"] == "succeeded"  # it finished: revived
    events = [e["event"] for e in store.events(row["id"])]
    # stopped at its start, it had most of its work left: it beat late before it finished
    assert events == ["lost", "late heartbeat", "revived"]
    shown = run_mlops(project, "show", row["id"], "--tracking-uri", postgres_uri)
    assert "revived: finished succeeded after it had been marked lost" in shown.stdout
