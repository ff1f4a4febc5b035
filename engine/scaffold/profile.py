"""Read a user's table and profile it in one pass: what ``mlops init`` writes comes from here.

Each column is looked at once (a count of its distinct values, or its range), which
gives everything the generated config needs: the type the source declares, the quality
rules at what was observed, and whether the column is a feature or is left out
(an identifier, a constant, an empty column, a date). Reading goes through the same
pandas readers, with the same arguments, that ``mlops run`` will use on the written
config, so the profile describes what the run will see.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import DataError, UsageError

#: A text column with at most this many distinct values gets an ``in_set`` rule.
MAX_SET = 20
#: A text column with more distinct values than this share of its rows (and more than
#: :data:`MIN_FREE_TEXT`) is an identifier or free text: one-hot encoding it would add
#: a column per row and learn nothing that carries over to new rows.
IDENTIFIER_SHARE = 0.5
MIN_FREE_TEXT = 50
#: Text in a numeric column read as missing: blanks and the usual placeholders. Any other
#: text keeps the column text, unless it is rare (:data:`MAX_STRAY_SHARE`).
NA_TOKENS = frozenset({"", "?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "missing", "#n/a"})
#: A numeric column whose text values are at most this many distinct strings on at most
#: this share of its rows reads them as missing (declared in ``load_args.na_values``).
MAX_STRAY_VALUES = 5
MAX_STRAY_SHARE = 0.05
#: Names that say "identifier" (customerID, loan_id, Id, uuid...).
_ID_NAME = re.compile(r"(^|[^a-z])(id|uuid|guid)$|^(id|uuid|guid|index|unnamed: ?0|row ?(id|number|num))$|ID$",
                      re.IGNORECASE)
_SEPARATORS = (",", ";", "\t", "|")
_PARQUET = (".parquet", ".pq", ".parq")


@dataclass(frozen=True)
class Loaded:
    """A table as read, and how to read it again the same way.

    Args:
        frame: The table.
        type: The source type: ``csv``, ``parquet`` or ``sql``.
        location: The path or URL, as the user gave it.
        query: The SQL query (``sql`` only).
        load_args: Reader arguments the run needs to read it the same way (``sep``,
            ``na_values``).
        encoding: The text encoding when it is not UTF-8 (``csv`` only).
    """

    frame: pd.DataFrame
    type: str
    location: str
    query: str | None = None
    load_args: dict[str, Any] = field(default_factory=dict)
    encoding: str | None = None


@dataclass(frozen=True)
class ColumnProfile:
    """One column, as observed.

    Args:
        name: The column's name.
        type: The type the source declares: int, float, bool, category, string or datetime.
        rows: Rows in the table.
        missing: Missing values.
        distinct: Distinct non-missing values; None when not counted (a float column).
        counts: Value -> rows, most frequent first, when there are at most
            :data:`MAX_SET` distinct values; else None.
        low: The smallest finite value (numbers and datetimes), else None.
        high: The largest finite value.
        infinite: Infinite values (float columns).
        na_tokens: Text read as missing in this numeric column (``load_args.na_values``).
        role: feature, target, key, timestamp, identifier, constant, empty or date.
        why: Why a column that is not a feature is left out, for the generated comment.
    """

    name: str
    type: str
    rows: int
    missing: int
    distinct: int | None = None
    counts: Mapping[Any, int] | None = None
    low: Any = None
    high: Any = None
    infinite: int = 0
    na_tokens: tuple[str, ...] = ()
    role: str = "feature"
    why: str = ""

    @property
    def present(self) -> int:
        """Rows with a value."""
        return self.rows - self.missing


@dataclass(frozen=True)
class Target:
    """The binary target: which value is the positive class.

    Args:
        column: The target column.
        positive: The positive value, as the data holds it.
        negative: The other value.
        missing: Rows without a target value.
    """

    column: str
    positive: Any
    negative: Any
    missing: int


@dataclass(frozen=True)
class Profile:
    """Every column of a table, in its order, and the binary target."""

    rows: int
    columns: tuple[ColumnProfile, ...]
    target: Target

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)


# ------------------------------------------------------------------------------ reading


def read(data: str, query: str | None = None) -> Loaded:
    """Read a CSV file, a Parquet file or folder, or a SQL query's result.

    Args:
        data: A path, or a database URL (``sqlite:///shop.db``) with ``query``.
        query: SQL, or a table's name (read whole).

    Raises:
        UsageError: The file does not exist, or a URL comes without a query (or a
            query without a URL).
        DataError: The file cannot be read as its kind.
    """
    if "://" in data:
        if not query:
            raise UsageError(f"usage error: --data {data!r} is a database URL; give the table or SQL with --query")
        return _read_sql(data, query)
    if query:
        raise UsageError(f"usage error: --query reads a database; --data {data!r} is not a URL such as "
                         "sqlite:///shop.db")
    path = Path(data)
    if not path.exists():
        raise UsageError(f"usage error: --data {data!r}: file not found")
    if path.is_dir() or path.suffix.lower() in _PARQUET:
        try:
            return Loaded(pd.read_parquet(path), "parquet", data)
        except Exception as exc:  # pyarrow raises many types for a file that is not Parquet
            raise DataError(f"data error at --data {data!r}: cannot read it as Parquet: {_first_line(exc)}") from exc
    return _read_csv(path, data)


def _read_csv(path: Path, data: str) -> Loaded:
    head = path.open("rb").read(65536)
    if head.startswith(b"PAR1"):
        raise DataError(f"data error at --data {data!r}: this is a Parquet file; name it *.parquet")
    encoding = None
    try:
        first = head.decode("utf-8").splitlines()[:1]
    except UnicodeDecodeError as exc:
        # A cut in the middle of a character at the end of the sample is not an error.
        if exc.start < len(head) - 4:
            encoding = "latin-1"
        first = head.decode("latin-1").splitlines()[:1]
    header = first[0] if first else ""
    # The separator that splits the header most (a European export uses ';').
    sep = max(_SEPARATORS, key=header.count) if header else ","
    if header.count(sep) == 0:
        sep = ","
    load_args: dict[str, Any] = {} if sep == "," else {"sep": sep}
    try:
        frame = _csv(path, load_args, encoding)
    except UnicodeDecodeError:
        encoding = "latin-1"  # every byte is a latin-1 character: the run reads it the same way
        frame = _csv(path, load_args, encoding)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data error at --data {data!r}: the file is empty; expected a header and rows") from exc
    except Exception as exc:  # the C parser's errors (ragged rows, bad quoting)
        raise DataError(f"data error at --data {data!r}: cannot read it as CSV: {_first_line(exc)}") from exc
    return Loaded(frame, "csv", data, load_args=load_args, encoding=encoding)


def _csv(path: Path, load_args: Mapping[str, Any], encoding: str | None) -> pd.DataFrame:
    return pd.read_csv(path, **load_args, **({"encoding": encoding} if encoding else {}))


def _read_sql(url: str, query: str) -> Loaded:
    from engine.stages.data import SqlSource

    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", query.strip()):
        query = f"SELECT * FROM {query.strip()}"  # a table's name: read it whole
    try:
        frame = SqlSource(key="", url=url, query=query).load()
    except FileNotFoundError as exc:
        raise UsageError(f"usage error: --data {url!r}: database file not found") from exc
    except DataError:
        raise
    except Exception as exc:  # the driver's own errors: no such table, bad SQL
        raise DataError(f"data error at --query {query!r}: {_first_line(exc)}") from exc
    return Loaded(frame, "sql", url, query=query)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- profiling


def profile(loaded: Loaded, target: str, positive: str | None = None, key: str | None = None,
            timestamp: str | None = None) -> tuple[Profile, Loaded]:
    """Profile every column once, and find the binary target's positive class.

    A numeric column holding a few stray text values (``' '`` in a column of numbers)
    is read as numbers, the text as missing: the returned ``Loaded`` carries the
    ``na_values`` that make the run read it so, and its frame is converted the same way.

    Args:
        loaded: The table as read.
        target: The target column.
        positive: The positive class, when the two values do not say (see
            :func:`binary_target`).
        key: The column that identifies a row, if any.
        timestamp: The event-time column, if any.

    Raises:
        UsageError: A named column does not exist, the key is not unique or has missing
            values, the timestamp holds no dates, or the target is not binary.
    """
    frame = loaded.frame
    columns = [str(c) for c in frame.columns]
    for flag, name in (("--target", target), ("--key", key), ("--timestamp", timestamp)):
        if name is not None and name not in columns:
            raise UsageError(f"usage error: {flag} {name!r} is not a column; columns are: {', '.join(columns)}")
    if frame.empty:
        raise DataError(f"data error at --data {loaded.location!r}: no rows; expected a header and rows")
    if key is not None and key in (target, timestamp):
        raise UsageError(f"usage error: --key {key!r} is also the {'target' if key == target else 'timestamp'}")
    roles = {target: "target", **({key: "key"} if key else {}), **({timestamp: "timestamp"} if timestamp else {})}
    na_values: dict[str, list[str]] = {}
    profiles = []
    for column in frame.columns:
        name = str(column)
        # Text read as missing needs the CSV reader's na_values; other readers keep the column as read.
        observed, converted = _observe(name, frame[column], counts_floats=name == target,
                                       stray_text=loaded.type == "csv")
        if converted is not None:
            frame[column] = converted
            na_values[name] = list(observed.na_tokens)
        profiles.append(_role(observed, roles.get(name)))
    if na_values:
        loaded = Loaded(frame, loaded.type, loaded.location, loaded.query,
                        {**loaded.load_args, "na_values": na_values}, loaded.encoding)
    by_name = {p.name: p for p in profiles}
    if key is not None:
        _check_key(frame[key], by_name[key])
    if timestamp is not None and by_name[timestamp].type != "datetime":
        raise UsageError(f"usage error: --timestamp {timestamp!r} must hold dates, got {by_name[timestamp].type} "
                         f"values such as {frame[timestamp].dropna().head(3).tolist()}")
    return Profile(len(frame), tuple(profiles), binary_target(by_name[target], positive)), loaded


def _observe(name: str, column: pd.Series, *, counts_floats: bool = False,
             stray_text: bool = True) -> tuple[ColumnProfile, pd.Series | None]:
    """One column's type and statistics; also the column converted, when text is read as missing."""
    rows = len(column)
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        counts = column.value_counts(dropna=True)
        return ColumnProfile(name, "bool", rows, int(column.isna().sum()), len(counts), _as_counts(counts)), None
    if pd.api.types.is_numeric_dtype(dtype):
        return _numeric(name, column, counts_floats), None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        missing = int(column.isna().sum())
        return ColumnProfile(name, "datetime", rows, missing, None, None, column.min(), column.max()), None
    counts = column.value_counts(dropna=True)
    missing = rows - int(counts.sum())
    values = counts.index
    if len(counts) and all(isinstance(v, bool | np.bool_) for v in values[:3]) and all(
            isinstance(v, bool | np.bool_) for v in values):
        return ColumnProfile(name, "bool", rows, missing, len(counts), _as_counts(counts)), None
    numbers = _numbers_with_stray_text(counts) if stray_text else None
    if numbers is not None:
        tokens = numbers
        converted = pd.to_numeric(column.where(~column.isin(tokens)), errors="coerce").astype("float64")
        observed = _numeric(name, converted, counts_floats)
        return ColumnProfile(**{**observed.__dict__, "na_tokens": tuple(tokens)}), converted
    dates = _dates(values)
    if dates is not None:
        return ColumnProfile(name, "datetime", rows, missing, len(counts), None, dates.min(), dates.max()), None
    many = len(counts) > MIN_FREE_TEXT and len(counts) > IDENTIFIER_SHARE * (rows - missing)
    return ColumnProfile(name, "string" if many else "category", rows, missing, len(counts),
                         _as_counts(counts) if len(counts) <= MAX_SET else None), None


def _numeric(name: str, column: pd.Series, counts_floats: bool) -> ColumnProfile:
    rows = len(column)
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    finite = np.isfinite(values)
    missing = int(np.isnan(values).sum())
    infinite = rows - missing - int(finite.sum())
    low = high = None
    if finite.any():
        low, high = values[finite].min(), values[finite].max()
    integer = pd.api.types.is_integer_dtype(column.dtype)
    if integer:
        low, high = (int(low), int(high)) if low is not None else (None, None)
    distinct: int | None = None
    counts: Mapping[Any, int] | None = None
    if integer or counts_floats:
        # Integers are counted (identifiers, flags); a float column only when it is the
        # target (its classes). Other floats need only their range.
        value_counts = column.value_counts(dropna=True)
        distinct = len(value_counts)
        counts = _as_counts(value_counts) if distinct <= MAX_SET else None
    elif low is not None and low == high:
        distinct = 1
    return ColumnProfile(name, "int" if integer else "float", rows, missing, distinct, counts,
                         _plain(low), _plain(high), infinite)


def _as_counts(counts: pd.Series) -> dict[Any, int]:
    return {_plain(value): int(n) for value, n in counts.items()}


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (YAML and comparisons)."""
    return value.item() if isinstance(value, np.generic) else value


def _numbers_with_stray_text(counts: pd.Series) -> list[str] | None:
    """The text values of a column of numbers written as text, or None when it is text.

    A column is numbers when every value but a few placeholders (or at most
    :data:`MAX_STRAY_VALUES` distinct strings on at most :data:`MAX_STRAY_SHARE` of its
    rows) parses as a number.
    """
    values = counts.index
    if not len(values):
        return None
    sample = pd.Series(values[:50].astype(str))
    if pd.to_numeric(sample, errors="coerce").notna().mean() < 0.5:
        return None  # mostly text: no need to parse every distinct value
    parsed = pd.to_numeric(pd.Series(values.astype(str), index=values), errors="coerce")
    stray = parsed.index[parsed.isna()]
    if not len(stray) or len(stray) == len(values):
        return None  # all numbers already (mixed object ints) are left as read; or all text
    placeholders = all(str(v).strip().lower() in NA_TOKENS for v in stray)
    rare = len(stray) <= MAX_STRAY_VALUES and counts.loc[stray].sum() <= MAX_STRAY_SHARE * counts.sum()
    return [str(v) for v in stray] if placeholders or rare else None


def _dates(values: pd.Index) -> pd.Series | None:
    """The distinct values parsed as datetimes when every one of them is a date, else None."""
    if not len(values):
        return None
    sample = [str(v) for v in values[:20]]
    if not all(re.search(r"\d", v) and re.search(r"[-/:. ]", v.strip()) for v in sample):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": the parse below says it
        try:
            if pd.to_datetime(pd.Series(sample), errors="coerce").isna().any():
                return None
            parsed = pd.to_datetime(pd.Series(values.astype(str)), errors="coerce")
        except (ValueError, TypeError, OverflowError):
            return None
    return None if parsed.isna().any() else parsed


def _role(column: ColumnProfile, declared: str | None) -> ColumnProfile:
    """The column's role in the project, and why it is left out when it is."""
    role, why = declared or "feature", ""
    present = column.present
    if declared:
        pass
    elif present == 0:
        role, why = "empty", "missing in every row"
    elif column.distinct == 1 or (column.low is not None and column.low == column.high):
        only = next(iter(column.counts)) if column.counts else column.low
        role, why = "constant", f"one value ({_show(only)}) in every row" + (
            f" that has one ({column.missing:,} missing)" if column.missing else "")
    elif column.type == "string":
        role, why = "identifier", (f"{column.distinct:,} distinct values in {present:,} rows: an identifier or free "
                                   "text, which one-hot encoding cannot generalise from")
    elif column.type == "int" and column.distinct == present and present > MIN_FREE_TEXT and (
            column.high - column.low + 1 == present or _ID_NAME.search(column.name)):
        role, why = "identifier", f"a different integer in each of {present:,} rows: a row identifier"
    elif column.type == "datetime":
        role, why = "date", ("a date: as a category it would not generalise to new dates; derive a number "
                             "from it in `derived` instead (see the example there)")
    return ColumnProfile(**{**column.__dict__, "role": role, "why": why})


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _check_key(column: pd.Series, observed: ColumnProfile) -> None:
    if observed.missing:
        raise UsageError(f"usage error: --key {observed.name!r} is missing in {observed.missing:,} rows; "
                         "expected a value in every row (leave --key out: each row's number becomes the key)")
    duplicated = column.duplicated()
    if duplicated.any():
        raise UsageError(f"usage error: --key {observed.name!r} is not unique: {int(duplicated.sum()):,} rows repeat "
                         f"a value, e.g. {column[duplicated].head(3).tolist()} (leave --key out: each row's number "
                         "becomes the key)")


# --------------------------------------------------------------------------------- target

#: Two values whose meaning is plain, compared as lower-case text: the first is positive.
OBVIOUS = (("1", "0"), ("true", "false"), ("yes", "no"), ("y", "n"))


def binary_target(column: ColumnProfile, positive: str | None) -> Target:
    """Which of the target's two values is the positive class.

    Args:
        column: The target column's profile (its counts).
        positive: The positive value as typed on the command line; needed only when the
            two values are not 1/0, true/false, yes/no or y/n (in any case).

    Raises:
        UsageError: The target has one value, more than two, or is continuous; or
            ``positive`` is needed and missing, or is not one of its two values.
    """
    name = column.name
    if column.counts is None or column.distinct is None or column.distinct > 2:
        kind = "continuous" if column.type == "float" and column.counts is None else "multi-class"
        listed = sorted(column.counts, key=str) if column.counts else []
        shown = f" ({', '.join(_show(v) for v in listed[:5])}{', ...' if len(listed) > 5 else ''})" if listed else ""
        count = f"{column.distinct:,} values" if column.distinct is not None else "many values"
        raise UsageError(f"usage error: --target {name!r} is {kind}: {count}{shown}; expected two classes "
                         "(the engine does binary classification)")
    values = sorted(column.counts, key=str)  # messages name them in one order, whatever their counts
    if len(values) < 2:
        got = f"only {_show(values[0])}" if values else "no value"
        raise UsageError(f"usage error: --target {name!r} has {got}; expected two classes")
    texts = [_text(v) for v in values]
    if positive is None:
        lowered = tuple(t.lower() for t in texts)
        for pair in OBVIOUS:
            if set(lowered) == set(pair):
                positive = texts[lowered.index(pair[0])]
                break
        else:
            raise UsageError(f"usage error: --target {name!r} has the values {_show(values[0])} and "
                             f"{_show(values[1])}; say which is the positive class with --positive")
    matches = [i for i, t in enumerate(texts) if t == positive] or [
        i for i, t in enumerate(texts) if t.lower() == positive.lower()]
    if len(matches) != 1:
        raise UsageError(f"usage error: --positive {positive!r} is not a value of --target {name!r}; expected "
                         f"{_show(values[0])} or {_show(values[1])}")
    chosen = matches[0]
    return Target(name, values[chosen], values[1 - chosen], column.missing)


def _text(value: Any) -> str:
    """A value as it is typed: 1 for 1.0, true for True."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)
