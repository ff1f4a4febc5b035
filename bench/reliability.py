"""Benchmark: reliability (issue 12, item 5): kill points, concurrent writers, hostile inputs.

    cd /work/main && .venv/bin/python bench/reliability.py            # the figures (~8 min on 2 cores)
    .venv/bin/python bench/reliability.py --quick                      # smoke run (~3 min)
    .venv/bin/python bench/reliability.py --writers 8 --runs-per-writer 300 --json /tmp/reliability.json

Everything runs in fresh project folders under a temp dir: a copy of ``conf/`` with
``conf/local/default.yaml`` holding tests/conftest.py's SMALL_DATA (4,000 demo
customers), made a git repository with one commit so provenance records a clean tree.
Runs also pass ``report=false`` on the command line (before 4c31a4f, ``config.yaml``'s
own ``report: true`` overrode the local file's).

Which engine code runs: as in bench/sweeps.py, by default a ``git clone --shared`` of
this repository's HEAD, put first on ``PYTHONPATH`` (the figures are those of a commit,
and other people's uncommitted edits do not change them mid-run); ``--code working``
runs the working tree as installed.

1. Kill points. A warm-up ``mlops run`` (generates the data, fills the feature store,
   gives the stage order from its run.json). Then one ``mlops run`` per point, watched by
   this process, which polls the new run directory every ``--poll-ms`` (2 ms) and
   signals the run's process the moment it sees the point:

   * ``run.json appears``: the first run.json (status running, no stage yet);
   * ``stage X``: run.json names X as the running stage (it is rewritten as each stage
     starts; a stage's outcome is only written with the next save, so the last entry of
     ``stages`` is the one running);
   * ``model file being written``: the atomic writer's temp file is in ``model/``
     (``model=random_forest model.n_estimators=300`` so the write lasts long enough to
     be seen);
   * ``final status written``: run.json says ``succeeded`` (the run must stay so).

   SIGKILL at every point; SIGINT and SIGTERM at a few (exit status 130 expected, within
   30 s). A short stage may be over before it is seen: the kill then lands later, the
   landing is read back from the dead run's run.json (and a temp file left in
   ``model/``), printed, and a SIGKILL point is tried again, up to ``--attempts`` times.
   The run handles SIGINT and SIGTERM itself, so each of those points is signalled
   ``--repeats`` times (3) whatever the landing. Every signal, wherever it
   landed, is checked with the real CLI: ``mlops runs --format json`` and ``mlops show``
   exit 0 without a traceback and give the run exactly once with the expected status
   (``interrupted``, or ``succeeded`` when the kill came after the final status); run.json
   agrees with the store afterwards; every model file matches its sha256 (the sidecar
   ``model/*.sha256`` and run.json's ``model.sha256``) or is absent with it, and a
   ``succeeded`` run has both; every JSON artifact parses; the store passes
   ``PRAGMA integrity_check``. At the end one more normal run must succeed in the same
   project, no run may be left ``running``, and ``mlops runs reindex`` (from the run
   directories alone) must give the same id -> status map as the store had.

2. Concurrent writers. ``--writers`` processes (8) start together on one fresh store
   and each indexes ``--runs-per-writer`` runs (300) through the engine's own write API
   (``tracking.open_store`` + ``tracking.track``, as ``mlops run`` does): each run once
   as ``running``, then again with its final status (succeeded, failed, interrupted in
   turn), 20 params and 6 metrics. Meanwhile ``--readers`` processes (2) run
   ``mlops runs --format json`` in a loop. At the end every run must be in the store
   exactly once with its final status, all its params and metrics, ``mlops runs`` must
   list them all, and ``PRAGMA integrity_check`` must say ok; readers must never fail
   nor see the count of runs go down. Then two real sweeps on the joblib launcher
   (``hydra.launcher.n_jobs=2``, 4 jobs each, 2 in quick mode) start together in one
   project and write to its store; every job must be there once, ``succeeded``.

3. Hostile inputs. The cases of tests/functional/test_hostile.py (working tree), counted
   by list (CONFIG_CASES, MODEL_CASES, EXPRESSION_CASES, STORE_CASES) by importing the
   module at run time; the file is being filled, so the figure is what it holds now.
   They are counted, not run (``pytest tests/functional/test_hostile.py`` runs them).

Exit status: 0 when everything was consistent, 1 when a command failed to run, 3 when
some check found an inconsistent state (printed as INCONSISTENT with what was left).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import copy_conf, engine_under_test

ROOT = Path(__file__).resolve().parents[1]
#: tests/conftest.py's SMALL_DATA: a user's project with small demo data.
SMALL_DATA = """\
# @package _global_
data:
  generate:
    customers: 4000
report: false
"""
#: What the atomic writer (engine.files.atomic_path) names its temp file.
TEMP_FILE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
SIGNAL_NAMES = {signal.SIGKILL: "SIGKILL", signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
HOSTILE_LISTS = ("CONFIG_CASES", "MODEL_CASES", "EXPRESSION_CASES", "STORE_CASES")
FINAL_STATUSES = ("succeeded", "failed", "interrupted")
BIG_MODEL = ("model=random_forest", "model.n_estimators=300")
#: A signalled run that has not exited this long after the signal is stuck (it takes < 3 s).
EXIT_TIMEOUT_S = 30.0


class Failed(Exception):
    """A command failed to run; the message holds the command and the end of its output."""


# --------------------------------------------------------------------------- set-up

class Bench:
    """The temp dir, the engine code to run and the environment of every command."""

    def __init__(self, tmp: Path, code: str) -> None:
        self.tmp = tmp
        self.source, self.env, self.mlops = engine_under_test(tmp, code, ROOT, "reliability")
        self.commit = _git(self.source, "rev-parse", "HEAD")
        self.dirty = bool(_git(self.source, "status", "--porcelain", "--untracked-files=no"))
        self.describe = f"{self.source} at {self.commit[:7]}{' + uncommitted edits' if self.dirty else ' (clean)'}"
        engine_file = subprocess.run([sys.executable, "-c", "import engine; print(engine.__file__)"],
                                     cwd=tmp, env=self.env, capture_output=True, text=True, check=True).stdout.strip()
        if not engine_file.startswith(str(self.source)):
            raise SystemExit(f"reliability: the engine imports from {engine_file}, not from {self.source}")
        self.logs = tmp / "logs"
        self.logs.mkdir()

    def project(self, name: str) -> Path:
        """A fresh project folder: conf/ with small demo data, committed in its own git repository."""
        folder = self.tmp / name
        copy_conf(self.source / "conf", folder)
        (folder / "conf" / "local" / "default.yaml").write_text(SMALL_DATA)
        (folder / ".gitignore").write_text("outputs/\ndata/\n")
        for args in (("init", "-q"), ("add", "-A"),
                     ("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "project")):
            subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
        return folder

    def cli(self, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``mlops ARGS`` to the end; the caller judges the outcome."""
        return subprocess.run([self.mlops, *args], cwd=cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def must(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.cli(cwd, *args)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise Failed(f"exit status {done.returncode}: (cd {cwd} && mlops {' '.join(args)})\n{tail}")
        return done


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False).stdout.strip()


def run_dirs(project: Path) -> list[Path]:
    return sorted(p for p in (project / "outputs" / "runs").glob("*/*") if p.is_dir())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def integrity(db: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file: 'ok' or what it reports."""
    if not db.exists():
        return "missing"
    try:
        conn = sqlite3.connect(db, timeout=60)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "; ".join(str(r[0]) for r in rows)


def raw_store_status(db: Path, rid: str) -> str:
    """The run's status in the store as the kill left it, read with plain SQL before any CLI looks."""
    if not db.exists():
        return "no store"
    conn = sqlite3.connect(db, timeout=60)
    try:
        rows = conn.execute("SELECT status FROM runs WHERE id = ?", (rid,)).fetchall()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}"
    finally:
        conn.close()
    return rows[0][0] if len(rows) == 1 else "no row" if not rows else f"{len(rows)} rows"


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def traceback_in(text: str) -> bool:
    return "Traceback (most recent call last)" in text


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --------------------------------------------------------------------------- 1. kill points

@dataclass(frozen=True)
class Point:
    """Where a run is signalled: ``kind`` is appear, stage, model or final."""

    kind: str
    sig: int
    stage: str = ""

    @property
    def label(self) -> str:
        return {"appear": "run.json appears", "model": "model file being written",
                "final": "final status written"}.get(self.kind, f"stage {self.stage}")

    @property
    def overrides(self) -> tuple[str, ...]:
        return BIG_MODEL if self.kind == "model" else ()


def kill_points(stages: list[str], quick: bool) -> list[Point]:
    kill = signal.SIGKILL
    if quick:
        chosen = [s for s in ("features", "train", "save") if s in stages]
        points = [Point("appear", kill), *(Point("stage", kill, s) for s in chosen), Point("model", kill),
                  Point("final", kill)]
        return [*points, Point("stage", signal.SIGINT, "train"), Point("stage", signal.SIGTERM, "ingest")]
    points = [Point("appear", kill), *(Point("stage", kill, s) for s in stages), Point("model", kill),
              Point("final", kill)]
    polite = [Point("appear", signal.SIGINT)]
    polite += [Point("stage", signal.SIGINT, s) for s in ("ingest", "train", "save") if s in stages]
    polite += [Point("appear", signal.SIGTERM)]
    polite += [Point("stage", signal.SIGTERM, s) for s in ("features", "evaluate") if s in stages]
    return points + polite


def model_dir_state(run_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """(model files, sha256 sidecars, temp files) in the run's model/ folder."""
    folder = run_dir / "model"
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return [], [], []
    temps = [n for n in names if TEMP_FILE.fullmatch(n)]
    sidecars = [n for n in names if n.endswith(".sha256") and n not in temps]
    models = [n for n in names if n not in temps and n not in sidecars]
    return models, sidecars, temps


class Watch:
    """One ``mlops run`` signalled at a point, seen by polling its run directory."""

    def __init__(self, bench: Bench, project: Path, point: Point, order: list[str], poll_s: float, n: int) -> None:
        self.bench, self.project, self.point, self.order, self.poll_s = bench, project, point, order, poll_s
        self.log = bench.logs / f"kill-{n:02d}.log"

    def fire_now(self, record: dict[str, Any] | None, run_dir: Path) -> bool:
        """Whether the point (or a later one: it was missed) has been reached."""
        point = self.point
        if point.kind == "appear":
            return True
        if record is None:
            return False
        if record.get("status") != "running":
            return True  # finished: whatever the point, now or never
        started = list(record.get("stages") or {})
        if point.kind == "final":
            return False
        if point.kind == "stage":
            aim = self.order.index(point.stage)
            return any(s in self.order and self.order.index(s) >= aim for s in started)
        # model: the temp file is there, or the save is over (requirements started: missed)
        if "save" not in started:
            return False
        if started[-1] != "save":
            return True
        models, _, temps = model_dir_state(run_dir)
        return bool(temps or models)

    def run(self, timeout: float = 300) -> dict[str, Any]:
        before = set(run_dirs(self.project))
        with open(self.log, "w") as log:
            proc = subprocess.Popen([self.bench.mlops, "run", "report=false", *self.point.overrides],
                                    cwd=self.project, env=self.bench.env, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        run_dir: Path | None = None
        seen: tuple[int, int, int] | None = None
        record: dict[str, Any] | None = None
        fired = False
        try:
            while proc.poll() is None:
                if time.monotonic() - started > timeout:
                    raise Failed(f"mlops run did not reach {self.point.label} in {timeout:.0f}s (log {self.log})")
                if run_dir is None:
                    new = [d for d in run_dirs(self.project) if d not in before]
                    run_dir = new[0] if new else None
                if run_dir is not None:
                    try:
                        stat = os.stat(run_dir / "run.json")
                    except FileNotFoundError:
                        stat = None
                    if stat is not None:
                        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                        if key != seen and self.point.kind != "appear":
                            try:
                                record, seen = read_json(run_dir / "run.json"), key
                            except (OSError, json.JSONDecodeError):
                                pass  # replaced while read: read again next round
                        if self.fire_now(record, run_dir):
                            proc.send_signal(self.point.sig)
                            fired = True
                            break
                time.sleep(self.poll_s)
            hung = False
            try:
                code = proc.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # alive long after the signal: stuck; killed to go on
                hung = True
                proc.kill()
                code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if run_dir is None:
            new = [d for d in run_dirs(self.project) if d not in before]
            run_dir = new[0] if new else None
        return {"fired": fired, "exit": code, "run_dir": run_dir, "hung": hung}


def landing(record: dict[str, Any] | None, run_dir: Path) -> str:
    """Where a signal landed, read back from the dead run's own files."""
    if record is None:
        return "no run.json"
    if record.get("status") == "succeeded":
        return "final status written"
    _, _, temps = model_dir_state(run_dir)
    if temps:
        return "model file being written"
    stages = list((record.get("stages") or {}).items())
    if not stages:
        return "run.json appears"
    for name, entry in stages:
        if entry.get("status") in ("running", "interrupted"):
            return f"stage {name}"
    return f"between stages, after {stages[-1][0]}"


def check_kill(bench: Bench, project: Path, point: Point, outcome: dict[str, Any]) -> dict[str, Any]:
    """Check the state a kill left, with the real CLI; returns the facts and the problems."""
    run_dir: Path | None = outcome["run_dir"]
    problems: list[str] = []
    notes: list[str] = []
    facts: dict[str, Any] = {"point": point.label, "signal": SIGNAL_NAMES[point.sig], "exit": outcome["exit"],
                             "fired": outcome["fired"]}
    if run_dir is None or not (run_dir / "run.json").exists():
        facts.update(landed="no run.json", consistent=False, problems=["no run directory with a run.json"])
        return facts
    raw = read_json(run_dir / "run.json")
    run_id = raw["id"]
    facts.update(run=run_id, run_dir=str(run_dir), raw_status=raw.get("status"), landed=landing(raw, run_dir))
    expected = "succeeded" if raw.get("status") == "succeeded" else "interrupted"
    facts.update(expected=expected, raw_store=raw_store_status(project / "outputs" / "mlops.db", run_id))

    log_text = outcome.get("log", "")
    if not outcome["fired"]:
        notes.append("the run ended before the point was seen")
    elif outcome["hung"]:
        problems.append(f"the process was still alive {EXIT_TIMEOUT_S:.0f}s after {SIGNAL_NAMES[point.sig]} "
                        f"(its last line: {log_text.strip().splitlines()[-1:]}); SIGKILLed to go on")
    elif point.sig == signal.SIGKILL:
        if outcome["exit"] != -signal.SIGKILL:
            problems.append(f"exit status {outcome['exit']}, expected -9 (killed)")
    elif outcome["exit"] != 130:
        swallowed = [line for line in log_text.splitlines() if "run store: could not index" in line]
        problems.append(f"exit status {outcome['exit']}, expected 130; the run went on"
                        + (f" after: {swallowed[0]}" if swallowed else ""))

    # the real CLI, as a user would look
    listed = bench.cli(project, "runs", "--format", "json", "--columns", "id,status")
    if listed.returncode != 0 or traceback_in(listed.stderr):
        problems.append(f"mlops runs: exit {listed.returncode}: {listed.stderr.strip().splitlines()[-1:]}")
        store_status = None
    else:
        rows = [r for r in json.loads(listed.stdout) if r["id"] == run_id]
        store_status = rows[0]["status"] if len(rows) == 1 else f"{len(rows)} rows"
        if store_status != expected:
            problems.append(f"mlops runs says {store_status}, expected {expected}")
    shown = bench.cli(project, "show", run_id)
    first = shown.stdout.splitlines()[0] if shown.stdout.strip() else ""
    match = re.fullmatch(r"run (\w+)\s+\((\w+)\)", first.strip())
    show_status = match.group(2) if match else None
    if shown.returncode != 0 or traceback_in(shown.stderr):
        problems.append(f"mlops show: exit {shown.returncode}: {shown.stderr.strip().splitlines()[-1:]}")
    elif show_status != expected:
        problems.append(f"mlops show says {show_status!r}, expected {expected}")
    after = read_json(run_dir / "run.json")
    if after.get("status") != expected:
        problems.append(f"run.json says {after.get('status')} after the CLI looked, expected {expected}")
    facts.update(store=store_status, show=show_status, run_json=after.get("status"))

    # the model: no half-written file presenting as complete
    models, sidecars, temps = model_dir_state(run_dir)
    recorded = (after.get("model") or {}).get("sha256")
    recorded_path = (after.get("model") or {}).get("path")
    for sidecar in sidecars:
        model = sidecar.removesuffix(".sha256")
        digest = (run_dir / "model" / sidecar).read_text().split()[0] if (run_dir / "model" / sidecar).stat().st_size \
            else ""
        if model not in models:
            problems.append(f"model/{sidecar} without model/{model}")
        elif sha256_file(run_dir / "model" / model) != digest:
            problems.append(f"model/{model} does not match model/{sidecar}")
    if recorded:
        path = run_dir / (recorded_path or "model")
        if not path.is_file():
            problems.append(f"run.json records model sha256 {recorded[:12]} but {recorded_path} is missing")
        elif sha256_file(path) != recorded:
            problems.append(f"{recorded_path} does not match run.json's model.sha256")
    unhashed = [m for m in models if f"{m}.sha256" not in sidecars and not (recorded_path or "").endswith(m)]
    if unhashed:
        (problems if expected == "succeeded" else notes).append(f"model file without a hash: {unhashed}")
    if expected == "succeeded" and not (models and recorded):
        problems.append("a succeeded run without its model file and hash")
    if temps:
        notes.append(f"temp file left in model/: {temps[0]}")
    facts["model"] = ("none" if not models else "ok, hashed") + (", temp left" if temps else "")

    # every JSON artifact parses (all are written atomically)
    for path in sorted(run_dir.glob("*.json")):
        try:
            read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{path.name} does not parse: {exc}")
    facts["db"] = integrity(project / "outputs" / "mlops.db")
    if facts["db"] != "ok":
        problems.append(f"store integrity_check: {facts['db']}")
    if traceback_in(log_text):
        problems.append("the run printed a traceback")
    facts.update(problems=problems, notes=notes, consistent=not problems)
    return facts


def measure_kills(bench: Bench, quick: bool, attempts: int, repeats: int, poll_s: float) -> dict[str, Any]:
    print(f"\n== 1. kill points: mlops run signalled at each point of its life, run.json polled every "
          f"{poll_s * 1000:g} ms ==")
    project = bench.project("kills")
    started = time.perf_counter()
    bench.must(project, "run", "report=false")
    warm = read_json(run_dirs(project)[-1] / "run.json")
    order = list(warm["stages"])
    print(f"  warm-up run {time.perf_counter() - started:.1f}s; stages in order: {', '.join(order)}")
    points = kill_points(order, quick)
    kills: list[dict[str, Any]] = []
    per_point: list[dict[str, Any]] = []
    n = 0
    print("  (store: the run's row as the kill left it; then what mlops runs, mlops show and run.json say after "
          "the CLI looked)")
    print(f"  {'signal':8} {'aimed at':25} {'landed at':25} {'exit':>4} {'store':11} {'mlops runs':11} "
          f"{'show':11} {'run.json':11} {'model':10} {'db':3} verdict")
    for point in points:
        hit = False
        results = []
        # SIGKILL: tried until it lands as aimed; SIGINT/SIGTERM: `repeats` times whatever the
        # landing (the process itself handles them, so each try can end differently)
        polite = point.sig != signal.SIGKILL
        for attempt in range(1, (repeats if polite else attempts) + 1):
            n += 1
            watch = Watch(bench, project, point, order, poll_s, n)
            outcome = watch.run()
            outcome["log"] = watch.log.read_text()
            facts = check_kill(bench, project, point, outcome)
            facts["attempt"] = attempt
            facts["hit"] = facts["landed"] == point.label
            hit = hit or facts["hit"]
            results.append(facts)
            kills.append(facts)
            said = "consistent" if facts["consistent"] else "INCONSISTENT: " + "; ".join(facts["problems"])
            if facts.get("notes"):
                said += f" ({'; '.join(facts['notes'])})"
            print(f"  {facts['signal']:8} {point.label:25} {facts['landed']:25} {facts['exit']:>4} "
                  f"{str(facts.get('raw_store')):11} {str(facts.get('store')):11} {str(facts.get('show')):11} "
                  f"{str(facts.get('run_json')):11} {facts.get('model', '-'):10} {facts.get('db', '-'):3} {said}",
                  flush=True)
            if hit and not polite:
                break
        per_point.append({"point": point.label, "signal": SIGNAL_NAMES[point.sig], "hit": hit,
                          "attempts": len(results), "consistent": all(r["consistent"] for r in results)})

    # afterwards: the project still runs, nothing is left running, the run dirs rebuild the same store
    problems: list[str] = []
    final = bench.cli(project, "run", "report=false")
    if final.returncode != 0:
        problems.append(f"a normal run after the kills failed: {final.stderr.strip().splitlines()[-1:]}")
    listed = bench.cli(project, "runs", "--format", "json", "--columns", "id,status")
    before = {r["id"]: r["status"] for r in json.loads(listed.stdout)} if listed.returncode == 0 else {}
    if listed.returncode != 0:
        problems.append(f"mlops runs failed after the kills: {listed.stderr.strip()[-300:]}")
    dirs = run_dirs(project)
    left_running = sorted(i for i, s in before.items() if s == "running")
    if left_running:
        problems.append(f"runs left running: {left_running}")
    if len(before) != len(dirs):
        problems.append(f"the store lists {len(before)} runs, there are {len(dirs)} run directories")
    reindexed = bench.cli(project, "runs", "reindex")
    relisted = bench.cli(project, "runs", "--format", "json", "--columns", "id,status")
    after = {r["id"]: r["status"] for r in json.loads(relisted.stdout)} if relisted.returncode == 0 else {}
    unindexed = sorted(set(after) - set(before))
    changed = sorted(i for i in set(before) & set(after) if before[i] != after[i])
    if unindexed:
        problems.append(f"{len(unindexed)} run(s) missing from the store until mlops runs reindex: "
                        f"{', '.join(i[:8] for i in unindexed)} (reindex adds them: "
                        f"{statistics_of(after[i] for i in unindexed)})")
    if reindexed.returncode != 0 or changed or set(before) - set(after):
        problems.append(f"mlops runs reindex gives another store: exit {reindexed.returncode}, status changed for "
                        f"{changed[:4]}, dropped {sorted(set(before) - set(after))[:4]}")
    leftovers = sorted(str(p.relative_to(project)) for p in project.rglob("*") if TEMP_FILE.fullmatch(p.name))
    statuses = statistics_of(before.values())
    print(f"  after the kills: a normal run {'succeeded' if final.returncode == 0 else 'FAILED'}; the store lists "
          f"{len(before)} runs for {len(dirs)} run directories ({statuses}); reindex from the run directories "
          f"{'gives the same id -> status map' if after == before and after else 'DIFFERS (below)'}; "
          f"temp files left by killed writers: {len(leftovers)}")
    for problem in problems:
        print(f"  INCONSISTENT: {problem}")
    consistent_kills = sum(k["consistent"] for k in kills)
    summary = {
        "points": len(points), "points_hit": sum(p["hit"] for p in per_point),
        "points_consistent": sum(p["consistent"] for p in per_point),
        "kills": len(kills), "kills_consistent": consistent_kills,
        "sigkill_points": sum(1 for p in points if p.sig == signal.SIGKILL),
        "polite_points": sum(1 for p in points if p.sig != signal.SIGKILL),
        "landed_at": sorted({k["landed"] for k in kills}),
        "after": {"final_run_ok": final.returncode == 0, "runs": len(before), "run_dirs": len(dirs),
                  "reindex_same": after == before, "temp_files_left": leftovers, "problems": problems},
        "stages": order,
    }
    return {"summary": summary, "per_point": per_point, "kills": kills}


def statistics_of(values: Any) -> str:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


# --------------------------------------------------------------------------- 2. concurrent writers

def run_id(writer: int, i: int) -> str:
    return f"{writer:08x}{i:08x}" + "a" * 16


def final_status(i: int) -> str:
    return FINAL_STATUSES[i % len(FINAL_STATUSES)]


def writer_main(store_path: Path, writer: int, runs: int, go: Path) -> None:
    """One writer process: index ``runs`` runs through the engine's own API, print a JSON report."""
    import socket

    from engine.store import tracking
    store = tracking.open_store(f"sqlite:///{store_path}", store_path.parent)
    (go.parent / f"ready-{writer}").touch()
    while not go.exists():
        time.sleep(0.001)
    latencies: list[float] = []
    errors: list[str] = []
    host = socket.gethostname()
    for i in range(runs):
        rid = run_id(writer, i)
        resolved = {"name": "bench", "seed": i, "model": {"_target_": "sklearn.linear_model.LogisticRegression",
                                                          **{f"p{j}": j * 0.5 + i for j in range(14)}},
                    "split": {"test_size": 0.25, "seed": writer, "stratify": True}, "writer": writer}
        record = {"id": rid, "name": "bench", "kind": "run", "status": "running",
                  "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                  "run_dir": str(store_path.parent / "runs" / rid), "pid": os.getpid(), "host": host, "stages": {},
                  "provenance": {"git": {"commit": "0" * 40, "dirty": False}},
                  "data": {"orders": {"fingerprint": "sha256:" + "1" * 64}}}
        status = final_status(i)
        done = {**record, "status": status, "ended_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "duration_s": 0.01,
                "error": None if status == "succeeded" else {"type": "Bench", "message": f"{status} on purpose"},
                "model": {"sha256": "2" * 64} if status == "succeeded" else None}
        metrics = {"roc_auc": (i % 97) / 97, "f1": 0.5, "recall": 0.25, "precision": 0.75, "log_loss": 0.3,
                   "net_value_per_month": float(i)}
        for rec, values in ((record, None), (done, metrics)):
            start = time.perf_counter()
            try:
                tracking.track(store, rec, resolved, values)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the writer goes on
                errors.append(f"{rid} {rec['status']}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            latencies.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"writer": writer, "latencies_ms": latencies, "errors": errors}))


def reader_loop(bench: Bench, project: Path, uri: str, stop: threading.Event, out: dict[str, Any]) -> None:
    """Run ``mlops runs --format json`` until told to stop; count reads, failures and shrinking counts."""
    last = 0
    while not stop.is_set():
        done = bench.cli(project, "runs", "--format", "json", "--columns", "id,status", "--tracking-uri", uri)
        out["reads"] += 1
        if done.returncode != 0 or traceback_in(done.stderr):
            out["failures"].append(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
            continue
        try:
            count = len(json.loads(done.stdout))
        except json.JSONDecodeError as exc:
            out["failures"].append(f"not JSON: {exc}")
            continue
        if count < last:
            out["failures"].append(f"the count of runs went down: {last} -> {count}")
        last = count
        out["max_seen"] = max(out["max_seen"], count)


def measure_writers(bench: Bench, writers: int, runs: int, readers: int) -> dict[str, Any]:
    print(f"\n== 2a. concurrent writers: {writers} processes x {runs} runs (running, then final) on one store, "
          f"{readers} reader(s) running mlops runs meanwhile ==")
    project = bench.project("writers")
    store_path = project / "outputs" / "mlops.db"
    store_path.parent.mkdir(parents=True)
    uri = f"sqlite:///{store_path}"
    sync = bench.tmp / "writers-sync"
    sync.mkdir()
    go = sync / "go"
    procs = [subprocess.Popen([sys.executable, __file__, "--writer", str(w), "--store", str(store_path),
                               "--runs-per-writer", str(runs), "--go", str(go)],
                              cwd=project, env=bench.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(writers)]
    deadline = time.monotonic() + 120
    while len(list(sync.glob("ready-*"))) < writers:
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            for p in procs:
                p.kill()
            raise Failed("the writer processes did not all start: "
                         + " | ".join((p.stderr.read() if p.stderr else "")[-300:] for p in procs if p.poll()))
        time.sleep(0.01)
    stop = threading.Event()
    reads = [{"reads": 0, "failures": [], "max_seen": 0} for _ in range(readers)]
    threads = [threading.Thread(target=reader_loop, args=(bench, project, uri, stop, r)) for r in reads]
    started = time.perf_counter()
    go.touch()
    for t in threads:
        t.start()
    reports, writer_failures = [], []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1200)
        if p.returncode != 0:
            writer_failures.append(f"writer exit {p.returncode}: {stderr.strip()[-300:]}")
            continue
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    wall = time.perf_counter() - started
    stop.set()
    for t in threads:
        t.join()

    expected = {run_id(w, i): final_status(i) for w in range(writers) for i in range(runs)}
    conn = sqlite3.connect(store_path, timeout=60)
    try:
        rows = conn.execute("SELECT id, status FROM runs").fetchall()
        params = dict(conn.execute("SELECT run_id, count(*) FROM params GROUP BY run_id").fetchall())
        metrics = dict(conn.execute("SELECT run_id, count(*) FROM metrics GROUP BY run_id").fetchall())
    finally:
        conn.close()
    found: dict[str, list[str]] = {}
    for rid, status in rows:
        found.setdefault(rid, []).append(status)
    lost = sorted(set(expected) - set(found))
    doubled = sorted(r for r, s in found.items() if len(s) > 1)
    wrong = sorted(r for r, want in expected.items() if r in found and found[r] != [want])
    extra = sorted(set(found) - set(expected))
    # a run's params: name, seed, writer, model._target_, model.p0-p13, split.* (3); its 6 metrics
    incomplete = sorted(r for r in expected if r in found and (params.get(r, 0), metrics.get(r, 0)) != (21, 6))
    listed = bench.cli(project, "runs", "--format", "json", "--columns", "id,status", "--tracking-uri", uri)
    cli_rows = {r["id"]: r["status"] for r in json.loads(listed.stdout)} if listed.returncode == 0 else {}
    cli_ok = listed.returncode == 0 and cli_rows == expected
    check = integrity(store_path)
    latencies = [x for r in reports for x in r["latencies_ms"]]
    errors = [e for r in reports for e in r["errors"]]
    reader_failures = [f for r in reads for f in r["failures"]]
    ok = not (lost or doubled or wrong or extra or incomplete or errors or writer_failures or reader_failures) \
        and cli_ok and check == "ok"
    writes = len(latencies)
    lat = sorted(latencies) or [0.0]
    print(f"  {writers} writers x {runs} runs = {len(expected)} runs, {writes} writes in {wall:.1f}s "
          f"({writes / wall:.0f} writes/s); write latency median {statistics.median(lat):.1f} ms, "
          f"p99 {lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0]:.1f} ms, max {lat[-1]:.0f} ms")
    print(f"  in the store: {len(found)} runs; lost {len(lost)}, twice {len(doubled)}, wrong final status "
          f"{len(wrong)}, missing params/metrics {len(incomplete)}, unexpected {len(extra)}; write errors "
          f"{len(errors) + len(writer_failures)}; mlops runs lists {len(cli_rows)} "
          f"{'(all, with their statuses)' if cli_ok else '(DIFFERS)'}; integrity_check {check}")
    print(f"  readers: {sum(r['reads'] for r in reads)} mlops runs calls during the writes, failures "
          f"{len(reader_failures)}, largest count seen {max((r['max_seen'] for r in reads), default=0)}")
    for problem in (lost[:3] + doubled[:3] + wrong[:3] + incomplete[:3] + errors[:3] + writer_failures[:3]
                    + reader_failures[:3]):
        print(f"  INCONSISTENT: {problem}")
    return {"writers": writers, "runs_per_writer": runs, "runs": len(expected), "writes": writes, "wall_s": wall,
            "writes_per_s": writes / wall, "latency_median_ms": statistics.median(lat),
            "latency_p99_ms": lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0], "latency_max_ms": lat[-1],
            "found": len(found), "lost": len(lost), "twice": len(doubled), "wrong_status": len(wrong),
            "incomplete": len(incomplete), "unexpected": len(extra), "write_errors": errors + writer_failures,
            "cli_lists_all": cli_ok, "integrity": check, "reader_calls": sum(r["reads"] for r in reads),
            "reader_failures": reader_failures, "ok": ok}


def measure_sweeps(bench: Bench, sweeps: int, jobs: int) -> dict[str, Any]:
    print(f"\n== 2b. real sweeps: {sweeps} sweeps x {jobs} jobs at once, joblib launcher (n_jobs=2 each), "
          f"one store ==")
    project = bench.project("sweeps")
    started = time.perf_counter()
    bench.must(project, "run", "report=false")
    print(f"  warm-up run {time.perf_counter() - started:.1f}s (data generated, feature store filled)")
    warm_ids = {read_json(d / "run.json")["id"] for d in run_dirs(project)}
    procs = []
    started = time.perf_counter()
    for s in range(sweeps):
        values = ",".join(f"{0.05 + 0.05 * (s * jobs + j):g}" for j in range(jobs))
        log = open(bench.logs / f"sweep-{s}.log", "w")
        procs.append((subprocess.Popen([bench.mlops, "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                        "report=false", "model=logistic", f"model.C={values}"],
                                       cwd=project, env=bench.env, stdout=log, stderr=subprocess.STDOUT), log))
    codes = []
    for proc, log in procs:
        codes.append(proc.wait(timeout=900))
        log.close()
    wall = time.perf_counter() - started
    problems = [f"sweep {i} exit status {c} (log {bench.logs / f'sweep-{i}.log'})" for i, c in enumerate(codes) if c]
    records = [read_json(p) for p in sorted((project / "outputs" / "sweeps").glob("*/*/*/run.json"))]
    job_status = {r["id"]: r["status"] for r in records}
    listed = bench.cli(project, "runs", "--format", "json", "--columns", "id,status")
    rows = json.loads(listed.stdout) if listed.returncode == 0 else []
    if listed.returncode != 0:
        problems.append(f"mlops runs: exit {listed.returncode}")
    store = {}
    for row in rows:
        if row["id"] not in warm_ids:
            store.setdefault(row["id"], []).append(row["status"])
    if len(records) != sweeps * jobs:
        problems.append(f"{len(records)} job run.json files, expected {sweeps * jobs}")
    not_ok = sorted(i for i, s in job_status.items() if s != "succeeded")
    if not_ok:
        problems.append(f"jobs not succeeded: {not_ok[:4]}")
    if {i: s[0] for i, s in store.items() if len(s) == 1} != job_status or any(len(s) != 1 for s in store.values()):
        problems.append(f"the store has {len(store)} sweep runs, not each job once with its status")
    check = integrity(project / "outputs" / "mlops.db")
    if check != "ok":
        problems.append(f"integrity_check: {check}")
    print(f"  {sweeps} sweeps done in {wall:.1f}s (exit {', '.join(map(str, codes))}); {len(records)} job run dirs, "
          f"{len(store)} in the store, {sum(s == ['succeeded'] for s in store.values())} succeeded once each; "
          f"integrity_check {check}")
    for problem in problems:
        print(f"  INCONSISTENT: {problem}")
    return {"sweeps": sweeps, "jobs_per_sweep": jobs, "wall_s": wall, "exit": codes, "job_dirs": len(records),
            "in_store": len(store), "succeeded_once": sum(s == ["succeeded"] for s in store.values()),
            "integrity": check, "problems": problems, "ok": not problems}


# --------------------------------------------------------------------------- 3. hostile inputs

COUNT_CASES = f"""
import json
import tests.functional.test_hostile as m
print(json.dumps({{name: len(getattr(m, name, [])) for name in {HOSTILE_LISTS!r}}}))
"""


def count_hostile(bench: Bench) -> dict[str, Any]:
    print("\n== 3. hostile inputs: the cases of tests/functional/test_hostile.py (working tree), counted ==")
    env = {**bench.env, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", COUNT_CASES], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        print(f"  cannot import tests/functional/test_hostile.py: {done.stderr.strip().splitlines()[-1:]}")
        return {"error": done.stderr.strip()[-500:]}
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    path = "tests/functional/test_hostile.py"
    edited = bool(_git(ROOT, "status", "--porcelain", "--", path))
    commit = _git(ROOT, "log", "-1", "--format=%h", "--", path)
    total = sum(counts.values())
    print(f"  {total} cases: " + ", ".join(f"{name} {n}" for name, n in counts.items())
          + f" (file last committed at {commit}{', with uncommitted edits' if edited else ''}; counted, not run)")
    return {"total": total, **counts, "last_commit": commit, "uncommitted_edits": edited}


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer kill points, writers and jobs (~3 min)")
    parser.add_argument("--writers", type=int, default=None, help="concurrent writer processes (default 8, quick 4)")
    parser.add_argument("--runs-per-writer", type=int, default=None, help="runs each writer indexes (default 300, "
                                                                            "quick 50)")
    parser.add_argument("--readers", type=int, default=2, help="processes running mlops runs meanwhile (default 2)")
    parser.add_argument("--attempts", type=int, default=None, help="tries per kill point when a kill lands later "
                                                                   "than aimed (default 3, quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="tries per SIGINT/SIGTERM point, wherever they "
                                                                   "land (default 3, quick 1)")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="how often run.json is polled (default 2 ms)")
    parser.add_argument("--code", choices=["head", "working"], default="head",
                        help="head: a clean clone of HEAD (default); working: the working tree as installed")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (projects, logs)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    # a writer process of measurement 2 (started by this script)
    parser.add_argument("--writer", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    q = args.quick
    writers = args.writers or (4 if q else 8)
    runs = args.runs_per_writer or (50 if q else 300)
    if args.writer is not None:
        writer_main(args.store, args.writer, runs, args.go)
        return 0
    attempts = args.attempts or (2 if q else 3)
    repeats = args.repeats or (1 if q else 3)

    tmp = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    figures: dict[str, Any] = {}
    try:
        bench = Bench(tmp, args.code)
        print(f"reliability benchmark: engine {bench.describe}; {os.cpu_count()} CPUs, load "
              f"{' '.join(f'{x:.2f}' for x in load_before)}; projects in {tmp}")
        figures["meta"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": bench.commit,
                           "code": args.code, "dirty": bench.dirty, "cpus": os.cpu_count(),
                           "load_before": load_before, "python": platform.python_version(), "quick": q}
        figures["kills"] = measure_kills(bench, q, attempts, repeats, args.poll_ms / 1000)
        figures["writers"] = measure_writers(bench, writers, runs, args.readers)
        figures["sweeps"] = measure_sweeps(bench, 2, 2 if q else 4)
        figures["hostile"] = count_hostile(bench)
    except Failed as exc:
        print(f"\nreliability: a command failed: {exc}")
        return 1
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - started
    figures["meta"].update(wall_s=wall, load_after=os.getloadavg())

    k, w, s, h = (figures["kills"]["summary"], figures["writers"], figures["sweeps"], figures["hostile"])
    kills_ok = k["kills_consistent"] == k["kills"] and not k["after"]["problems"]
    rows = [
        (f"kill points aimed at (SIGKILL {k['sigkill_points']}, SIGINT/SIGTERM {k['polite_points']})",
         str(k["points"]), ""),
        ("  reached as aimed (within the attempts)", str(k["points_hit"]), ""),
        ("  left consistent (every kill aimed at the point)", f"{k['points_consistent']} / {k['points']}",
         verdict(k["points_consistent"] == k["points"])),
        ("signals sent (retries, repeats included) left consistent", f"{k['kills_consistent']} / {k['kills']}",
         verdict(kills_ok)),
        ("concurrent writers x runs each: runs lost", f"{w['writers']} x {w['runs_per_writer']}: {w['lost']}",
         verdict(w["ok"])),
        ("concurrent sweeps x jobs (joblib): indexed once, succeeded",
         f"{s['sweeps']} x {s['jobs_per_sweep']}: {s['succeeded_once']}", verdict(s["ok"])),
        ("hostile-input cases in test_hostile.py (counted, not run)", str(h.get("total", "?")), ""),
    ]
    print(f"\n== summary ({wall / 60:.1f} min; engine {bench.describe}) ==")
    for name, value, mark in [("measure", "result", "verdict"), *rows]:
        print(f"  {name:58} {value:>16}  {mark}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")
    return 0 if kills_ok and w["ok"] and s["ok"] else 3


if __name__ == "__main__":
    sys.exit(main())
