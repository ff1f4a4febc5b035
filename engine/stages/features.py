"""Feature engineering from ``conf/features/``: one row per entity, as of a cut-off.

The feature table is built in four declarative steps, each a key of the group:

1. ``entity`` and ``population``: the spine, one row per entity of the entity source,
   filtered by a parsed expression (e.g. still a customer at ``as_of``).
2. ``attributes``: columns joined onto the spine by the entity key (``crm.segment``).
3. ``groups``: aggregations of event sources per entity, over events strictly before
   ``as_of`` and optionally within a window (``30d``).
4. ``derived``: expressions over all of the above (``total_expenditure / n_orders``),
   evaluated in dependency order.

and the ``target``, an expression over the spine. Expressions are parsed by
:mod:`engine.config.expr`, never ``eval``-ed.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.config import expr
from engine.config.features import AGGREGATIONS, Attribute, FeatureGroup, FeatureSpec
from engine.errors import ConfigError, DataError
from engine.stages.data import Table, align_time, fingerprint
from engine.store import featurestore
from engine.store.featurestore import FeatureStore

log = logging.getLogger(__name__)

#: The version of the feature code: part of every store key, so a change to how
#: features are computed never reuses tables built by the old code.
FEATURE_CODE_VERSION = "1"

@dataclass(frozen=True)
class FeatureTable:
    """The built features: ``frame`` holds the key, every feature and the target."""

    frame: pd.DataFrame
    key: str
    features: tuple[str, ...]
    target: str
    #: One record per feature group table: group, key, status (built or reused), rows.
    tables: tuple[dict[str, Any], ...] = ()
    #: The spec it was built from, its selectors expanded (lineage reads every column).
    spec: FeatureSpec | None = None

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - scikit-learn's name
        return self.frame.loc[:, list(self.features)]

    @property
    def y(self) -> pd.Series:
        return self.frame[self.target]


def build(spec: FeatureSpec, tables: Mapping[str, Table], as_of: pd.Timestamp,
          store: FeatureStore | None = None, *, defer_writes: bool = False) -> FeatureTable:
    """Build the feature table.

    New tables are written to the store by its writer thread while the build goes on.

    Args:
        spec: The parsed ``features`` group (``plan.features``).
        tables: Loaded sources by name.
        as_of: The cut-off: only events strictly before it are used.
        store: Where aggregation tables are reused from and saved to; None computes
            everything.
        defer_writes: Return while the store may still be writing; the caller then
            calls ``store.flush()`` before it records the run (a failed write raises
            there). False waits for the writes here.

    Raises:
        ConfigError: A name refers to an unknown source or column.
        DataError: The entity source has duplicate keys.
    """
    if store is None or defer_writes:
        return _build_stored(spec, tables, as_of, store)
    try:
        table = _build_stored(spec, tables, as_of, store)
    except BaseException:
        with contextlib.suppress(Exception):  # the build's own error is the one to report
            store.flush()
        raise
    store.flush()
    return table


def _build_stored(spec: FeatureSpec, tables: Mapping[str, Table], as_of: pd.Timestamp,
                  store: FeatureStore | None) -> FeatureTable:
    # Selectors take their columns from the data as read; the store key hashes the
    # declaration and the sources' fingerprints (which cover the column names).
    spec = spec.select({name: list(table.frame.columns) for name, table in tables.items()})
    full_key = _features_key(spec, tables, as_of)
    # The definitions alone (no data, no as_of): the same for every materialization of
    # these features, so a server finds the latest one its model can read (serving by key).
    definition = definition_hash(spec)
    cached = store.get(full_key) if store is not None else None
    if cached is not None:
        manifest = store.manifest(full_key) or {}  # type: ignore[union-attr]
        records = [{**r, "status": "reused"} for r in manifest.get("groups", [])]
        records.append({"table": "features", "key": full_key, "status": "reused", "rows": len(cached),
                        "definition_hash": definition})
        log.info("feature table features reused (key %s, %d rows): no feature was computed", full_key[:12],
                 len(cached))
        _require_values(cached, spec)
        return FeatureTable(cached, spec.key, spec.used, spec.target, tuple(records), spec)
    table = _build(spec, tables, as_of, store)
    _require_values(table.frame, spec)
    if store is not None:
        store.put_later(full_key, table.frame, {"name": "features", "kind": "features",
                                                "groups": list(table.tables), "as_of": as_of.isoformat(),
                                                "code": FEATURE_CODE_VERSION, "definition_hash": definition})
    record = {"table": "features", "key": full_key, "status": "built", "rows": len(table.frame),
              "definition_hash": definition}
    log.info("feature table features built (key %s, %d rows)", full_key[:12], len(table.frame))
    return FeatureTable(table.frame, table.key, spec.used, table.target, (*table.tables, record), spec)


def _require_values(frame: pd.DataFrame, spec: FeatureSpec) -> None:
    """Every feature the model uses has a value on at least one row.

    A feature missing on every row carries nothing to learn from, and the model's
    imputer would drop it without a word: most often a definition that cannot work on
    this data (a division by a column that is always zero, a ttl shorter than any
    update), so the run says which one instead of training without it.

    Raises:
        DataError: A used feature is missing on every row.
    """
    if frame.empty:
        return
    for name in spec.used:
        if frame[name].isna().all():
            derived = spec.derived.get(name)
            path, what = (f"features.derived.{name}", f" ({derived!r})") if derived is not None else (
                _declared_at(spec, name), "")
            raise DataError(f"data error at {path}: feature {name!r}{what} is missing on all {len(frame)} rows; "
                            "expected a value on at least one row: fix its definition, or leave it out with "
                            "features.use")


def _declared_at(spec: FeatureSpec, name: str) -> str:
    """The config path of an attribute or aggregation feature."""
    if name in spec.attributes:
        selector = spec.attributes[name].selector
        return f"features.attributes.{selector}.exclude" if selector else f"features.attributes.{name}"
    for group_name, group in spec.groups.items():
        if name in group.aggregations:
            return f"features.groups.{group_name}.aggregations.{name}"
    return f"features.{name}"


def definition_hash(spec: FeatureSpec) -> str:
    """A hash of the feature table's definitions, as in its store key, without data or as_of."""
    definition = {k: v for k, v in spec.declared.items() if k not in ("store", "description", "use")}
    return featurestore.digest({"kind": "features", "definition": definition, "code": FEATURE_CODE_VERSION})


def _features_key(spec: FeatureSpec, tables: Mapping[str, Table], as_of: pd.Timestamp) -> str:
    """The store key of the whole feature table: every definition and every input's fingerprint."""
    definition = {k: v for k, v in spec.declared.items() if k not in ("store", "description", "use")}
    used = {spec.entity_source}
    used |= {attribute.source for attribute in spec.attributes.values()}
    used |= {group.source for group in spec.groups.values()}
    fingerprints = {name: [tables[name].fingerprint, tables[name].source.key, tables[name].source.timestamp]
                    for name in sorted(used) if name in tables}
    return featurestore.digest({"kind": "features", "definition": definition, "fingerprints": fingerprints,
                                "as_of": as_of.isoformat(), "code": FEATURE_CODE_VERSION})


def _build(spec: FeatureSpec, tables: Mapping[str, Table], as_of: pd.Timestamp,
           store: FeatureStore | None) -> FeatureTable:
    exprs = spec.expressions
    key, spine_name, label_time = spec.key, spec.entity_source, spec.label_time
    spine = _table(tables, spine_name, "features.entity.source").frame
    _require_column(spine, key, "features.entity.key", spine_name)
    if label_time:
        _require_column(spine, label_time, "features.entity.label_time", spine_name)
        if not pd.api.types.is_datetime64_any_dtype(spine[label_time]):
            raise DataError(f"data error at features.entity.label_time: {spine_name}.{label_time} must hold "
                            f"datetimes, got {spine[label_time].dtype} (parse it with load_args)")
    if spine.empty:
        raise DataError(f"data error at data.sources.{spine_name}: the entity source is empty; "
                        "expected one row per entity")
    unique_on = [key, label_time] if label_time else [key]
    duplicated = spine.duplicated(subset=unique_on).to_numpy()
    if duplicated.any():
        source = tables[spine_name].source
        positions = np.flatnonzero(duplicated)
        shown = ", ".join(f"{_plain(spine[key].iloc[p])!r} ({source.rows([p])})" for p in positions[:5])
        raise DataError(
            f"data error at data.sources.{spine_name} ({source.location()}): {' and '.join(map(repr, unique_on))} "
            f"must identify a row, got {len(positions)} duplicate row{'s' if len(positions) > 1 else ''} that "
            f"repeat{'' if len(positions) > 1 else 's'} an earlier row's key: {shown}"
        )
    env_scalars: dict[str, Any] = {"as_of": as_of, "cutoff": as_of}
    # Each row's own cut-off: its label time when earlier than as_of, else as_of.
    if label_time:
        limit = align_time(as_of, spine[label_time])
        env_scalars["cutoff"] = spine[label_time].where(spine[label_time] < limit, limit)

    if "features.population" in exprs:
        keep = _as_mask(_evaluate(exprs["features.population"], spine, env_scalars, "features.population"),
                        spine.index)
        spine = spine.loc[keep]
        if label_time:
            env_scalars["cutoff"] = env_scalars["cutoff"].loc[keep]
        if spine.empty:
            raise DataError(f"data error at features.population: no {spine_name} row passes "
                            f"{spec.population!r} at as_of {as_of}; expected at least one")
    spine = spine.reset_index(drop=True)
    cutoffs: pd.Series | None = None
    if label_time:
        cutoffs = env_scalars["cutoff"] = env_scalars["cutoff"].reset_index(drop=True)
    columns: dict[str, pd.Series] = {}

    for name, attribute in spec.attributes.items():
        columns[name] = _attribute(name, attribute, spine, key, spine_name, tables,
                                   cutoffs if cutoffs is not None else as_of)

    keys = spine[key]
    stored: list[dict[str, Any]] = []
    for group_name, group in spec.groups.items():
        path = f"features.groups.{group_name}"
        events_table = _table(tables, group.source, f"{path}.source")
        group_columns, record = _aggregate(path, group, events_table, key, keys, as_of, store, cutoffs)
        columns.update(group_columns)
        stored.append(record)
        log.info("feature table %s %s (key %s, %d rows)", group_name, record["status"], record["key"][:12],
                 record["rows"])

    # Features shadow spine columns of the same name (a feature `plan` from crm wins).
    frame = pd.concat([spine.drop(columns=[c for c in columns if c in spine.columns]),
                       pd.DataFrame(columns, index=spine.index)], axis=1)
    for name in spec.derived_order:
        path = f"features.derived.{name}"
        values = _evaluate(exprs[path], frame, env_scalars, path)
        if pd.api.types.is_float_dtype(values):
            values = values.replace([np.inf, -np.inf], np.nan)  # log(0), x / tiny: missing, not inf
        elif values.dtype == object:
            # where(x, plan, 3) mixes text and numbers: a category, stored and encoded as text
            values = values.astype(str).where(values.notna(), None)
        frame[name] = values

    target_name = spec.target
    target = _evaluate(exprs["features.target.expr"], frame, env_scalars, "features.target.expr")
    _require_labels(spec, frame, exprs["features.target.expr"])
    frame[target_name] = _as_mask(target, frame.index).astype("int64")

    feature_names = spec.features
    out = frame.loc[:, [key, *feature_names, target_name]].copy()
    log.info(
        "features: %d rows x %d features, target %s rate %.4f",
        len(out), len(feature_names), target_name, out[target_name].mean() if len(out) else float("nan"),
    )
    return FeatureTable(out, key, feature_names, target_name, tuple(stored))


def _require_labels(spec: FeatureSpec, frame: pd.DataFrame, node: expr.Node) -> None:
    """Every row of the population has a label: a missing one is refused, never the negative class.

    A row's label is missing when a column the target reads is missing on it, except a
    datetime column (a missing event time means the event has not happened: a customer
    who never cancelled) and a column the expression handles itself (``x is null``,
    ``fillna(x, 0)``). Rows the population leaves out are not checked, which is the way
    to train on the labelled rows only: ``population: churn is not null``.

    Raises:
        DataError: Rows of the population whose label is missing, with their count.
    """
    handled = expr.null_handled(node)
    read = sorted(n for n in expr.names(node) - handled if n in frame.columns
                  and not pd.api.types.is_datetime64_any_dtype(frame[n]))
    if not read or frame.empty:
        return
    missing = frame[read].isna().any(axis=1).to_numpy()
    if not missing.any():
        return
    count = int(missing.sum())
    columns = " or ".join(repr(c) for c in read if frame[c].isna().any())
    keys = ", ".join(repr(_plain(k)) for k in frame[spec.key].to_numpy()[missing][:5])
    raise DataError(
        f"data error at features.target.expr: the target {spec.target!r} ({spec.target_expr!r}) reads {columns}, "
        f"missing on {count} of the {len(frame)} rows of the population ({spec.key} {keys}"
        f"{', ...' if count > 5 else ''}); expected a label on every row: leave them out with features.population "
        f"(e.g. '{read[0]} is not null'), or say what a missing value means with fillna({read[0]}, ...)")


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python value, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _table(tables: Mapping[str, Table], name: str, path: str) -> Table:
    if name not in tables:
        raise ConfigError(path, f"unknown source {name!r}; expected one of: {', '.join(tables)}")
    return tables[name]


def _require_column(frame: pd.DataFrame, column: str, path: str, source: str) -> None:
    if column not in frame.columns:
        raise ConfigError(path, f"source {source!r} has no column {column!r}{_suggest(column, frame.columns)}")


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=3)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _attribute(name: str, attribute: Attribute, spine: pd.DataFrame, key: str, spine_name: str,
               tables: Mapping[str, Table], cutoff: pd.Timestamp | pd.Series) -> pd.Series:
    """One column joined onto the spine by the entity key.

    From a source with a timestamp (values that change over time) it is a backward
    as-of join: the last value strictly before each row's cut-off, and none older than
    ``ttl`` when one is given. From a source without one, a plain join.
    """
    path = f"features.attributes.{name}"
    source, column = attribute.source, attribute.column
    table = _table(tables, source, path)
    _require_column(table.frame, column, path, source)
    if source == spine_name:
        return spine[column]
    other = table.frame
    _require_column(other, key, path, source)
    _same_key_type(spine[key], other[key], spine_name, source, path)
    ts = table.source.timestamp
    if ts is not None:
        return _as_of_join(spine[key], other[[key, ts, column]], key, ts, column, cutoff, attribute.ttl)
    duplicated = other[key].duplicated(keep="last")
    if duplicated.any():
        log.warning("%s: %d rows of %s share a %s with another row; the last one is used",
                    path, int(duplicated.sum()), source, key)
        other = other.loc[~duplicated]
    return spine[key].map(other.set_index(key)[column])


def _as_of_join(keys: pd.Series, history: pd.DataFrame, key: str, ts: str, column: str,
                cutoff: pd.Timestamp | pd.Series, ttl: pd.Timedelta | None) -> pd.Series:
    """Backward as-of join: per row, the newest ``column`` value strictly before its cut-off."""
    times = history[ts]
    if isinstance(cutoff, pd.Series):
        row_cutoff = _to_tz_of(cutoff, times)
    else:
        row_cutoff = pd.Series(align_time(cutoff, times), index=keys.index)
    left = pd.DataFrame({"_row": np.arange(len(keys)), key: keys.to_numpy(),
                         "_cutoff": row_cutoff.to_numpy()}).astype({"_cutoff": times.dtype})
    right = history.dropna(subset=[ts]).sort_values(ts, kind="stable")
    merged = pd.merge_asof(left.sort_values("_cutoff", kind="stable"), right, left_on="_cutoff", right_on=ts,
                           by=key, direction="backward", allow_exact_matches=False, tolerance=ttl)
    values = merged.set_index("_row")[column].reindex(np.arange(len(keys)))
    return pd.Series(values.to_numpy(), index=keys.index, name=column)


def _same_key_type(spine_key: pd.Series, other_key: pd.Series, spine_name: str, other: str, path: str) -> None:
    """Keys of different kinds never match: say so instead of joining nothing."""
    kinds = []
    for series in (spine_key, other_key):
        dtype = series.dtype
        kinds.append("number" if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
                     else "datetime" if pd.api.types.is_datetime64_any_dtype(dtype) else "text")
    if kinds[0] != kinds[1]:
        raise DataError(f"data error at {path}: key {spine_key.name!r} is {kinds[0]} ({spine_key.dtype}) in "
                        f"{spine_name} but {kinds[1]} ({other_key.dtype}) in {other}; expected the same kind")


def _aggregate(path: str, group: FeatureGroup, table: Table, key: str, keys: pd.Series,
               as_of: pd.Timestamp, store: FeatureStore | None,
               cutoffs: pd.Series | None = None) -> tuple[dict[str, pd.Series], dict[str, Any]]:
    """One group's aggregations aligned to the entities, from the store when it has them.

    With one cut-off for all (``as_of``), the stored table has one row per entity with
    events and serves any population. With per-row cut-offs (label times), it has one
    row per spine row, and its key includes the spine's keys and cut-offs.

    Returns:
        The feature columns (index of ``keys``) and what the run records about the table.
    """
    events = table.frame
    ts = table.source.timestamp
    if ts is None:
        raise ConfigError(f"{path}.source", f"source {table.name!r} declares no timestamp; "
                          "aggregations need an event-time column")
    _require_column(events, key, f"{path}.source", table.name)
    for name, spec in group.aggregations.items():
        agg, column = spec.agg, spec.column
        if AGGREGATIONS[agg].needs_column:
            agg_path = f"{path}.aggregations.{name}"
            if column is None:
                raise ConfigError(agg_path, f"aggregation {agg!r} needs a column")
            _require_column(events, column, f"{agg_path}.column", table.name)
            if AGGREGATIONS[agg].numeric and not _is_number(events[column]):
                raise DataError(f"data error at {agg_path}: {agg} needs numbers, but {table.name}.{column} holds "
                                f"{events[column].dtype} values such as {events[column].dropna().head(3).tolist()}")
    _same_key_type(keys, events[key], "the entity source", table.name, f"{path}.source")
    cutoff = align_time(as_of, events[ts])

    definition = group.definition
    row_cutoffs = None
    spine_fingerprint = None
    if cutoffs is not None:
        row_cutoffs = _to_tz_of(cutoffs, events[ts])
        spine_fingerprint = fingerprint(pd.DataFrame({key: keys.to_numpy(), "cutoff": row_cutoffs.to_numpy()}))
    table_key = featurestore.digest({
        "kind": "aggregations", "definition": definition, "entity_key": key, "timestamp": ts,
        "source_fingerprint": table.fingerprint, "as_of": cutoff.isoformat(), "code": FEATURE_CODE_VERSION,
        "rows": spine_fingerprint,
    })
    record = {"group": path.rsplit(".", 1)[1], "key": table_key, "definition_hash": featurestore.digest(definition),
              "version": group.version}
    per_key = store.get(table_key) if store is not None else None
    if per_key is None:
        per_key = (_group_table(group, events, key, ts, cutoff) if row_cutoffs is None
                   else _group_table_per_row(group, events, key, ts, keys, row_cutoffs))
        if store is not None:
            store.put_later(table_key, per_key, {"name": record["group"], "kind": "aggregations", **record,
                                                 "definition": definition, "source": table.name,
                                                 "source_fingerprint": table.fingerprint,
                                                 "as_of": cutoff.isoformat(), "code": FEATURE_CODE_VERSION})
        record["status"] = "built"
    else:
        record["status"] = "reused"
    record["rows"] = len(per_key)

    aligned = (per_key.set_index(key).reindex(pd.Index(keys)) if row_cutoffs is None
               else per_key.set_index(ROW).reindex(np.arange(len(keys))))
    out: dict[str, pd.Series] = {}
    for name, spec in group.aggregations.items():
        values = aligned[name]
        fill = AGGREGATIONS[spec.agg].fill
        if fill is not None:
            values = values.fillna(fill)
        if spec.agg != "last":
            values = values.astype("float64")
        out[name] = pd.Series(values.to_numpy(), index=keys.index, name=name)
    return out, record


def _group_table(group: FeatureGroup, events: pd.DataFrame, key: str, ts: str,
                 cutoff: pd.Timestamp) -> pd.DataFrame:
    """The group's aggregations for every entity with events before the cut-off.

    Entities without events are left out (they get each aggregation's fill value when
    aligned), so the table does not depend on which entities a project scores.
    """
    columns = [spec.column or ts for spec in group.aggregations.values()]
    before = events.loc[events[ts] < cutoff, list(dict.fromkeys([key, ts, *columns]))]
    return _reduce(group, before, key, ts, cutoff, lambda index: cutoff)


ROW = "_row"


def _group_table_per_row(group: FeatureGroup, events: pd.DataFrame, key: str, ts: str,
                         keys: pd.Series, cutoffs: pd.Series) -> pd.DataFrame:
    """The group's aggregations for each spine row, over events strictly before that
    row's own cut-off (a point-in-time join: no event after a row's label time counts)."""
    columns = [spec.column or ts for spec in group.aggregations.values()]
    rows = pd.DataFrame({ROW: np.arange(len(keys)), key: keys.to_numpy(), "_cutoff": cutoffs.to_numpy()})
    joined = rows.merge(events[list(dict.fromkeys([key, ts, *columns]))], on=key, how="inner")
    joined = joined.loc[joined[ts] < joined["_cutoff"]]
    row_cutoff = rows.set_index(ROW)["_cutoff"]
    return _reduce(group, joined, ROW, ts, joined["_cutoff"], lambda index: row_cutoff.reindex(index))


def _reduce(group: FeatureGroup, rows: pd.DataFrame, by: str, ts: str, limit: Any,
            cutoff_of: Callable[[pd.Index], Any]) -> pd.DataFrame:
    """Aggregate event rows (already before their cut-off) per ``by``: one groupby per window.

    Args:
        limit: The cut-off the windows count back from: one time, or one per event row.
        cutoff_of: Given the groups' index, their cut-offs (for days since an event).
    """
    by_window: dict[pd.Timedelta | None, dict[str, tuple[str, str]]] = {}
    for name, spec in group.aggregations.items():
        by_window.setdefault(spec.window, {})[name] = (spec.agg, spec.column or ts)
    parts = []
    for span, aggs in by_window.items():
        part = rows if span is None else rows.loc[rows[ts] >= limit - span]
        if any(agg == "last" for agg, _ in aggs.values()):
            part = part.sort_values(ts, kind="stable")
        named = {name: (column, AGGREGATIONS[agg].pandas) for name, (agg, column) in aggs.items()}
        result = part.groupby(by, sort=True).agg(**named)
        for name, (agg, _) in aggs.items():
            if agg in ("days_since_last", "days_since_first"):
                result[name] = (cutoff_of(result.index) - result[name]).dt.total_seconds() / 86400.0
        parts.append(result)
    combined = pd.concat(parts, axis=1, join="outer").sort_index()
    combined.index.name = by
    return combined.loc[:, list(group.aggregations)].reset_index()


def _to_tz_of(values: pd.Series, like: pd.Series) -> pd.Series:
    """Datetimes made comparable with ``like``: naive means UTC."""
    tz = getattr(like.dtype, "tz", None)
    if getattr(values.dtype, "tz", None) is None:
        values = values.dt.tz_localize("UTC") if tz is not None else values
    else:
        values = values.dt.tz_convert(tz) if tz is not None else values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype(like.dtype)


def _evaluate(node: expr.Node, frame: pd.DataFrame, scalars: Mapping[str, Any], path: str) -> Any:
    read = expr.names(node)
    unknown = sorted(read - set(map(str, frame.columns)) - set(scalars))
    if unknown:
        raise ConfigError(
            path, f"unknown column {unknown[0]!r}{_suggest(unknown[0], [*frame.columns, *scalars])}"
        )
    env: dict[str, Any] = {name: frame[name] for name in read if name in frame.columns}
    env.update(scalars)
    for column in (env[n] for n in read if n in frame.columns):
        if pd.api.types.is_datetime64_any_dtype(column):  # compare like with like
            env["as_of"] = align_time(scalars["as_of"], column)
            cutoff = scalars.get("cutoff")
            env["cutoff"] = _to_tz_of(cutoff, column) if isinstance(cutoff, pd.Series) else env["as_of"]
    try:
        result = expr.evaluate(node, env)
    except expr.ExpressionError as exc:
        kinds = ", ".join(f"{n} ({frame[n].dtype})" for n in sorted(read) if n in frame.columns)
        raise DataError(f"data error at {path}: {exc}" + (f"; the columns it reads: {kinds}" if kinds else "")) \
            from exc
    if not isinstance(result, pd.Series):
        result = pd.Series(np.broadcast_to(result, len(frame)), index=frame.index)
    return result


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _as_mask(values: Any, index: pd.Index) -> pd.Series:
    series = values if isinstance(values, pd.Series) else pd.Series(values, index=index)
    return series.fillna(False).astype(bool)
