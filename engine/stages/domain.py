"""The training domain of a model's input: what serving and monitoring compare rows with.

Saved beside the model as ``model/input_domain.json`` (its sha256 recorded in run.json
and in the registry, so it is verified like the model): for every column the Pipeline
takes, its type, whether it may be missing, the categories seen or the numeric range,
and the share of missing values, measured on the training rows.

:func:`flags` compares new rows with it, vectorised: a value outside the training
range, a category never seen, a value missing where training had none. Flagged rows
are still scored; the flags say how far to trust the score.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.files import atomic_path

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


def type_of(series: pd.Series) -> str:
    """The request type of a column: ``boolean``, ``integer``, ``number`` or ``string``.

    Booleans come first (pandas counts them as numeric); anything not numeric is a
    category for the Pipeline (:func:`engine.stages.model.as_model_input`), so a string.
    """
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "string"


def profile(X: pd.DataFrame, key: pd.Series | None = None) -> dict[str, Any]:
    """The domain of the training inputs ``X`` (the Pipeline's columns, in its order).

    Args:
        X: The training features.
        key: The entity key of the training rows (its name and type are recorded, so a
            server can take rows given by key).

    Returns:
        ``columns``: name -> ``type``, ``missing_share``, and ``min``/``max`` (numbers) or
        ``categories`` (strings and booleans; null beyond :data:`MAX_CATEGORIES`);
        ``rows``, ``key``, ``format``.
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
    return {"format": FORMAT, "rows": len(X), "key": key_entry, "columns": columns}


def save(domain: Mapping[str, Any], directory: Path) -> str:
    """Write ``input_domain.json`` into ``directory`` atomically; return its sha256."""
    payload = (json.dumps(domain, indent=1, sort_keys=False) + "\n").encode()
    with atomic_path(directory / DOMAIN_FILE) as tmp:
        tmp.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def flags(frame: pd.DataFrame, domain: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """Per row of ``frame``, the ways it leaves the training domain (empty: inside it).

    ``frame`` holds the domain's columns with values of their types (checked before,
    by the server's input checks). Each flag is ``{"column", "flag", "value"}`` with a
    flag of :data:`FLAGS`. Works on each column's numpy array: a request of a few rows
    pays microseconds per column, not a pandas operation per check.
    """
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(frame))]
    for name, spec in domain["columns"].items():
        if name not in frame.columns:
            continue
        values = frame[name].to_numpy()
        if spec["type"] in ("integer", "number"):
            numbers = values.astype(float) if values.dtype.kind in "fiub" else \
                pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(numbers)
        else:
            numbers = None
            missing = np.asarray(pd.isna(values), dtype=bool)
        if spec.get("missing_share", 0) == 0 and missing.any():
            for i in np.flatnonzero(missing):
                out[i].append({"column": name, "flag": "missing", "value": None})
        if numbers is not None:
            with np.errstate(invalid="ignore"):
                if spec.get("min") is not None:
                    for i in np.flatnonzero(numbers < spec["min"]):
                        out[i].append({"column": name, "flag": "below_range", "value": _number(numbers[i]),
                                       "min": spec["min"]})
                if spec.get("max") is not None:
                    for i in np.flatnonzero(numbers > spec["max"]):
                        out[i].append({"column": name, "flag": "above_range", "value": _number(numbers[i]),
                                       "max": spec["max"]})
        elif spec.get("categories") is not None:
            seen = frozenset(spec["categories"])
            for i, value in enumerate(values.tolist()):
                if not missing[i] and _category(value) not in seen:
                    out[i].append({"column": name, "flag": "unseen_category", "value": _category(value)})
    return out


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
