"""The training domain of a model's input: what serving and monitoring compare rows with.

Saved beside the model as ``model/input_domain.json`` (its sha256 recorded in run.json
and in the registry, so it is verified like the model): for every column the Pipeline
takes, its type, whether it may be missing, the categories seen or the numeric range,
and the share of missing values, measured on the training rows.

:func:`flags` compares new rows with it, vectorised: a value outside the training
range, a category never seen, a value missing where training had none. Flagged rows
are still scored; the flags say how far to trust the score.

It also keeps the training config's quality rules that judge one input row alone
(:func:`row_rules`): a rule of a row-level check on a source column that a model input
is as it is (``plan: customers.plan``). Serving applies them to each request's rows
(:func:`rule_violations`): the same declarations that gate training check a request.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.config import expr
from engine.config import quality as quality_rules
from engine.errors import ConfigError, DataError
from engine.files import atomic_path
from engine.stages import data, quality

DOMAIN_FILE = "input_domain.json"
#: The format of the file; a reader refuses a newer one instead of misreading it.
FORMAT = 1
#: Categories kept per column. A column with more distinct values (an id, free text) is
#: recorded without its categories, and its values are never flagged as unseen.
MAX_CATEGORIES = 1000
#: The flags :func:`flags` gives, and what each means.
FLAGS = {
    "below_range": "a number below the smallest value seen in training",
    "above_range": "a number above the largest value seen in training",
    "unseen_category": "a category never seen in training",
    "missing": "missing, where no training row was",
}


#: A source column type (:func:`engine.stages.data.type_of`) as a request type; any other
#: (text, category, datetime) is a category for the Pipeline, so a string.
_REQUEST_TYPES = {"bool": "boolean", "int": "integer", "float": "number"}


def type_of(series: pd.Series) -> str:
    """The request type of a column: ``boolean``, ``integer``, ``number`` or ``string``
    (the JSON names of :func:`engine.stages.data.type_of`'s types)."""
    return _REQUEST_TYPES.get(data.type_of(series.dtype), "string")


def profile(X: pd.DataFrame, key: pd.Series | None = None,
            rules: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The domain of the training inputs ``X`` (the Pipeline's columns, in its order).

    Args:
        X: The training features.
        key: The entity key of the training rows (its name and type are recorded, so a
            server can take rows given by key).
        rules: The quality rules that judge one row (:func:`row_rules`).

    Returns:
        ``columns``: name -> ``type``, ``missing_share``, and ``min``/``max`` (numbers) or
        ``categories`` (strings and booleans; null beyond :data:`MAX_CATEGORIES`);
        ``rows``, ``key``, ``format``; ``rules`` when there are any.
    """
    columns: dict[str, Any] = {}
    for name in X.columns:
        series = X[name]
        kind = type_of(series)
        present = series.dropna()
        entry: dict[str, Any] = {"type": kind, "missing_share": round(float(series.isna().mean()), 6)
                                 if len(series) else 0.0}
        if kind in ("integer", "number"):
            values = pd.to_numeric(present, errors="coerce").astype(float)
            values = values[np.isfinite(values)]
            entry["min"] = _number(values.min()) if len(values) else None
            entry["max"] = _number(values.max()) if len(values) else None
        else:
            seen = sorted({_category(v) for v in present})
            entry["categories"] = seen if len(seen) <= MAX_CATEGORIES else None
            entry["distinct"] = len(seen)
        columns[str(name)] = entry
    key_entry = None
    if key is not None:
        key_entry = {"name": str(key.name), "type": type_of(key)}
    out = {"format": FORMAT, "rows": len(X), "key": key_entry, "columns": columns}
    if rules:  # absent, not empty, without any: files of models without rules stay as they were
        out["rules"] = [dict(rule) for rule in rules]
    return out


def row_rules(spec: quality_rules.QualitySpec, passthrough: Mapping[str, tuple[str, str]],
              inputs: Sequence[str]) -> list[dict[str, Any]]:
    """The quality rules a single input row can be judged by, as ``input_domain.json`` keeps them.

    A rule qualifies when its check judges each row alone (:data:`engine.stages.quality.ROW_CHECKS`:
    not_null, between, in_set, not_in_set, regex, length, compare) and every column it reads,
    its filter's included, is a model input that is that source column as it is.

    Args:
        spec: The training config's quality rules.
        passthrough: Feature -> (source, column), for features that are a source column as
            it is (:meth:`engine.config.features.FeatureSpec.passthrough`).
        inputs: The model's input columns.

    Returns:
        One entry per rule: ``rule`` (its declaration, the YAML keys) and ``inputs``
        (source column -> the input column that carries it).
    """
    out: list[dict[str, Any]] = []
    for rule in spec.rules.values():
        source = getattr(rule, "source", None)
        if rule.check not in quality.ROW_CHECKS or source is None:
            continue
        carriers = {column: feature for feature, (src, column) in reversed(list(passthrough.items()))
                    if src == source and feature in inputs}
        reads = {column for _, _, column in rule.reads() if column is not None}
        if rule.filter_node is not None:
            reads |= expr.names(rule.filter_node) - {"as_of"}
        if not reads or not reads <= set(carriers):
            continue
        declaration = {f.name: getattr(rule, f.name) for f in fields(rule) if f.name != "name"}
        out.append({"name": rule.name, "rule": {"check": rule.check, **declaration},
                    "inputs": {column: carriers[column] for column in sorted(reads)}})
    return out


@dataclass(frozen=True)
class RowRule:
    """A quality rule as serving applies it: the rule, and source column -> input column."""

    rule: quality_rules.Rule
    inputs: Mapping[str, str]


def read_rules(domain: Mapping[str, Any], where: str) -> list[RowRule]:
    """The row rules of a read domain, parsed as the training config's rules are.

    Raises:
        ValueError: An entry is not a rule this engine reads, or names an input the
            domain does not have (the message names ``where``).
    """
    out = []
    for i, entry in enumerate(domain.get("rules") or []):
        try:
            name, declaration, inputs = entry["name"], dict(entry["rule"]), dict(entry["inputs"])
            (rule,) = quality_rules.parse_rules({"rules": {name: declaration}}).values()
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ValueError(f"{where} at rules.{i}: expected a quality rule with its inputs ({exc})") from exc
        unknown = sorted(set(inputs.values()) - set(domain["columns"]))
        if rule.check not in quality.ROW_CHECKS or unknown:
            raise ValueError(f"{where} at rules.{i}: rule {name!r} ({rule.check}) does not judge single rows of "
                             f"this model's inputs{f' (unknown input {unknown[0]!r})' if unknown else ''}")
        out.append(RowRule(rule, inputs))
    return out


def rule_violations(frame: pd.DataFrame, rules: Sequence[RowRule],
                    as_of: pd.Timestamp | None = None) -> list[Sequence[dict[str, Any]]]:
    """Per row of ``frame`` (the model's inputs), the row rules it breaks (empty: none, a
    shared empty tuple as in :func:`flags`).

    Each is ``{"column", "flag": "rule", "rule", "check", "severity", "value", "expected"}``,
    ``column`` the input column the rule reads first.

    Args:
        as_of: What ``as_of`` means in a rule's expressions; default now (UTC, naive).
    """
    out: list[Sequence[dict[str, Any]]] = [()] * len(frame)
    if not rules or not len(frame):
        return out
    when = as_of if as_of is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    for row_rule in rules:
        rule = row_rule.rule
        # Each column keeps its dtype (text the checks typed stays objects, not converted
        # to pandas' str dtype again): the row checks judge both alike.
        renamed = pd.DataFrame({column: _as_series(frame[feature].to_numpy())
                                for column, feature in row_rule.inputs.items()}, copy=False)
        try:
            bad = quality.failing_rows(rule, renamed, when)
        except (ConfigError, DataError, TypeError, ValueError):
            # values the rule cannot compare (text where it expects numbers): the input
            # checks typed every column, so this is the rule's own kind of failure
            bad = np.ones(len(frame), dtype=bool)
        if not bad.any():
            continue
        column, feature = next(iter(_read_order(rule, row_rule.inputs)))
        values = renamed[column].tolist()
        for i in np.flatnonzero(bad):
            _flag(out, i, {"column": feature, "flag": "rule", "rule": rule.name, "check": rule.check,
                           "severity": rule.severity, "value": _plain_value(values[i]), "expected": expected(rule)})
    return out


def _as_series(values: np.ndarray) -> pd.Series:
    return pd.Series(values, dtype=values.dtype, copy=False)


def expected(rule: quality_rules.Rule) -> str:
    """What a row rule asks of a value, for a flag or an error line."""
    if isinstance(rule, quality_rules.NotNull):
        return "a value (not missing)"
    if isinstance(rule, quality_rules.Between):
        low, high = ("(", ")") if rule.strict else ("[", "]")
        return f"a value in {low}{'-inf' if rule.min is None else rule.min}, {'inf' if rule.max is None else rule.max}{high}"
    if isinstance(rule, quality_rules.InSet):
        return f"one of {list(rule.values)}"
    if isinstance(rule, quality_rules.NotInSet):
        return f"none of {list(rule.values)}"
    if isinstance(rule, quality_rules.Regex):
        return f"text matching {rule.pattern!r}"
    if isinstance(rule, quality_rules.Length):
        return f"text of length {rule.min if rule.min is not None else 0} to {rule.max if rule.max is not None else 'any'}"
    if isinstance(rule, quality_rules.Compare):
        return f"{rule.left} {rule.op} {rule.right}"
    return rule.check


def _read_order(rule: quality_rules.Rule, inputs: Mapping[str, str]) -> list[tuple[str, str]]:
    """(source column, input column) in the order the rule reads them: its column first."""
    ordered = [column for _, _, column in rule.reads() if column in inputs]
    return [(c, inputs[c]) for c in dict.fromkeys([*ordered, *inputs])]


def _plain_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value if isinstance(value, bool | int | float | str) else str(value)


def save(domain: Mapping[str, Any], directory: Path) -> str:
    """Write ``input_domain.json`` into ``directory`` atomically; return its sha256."""
    payload = (json.dumps(domain, indent=1, sort_keys=False) + "\n").encode()
    with atomic_path(directory / DOMAIN_FILE) as tmp:
        tmp.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def flags(frame: pd.DataFrame, domain: Mapping[str, Any],
          arrays: Mapping[str, np.ndarray] | None = None) -> list[Sequence[dict[str, Any]]]:
    """Per row of ``frame``, the ways it leaves the training domain (empty: inside it).

    ``frame`` holds the domain's columns with values of their types (checked before,
    by the server's input checks). Each flag is ``{"column", "flag", "value"}`` with a
    flag of :data:`FLAGS`, in the domain's column order. A row inside the domain gets
    one shared empty tuple, not a list of its own: most rows are inside, and a request
    of many rows would otherwise hand the prediction log a list per row to keep.

    The numeric columns are compared with their ranges as one 2-D array, and a category
    column is looked at value by value only when it holds a value not seen in training,
    so a request pays a few numpy calls, not a pass per column and row.

    Args:
        arrays: ``frame``'s columns as numpy arrays, when the caller has them (the input
            checks do): taken as they are, where looking each column up in a new frame
            costs pandas more than the comparisons themselves.
    """
    out: list[Sequence[dict[str, Any]]] = [()] * len(frame)
    if not len(frame):
        return out
    specs = {name: spec for name, spec in domain["columns"].items() if name in frame.columns}
    numeric = [name for name, spec in specs.items() if spec["type"] in ("integer", "number")]
    numbers = _numbers(frame, numeric, arrays)
    bounds = [(specs[name].get("min"), specs[name].get("max")) for name in numeric]
    low = np.array([-np.inf if lo is None else lo for lo, _ in bounds], dtype=float)
    high = np.array([np.inf if hi is None else hi for _, hi in bounds], dtype=float)
    may_miss = np.array([specs[name].get("missing_share", 0) != 0 for name in numeric], dtype=bool)
    missing = np.isnan(numbers)
    with np.errstate(invalid="ignore"):
        below, above = numbers < low, numbers > high
    flagged = {numeric[j] for j in np.flatnonzero((below | above | (missing & ~may_miss)).any(axis=0))}
    for name, spec in specs.items():
        if name in flagged:
            j = numeric.index(name)
            if not may_miss[j]:
                for i in np.flatnonzero(missing[:, j]):
                    _flag(out, i, {"column": name, "flag": "missing", "value": None})
            for i in np.flatnonzero(below[:, j]):
                _flag(out, i, {"column": name, "flag": "below_range", "value": _number(numbers[i, j]),
                               "min": spec["min"]})
            for i in np.flatnonzero(above[:, j]):
                _flag(out, i, {"column": name, "flag": "above_range", "value": _number(numbers[i, j]),
                               "max": spec["max"]})
        elif spec["type"] not in ("integer", "number"):
            _category_flags(out, name, spec, arrays[name] if arrays is not None else frame[name].to_numpy())
    return out


def _numbers(frame: pd.DataFrame, names: list[str], arrays: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """The numeric columns ``names`` as one float array, rows by columns (NaN: missing)."""
    if not names:
        return np.empty((len(frame), 0))
    if arrays is not None and all(arrays[name].dtype == np.float64 for name in names):
        return np.column_stack([arrays[name] for name in names])
    part = frame[names]
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in part.dtypes):  # the checked rows: one block
        return part.to_numpy(dtype=float, na_value=np.nan)
    return np.column_stack([pd.to_numeric(part[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                            for name in names])


def _category_flags(out: list[Sequence[dict[str, Any]]], name: str, spec: Mapping[str, Any],
                    values: np.ndarray) -> None:
    """Add a category column's flags: missing where training had none, and unseen values."""
    missing = np.asarray(pd.isna(values), dtype=bool)
    if spec.get("missing_share", 0) == 0:
        for i in np.flatnonzero(missing):
            _flag(out, i, {"column": name, "flag": "missing", "value": None})
    if spec.get("categories") is None:
        return
    seen = frozenset(spec["categories"])
    listed = values.tolist()
    # Most requests hold only categories seen in training: one set of the distinct texts
    # (texts, not values: True, 1 and 1.0 are one value but three categories), and a pass
    # over the rows only when one of them was not seen (or is a missing value's text).
    if not set(map(_category, listed)) <= seen:
        for i, (value, gone) in enumerate(zip(listed, missing.tolist(), strict=True)):
            if not gone and (text := _category(value)) not in seen:
                _flag(out, i, {"column": name, "flag": "unseen_category", "value": text})


def _flag(out: list[Sequence[dict[str, Any]]], row: int, flag: dict[str, Any]) -> None:
    """Add one flag to a row's (the first replaces the shared empty tuple with a list)."""
    if out[row]:
        out[row].append(flag)  # type: ignore[attr-defined]
    else:
        out[row] = [flag]


def read(payload: bytes, where: str) -> dict[str, Any]:
    """Parse an ``input_domain.json`` (already verified against its sha256).

    Raises:
        ValueError: Not JSON, or not a domain of a format this engine reads (the
            message names ``where``).
    """
    try:
        domain = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(domain, dict) or not isinstance(domain.get("columns"), dict) or domain.get("format") != FORMAT:
        raise ValueError(f"{where}: expected an input domain of format {FORMAT} with 'columns', got "
                         f"{type(domain).__name__} of format {domain.get('format') if isinstance(domain, dict) else None}")
    for name, spec in domain["columns"].items():
        if not isinstance(spec, dict) or spec.get("type") not in ("boolean", "integer", "number", "string"):
            raise ValueError(f"{where} at columns.{name}: expected a type of boolean, integer, number or string")
    if not isinstance(domain.get("rules", []), list):
        raise ValueError(f"{where} at rules: expected a list of quality rules, got {type(domain['rules']).__name__}")
    return domain


def _category(value: Any) -> str:
    """A category as the Pipeline sees it: its text (as :func:`engine.stages.model.as_model_input`)."""
    return str(value)


def _number(value: Any) -> float | int | None:
    """A JSON-able number: integers stay integers, NaN is None."""
    value = float(value)
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value
