"""Hydra callbacks: progress while a sweep runs, and what happens when it ends."""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from engine.errors import EngineError
from engine.files import atomic_path, write_json, write_text
from engine.store.registry import DEFAULT_PATH, Registry

log = logging.getLogger("engine.sweep")


class RegisterBest(Callback):
    """When a sweep ends, register its best succeeded run and alias it ``challenger``.

    Active only when the experiment declares ``select: {metric, mode}`` and
    ``register: NAME``. Runs that failed, or failed a gate, are never candidates.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        select, name = config.get("select"), config.get("register")
        if not select or not name:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric, mode = str(select["metric"]), str(select["mode"])
        candidates = []
        for record_path in sorted(sweep_dir.glob("*/run.json")):
            record = json.loads(record_path.read_text())
            metrics_path = record_path.parent / "metrics.json"
            if record.get("status") != "succeeded" or not metrics_path.exists():
                continue
            value = json.loads(metrics_path.read_text()).get("metrics", {}).get(metric)
            if isinstance(value, int | float):
                candidates.append((float(value), record_path.parent, record["id"]))
        if not candidates:
            log.warning("sweep %s: no succeeded run has %s; nothing registered", sweep_dir, metric)
            return
        value, run_dir, run_id = (max if mode == "max" else min)(candidates, key=lambda c: c[0])
        uri = OmegaConf.select(config, "tracking.uri", default=None, throw_on_missing=False)
        registry = Registry(Path(os.environ.get("MLOPS_REGISTRY", str(DEFAULT_PATH))), str(uri) if uri else None)
        try:
            version = registry.register(str(name), run_dir)
            registry.promote(str(name), version["version"], "challenger")
        except EngineError as exc:
            log.warning("sweep %s: could not register the best run %s: %s", sweep_dir, run_id[:8], exc)
            return
        log.info("sweep best by %s (%s): run %s with %.4f, registered as %s/%d and aliased challenger",
                 metric, mode, run_id[:8], value, name, version["version"])


class SweepSummary(Callback):
    """A progress line per finished job, and the sweep's summary when it ends.

    The summary, in the sweep's root directory: ``leaderboard.csv`` and
    ``leaderboard.md`` (every job, best first by ``select.metric``, default roc_auc),
    and ``summary.json`` (the best run, the failed jobs with their errors, the wall
    time). Counts come from the run records in the sweep folder, so they are right
    whatever process a launcher runs a job in: jobs that run in this process report
    when they end; jobs in worker processes (joblib, submitit, ray) are picked up by a
    thread that looks at the sweep folder every ``poll_s`` seconds. Workers rewrite the
    summary files after each job, so a sweep whose launcher dies still has them.

    Hydra turns an exception raised in a callback into a warning, so stopping a sweep
    early is the sweeper's job: the basic sweeper stops after the first batch with a
    failed job (``hydra.sweeper.max_batch_size``), ``mlops_optuna`` after
    ``max_failures`` failed trials.

    Args:
        poll_s: How often the progress thread looks at the sweep folder.
    """

    def __init__(self, poll_s: float = 2.0) -> None:
        self.poll_s = poll_s
        self.start = 0.0
        self.parent = 0
        self.total: int | None = None
        self.reported = 0
        self._lock: threading.Lock | None = None
        self._stop: threading.Event | None = None
        self._sweep_lock: threading.Lock | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Launchers pickle the callbacks to their workers; a thread and a lock stay here.
        return {**self.__dict__, "_lock": None, "_stop": None, "_sweep_lock": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time()
        self.parent = os.getpid()
        self.total = _planned_jobs(config)
        self.reported = 0
        self.sweep_report = bool(config.get("report", True))
        self.reported_sweep = False
        self._sweep_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric, mode = _selection(config)
        threading.Thread(target=self._poll, args=(sweep_dir, metric, mode), name="mlops-sweep-progress",
                         daemon=True).start()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not self.start:  # a single run, not a sweep
            return
        metric, mode = _selection(config)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        summary = self._summarise(sweep_dir, metric, mode, time.time() - self.start)
        if os.getpid() == self.parent:
            self._report(summary)
            self._report_failed_sweep(sweep_dir, summary)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._stop is not None:
            self._stop.set()
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric, mode = _selection(config)
        summary = self._summarise(sweep_dir, metric, mode, time.time() - self.start if self.start else None)
        self._report(summary)
        best = summary["best"]
        described = f"best {metric} {best[metric]:.4f}: job {best['job']} (run {best['run']})" if best \
            else "no run succeeded"
        log.info("sweep done: %d jobs, %d failed, %s; leaderboard.csv/.md and summary.json in %s",
                 summary["jobs"], len(summary["failed"]), described, sweep_dir)
        self._write_sweep_report(sweep_dir)

    def _report_failed_sweep(self, sweep_dir: Path, summary: dict[str, Any]) -> None:
        """A sweep with a failed job ends with that job's error, and Hydra then skips
        ``on_multirun_end``: write its report once every planned job has finished."""
        if summary["failed"] and self.total and summary["finished"] >= self.total:
            self._write_sweep_report(sweep_dir)

    def _write_sweep_report(self, sweep_dir: Path) -> None:
        with self._sweep_lock or threading.Lock():  # once: the poll thread may race on_job_end
            if not getattr(self, "sweep_report", True) or getattr(self, "reported_sweep", False):
                return
            self.reported_sweep = True
        from engine.report import write_sweep_report  # matplotlib: only when a report is written

        try:
            log.info("sweep report: %s", write_sweep_report(sweep_dir))
        except Exception as exc:  # noqa: BLE001 - the sweep's own results are already written
            log.warning("sweep report: not written (%s); write it later with: mlops report %s",
                        str(exc).splitlines()[0], sweep_dir)

    def _poll(self, sweep_dir: Path, metric: str, mode: str) -> None:
        stop = self._stop
        assert stop is not None
        while not stop.wait(self.poll_s):
            try:
                finished = sum(1 for _, r in _records(sweep_dir) if r.get("status") != "running")
                if finished > self.reported:
                    summary = self._summarise(sweep_dir, metric, mode, time.time() - self.start)
                    self._report(summary)
                    self._report_failed_sweep(sweep_dir, summary)
            except Exception as exc:  # noqa: BLE001 - progress is a nicety; never fail a sweep for it
                log.debug("sweep progress: %s", exc)

    def _report(self, summary: dict[str, Any]) -> None:
        lock = self._lock or threading.Lock()
        with lock:
            if summary["finished"] <= self.reported:
                return
            self.reported = done = summary["finished"]
            metric, best = summary["metric"], summary["best"]
            left = ""
            if self.total and summary["wall_time_s"]:
                left = f", ~{summary['wall_time_s'] / done * max(self.total - done, 0):.0f}s left"
            shown = f"best {metric} {best[metric]:.4f} (run {best['run']})" if best else f"no {metric} yet"
            log.info("sweep: %d/%s jobs done, %d failed, %s%s", done, self.total or "?", len(summary["failed"]),
                     shown, left)

    @staticmethod
    def _summarise(sweep_dir: Path, metric: str, mode: str, wall: float | None) -> dict[str, Any]:
        rows, failed = [], []
        for job, record in _records(sweep_dir):
            overrides = (job / ".hydra" / "overrides.yaml").read_text().strip().splitlines() \
                if (job / ".hydra" / "overrides.yaml").exists() else []
            row = {"job": job.name, "run": str(record.get("id", ""))[:8], "status": record.get("status"),
                   "overrides": " ".join(o.lstrip("- ").strip() for o in overrides),
                   **{k: v for k, v in (record.get("metrics") or {}).items()}}
            rows.append(row)
            if record.get("status") not in ("succeeded", "running"):
                failed.append({"job": job.name, "run": row["run"], "status": record.get("status"),
                               "error": (record.get("error") or {}).get("message")})
        ranked = sorted((r for r in rows if r["status"] == "succeeded" and isinstance(r.get(metric), int | float)),
                        key=lambda r: r[metric], reverse=mode == "max")
        ordered = ranked + [r for r in rows if r not in ranked]
        columns = ["job", "run", "status", metric, *sorted({k for r in rows for k in r} - {
            "job", "run", "status", "overrides", metric}), "overrides"]
        with atomic_path(sweep_dir / "leaderboard.csv") as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(ordered)
        lines = [f"# Sweep {sweep_dir.name}: best by {metric} ({mode})", "",
                 "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in ordered]
        write_text(sweep_dir / "leaderboard.md", "\n".join(lines) + "\n")
        summary = {"metric": metric, "mode": mode, "jobs": len(rows),
                   "finished": sum(1 for r in rows if r["status"] != "running"), "succeeded": len(ranked),
                   "best": ranked[0] if ranked else None, "failed": failed,
                   "wall_time_s": None if wall is None else round(wall, 2)}
        write_json(sweep_dir / "summary.json", summary)
        return summary


def _records(sweep_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run records of a sweep's jobs, by job number; unreadable ones are skipped."""
    out = []
    for path in sorted(sweep_dir.glob("*/run.json"),
                       key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0):
        try:
            out.append((path.parent, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return out


def _selection(config: DictConfig) -> tuple[str, str]:
    select = config.get("select") or {}
    return str(select.get("metric", "roc_auc")), str(select.get("mode", "max"))


def _planned_jobs(config: DictConfig) -> int | None:
    """How many jobs a grid sweeper will launch (None for other sweepers)."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        if not str(config.hydra.sweeper.get("_target_", "")).endswith(("BasicSweeper", "MlopsGridSweeper")):
            return None
        params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
        parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
        return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
    except Exception:  # noqa: BLE001 - a count is a nicety; never fail a sweep for it
        return None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value).replace("|", "/")
