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
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

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
    for the model (index: the row's position in the request), and ``arrays`` its columns
    as numpy arrays; ``by_key`` the positions of rows that gave only the key; ``keys`` the
    key of every row (None when not given)."""

    n: int
    features: pd.DataFrame
    keys: list[Any]
    by_key: list[int] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


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
    names = list(columns_spec)
    columns: list[Sequence[Any]] | None = None
    if table is None:
        records: list[dict[str, Any]] = rows  # type: ignore[assignment]
        columns = _every_column(records, names)
        if columns is None:
            for i, row in enumerate(rows):  # type: ignore[arg-type]
                if not isinstance(row, dict):
                    raise RequestError(422, f"expected a row object, got {_shape(row)}", row=i)
        keys = [row.get(key) for row in records] if key else [None] * n
        if columns is not None:  # the common case: every row gives every input column
            feature_rows, by_key = list(range(n)), []
            key_given = [k is not None for k in keys]
        else:
            has_key = [key is not None and key in row for row in records]
            feature_rows, by_key = _sort_rows([row.keys() for row in records], has_key, names, key, by_key_allowed)
    else:
        has_key = [key is not None and key in table] * n
        keys = list(table[key]) if key in table else [None] * n
        feature_rows, by_key = _sort_rows([table.keys()] * n, has_key, names, key, by_key_allowed)
    if columns is None:  # a key given as null is no key, unless the row gives nothing else
        looked_up = set(by_key)
        key_given = [has_key[i] and (keys[i] is not None or i in looked_up) for i in range(n)]
    if key:
        key_type = (domain.get("key") or {}).get("type", "string")
        for i in range(n):
            if key_given[i]:
                keys[i] = key_value(keys[i], key_type, i, key)
    index = pd.RangeIndex(n) if len(feature_rows) == n else pd.Index(np.array(feature_rows, dtype=np.int64))
    data: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for j, (name, spec) in enumerate(columns_spec.items()):
        if columns is not None:
            values = columns[j]
        elif table is not None:
            values = table[name] if feature_rows else []
        else:
            values = [records[i][name] for i in feature_rows]
        arrays[name] = typed = _typed(values, spec["type"], name, feature_rows)
        # Text as objects, as the Pipeline takes it: pandas would infer its str dtype,
        # a copy into Arrow and back again on the way to the model.
        data[name] = typed if typed.dtype != object else pd.Series(typed, index=index, dtype=object, copy=False)
    # Column labels as objects too: looking a column up by a label of pandas' str dtype
    # costs twice as much, and the flags, rules and model each look up every column.
    frame = pd.DataFrame(data, index=index, columns=pd.Index(names, dtype=object), copy=False)
    return Rows(n=n, features=frame, keys=keys, by_key=by_key, arrays=arrays)


def _every_column(records: list[dict[str, Any]], names: list[str]) -> list[Sequence[Any]] | None:
    """The records' values a column at a time when every record is an object that gives
    every input column (else None): one ``itemgetter`` pass and one transpose, both in C."""
    if not names:
        return None
    getter = operator.itemgetter(*names)
    try:
        tuples = list(map(getter, records))
    except (KeyError, TypeError, IndexError):  # a row without some column, or not an object: the checks name it
        return None
    return [tuples] if len(names) == 1 else list(zip(*tuples))


def _sort_rows(given_of: list[Any], has_key: list[bool], names: list[str], key: str | None,
               by_key_allowed: bool) -> tuple[list[int], list[int]]:
    """The positions of the rows that give every input column, and of those that give only the key.

    Raises:
        RequestError: 422 at the first row that is neither.
    """
    wanted = set(names)
    by_key: list[int] = []
    feature_rows: list[int] = []
    for i, given in enumerate(given_of):
        if wanted <= given:  # every input column: one set test
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
    return feature_rows, by_key


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

    The common case, every value of the column's exact JSON type (or null), is converted
    by numpy in one call. Text (from CSV) is converted value by value; other JSON values
    must already be of the column's type.

    Raises:
        RequestError: 422 at the first value of another type.
    """
    types = set(map(type, values))  # exact types: a bool is not an int here, a CSV cell not a str
    if kind in ("number", "integer"):
        if types <= _NUMBERS:
            try:
                out = np.array(values, dtype=float)  # null -> NaN; JSON itself has no NaN
            except OverflowError:  # an integer beyond float64: named below
                pass
            else:
                _whole_and_finite(out, values, kind, name, rows)
                return out
        out = np.empty(len(values), dtype=float)
        for j, value in enumerate(values):
            out[j] = _number(value, kind, rows[j], name)
        return out
    # Categories as the Pipeline takes them (engine.stages.model.as_model_input): text,
    # NaN for missing (SimpleImputer's marker), booleans as "True"/"False".
    if kind == "boolean":
        if not types <= _BOOLEANS:
            values = [_boolean(v, rows[j], name) for j, v in enumerate(values)]
        return np.array([math.nan if v is None else ("True" if v else "False") for v in values], dtype=object)
    if not types <= _TEXTS:
        for j, value in enumerate(values):
            if value is not None and not isinstance(value, str):
                raise RequestError(422, f"expected {EXPECTED['string']}, got {_shape(value)}", row=rows[j],
                                   column=name)
        values = [None if v is None else str(v) for v in values]  # a CSV cell (_Text) -> str
    out = np.empty(len(values), dtype=object)
    out[:] = values
    if type(None) in types:
        out[np.equal(out, None)] = math.nan
    return out


_NUMBERS = frozenset({int, float, type(None)})
_BOOLEANS = frozenset({bool, type(None)})
_TEXTS = frozenset({str, type(None)})


def _whole_and_finite(out: np.ndarray, values: Sequence[Any], kind: str, name: str, rows: list[int]) -> None:
    """Refuse the first number that is not finite (1e999 parses to inf), or not whole
    where an integer is expected.

    Raises:
        RequestError: 422 at that value.
    """
    bad = np.flatnonzero(np.isinf(out))
    if len(bad):
        raise RequestError(422, f"expected a finite number, got {values[bad[0]]!r}", row=rows[bad[0]], column=name)
    if kind == "integer":
        with np.errstate(invalid="ignore"):
            fraction = np.flatnonzero(np.isfinite(out) & (out != np.floor(out)))
        if len(fraction):
            raise RequestError(422, f"expected an integer or null, got {values[fraction[0]]!r}",
                               row=rows[fraction[0]], column=name)


class _Text(str):
    """A CSV cell: text that may still be converted to the column's type."""


def _number(value: Any, kind: str, row: int, column: str) -> float:
    if value is None:
        return math.nan
    if type(value) in (int, float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float64
            number = math.inf
        if math.isfinite(number) and (kind == "number" or number.is_integer()):
            return number
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
