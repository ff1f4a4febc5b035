"""Retraining as config: what a failed monitor run launches (``monitor.on_failure``).

    monitor run (failed) -> [lock, cooldown] -> mlops run experiment=E as_of=<latest
    complete label window> -> best run registered (NAME/N, alias challenger) ->
    mlops validate --against NAME@ALIAS --candidate <best run> [--promote]

Each step is the command a person would type, run in a subprocess of the same Python,
so the retrain is exactly ``mlops run`` and the promotion exactly ``mlops validate``:
the alias moves only when conf/promotion/ passes, and a server following it swaps the
new model in by itself.

Lineage: the monitor run records the sweep, the best run, the registry version and the
verdict (``run.json`` ``retrain`` and its store tags ``lineage.*``); the retrained run
records the monitor run (``lineage.monitor_run``); the sweep folder holds
``retrain.json``. ``mlops show`` on either run names the others.

Two monitors never launch two retrains: an exclusive lock per model name
(``outputs/monitor/retrain-NAME.lock``, not waited for) and a cooldown
(``outputs/monitor/retrain-NAME.json`` keeps the last launch).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config.plan import Plan
from engine.errors import EngineError
from engine.files import write_json
from engine.run.record import RunRecord
from engine.stages import data
from engine.store import registry as registries
from engine.store import tracking

log = logging.getLogger("engine.monitor")

RETRAIN_FILE = "retrain.json"
_MLOPS = "import sys; from engine.cli import main; main(sys.argv[1:])"


def latest_label_cutoff(plan: Plan, root: Path) -> pd.Timestamp:
    """The latest cut-off whose labels are complete: the newest event of the project's
    data minus ``monitor.label_delay``, at midnight."""
    data.prepare(plan.data, root)
    tables = data.load(plan.data, root)
    newest = max((pd.Timestamp(t.frame[ts].max()) for n, t in tables.items()
                  if (ts := plan.data.sources[n].timestamp) and ts in t.frame.columns and len(t.frame)),
                 default=plan.settings.as_of + plan.monitor.label_delay)
    return (newest - plan.monitor.label_delay).normalize()


def retrain(plan: Plan, monitored: Any, record: RunRecord, overrides: list[str], root: Path, registry_root: Path,
            store: tracking.RunStore, tracking_uri: str | None = None,
            echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Launch ``monitor.on_failure``'s retrain after a failed monitor run; record the lineage.

    The retrain's ``mlops run`` and ``mlops validate`` use ``tracking_uri`` (the monitor's
    ``--tracking-uri``) when given, as their ``MLOPS_TRACKING_URI``.

    Returns:
        What ``run.json`` records under ``retrain`` (``status``: ``skipped`` with the
        reason, ``failed`` with the step, ``passed`` or ``rejected``).
    """
    spec = plan.monitor.on_failure
    assert spec is not None
    folder = root / "outputs" / "monitor"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"retrain-{monitored.name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            outcome = {"status": "skipped", "reason": f"another monitor is retraining {monitored.name} (lock held)"}
            return _close(outcome, record, store, echo)
        try:
            outcome = _retrain(plan, monitored, record, overrides, root, registry_root, folder, echo, tracking_uri)
        except EngineError as exc:  # the monitor's own verdict (exit 6) must not be lost to it
            outcome = {"status": "failed", "step": "prepare", "error": str(exc)}
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return _close(outcome, record, store, echo)


def _retrain(plan: Plan, monitored: Any, record: RunRecord, overrides: list[str], root: Path, registry_root: Path,
             folder: Path, echo: Callable[[str], None], tracking_uri: str | None) -> dict[str, Any]:
    spec = plan.monitor.on_failure
    assert spec is not None
    state_path = folder / f"retrain-{monitored.name}.json"
    now = datetime.now(timezone.utc)
    if state_path.exists():
        last = json.loads(state_path.read_text())
        since = now - datetime.fromisoformat(last["started_at"])
        if since < spec.cooldown:
            return {"status": "skipped", "reason": f"cooldown: the last retrain of {monitored.name} started "
                    f"{since.total_seconds() / 3600:.1f} h ago (monitor run {last['monitor_run'][:8]}); "
                    f"cooldown {spec.declared_cooldown}"}
    write_json(state_path, {"started_at": now.isoformat(), "monitor_run": record.id})
    cutoff = latest_label_cutoff(plan, root)
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    sweep_dir = root / "outputs" / "sweeps" / f"{stamp}-retrain-{monitored.name}"
    kept = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith(("as_of", "monitor."))]
    command = ["run", f"experiment={spec.experiment}", f"as_of={cutoff.date()}", *kept, *spec.overrides,
               f"hydra.sweep.dir={sweep_dir}", f"hydra.run.dir={sweep_dir}"]
    echo(f"monitor: retraining {monitored.name}: mlops {' '.join(command)}")
    outcome: dict[str, Any] = {"experiment": spec.experiment, "as_of": str(cutoff.date()), "command": command,
                               "sweep_dir": str(sweep_dir)}
    write_json(sweep_dir / RETRAIN_FILE, {"monitor_run": record.id, "monitor_run_dir": str(record.run_dir),
                                          "model": monitored.describe(), "as_of": str(cutoff.date())})
    done = _mlops(command, root, tracking_uri)
    if done.returncode != 0:
        return {**outcome, "status": "failed", "step": "run", "exit_status": done.returncode,
                "error": _last_line(done.stderr)}
    best = _best_registered(registry_root, monitored.name, sweep_dir, tracking_uri)
    if best is None:
        return {**outcome, "status": "failed", "step": "register",
                "error": f"no run of {sweep_dir} was registered as {monitored.name} (does the experiment set "
                         f"register: {monitored.name}?)"}
    version, run_dir = best
    outcome.update(run_id=version["run_id"], run_dir=str(run_dir), version=f"{monitored.name}/{version['version']}")
    _mark_run(run_dir, record)
    against = monitored.ref if "@" in monitored.ref else None
    if against is None:
        return {**outcome, "status": "registered", "note": "the monitored model is no NAME@ALIAS: nothing to validate"}
    validate = ["validate", "--against", against, "--candidate", str(run_dir), *(["--promote"] if spec.promote else [])]
    echo(f"monitor: validating: mlops {' '.join(validate)}")
    checked = _mlops(validate, root, tracking_uri)
    verdict = run_dir / "validation.json"
    outcome.update(validation=str(verdict) if verdict.exists() else None)
    if checked.returncode == 0:
        return {**outcome, "status": "passed", "promoted": spec.promote}
    if checked.returncode == 4:
        return {**outcome, "status": "rejected", "promoted": False, "reason": _last_line(checked.stderr)}
    return {**outcome, "status": "failed", "step": "validate", "exit_status": checked.returncode,
            "error": _last_line(checked.stderr)}


def _mlops(args: list[str], root: Path, tracking_uri: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_TRACKING_URI": tracking_uri} if tracking_uri else None
    done = subprocess.run([sys.executable, "-c", _MLOPS, *args], cwd=root, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        log.info("  %s", line)
    return done


def _best_registered(registry_root: Path, name: str, sweep_dir: Path,
                     tracking_uri: str | None) -> tuple[dict[str, Any], Path] | None:
    """The registry version whose run lies in ``sweep_dir`` (RegisterBest registered it)."""
    try:
        entry = registries.Registry(registry_root, tracking_uri).read(name)
    except EngineError:
        return None
    for version in reversed(entry["versions"]):
        run_dir = Path(version["run_dir"])
        if run_dir.resolve().is_relative_to(sweep_dir.resolve()):
            return version, run_dir
    return None


def _mark_run(run_dir: Path, record: RunRecord) -> None:
    """The retrained run names the monitor run that launched it (run.json, and its store tags)."""
    path = run_dir / "run.json"
    trained = json.loads(path.read_text())
    trained["lineage"] = {"monitor_run": record.id, "monitor_run_dir": str(record.run_dir)}
    write_json(path, trained)


def _close(outcome: dict[str, Any], record: RunRecord, store: tracking.RunStore,
           echo: Callable[[str], None]) -> dict[str, Any]:
    record.update(retrain=outcome, lineage={k: outcome[k] for k in ("sweep_dir", "run_id", "version", "validation")
                                            if outcome.get(k)} | {"retrain": outcome["status"]})
    record.save(durable=True)
    try:
        row = store.get(record.id) or {}
        tracking.track(store, record.data, None, row.get("metrics"))
        if outcome.get("run_id"):
            trained = store.get(outcome["run_id"])
            if trained is not None:
                store.upsert(trained, tags={**trained["tags"], "lineage.monitor_run": record.id})
    except (EngineError, OSError) as exc:
        log.warning("run store: lineage not indexed (%s)", str(exc).splitlines()[0])
    status = outcome["status"]
    detail = outcome.get("reason") or outcome.get("error") or ""
    echo(f"monitor: retrain {status}" + (f": {outcome['version']}" if outcome.get("version") else "")
         + (f" ({detail})" if detail else "")
         + (f"; the alias moved to {outcome['version']}" if outcome.get("promoted") else ""))
    return outcome


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("mlops: ") if lines else ""
