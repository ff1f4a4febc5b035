"""``mlops monitor``: a model's live data against the reference profile frozen at its training.

    resolve the model (registry or run) -> current rows (the prediction log's window, a
    file, or the features at a later cut-off) -> score them -> the rules of conf/monitor/
    -> monitor.json, report.html -> the run record (kind ``monitor``) -> [retrain]

The monitor run has its own folder (``outputs/monitor/<date>/<time>-<name>``) and its own
record in the store, so ``mlops runs --where "kind = monitor"`` lists them and ``latest``
keeps meaning the latest training run. A rule of severity error that fails makes the run
``failed_monitor`` and the command exit 6 (:class:`MonitorGateError`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.config.plan import Plan
from engine.errors import DataError, EngineError, MonitorGateError, UsageError
from engine.files import write_json
from engine.run import provenance
from engine.run.record import RunRecord
from engine.run.validate import input_columns, point_metrics
from engine.stages import data, features, model, quality
from engine.stages import domain as domains
from engine.stages import monitor as monitoring
from engine.store import registry as registries
from engine.store import runs, tracking

log = logging.getLogger("engine.monitor")

MONITOR_FILE = "monitor.json"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Monitored:
    """The model a monitor run checks, with what was frozen beside it.

    Args:
        ref: As given (``churn@champion``).
        name: The registered name (or the run's name).
        version: The registry version (None for a run).
        run_id: Its training run.
        run_dir: Its training run's folder.
        fitted: The model, loaded after its hashes were checked.
        threshold: Its decision threshold.
        reference: The reference profile.
        domain: The training domain of its input (None: recorded without one).
        target: The label's column name in its feature table.
    """

    ref: str
    name: str
    version: int | None
    run_id: str
    run_dir: Path
    fitted: Any
    threshold: float
    reference: dict[str, Any]
    domain: dict[str, Any] | None
    target: str | None

    def describe(self) -> dict[str, Any]:
        return {"ref": self.ref, "name": self.name, "version": self.version, "run_id": self.run_id,
                "run_dir": str(self.run_dir), "threshold": self.threshold}


def resolve_model(ref: str, registry_root: Path, store: tracking.RunStore, tracking_uri: str | None = None) -> Monitored:
    """The model to monitor: ``NAME@ALIAS``, ``NAME/VERSION``, ``NAME`` or a training run.

    Raises:
        UsageError: No such model, or one trained before reference profiles existed.
        ModelIntegrityError: A file does not match its recorded sha256.
    """
    registry = registries.Registry(registry_root, tracking_uri)
    by_registry = "@" in ref or "/" in ref.strip("/") and not Path(ref).is_dir() or ref in registry.names()
    if by_registry:
        entry, version = registry.resolve(ref)
        payload = registry.reference_profile(version)
        if payload is None:
            raise UsageError(f"usage error: {entry['name']}/{version['version']} was registered without a reference "
                             "profile (trained before mlops monitor existed); retrain and register it to monitor it")
        fitted = registries.load_model(f"{entry['name']}/{version['version']}", registry_root, tracking_uri)
        domain_bytes = registry.input_domain(version)
        run_dir = Path(version["run_dir"])
        name, number, run_id, threshold = entry["name"], int(version["version"]), version["run_id"], \
            version.get("threshold")
        label = f"{name}/{number}"
    else:
        row = runs.resolve(store, ref, runs.all_runs(store), succeeded=True)
        run_dir = Path(row["run_dir"])
        record = json.loads((run_dir / "run.json").read_text())
        declared = (record.get("model") or {}).get("reference_profile")
        if not declared:
            raise UsageError(f"usage error: run {row['id'][:8]} has no reference profile (trained before mlops "
                             "monitor existed); re-run it to monitor it")
        payload = _verified(run_dir / declared["path"], declared["sha256"])
        from engine.run.validate import candidate_model

        fitted, _ = candidate_model(run_dir)
        domain_entry = record["model"].get("input_domain")
        domain_bytes = _verified(run_dir / domain_entry["path"], domain_entry["sha256"]) if domain_entry else None
        name, number, run_id, threshold = record.get("name", "run"), None, record["id"], record["model"]["threshold"]
        label = f"run {run_id[:8]}"
    try:
        reference = monitoring.read(payload, f"the reference profile of {label}")
        domain = domains.read(domain_bytes, f"the input domain of {label}") if domain_bytes else None
    except ValueError as exc:
        raise registries.ModelIntegrityError(f"registry error: {exc}") from exc
    target = None
    try:
        import yaml

        resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
        target = resolved["features"]["target"]["name"]
    except (OSError, KeyError, TypeError):
        pass
    return Monitored(ref, name, number, run_id, run_dir, fitted, float(threshold if threshold is not None else 0.5),
                     reference, domain, target)


def _verified(path: Path, sha256: str) -> bytes:
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise registries.ModelIntegrityError(f"registry error: cannot read {path} ({exc.strerror})") from exc
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise registries.ModelIntegrityError(f"registry error: refusing {path}: its sha256 is not the one run.json "
                                             "recorded (the file was changed)")
    return payload


# ------------------------------------------------------------------ current data


def from_features(plan: Plan, root: Path, monitored: Monitored) -> monitoring.Current:
    """The population's features at ``plan``'s cut-off, its sources' quality, and the labels
    when the data reaches past the cut-off plus ``monitor.label_delay``."""
    data.prepare(plan.data, root)
    tables = data.load(plan.data, root)
    as_of = plan.settings.as_of
    checked = quality.run(plan.quality, quality.Context(tables, as_of))
    table = features.build(plan.features, tables, as_of, None)
    newest = max((t.frame[ts].max() for n, t in tables.items() if (ts := plan.data.sources[n].timestamp)
                  and ts in t.frame.columns and len(t.frame)), default=None)
    labelled = newest is not None and pd.Timestamp(newest) >= as_of + plan.monitor.label_delay
    frame = table.frame
    current = _scored(frame, monitored, f"the features at as_of {as_of.date()} ({len(frame)} rows)")
    current.quality = checked
    current.key_metrics = key_metrics(plan, monitored)
    current.economics = plan.business.economics
    current.keys = frame[table.key].astype(str).reset_index(drop=True)
    current.cutoffs = pd.Series([as_of] * len(frame), dtype="datetime64[ns]")
    if labelled and table.target in frame.columns:
        current.labels = frame[table.target].to_numpy().astype(int)
    return current


def key_metrics(plan: Plan, monitored: Monitored) -> Any:
    """Every stakeholder's metric at the model's threshold, the net value included (the
    business economics of the project's config)."""
    economics, threshold = plan.business.economics, monitored.threshold
    return lambda y, s: point_metrics(economics, y, s, threshold)


def join_labels(plan: Plan, root: Path, keys: pd.Series, cutoffs: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """The labels of logged rows, by key, at each row's own cut-off (point in time): a row
    scored by key carries the feature table's ``as_of``, a row sent by value its day.

    Only cut-offs whose labels are complete (the data reaches ``monitor.label_delay`` past
    them) are joined. Returns the labels, the mask of the rows they belong to, and a note.
    """
    mask = np.zeros(len(keys), dtype=bool)
    labels = np.zeros(len(keys), dtype=int)
    if not keys.notna().any():
        return labels[mask], mask, "no keys logged"
    try:  # the data as it is now (never regenerated here: monitoring reads, it does not write)
        tables = data.load(plan.data, root)
    except EngineError as exc:
        return labels[mask], mask, f"no labels: the project's data cannot be read ({str(exc).splitlines()[0]})"
    newest = max((pd.Timestamp(t.frame[ts].max()) for n, t in tables.items()
                  if (ts := plan.data.sources[n].timestamp) and ts in t.frame.columns and len(t.frame)), default=None)
    if newest is None:
        return labels[mask], mask, "the data has no event times"
    done = []
    for cutoff in sorted(cutoffs.dropna().unique()):
        cutoff = pd.Timestamp(cutoff)
        if cutoff + plan.monitor.label_delay > newest:
            continue
        table = features.build(plan.features, tables, cutoff, None)
        truth = pd.Series(table.frame[table.target].to_numpy().astype(int),
                          index=table.frame[table.key].astype(str).to_numpy())
        rows = (cutoffs == cutoff).to_numpy() & keys.isin(truth.index).to_numpy()
        labels[rows] = truth.reindex(keys[rows]).to_numpy()
        mask |= rows
        done.append(str(cutoff.date()))
    note = f"labels joined by key at cut-off(s) {', '.join(done)}" if done else \
        f"no cut-off of the logged rows has complete labels yet (data until {newest:%Y-%m-%d})"
    return labels[mask], mask, note


def from_file(path: Path, monitored: Monitored, plan: Plan | None = None) -> monitoring.Current:
    """Feature rows from a CSV or Parquet file (its label column, when present, gives labels;
    its key column, the features' entity, lets ``--labels`` join by key)."""
    if not path.is_file():
        raise UsageError(f"usage error: --current {path}: no such file; expected 'features', or a CSV or Parquet "
                         "file of feature rows")
    try:
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"data error at {path}: cannot read it as {'Parquet' if path.suffix == '.parquet' else 'CSV'}:"
                        f" {str(exc).splitlines()[0]}") from exc
    current = _scored(frame, monitored, f"{path} ({len(frame)} rows)")
    if monitored.target and monitored.target in frame.columns:
        current.labels = frame[monitored.target].to_numpy().astype(int)
    if plan is not None:
        current.key_metrics = key_metrics(plan, monitored)
        current.economics = plan.business.economics
        if plan.features.key in frame.columns:
            current.keys = _keys(frame[plan.features.key]).reset_index(drop=True)
    return current


def from_log(root: Path, monitored: Monitored, since: pd.Timedelta, plan: Plan | None = None,
             now: datetime | None = None, project_labels: bool = True) -> monitoring.Current:
    """The rows the model scored in the last ``since``, from the prediction log
    (``outputs/predictions/<name>/date=YYYY-MM-DD/``): their inputs, scores, decisions and
    domain flags as logged, their keys, cut-offs and times. With ``project_labels``, the
    labels of the project's own data are joined (:func:`join_labels`); without, a
    ``--labels`` source is joined afterwards (:func:`attach_labels`)."""
    now = now or datetime.now(timezone.utc)
    start = pd.Timestamp(now) - since
    folder = root / "outputs" / "predictions" / monitored.name
    parts = [p for p in sorted(folder.glob("date=*")) if p.name.removeprefix("date=") >= str(start.date())] \
        if folder.is_dir() else []
    files = [f for p in parts for f in sorted(p.glob("*.parquet")) if not f.name.startswith(".")]
    columns = monitored.reference["columns"]
    if not files:
        return monitoring.Current(pd.DataFrame(columns=list(columns)), source=f"the prediction log of "
                                  f"{monitored.name} since {start:%Y-%m-%d %H:%M} (no rows)")
    frame, inputs = read_log(files, start, monitored.version, list(columns))
    for column in columns:
        if column not in inputs.columns:
            inputs[column] = np.nan
    current = monitoring.Current(inputs.reset_index(drop=True), scores=frame["score"].to_numpy(dtype=float),
                                 decisions=frame["decision"].to_numpy(dtype=int),
                                 outside=~frame["in_domain"].to_numpy(dtype=bool),
                                 source=f"the prediction log of {monitored.name} since {start:%Y-%m-%d %H:%M} "
                                        f"({len(frame)} rows)")
    if len(frame):
        received = frame["received_at"].dt.tz_convert("UTC").dt.tz_localize(None) \
            if frame["received_at"].dt.tz is not None else frame["received_at"]
        current.times = received.to_numpy()
        current.keys = frame["key"].reset_index(drop=True)
        current.cutoffs = pd.to_datetime(frame["as_of"], errors="coerce").fillna(
            received.dt.normalize()).reset_index(drop=True)
    if plan is not None and len(frame):
        current.key_metrics = key_metrics(plan, monitored)
        current.economics = plan.business.economics
        if project_labels:
            labels, mask, note = join_labels(plan, root, current.keys, current.cutoffs)
            if mask.any():
                current.labels, current.labelled = labels, mask
            current.source += f"; {note}"
    return current


def read_log(files: list[Path], start: pd.Timestamp, version: int | None,
             columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prediction log's rows received since ``start`` (of ``version``, if given), and
    their inputs as columns.

    A file's ``inputs`` is a struct of its model version's input columns; files written
    before that hold a JSON text per row, read too. Files of versions with other inputs
    are joined by column name.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = ["received_at", "model_sha256", "model_version", "key", "as_of", "inputs", "score", "decision",
              "in_domain"]
    frames, inputs = [], []
    for path in files:
        table = pq.read_table(path, columns=wanted)
        frame = table.drop_columns(["inputs"]).to_pandas()
        keep = (frame["received_at"] >= start) & (version is None or frame["model_version"] == version)
        keep = keep.to_numpy(dtype=bool)
        if not keep.any():
            continue
        logged = table.column("inputs").combine_chunks().filter(pa.array(keep))
        if pa.types.is_struct(logged.type):
            inputs.append(pd.DataFrame({field.name: np.array(logged.field(i).to_numpy(zero_copy_only=False))
                                        for i, field in enumerate(logged.type)}))  # a copy: stages write in place
        else:  # a JSON text per row: the log's format before typed inputs
            inputs.append(pd.DataFrame.from_records([json.loads(text) for text in logged.to_pylist()]))
        frames.append(frame[keep])
    if not frames:
        return pd.DataFrame(columns=[c for c in wanted if c != "inputs"]), pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True), pd.concat(inputs, ignore_index=True)


# ------------------------------------------------------------------ --labels: labels from a source of their own

#: A label's type: 0/1 numbers or booleans.
_LABEL_EXPECTED = "0/1 or true/false"


def read_labels(source: str, plan: Plan, root: Path, monitored: Monitored) -> tuple[pd.DataFrame, str]:
    """The rows of a ``--labels`` source: a CSV or Parquet file, or a source of ``conf/data/``
    by name, with its key, label and (optional) time columns (``monitor.labels``).

    Returns:
        A frame of ``key`` (text), ``label`` (0/1) and ``time`` (naive UTC timestamps, or
        NaT without a time column), and what it was, for the report.

    Raises:
        UsageError: No such file or source.
        DataError: A file that cannot be read; a column missing or of the wrong type; a
            row without a key; one key twice without a time column. One line naming the
            file, the column, what was expected and what was found.
    """
    declared = plan.monitor.labels
    key = declared.key or plan.features.key
    label = declared.label or monitored.target or plan.features.target
    time = declared.time
    if source in plan.data.sources:
        import dataclasses

        where = f"--labels {source} (data.sources.{source})"
        frame = data.load(dataclasses.replace(plan.data, sources={source: plan.data.sources[source]}),
                          root)[source].frame
    else:
        path = Path(source)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise UsageError(f"usage error: --labels {source}: no such file or source; expected a CSV or Parquet "
                             f"file, or one of the sources of conf/data/: {', '.join(plan.data.sources)}")
        where = source
        kind = "Parquet" if path.suffix.lower() in (".parquet", ".pq") else "CSV"
        try:
            frame = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"data error at {where}: cannot read it as {kind}: {problem}") from exc
    wanted = {"key": (key, "monitor.labels.key"), "label": (label, "monitor.labels.label")}
    if time:
        wanted["time"] = (time, "monitor.labels.time")
    for role, (column, setting) in wanted.items():
        if column not in frame.columns:
            raise DataError(f"data error at {where}: no column {column!r} (the {role}, {setting}); expected the "
                            f"columns {', '.join(c for c, _ in wanted.values())}, got "
                            f"{', '.join(map(str, frame.columns[:12])) or 'none'}")
    keys = frame[key]
    if keys.isna().any():
        row = int(np.flatnonzero(keys.isna().to_numpy())[0])
        raise DataError(f"data error at {where}: column {key!r} (the key): expected a key in every row, got "
                        f"{int(keys.isna().sum())} missing (the first at row {row + 1})")
    labels = _label_values(frame[label], where, label)
    if time:
        times = _time_values(frame[time], where, time)
    else:
        times = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
        twice = _keys(keys)[_keys(keys).duplicated()]
        if len(twice):
            raise DataError(f"data error at {where}: column {key!r} (the key): expected one label per key without "
                            f"a time column (monitor.labels.time), got {twice.nunique()} key(s) more than once, "
                            f"e.g. {twice.iloc[0]!r}")
    out = pd.DataFrame({"key": _keys(keys).to_numpy(), "label": labels.to_numpy(), "time": times.to_numpy()})
    return out.dropna(subset=["label"]).reset_index(drop=True), f"{where} ({len(frame)} label rows)"


def _keys(values: pd.Series) -> pd.Series:
    """Keys as text, as the prediction log keeps them (integers without a trailing .0)."""
    if pd.api.types.is_float_dtype(values) and values.dropna().eq(values.dropna().round()).all():
        values = values.astype("Int64")
    return values.astype("string").astype(object)


def _label_values(values: pd.Series, where: str, column: str) -> pd.Series:
    """0/1 labels (missing: no label yet), or a DataError naming the column and what it holds."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float")
    if pd.api.types.is_numeric_dtype(values):
        bad = present[~present.isin([0, 1])]
        if not len(bad):
            return values.astype(float)
        got = f"{len(bad)} other value(s), e.g. {_plain(bad.iloc[0])!r}"
    else:
        text = present.astype(str).str.strip().str.lower()
        mapping = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0}
        bad = present[~text.isin(list(mapping))]
        if not len(bad):
            return values.astype(object).map(lambda v: mapping[str(v).strip().lower()] if pd.notna(v) else np.nan)
        got = f"text, e.g. {bad.iloc[0]!r}" if isinstance(bad.iloc[0], str) else \
            f"{type(bad.iloc[0]).__name__} values, e.g. {bad.iloc[0]!r}"
    raise DataError(f"data error at {where}: column {column!r} (the label): expected {_LABEL_EXPECTED}, got {got}")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _time_values(values: pd.Series, where: str, column: str) -> pd.Series:
    """Timestamps as naive UTC, or a DataError naming the column and the first that is not one."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataError(f"data error at {where}: column {column!r} (the label's time): expected dates or times "
                            f"such as 2026-11-30, got {values.dtype} numbers, e.g. {_plain(values.dropna().iloc[0])!r}"
                            if values.notna().any() else f"data error at {where}: column {column!r}: empty")
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = values[parsed.isna() & values.notna()]
        if len(bad):
            raise DataError(f"data error at {where}: column {column!r} (the label's time): expected dates or times "
                            f"such as 2026-11-30, got {bad.iloc[0]!r} (row {int(bad.index[0]) + 1})")
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def attach_labels(current: monitoring.Current, labels: pd.DataFrame, delay: pd.Timedelta, what: str) -> None:
    """Join ``--labels`` rows to the current rows by key, point in time: a row's label is
    the latest one of its key that became known after its cut-off and no later than the
    cut-off plus ``delay`` (``monitor.label_delay``). Labels without a time, or rows
    without a cut-off (a file), join by key alone.

    Raises:
        UsageError: The current rows have no keys to join on.
    """
    if current.keys is None or not current.keys.notna().any():
        raise UsageError(f"usage error: --labels {what}: the current rows have no keys to join labels on (a file "
                         "needs the features' key column; a prediction log, rows scored by key)")
    rows = pd.DataFrame({"row": np.arange(len(current.keys)), "key": current.keys.astype(object).to_numpy(),
                         "cutoff": current.cutoffs.to_numpy() if current.cutoffs is not None else pd.NaT})
    rows["cutoff"] = pd.to_datetime(rows["cutoff"])
    merged = rows.dropna(subset=["key"]).merge(labels, on="key", how="inner")
    timed = merged["time"].notna() & merged["cutoff"].notna()
    inside = ~timed | ((merged["time"] > merged["cutoff"]) & (merged["time"] <= merged["cutoff"] + delay))
    merged = merged[inside].sort_values(["row", "time"], na_position="first", kind="stable")
    chosen = merged.drop_duplicates("row", keep="last")
    mask = np.zeros(len(rows), dtype=bool)
    mask[chosen["row"].to_numpy()] = True
    by_row = pd.Series(chosen["label"].to_numpy(), index=chosen["row"].to_numpy()).sort_index()
    current.labels = by_row.to_numpy().astype(int) if mask.any() else None
    current.labelled = mask if mask.any() else None
    current.source += (f"; --labels {what}: {int(mask.sum())} of {len(rows)} row(s) labelled by key"
                       + (f", within {_days(delay)} after their cut-off" if labels["time"].notna().any() else ""))


def _days(delay: pd.Timedelta) -> str:
    return f"{delay.days}d" if delay == pd.Timedelta(days=delay.days) else str(delay)


def _scored(frame: pd.DataFrame, monitored: Monitored, source: str) -> monitoring.Current:
    columns = input_columns(monitored.fitted)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"data error: the current data lacks the model's input column(s) {', '.join(missing[:10])}"
                        f"{' ...' if len(missing) > 10 else ''}; expected the columns it was trained on")
    X = frame[columns].reset_index(drop=True)
    scores = model.predict_proba(monitored.fitted, X, threads=1) if len(X) else np.empty(0)
    outside = monitoring.outside_domain(X, monitored.domain) if monitored.domain else None
    return monitoring.Current(X, scores=scores, decisions=(scores >= monitored.threshold).astype(int),
                              outside=outside, source=source)


# ------------------------------------------------------------------ the monitor run


def run_dir_for(root: Path, name: str) -> Path:
    """A new monitor run's folder; microseconds keep two runs started in one second apart."""
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    return root / "outputs" / "monitor" / f"{stamp}-monitor-{name}"


def execute(plan: Plan, monitored: Monitored, current_spec: dict[str, Any], root: Path, store: tracking.RunStore,
            overrides: list[str], load: Any) -> tuple[RunRecord, monitoring.MonitorReport]:
    """One monitor run: load the current rows (``load()``), apply the rules, record it.

    Raises:
        MonitorGateError: A rule of severity error failed (after everything is recorded).
        EngineError: Bad input; the run is recorded as failed with the message.
    """
    run_dir = run_dir_for(root, monitored.name)
    record = RunRecord(run_dir, name=f"monitor-{monitored.name}", kind="monitor",
                       provenance=provenance.collect(root, overrides))
    record.update(monitor={"model": monitored.describe(), "current": current_spec})
    params = {"monitored": {"model": monitored.ref, "name": monitored.name, "version": monitored.version,
                            "run_id": monitored.run_id, **current_spec}}
    _index(store, record, params)
    record.start()
    try:
        with record.stage("current"):
            current = load()
            record.data["monitor"]["current"]["source"] = current.source
            record.data["monitor"]["current"]["rows"] = len(current.frame)
        with record.stage("rules") as stage:
            report = monitoring.run(plan.monitor, monitored.reference, current)
            stage.update(failed_errors=report.failed_errors, failed_warnings=report.failed_warnings)
        trend = earlier_runs(store, monitored.name, exclude=record.id)
        body = {"model": monitored.describe(), "current": record.data["monitor"]["current"],
                "reference": {"rows": monitored.reference.get("rows"), "run_id": monitored.run_id},
                "correction": plan.monitor.correction, **report.to_json(), "trend": trend}
        write_json(run_dir / MONITOR_FILE, body)
        from engine.report.monitor import write_monitor_report

        try:
            write_monitor_report(run_dir / REPORT_FILE, body, monitored.reference, current)
        except Exception as exc:  # noqa: BLE001 - the monitor's verdict is recorded either way
            log.warning("monitor report: not written (%s)", str(exc).splitlines()[0])
    except EngineError as exc:
        record.finish(exc.run_status, {"type": type(exc).__name__, "message": str(exc)})
        _index(store, record, params)
        raise
    except BaseException as exc:
        record.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                      {"type": type(exc).__name__, "message": str(exc)})
        _index(store, record, params)
        raise
    record.update(monitor={**record.data["monitor"], "passed": not report.failed_errors,
                           "failed_errors": report.failed_errors, "failed_warnings": report.failed_warnings,
                           "drifted_columns": report.drifted_columns},
                  metrics=summary_metrics(report))
    status = "failed_monitor" if report.failed_errors else "succeeded"
    record.finish(status, None if not report.failed_errors else {
        "type": "MonitorGateError", "message": failure_line(report)})
    _index(store, record, params, summary_metrics(report))
    return record, report


def failure_line(report: monitoring.MonitorReport) -> str:
    """The one line ``mlops monitor`` exits 6 with: the failed rules and the drifted columns."""
    failed = "; ".join(f"{r.rule.name} ({r.detail})" for r in report.results if r.failed and r.rule.severity == "error")
    return f"monitoring failed: {len(report.failed_errors)} rule(s) of severity error failed: {failed}"


def summary_metrics(report: monitoring.MonitorReport) -> dict[str, float]:
    """The numbers ``mlops runs`` shows for a monitor run."""
    out: dict[str, float] = {"monitor.failed_errors": float(len(report.failed_errors)),
                             "monitor.failed_warnings": float(len(report.failed_warnings)),
                             "monitor.drifted_columns": float(len(report.drifted_columns)),
                             "monitor.current_rows": float(report.current_rows)}
    for result in report.results:
        if isinstance(result.observed, int | float) and not isinstance(result.observed, bool):
            out[f"monitor.{result.rule.name}"] = float(result.observed)
    return out


def earlier_runs(store: tracking.RunStore, name: str, exclude: str, limit: int = 30) -> list[dict[str, Any]]:
    """The earlier monitor runs of the same model, oldest first: the report's trend.

    Found by run name (``monitor-NAME``); the counts come from each run's ``run.json``,
    so a store rebuilt by ``mlops runs reindex`` gives the same trend.
    """
    rows = [r for r in store.search(tag=("kind", "monitor")) if r["id"] != exclude
            and r.get("name") == f"monitor-{name}" and r.get("status") in ("succeeded", "failed_monitor")]
    trend = []
    for row in rows[-limit:]:
        try:
            outcome = json.loads((Path(row["run_dir"]) / "run.json").read_text()).get("monitor") or {}
        except (OSError, ValueError):
            continue
        trend.append({"run_id": row["id"], "started_at": row["started_at"], "status": row["status"],
                      "drifted_columns": len(outcome.get("drifted_columns") or []),
                      "failed_errors": len(outcome.get("failed_errors") or [])})
    return trend


def _index(store: tracking.RunStore, record: RunRecord, params: dict[str, Any],
           metrics: dict[str, float] | None = None) -> None:
    try:
        tracking.track(store, record.data, params, metrics)
    except (EngineError, OSError) as exc:
        log.warning("run store: could not index monitor run %s (%s)", record.id[:8], str(exc).splitlines()[0])


def gate(report: monitoring.MonitorReport) -> None:
    """Raise :class:`MonitorGateError` when a rule of severity error failed."""
    if report.failed_errors:
        raise MonitorGateError(failure_line(report))
