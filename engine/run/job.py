"""One run, stage by stage: the Hydra task function behind ``mlops run``.

    validate (compile the plan) -> ingest -> quality (gate) -> features -> compliance (gate)
    -> split -> train -> evaluate -> save -> requirements (gate)

The composed config is compiled once into a :class:`~engine.config.plan.Plan`; each stage
reads its own part of it.

``mlops quality`` runs the same job up to and including the quality gate, and
``mlops features materialize`` up to and including the features.

Each stage is timed and recorded in ``run.json``; the run becomes ``succeeded`` only
after every artifact is written. A job is a pure function of its composed config and
the project folder, so every Hydra launcher runs the same code.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import sqlite3
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from threadpoolctl import threadpool_info

from engine.config.business import STAKEHOLDERS, BusinessSpec
from engine.config.plan import Plan
from engine.config.plan import compile as compile_plan
from engine.config.validation import ConfigOrigin, resolve
from engine.errors import EngineError, QualityGateError, RequirementsGateError
from engine.files import atomic_path, write_json, write_text
from engine.run import provenance
from engine.run.record import RunRecord
from engine.stages import business, data, domain, features, model, quality, split
from engine.stages import monitor as monitoring
from engine.store import runcache, tracking
from engine.store.featurestore import FeatureStore
from engine.store.heartbeat import Heartbeat, revive_if_lost

log = logging.getLogger("engine.run")
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

RESOLVED_CONFIG = "config.resolved.yaml"
QUALITY_FILE = "quality.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
REQUIREMENTS_FILE = "requirements.json"
HEADLINE = ("roc_auc", "f1", "recall", "precision")
#: Metrics copied into run.json besides the headline.
RECORDED = ("accuracy", "log_loss", "brier", "threshold", "net_value_per_month")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the run is closed as ``interrupted``."""


def task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task function of ``mlops run``: run one job and return its record.

    Raises:
        EngineError: Bad config or data, or a failed gate; the run is recorded with
            the matching status before the error leaves.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the run is recorded as ``interrupted``.
    """
    return _job(cfg, until="save")


def reproduce_task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task function of ``mlops reproduce``: a training run recorded as a
    ``reproduction``, so ``latest`` and the registry never take it for a new run."""
    return _job(cfg, until="save", kind="reproduction")


def quality_task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task function of ``mlops quality``: ingest and check the data only."""
    return _job(cfg, until="quality")


def features_task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task function of ``mlops features materialize``: build features, no training."""
    return _job(cfg, until="features")


def _job(cfg: DictConfig, until: str, kind: str | None = None) -> dict[str, Any]:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    root = Path(hydra_cfg.runtime.cwd)
    overrides = list(hydra_cfg.overrides.task)
    where = ConfigOrigin(
        choices=dict(hydra_cfg.runtime.choices),
        overrides=overrides,
        conf_dir=_conf_label(hydra_cfg, root),
    )
    logging.captureWarnings(True)
    # SIGTERM is an interrupt from before run.json exists, and run.json is first written
    # inside the block that closes it: no signal can leave a run `running` behind.
    with _sigterm_as_interrupt():
        index = _Index(cfg, root)
        record = RunRecord(
            run_dir,
            name=str(OmegaConf.select(cfg, "name", default="run", throw_on_missing=False)),
            kind=kind or {"save": "run", "quality": "quality", "features": "features"}[until],
            provenance=provenance.collect(root, overrides),
        )
        shown = _display(run_dir, root)
        with _isolated(cfg), index.beating(record):
            try:
                # The store's row first: a kill before run.json exists leaves a `running`
                # row with a dead pid, which `mlops runs` closes as interrupted; the other
                # way round, it left a run.json the store did not list.
                index(record)
                index.start_heartbeat(record)
                record.start()
                result = _execute(cfg, record, root, where, until, index)
            except EngineError as exc:
                record.finish(exc.run_status, {"type": type(exc).__name__, "message": str(exc)})
                index(record)
                _mirror(cfg, record)
                log.info("run %s %s: %s", record.id[:8], exc.run_status, shown)
                if exc.run_status in ("failed_quality", "failed_requirements"):
                    _report(cfg, record, until, root)
                raise
            except KeyboardInterrupt as exc:
                reason = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT (Ctrl-C)"
                record.finish("interrupted", {"type": "Interrupted", "message": f"interrupted by {reason}"})
                index(record)
                log.info("run %s interrupted by %s: %s", record.id[:8], reason, shown)
                raise
            except Exception as exc:
                record.finish("failed", {"type": type(exc).__name__, "message": str(exc),
                                         "traceback": traceback.format_exc()})
                index(record)
                log.info("run %s failed with an internal error: %s", record.id[:8], shown)
                raise
    _mirror(cfg, record)
    _report(cfg, record, until, root)
    return result


def _report(cfg: DictConfig, record: RunRecord, until: str, root: Path) -> None:
    """Write the run's report.html (``report: true``); a report that fails never fails the run."""
    if until != "save" or not OmegaConf.select(cfg, "report", default=True, throw_on_missing=False):
        return
    from engine.report import write_run_report  # matplotlib: imported only when a report is written

    try:
        path = write_run_report(record.run_dir)
    except Exception as exc:  # noqa: BLE001 - the run's own result is already recorded
        log.warning("report: not written (%s); write it later with: mlops report %s", str(exc).splitlines()[0],
                    record.id[:8])
        return
    log.info("report: %s", _display(path, root))


def _mirror(cfg: DictConfig, record: RunRecord) -> None:
    """Mirror a finished run into MLflow when ``tracking.mlflow.uri`` is set; never fails the run."""
    try:
        uri = OmegaConf.select(cfg, "tracking.mlflow.uri", default=None, throw_on_missing=False)
    except OmegaConfBaseException:
        return  # the config itself is broken: the run already failed for that
    if not uri:
        return
    from engine.store.mlflow_mirror import record_mirror

    outcome = record_mirror(record.run_dir, str(uri))
    record.data["mlflow"] = outcome
    if not outcome["synced"]:
        log.warning("mlflow: run %s not mirrored to %s (%s); replay later with: mlops runs sync-mlflow",
                    record.id[:8], uri, outcome["error"])


def _execute(cfg: DictConfig, record: RunRecord, root: Path, where: ConfigOrigin,
             until: str, index: _Index) -> dict[str, Any]:
    plan = _compile(cfg, record, where, index)
    tables = _ingest(plan, record, root, cache_key=until == "save")
    if until == "save" and plan.settings.cache and (reused := _cached(record, root, index)) is not None:
        return reused
    report = _quality(plan, tables, record)
    if until == "quality":
        _succeeded(record, index)
        log.info("quality %s passed%s: %s", record.id[:8],
                 f" with {len(report.warnings)} warning(s)" if report.warnings else "", _display(record.run_dir, root))
        return record.data
    table, store = _features(plan, tables, record, root)
    del tables  # the sources' memory, before training
    if until == "features":
        _flush(store)
        _succeeded(record, index)
        statuses = ", ".join(f"{t.get('group', t.get('table'))} {t['status']}" for t in table.tables)
        log.info("features %s materialized (%s): %s", record.id[:8], statuses or "no store",
                 _display(record.run_dir, root))
        return record.data
    verdicts = _compliance(plan, table, record, store)
    parts = _split(plan, table, record)
    trained = _train(plan, parts, record)
    result = _evaluate(plan, table, parts, trained, record)
    _save(plan, table, parts, trained, result, record, store)
    index.metrics = result["metrics"]
    _requirements(plan.business, verdicts, result, record)
    _succeeded(record, index)
    metrics = result["metrics"]
    headline = " ".join(f"{k}={metrics[k]:.4f}" for k in HEADLINE if metrics[k] is not None)
    log.info("run %s succeeded in %.1fs: %s  %s net_value=$%s/month", record.id[:8], record.data["duration_s"],
             _display(record.run_dir, root), headline, f"{metrics['net_value_per_month']:,.0f}")
    return record.data


def _succeeded(record: RunRecord, index: _Index) -> None:
    record.finish("succeeded")
    index(record)


def _cached(record: RunRecord, root: Path, index: _Index) -> dict[str, Any] | None:
    """The record of this run finished from an earlier one with its cache key (``cache=true``), or None."""
    earlier = runcache.find(index.store, record.data["cache_key"], exclude=record.id)
    return _reuse(earlier, record, root, index) if earlier is not None else None


# ------------------------------------------------------------------ the stages of a run


def _compile(cfg: DictConfig, record: RunRecord, where: ConfigOrigin, index: _Index) -> Plan:
    """Resolve the config, record it, and compile it into the plan the stages read."""
    with record.stage("validate"):
        resolved = resolve(cfg)
        # PyYAML's C dumper: the same YAML OmegaConf.save writes for plain data, in a
        # tenth of the time (a sweep pays it per job).
        recorded = tracking.without_password(resolved)  # a store's password is never written down
        write_text(record.run_dir / RESOLVED_CONFIG, yaml.dump(recorded, Dumper=_YAML_DUMPER, sort_keys=False))
        plan = compile_plan(resolved, where)
        index.resolved = recorded
        settings = plan.settings
        record.update(
            seed=settings.seed,
            as_of=settings.as_of.isoformat(),
            determinism={
                "seed": settings.seed,
                "split_seed": plan.split.seed,
                "model_random_state": plan.model.params.get("random_state"),
                "threads": settings.threads,
                "threadpools": sorted({p["internal_api"] for p in threadpool_info()}),
                "model_file": "skops, objects numbered in order, one fixed date per zip entry",
            },
        )
    return plan


def _ingest(plan: Plan, record: RunRecord, root: Path, cache_key: bool) -> dict[str, data.Table]:
    """Load and fingerprint every source; a training run also records its cache key."""
    with record.stage("ingest") as stage:
        stage["generated_demo_data"] = data.prepare(plan.data, root)
        tables = data.load(plan.data, root)
        record.update(data={name: table.record() for name, table in tables.items()})
        if cache_key:  # only training runs: a quality or features run has no model to reuse
            record.update(cache_key=runcache.key(plan.config, {n: t.fingerprint for n, t in tables.items()},
                                                 record.data["provenance"]))
    return tables


def _quality(plan: Plan, tables: dict[str, data.Table], record: RunRecord) -> quality.QualityReport:
    """Run the quality rules and write quality.json; the gate raises after it is recorded."""
    as_of = plan.settings.as_of
    with record.stage("quality") as stage:
        report = quality.run(plan.quality, quality.Context(tables, as_of))
        write_json(record.run_dir / QUALITY_FILE, report.to_json(as_of))
        for line in report.table().splitlines():
            log.info(line)
        stage.update(gate="failed" if report.gate_failures else "passed",
                     failed_errors=report.gate_failures, failed_warnings=report.warnings)
        record.update(quality={"failed_errors": report.gate_failures, "failed_warnings": report.warnings,
                               "scores": {d: s["score"] for d, s in report.scores().items()}})
    if report.gate_failures:
        raise QualityGateError(
            f"quality gate failed: {len(report.gate_failures)} rule(s) of severity error failed: "
            f"{', '.join(report.gate_failures)} (details in {QUALITY_FILE})"
        )
    return report


def _features(plan: Plan, tables: dict[str, data.Table], record: RunRecord,
              root: Path) -> tuple[features.FeatureTable, FeatureStore | None]:
    """Build the feature table, through the feature store when the plan names one."""
    with record.stage("features") as stage:
        store = FeatureStore(root / plan.features.store) if plan.features.store else None
        # The store's tables are written by a background thread while the run goes on;
        # store.flush() waits for them (and raises a failed write) before the run is
        # recorded as done.
        table = features.build(plan.features, tables, plan.settings.as_of, store, defer_writes=True)
        stage.update(rows=len(table.frame), features=list(table.features),
                     target_rate=round(float(table.y.mean()), 6) if len(table.frame) else None)
        record.update(features={"store": str(store.root) if store else None, "tables": list(table.tables)})
        record.save()  # at once: `mlops features gc` keeps the tables run.json files reference
        if store is not None:
            _note_group_use(store, table.tables, record, plan.model.target)
    return table, store


def _compliance(plan: Plan, table: features.FeatureTable, record: RunRecord,
                store: FeatureStore | None) -> list[business.Verdict]:
    """Check the compliance requirements on the feature table, before any model is fitted."""
    requirements = plan.business.requirements
    if not any(r.kind == "compliance" for r in requirements):
        return []
    source_columns = {name: source["columns"] for name, source in record.data["data"].items()}
    with record.stage("compliance") as stage:
        spec = table.spec or plan.features  # its selectors expanded: every selected column has a lineage
        verdicts, warnings = business.check_compliance(
            requirements, spec.lineage(plan.data.timestamps()),
            table_columns=[table.key, *spec.features, table.target],
            model_columns=list(table.features), source_columns=source_columns)
        for warning in warnings:
            log.warning(warning)
        stage["verdicts"] = {v.requirement: v.verdict for v in verdicts}
    if any(not v.passed and v.hard for v in verdicts):
        _flush(store)
        _close_requirements(verdicts, record)  # before training: a non-compliant model is never fitted
    return verdicts


@dataclass(frozen=True)
class _Parts:
    """The feature table split into its training and hold-out parts."""

    test: pd.Index
    X_train: pd.DataFrame  # noqa: N815 - scikit-learn's names
    y_train: pd.Series
    X_test: pd.DataFrame  # noqa: N815
    y_test: pd.Series


def _split(plan: Plan, table: features.FeatureTable, record: RunRecord) -> _Parts:
    with record.stage("split") as stage:
        parts = split.holdout(table.y, plan.split)
        stage.update(train_rows=len(parts.train), test_rows=len(parts.test))
        return _Parts(parts.test, table.X.loc[parts.train], table.y.loc[parts.train], table.X.loc[parts.test],
                      table.y.loc[parts.test])


@dataclass(frozen=True)
class _Trained:
    """The fitted Pipeline, its fit time, and the out-of-fold scores to choose the threshold on."""

    pipeline: Any
    fit_s: float
    tuning: tuple[np.ndarray, np.ndarray] | None


def _train(plan: Plan, parts: _Parts, record: RunRecord) -> _Trained:
    threads, seed = plan.settings.threads, plan.settings.seed
    with record.stage("train") as stage:
        pipeline = model.build(plan.model, parts.X_train)
        fit_s = model.fit(pipeline, parts.X_train, parts.y_train, threads)
        stage["fit_s"] = round(fit_s, 4)
        tuning = None
        if plan.business.tunes_threshold:
            started = time.perf_counter()
            tuning = (parts.y_train.to_numpy(), model.out_of_fold_scores(
                pipeline, parts.X_train, parts.y_train, plan.business.threshold_folds, seed, threads))
            stage["threshold_folds_s"] = round(time.perf_counter() - started, 4)
    return _Trained(pipeline, fit_s, tuning)


def _evaluate(plan: Plan, table: features.FeatureTable, parts: _Parts, trained: _Trained,
              record: RunRecord) -> dict[str, Any]:
    """Score the hold-out part, value the model, write predictions.parquet and metrics.json.

    Returns:
        What metrics.json holds, plus the importances.
    """
    threads = plan.settings.threads
    with record.stage("evaluate") as stage:
        started = time.perf_counter()
        scores = model.predict_proba(trained.pipeline, parts.X_test, threads)
        predict_ms = (time.perf_counter() - started) * 1000 / max(len(parts.X_test), 1) * 1000
        y_true = parts.y_test.to_numpy()
        result = business.assess(plan.business, y_true, scores, trained.tuning)
        metrics = result["metrics"]
        kind, weights = model.importances(trained.pipeline, parts.X_test, parts.y_test, threads, plan.settings.seed)
        result["importances"] = {"kind": kind, "values": weights}
        speed = {"train_seconds": round(trained.fit_s, 4), "predict_ms_per_1000": round(predict_ms, 3)}
        record.update(speed=speed)  # in run.json, not metrics.json: timings differ on every run
        stage.update(threshold=metrics["threshold"], importances=kind)
        predictions = pd.DataFrame({
            table.key: table.frame.loc[parts.test, table.key].to_numpy(),
            "y_true": y_true,
            "y_score": scores,
            "y_pred": (scores >= metrics["threshold"]).astype("int64"),
        })
        with atomic_path(record.run_dir / PREDICTIONS_FILE) as tmp:
            predictions.to_parquet(tmp, index=False)
        write_json(record.run_dir / METRICS_FILE, result)
    _show_value(result)
    return result


def _save(plan: Plan, table: features.FeatureTable, parts: _Parts, trained: _Trained, result: dict[str, Any],
          record: RunRecord, store: FeatureStore | None) -> None:
    """Save the model with its decision threshold, input schema and training domain, once the
    feature tables are on disk."""
    metrics = result["metrics"]
    with record.stage("save"):
        _flush(store)  # the feature tables are on disk before the run can be recorded as done
        decided = model.with_threshold(trained.pipeline, metrics["threshold"], parts.X_test, parts.y_test)
        digest = model.save(decided, record.run_dir / "model")
        spec = table.spec or plan.features  # its selectors expanded: every selected column is known
        schema = model.input_schema(parts.X_train, spec.lineage(plan.data.timestamps()),
                                    {name: source.get("schema", {}) for name, source in record.data["data"].items()},
                                    table.key, table.target)
        schema_digest = model.save_input_schema(schema, record.run_dir / "model")
        # The training domain of the model's input, for serving and monitoring: its own
        # file and hash, so the model file's bytes stay what they were.
        # The quality rules that judge one input row alone go with it: serving applies them.
        rules = domain.row_rules(plan.quality, spec.passthrough(), list(parts.X_train.columns))
        input_domain = {"path": f"model/{domain.DOMAIN_FILE}", "sha256": domain.save(
            domain.profile(parts.X_train, table.frame.loc[parts.X_train.index, table.key], rules),
            record.run_dir / "model")}
        # The reference profile of mlops monitor: the training inputs' histograms, the
        # hold-out's scores, realised metrics and value a month, its calibration map and its
        # chunks' bands, so monitoring never reads the training data again.
        holdout = pd.read_parquet(record.run_dir / PREDICTIONS_FILE, columns=["y_true", "y_score"])
        reference_profile = {"path": f"model/{monitoring.PROFILE_FILE}", "sha256": monitoring.save(
            monitoring.profile(parts.X_train, holdout["y_score"].to_numpy(), metrics["threshold"],
                               holdout["y_true"].to_numpy(), plan.business.economics, plan.monitor.chunks),
            record.run_dir / "model")}
        record.update(model={"path": f"model/{model.MODEL_FILE}", "sha256": digest,
                             "input_schema": {"path": f"model/{model.INPUT_SCHEMA_FILE}", "sha256": schema_digest},
                             "input_domain": input_domain, "reference_profile": reference_profile,
                             "target": plan.model.target, "threshold": metrics["threshold"],
                             "threshold_policy": result["threshold"]["policy"]},
                      metrics={k: metrics[k] for k in (*RECORDED, *HEADLINE)})


def _requirements(spec: BusinessSpec, verdicts: list[business.Verdict], result: dict[str, Any],
                  record: RunRecord) -> None:
    """The requirements gate: the bounds and transparency, after the compliance verdicts."""
    if not spec.requirements:
        return
    with record.stage("requirements") as stage:
        observed = {**result["metrics"], **record.data["speed"], "run_seconds": record.elapsed()}
        verdicts = [*verdicts, *business.check_bounds(spec.requirements, observed),
                    *business.check_transparency(spec.requirements, result["importances"]["kind"])]
        stage["failed"] = [v.requirement for v in verdicts if v.verdict == "failed"]
        stage["warned"] = [v.requirement for v in verdicts if v.verdict == "warned"]
    _close_requirements(verdicts, record)


def _flush(store: FeatureStore | None) -> None:
    if store is not None:
        store.flush()


def _reuse(earlier: dict[str, Any], record: RunRecord, root: Path, index: _Index) -> dict[str, Any] | None:
    """Finish the run with an earlier run's results (``cache=true``): same config, data and code.

    Returns None (train instead) when the earlier run's files cannot be taken over.
    """
    # A reused run names the run that trained, not another reuse of it.
    origin = earlier.get("reused") or {"run": earlier["id"], "run_dir": earlier["run_dir"]}
    with record.stage("cache") as stage:
        try:
            fields = runcache.reuse(earlier, record.run_dir)
            result = json.loads((record.run_dir / METRICS_FILE).read_text())
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            log.warning("run cache: run %s not reused (%s); training instead", earlier["id"][:8], exc)
            stage["reused"] = None
            return None
        stage["reused"] = origin["run"]
        record.update(reused=origin, **fields)
    if "business" in result:  # metrics.json of this engine version (older ones lack the value)
        _show_value(result)
    record.finish("succeeded")
    index.metrics = result["metrics"]
    index(record)
    log.info("run %s reused run %s (same config, data and code; cache=true): %s", record.id[:8], origin["run"][:8],
             _display(record.run_dir, root))
    return record.data


def _show_value(result: dict[str, Any]) -> None:
    """The stakeholders' key metrics on the terminal."""
    m, th, money = result["metrics"], result["threshold"], result["business"]
    ds = " ".join(f"{k}={m[k]:.3f}" for k in STAKEHOLDERS["data_scientist"] if m.get(k) is not None)
    log.info("data scientist: %s (threshold %.4g, %s)", ds, th["chosen"], th["policy"])
    if m["customers_contacted_per_month"]:
        log.info("subject-matter expert: %.0f%% of churners caught, %s customers contacted a month, %.0f%% of them "
                 "really at risk", 100 * m["share_churners_caught"], f"{m['customers_contacted_per_month']:,.0f}",
                 100 * m["contacted_at_risk_share"])
    else:
        log.info("subject-matter expert: nobody is contacted: an offer pays only when more than %.0f%% of the "
                 "contacted customers would churn; this model's top 1%% of scores holds %.0f%% churners",
                 100 * money["break_even_precision"], 100 * (money["top_1pct_precision"] or 0))
    log.info("business: net value $%s a month, revenue saved $%s a month (at threshold 0.5: net $%s)",
             f"{m['net_value_per_month']:,.0f}", f"{m['revenue_saved_per_month']:,.0f}",
             f"{money['at_default_threshold']['net_value_per_month']:,.0f}")
    if money["design_estimate"]:
        log.info(business.estimate_line(money["design_estimate"], "simple estimate (design)"))
    log.info(business.estimate_line(money["model_estimate"], "simple estimate (this model)"))


def _close_requirements(verdicts: list[business.Verdict], record: RunRecord) -> None:
    """Write requirements.json, warn for soft failures, raise for hard ones."""
    write_json(record.run_dir / REQUIREMENTS_FILE, {"verdicts": [v.to_json() for v in verdicts]})
    record.update(requirements={v.requirement: v.verdict for v in verdicts})
    for v in verdicts:
        if v.verdict == "warned":
            log.warning("soft requirement %s not met: %s", v.requirement, v.detail)
    failed = [v for v in verdicts if v.verdict == "failed"]
    if failed:
        raise RequirementsGateError(
            f"requirements gate failed: {'; '.join(f'{v.requirement}: {v.detail}' for v in failed)} "
            f"(details in {REQUIREMENTS_FILE}; the run cannot be registered)")


class _Index:
    """Mirrors the run record into the metadata store (``tracking.uri``).

    The run directory is the source of truth: when the store cannot be written the run
    goes on with a warning, and ``mlops runs reindex`` rebuilds the store later.
    """

    def __init__(self, cfg: DictConfig, root: Path) -> None:
        self.resolved: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None
        self.store: tracking.RunStore | None = None
        self.heartbeat: Heartbeat | None = None
        try:
            uri = OmegaConf.select(cfg, "tracking.uri", default=tracking.DEFAULT_URI, throw_on_missing=False)
            self.store = tracking.open_store(str(uri), root)
        except (EngineError, OmegaConfBaseException) as exc:
            log.warning("run store: %s; the run is not indexed", str(exc).splitlines()[0])

    def __call__(self, record: RunRecord) -> None:
        if self.store is None:
            return
        try:
            tracking.track(self.store, record.data, self.resolved, self.metrics)
            if record.data.get("status") != "running" and self.heartbeat is not None:
                self.heartbeat.stop()  # its last beat is written before the history is read
                if revive_if_lost(self.store, record.id, str(record.data["status"])):
                    log.warning("run %s had been marked lost (no heartbeat in time) and finished %s: revived",
                                record.id[:8], record.data["status"])
        except (EngineError, sqlite3.Error, OSError) as exc:
            log.warning("run store: could not index run %s (%s); mlops runs reindex rebuilds the index",
                        record.id[:8], str(exc).splitlines()[0])

    def start_heartbeat(self, record: RunRecord) -> None:
        """Beat every ``heartbeat_s`` seconds (recorded in the run's row) while it runs."""
        if self.store is not None and record.data.get("heartbeat_s"):
            self.heartbeat = Heartbeat(self.store, record.id, float(record.data["heartbeat_s"])).start()

    @contextmanager
    def beating(self, record: RunRecord) -> Iterator[None]:
        """Record the heartbeat interval before the first index; stop beating at the end, however it ends."""
        if self.store is not None:
            record.update(heartbeat_s=tracking.heartbeat_seconds())
        try:
            yield
        finally:
            if self.heartbeat is not None:
                self.heartbeat.stop()


def _note_group_use(store: FeatureStore, tables: tuple[dict[str, Any], ...], record: RunRecord,
                    model_target: str) -> None:
    """Record which run and model used each group; warn when a shared group changed."""
    used_by = {"run": record.id, "run_dir": str(record.run_dir), "model": model_target}
    for entry in (t for t in tables if "group" in t):
        earlier = store.record_use(entry["group"], entry["definition_hash"], entry.get("version"), used_by)
        users: dict[str, list[str]] = {}
        for definition in earlier:
            for use in definition.get("used_by", []):
                runs = users.setdefault(str(use.get("model", "?")).rsplit(".", 1)[-1], [])
                if str(use.get("run", "?"))[:8] not in runs:
                    runs.append(str(use.get("run", "?"))[:8])
        if users:
            same_version = earlier[0].get("version") == entry.get("version")
            log.warning(
                "shared feature group %s changed since it was last used: definition %s (version %s) is now %s "
                "(version %s%s); models that used the old definition: %s", entry["group"], earlier[0]["hash"][:12],
                earlier[0].get("version"), entry["definition_hash"][:12], entry.get("version"),
                ", not bumped" if same_version else "",
                "; ".join(f"{model} (runs {', '.join(runs[-5:])})" for model, runs in sorted(users.items())))


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _conf_label(hydra_cfg: Any, root: Path) -> str:
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "main":
            path = Path(str(source.path).removeprefix("file://"))
            try:
                return str(path.relative_to(root))
            except ValueError:
                return str(path)
    return "conf"


@contextmanager
def _isolated(cfg: DictConfig) -> Iterator[None]:
    """Keep jobs that share a process (Hydra's basic launcher) from leaking into each other.

    The global random generators start every job from the job's own seed, so an
    estimator left with ``random_state: null`` gives the same model alone or as the
    tenth job of a sweep; the warning filters and "already shown" registries are
    restored afterwards, so every job's run.log shows its own warnings. (Hydra itself
    reconfigures the logging handlers for every job.)
    """
    try:
        seed = int(OmegaConf.select(cfg, "seed", default=0, throw_on_missing=False) or 0)
    except (OmegaConfBaseException, TypeError, ValueError):
        seed = 0  # a broken config fails validation inside the job
    random_state, numpy_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        random.setstate(random_state)
        np.random.set_state(numpy_state)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a run executes (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
