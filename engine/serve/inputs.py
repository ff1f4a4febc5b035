"""The input checks of ``POST /predict``: a request body in, typed rows or one clear error out.

A body is JSON or CSV, never anything that is evaluated or unpickled:

- JSON: a list of row objects (records), one row object, ``{"records": [...]}``,
  ``{"columns": {"plan": [...], ...}}``, or MLflow's ``dataframe_records`` and
  ``dataframe_split``;
- CSV (``Content-Type: text/csv``): a header line, then rows; an empty cell is missing.

Every row is checked against the model's training domain
(:mod:`engine.stages.domain`): each input column present, each value of the column's
type (or missing). A row may instead give only the entity key; it is then looked up in
the feature store. The first problem is a :class:`~engine.errors.RequestError` naming
the row and the column: 400 for a body that is not JSON or CSV, 422 for rows that do
not fit the model. Bad input never reaches the model, so it never becomes a 500.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from engine.errors import RequestError

#: What each domain type accepts in JSON, described for errors and the OpenAPI schema.
EXPECTED = {"number": "a number or null", "integer": "an integer or null", "boolean": "true, false or null",
            "string": "a string or null"}
#: What ``--quality`` (``serve.quality``) does with the row rules a request breaks:
#: enforce refuses a row that breaks an error-severity rule (422) and reports warn ones;
#: flag scores every row and reports what it breaks; off checks none.
QUALITY_MODES = ("enforce", "flag", "off")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass
class Rows:
    """A checked request: ``features`` holds the rows that gave their feature values, typed
    for the model (index: the row's position in the request); ``by_key`` the positions of
    rows that gave only the key; ``keys`` the key of every row (None when not given)."""

    n: int
    features: pd.DataFrame
    keys: list[Any]
    by_key: list[int] = field(default_factory=list)


def parse(body: bytes, content_type: str | None) -> list[Any] | dict[str, list[Any]]:
    """The rows of a request body: a list of records, or a mapping of columns.

    Raises:
        RequestError: 400 when the body is neither JSON nor CSV, or not of a shape
            listed in the module's docstring.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("text/csv", "application/csv") or kind.endswith("+csv"):
        return _parse_csv(body)
    # curl -d sends application/x-www-form-urlencoded unless told otherwise: read as JSON.
    if kind and kind not in ("application/json", "application/x-www-form-urlencoded") and not kind.endswith("+json"):
        raise RequestError(400, f"expected a body of Content-Type application/json or text/csv, got {kind!r}")
    data = _loads(body)
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise RequestError(400, f"expected a JSON object or list of row objects, got {_shape(data)}")
    for name in ("records", "dataframe_records"):
        if set(data) == {name}:
            if not isinstance(data[name], list):
                raise RequestError(400, f"expected {name!r} to be a list of row objects, got {_shape(data[name])}")
            return data[name]
    if set(data) == {"columns"} and isinstance(data["columns"], dict):
        return _columns(data["columns"])
    if set(data) == {"dataframe_split"}:
        return _split(data["dataframe_split"])
    return [data]  # one row object


def check(rows: list[Any] | dict[str, list[Any]], domain: Mapping[str, Any], max_rows: int,
          by_key_allowed: bool = True) -> Rows:
    """Check parsed rows against the model's input domain and type them.

    Args:
        rows: What :func:`parse` returned.
        domain: The model's ``input_domain.json``.
        max_rows: The most rows one request may hold.
        by_key_allowed: Whether a row may give only the entity key (a feature store is
            attached).

    Raises:
        RequestError: 422 naming the row and column: too many rows, a row that is not
            an object, a missing input column, a value of the wrong type.
    """
    columns_spec: Mapping[str, Any] = domain["columns"]
    key = (domain.get("key") or {}).get("name")
    table = rows if isinstance(rows, dict) else None
    n = len(next(iter(table.values()), [])) if table is not None else len(rows)  # type: ignore[arg-type]
    if n > max_rows:
        raise RequestError(422, f"the request holds {n:,} rows; expected at most {max_rows:,} (--max-rows)")
    if n == 0:
        raise RequestError(422, "the request holds no rows; expected at least one")
    if table is None:
        for i, row in enumerate(rows):  # type: ignore[arg-type]
            if not isinstance(row, dict):
                raise RequestError(422, f"expected a row object, got {_shape(row)}", row=i)
        records: list[dict[str, Any]] = rows  # type: ignore[assignment]
        wanted = set(columns_spec)
        given_of = [row.keys() for row in records]
        has_key = [key is not None and key in row for row in records]
        keys = [row.get(key) for row in records] if key else [None] * n
    else:
        given_of = [table.keys()] * n
        has_key = [key is not None and key in table] * n
        keys = list(table[key]) if key in table else [None] * n
        wanted = set(columns_spec)
    names = list(columns_spec)
    by_key: list[int] = []
    feature_rows: list[int] = []
    for i, given in enumerate(given_of):
        if wanted <= given:  # every input column: the common case, one set test
            feature_rows.append(i)
        elif has_key[i] and wanted.isdisjoint(given):
            if not by_key_allowed:
                raise RequestError(422, f"the row gives only the key {key!r}; this server has no feature store to "
                                        "look it up in (mlops serve --feature-store PATH), so expected every input "
                                        f"column: {', '.join(names)}", row=i, column=names[0])
            by_key.append(i)
        else:
            missing = [c for c in names if c not in given]
            alternative = f", or only the key {key!r}" if key and by_key_allowed else ""
            raise RequestError(422, f"missing; expected every input column of the model{alternative} (missing: "
                                    f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''})",
                               row=i, column=missing[0])
    if key:
        key_type = (domain.get("key") or {}).get("type", "string")
        for i in range(n):
            if has_key[i] and (keys[i] is not None or i in by_key):
                keys[i] = key_value(keys[i], key_type, i, key)
    data: dict[str, Any] = {}
    for name, spec in columns_spec.items():
        if table is not None:
            values = table[name] if feature_rows else []
        elif len(feature_rows) == n:
            values = [row[name] for row in records]
        else:
            values = [records[i][name] for i in feature_rows]
        data[name] = _typed(values, spec["type"], name, feature_rows)
    frame = pd.DataFrame(data, index=pd.Index(feature_rows, dtype="int64"), columns=names)
    return Rows(n=n, features=frame, keys=keys, by_key=by_key)


def key_value(value: Any, kind: str, row: int, column: str) -> Any:
    """A key as the feature store holds it (an int for an integer key).

    Raises:
        RequestError: 422 for a key of another type.
    """
    if kind == "integer":
        number: int | None = None
        if type(value) is int:
            number = value
        elif type(value) is float and value.is_integer() and abs(value) <= 2**53:  # exactly an integer
            number = int(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value)
        if number is not None and -2**63 <= number < 2**63:  # the feature store's keys are int64
            return number
        raise RequestError(422, f"expected an integer key (64-bit), got {_shape(value)}", row=row, column=column)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RequestError(422, f"expected a key of type {kind}, got {_shape(value)}", row=row, column=column)
    return value if isinstance(value, str) else str(value)


def _typed(values: Sequence[Any], kind: str, name: str, rows: list[int]) -> np.ndarray:
    """One input column as the model takes it: float64 for numbers, objects otherwise.

    Text (from CSV) is converted; JSON values must already be of the column's type.

    Raises:
        RequestError: 422 at the first value of another type.
    """
    typed = _typed_by_arrow(values, kind)
    return typed if typed is not None else _typed_by_value(values, kind, name, rows)


def _typed_by_value(values: Sequence[Any], kind: str, name: str, rows: list[int]) -> np.ndarray:
    """:func:`_typed`, value by value: CSV cells, a mix of types, and every error message."""
    types = set(map(type, values))
    if kind in ("number", "integer"):
        if types <= {int, float, type(None)}:
            out = np.array(values, dtype=float)
            given = np.array([v is not None for v in values], dtype=bool)
            bad = np.flatnonzero(~np.isfinite(out) & given)
            if len(bad):  # 1e999 parses to inf
                raise RequestError(422, f"expected a finite number, got {values[bad[0]]!r}", row=rows[bad[0]],
                                   column=name)
            if kind == "integer":
                fraction = np.flatnonzero(np.isfinite(out) & (out != np.floor(out)))
                if len(fraction):
                    raise RequestError(422, f"expected an integer or null, got {values[fraction[0]]!r}",
                                       row=rows[fraction[0]], column=name)
            return out
        out = np.empty(len(values), dtype=float)
        for j, value in enumerate(values):
            out[j] = _number(value, kind, rows[j], name)
        return out
    # Categories as the Pipeline takes them (engine.stages.model.as_model_input): text,
    # NaN for missing (SimpleImputer's marker), booleans as "True"/"False".
    if kind == "boolean":
        if not types <= {bool, type(None)}:
            values = [_boolean(v, rows[j], name) for j, v in enumerate(values)]
        return np.array([math.nan if v is None else str(v) for v in values], dtype=object)
    if not types <= {str, type(None)}:
        for j, value in enumerate(values):
            if value is not None and not isinstance(value, str):
                raise RequestError(422, f"expected {EXPECTED['string']}, got {_shape(value)}", row=rows[j],
                                   column=name)
    return np.array([math.nan if v is None else str(v) for v in values], dtype=object)  # _Text -> str


def _typed_by_arrow(values: Sequence[Any], kind: str) -> np.ndarray | None:
    """:func:`_typed` for a column whose values are all of its type, or None.

    The common case of a large JSON request, in Arrow's C++ loop instead of a Python
    pass per check, once the values' exact types are those of the column (a bool in a
    number column is not: Arrow would read it as 1.0). Anything else, and a number that
    is not finite or not whole where an integer is expected, is left to
    :func:`_typed_by_value`, which names the first bad value.
    """
    types = set(map(type, values))  # exact types: a bool is not an int here, a CSV cell not a str
    allowed = {"number": {int, float}, "integer": {int, float}, "boolean": {bool}, "string": {str}}[kind]
    if not types <= allowed | {type(None)}:
        return None
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # an int beyond 64 bits
        return None
    kind_of = array.type
    if pa.types.is_null(kind_of):
        return np.full(len(values), math.nan) if kind in ("number", "integer") else \
            np.full(len(values), math.nan, dtype=object)
    if kind in ("number", "integer"):
        if not (pa.types.is_int64(kind_of) or pa.types.is_float64(kind_of)):
            return None
        out = np.asarray(array.to_numpy(zero_copy_only=False), dtype=float)
        if np.isinf(out).any() or (kind == "integer" and (out[np.isfinite(out)] % 1).any()):
            return None
        return out
    if kind == "boolean" and pa.types.is_boolean(kind_of):
        out = np.where(array.fill_null(False).to_numpy(zero_copy_only=False), "True", "False").astype(object)
    elif kind == "string" and pa.types.is_string(kind_of):
        out = array.to_numpy(zero_copy_only=False)
    else:
        return None
    if array.null_count:
        out[array.is_null().to_numpy(zero_copy_only=False)] = math.nan
    return out


class _Text(str):
    """A CSV cell: text that may still be converted to the column's type."""


def _number(value: Any, kind: str, row: int, column: str) -> float:
    if value is None:
        return math.nan
    if type(value) in (int, float) and math.isfinite(value) and (kind == "number" or float(value).is_integer()):
        return float(value)
    if isinstance(value, _Text):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number) and (kind == "number" or number.is_integer()):
            return number
    raise RequestError(422, f"expected {EXPECTED[kind]}, got {_shape(value)}", row=row, column=column)


def _boolean(value: Any, row: int, column: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, _Text) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RequestError(422, f"expected {EXPECTED['boolean']}, got {_shape(value)}", row=row, column=column)


def _parse_csv(body: bytes) -> dict[str, list[Any]]:
    """A CSV body as columns of :class:`_Text` cells (an empty cell: None)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the CSV body is not UTF-8: {_first_line(exc)}") from exc
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, None)
        lines = list(reader)
    except csv.Error as exc:
        raise RequestError(400, f"the body is not valid CSV: {_first_line(exc)}") from exc
    if not header or not any(h.strip() for h in header):
        raise RequestError(400, "the CSV body has no header line; expected column names on its first line")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        duplicated = sorted({h for h in header if header.count(h) > 1})
        raise RequestError(400, f"the CSV header names a column twice: {', '.join(duplicated)}")
    lines = [line for line in lines if line]  # csv gives [] for a blank line
    for i, line in enumerate(lines):
        if len(line) != len(header):
            raise RequestError(400, f"the CSV row has {len(line)} cells; expected {len(header)}, one per header "
                                    "column", row=i)
    return {name: [_Text(line[j]) if line[j] != "" else None for line in lines] for j, name in enumerate(header)}


def _columns(columns: Mapping[str, Any]) -> dict[str, list[Any]]:
    lengths = {name: len(v) if isinstance(v, list) else None for name, v in columns.items()}
    for name, length in lengths.items():
        if length is None:
            raise RequestError(400, f"expected 'columns.{name}' to be a list of values, got {_shape(columns[name])}")
    if len(set(lengths.values())) > 1:
        raise RequestError(400, "expected every list of 'columns' to have one length, got "
                                + ", ".join(f"{n}: {v}" for n, v in list(lengths.items())[:5]))
    return {str(name): list(values) for name, values in columns.items()}


def _split(split: Any) -> list[Any]:
    """MLflow's ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}``."""
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list):
        raise RequestError(400, f"expected 'dataframe_split' to hold 'columns' and 'data' lists, got {_shape(split)}")
    names = split["columns"]
    out = []
    for i, values in enumerate(split["data"]):
        if not isinstance(values, list) or len(values) != len(names):
            raise RequestError(422, f"expected a list of {len(names)} values, got {_shape(values)}", row=i)
        out.append(dict(zip(map(str, names), values, strict=True)))
    return out


def _loads(body: bytes) -> Any:
    """Parse JSON: orjson when installed (the serve extra; a few times faster on large
    bodies), Python's json otherwise and for any body orjson refuses, so that the error
    (or a value orjson does not take, such as 1e999) is the one Python's json gives.

    Raises:
        RequestError: 400, not JSON (NaN and Infinity are not JSON either).
    """
    if _orjson is not None:
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestError(400, f"the body is not valid JSON: {_first_line(exc)}") from exc


try:
    import orjson as _orjson
except ImportError:  # the serve extra brings it; Python's json does the same, slower
    _orjson = None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value (a missing value is null)")


def _shape(value: Any) -> str:
    """A value for an error message: its JSON type and a short rendering."""
    kind = {bool: "boolean", int: "number", float: "number", str: "string", _Text: "text", list: "list",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def enforce_rules(violations: list[list[dict[str, Any]]], positions: list[int]) -> None:
    """Refuse the first row that breaks a rule of severity ``error``.

    Raises:
        RequestError: 422 at that row and the rule's column.
    """
    for position, broken in zip(positions, violations, strict=True):
        for violation in broken:
            if violation["severity"] == "error":
                raise RequestError(422, f"quality rule {violation['rule']!r} ({violation['check']}) expects "
                                        f"{violation['expected']}, got {violation['value']!r}",
                                   row=position, column=violation["column"])
