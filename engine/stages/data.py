"""Ingestion: ``conf/data/`` sources loaded into DataFrames, each with a fingerprint.

A source is a small frozen declaration whose fields are the YAML keys one to one; its
``load()`` returns a DataFrame. Types register themselves by name, so a new type is
one class with ``@register("name")``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from engine.config.plan import DataSpec, SourceSpec
from engine.errors import DataError
from engine.stages import demo

log = logging.getLogger(__name__)

SOURCE_TYPES: dict[str, type[Source]] = {}


def register(name: str) -> Callable[[type[Source]], type[Source]]:
    """Class decorator: make a source type available as ``type: <name>``."""

    def add(cls: type[Source]) -> type[Source]:
        cls.type_name = name
        SOURCE_TYPES[name] = cls
        return cls

    return add


@dataclass(frozen=True)
class Source:
    """Common fields of every source.

    Args:
        key: The column that identifies a row (an entity id or an event id).
        timestamp: The event-time column, for event sources; parsed to datetimes.
        load_args: Passed through to the pandas reader.
        description: For people; not used by the engine.
    """

    key: str | None
    timestamp: str | None = None
    load_args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    type_name: ClassVar[str] = ""

    def load(self) -> pd.DataFrame:
        """Read the whole source into a DataFrame."""
        raise NotImplementedError(f"source type {self.type_name!r} cannot load")

    def location(self) -> str:
        """Where the data lives, for messages and the run record."""
        return self.type_name


@register("csv")
@dataclass(frozen=True)
class CsvSource(Source):
    """A CSV file, read with ``pandas.read_csv``."""

    path: str = ""

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self.path, **self.load_args)

    def location(self) -> str:
        return self.path


@register("parquet")
@dataclass(frozen=True)
class ParquetSource(Source):
    """A Parquet file or dataset folder, read with ``pandas.read_parquet``."""

    path: str = ""

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self.path, **self.load_args)

    def location(self) -> str:
        return self.path


@register("sql")
@dataclass(frozen=True)
class SqlSource(Source):
    """A SQL query, read with ``pandas.read_sql``.

    ``sqlite:///relative/or/absolute.db`` URLs use the standard library's sqlite3;
    any other SQLAlchemy URL needs SQLAlchemy installed (the ``sql`` extra).
    """

    url: str = ""
    query: str = ""

    def load(self) -> pd.DataFrame:
        if self.url.startswith("sqlite:///"):
            path = self.url.removeprefix("sqlite:///")
            if not Path(path).is_file():
                raise FileNotFoundError(path)
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            conn.set_authorizer(_read_only)
            try:
                return pd.read_sql(self.query, conn, **self.load_args)
            finally:
                conn.close()
        try:
            import sqlalchemy
        except ImportError as exc:
            raise DataError(
                f"data error at url {self.url!r}: a non-SQLite URL needs SQLAlchemy; "
                "install it with: pip install 'mlops-engine[sql]'"
            ) from exc
        engine = sqlalchemy.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return pd.read_sql(sqlalchemy.text(self.query), conn, **self.load_args)
        finally:
            engine.dispose()

    def location(self) -> str:
        return self.url


#: What a query of a SQLite source may do: read. ``mode=ro`` keeps the main file safe, but
#: ``ATTACH DATABASE '/elsewhere.db'`` in a shared config's query would still create (and
#: write) another file.
_SQLITE_READS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           sqlite3.SQLITE_RECURSIVE})


def _read_only(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _SQLITE_READS else sqlite3.SQLITE_DENY


@register("demo")
@dataclass(frozen=True)
class DemoSource(Source):
    """One table of the churn demo, generated in memory from ``data.generate``."""

    table: str = "customers"
    generate: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> pd.DataFrame:
        spec = demo.DemoSpec(**dict(self.generate))
        return _generated(spec)[self.table].copy()

    def location(self) -> str:
        return f"demo generator ({self.table})"


@lru_cache(maxsize=2)
def _generated(spec: demo.DemoSpec) -> dict[str, pd.DataFrame]:
    return demo.generate(spec)


@dataclass(frozen=True)
class Table:
    """A loaded source: the frame plus what the run records about it."""

    name: str
    frame: pd.DataFrame
    source: Source
    fingerprint: str

    def record(self) -> dict[str, Any]:
        return {
            "type": self.source.type_name,
            "location": self.source.location(),
            "rows": len(self.frame),
            "columns": list(map(str, self.frame.columns)),
            "fingerprint": self.fingerprint,
        }


def fingerprint(frame: pd.DataFrame) -> str:
    """A sha256 of a frame's content: column names, dtypes and every value."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def build_source(spec: SourceSpec, root: Path) -> Source:
    """Turn one ``data.sources.<name>`` entry into a source, paths made absolute.

    Relative paths and ``sqlite:///`` URLs are relative to the project folder
    ``root`` (where ``mlops`` was started), not to the run directory.
    """
    params = dict(spec.options)
    if "path" in params:
        params["path"] = str(root / params["path"])
    url = params.get("url", "")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        params["url"] = f"sqlite:///{root / url.removeprefix('sqlite:///')}"
    return SOURCE_TYPES[spec.type](**params)


def prepare(spec: DataSpec, root: Path) -> bool:
    """Make sure the demo files exist when ``data.generate`` asks for them.

    Returns:
        True when files were generated now.
    """
    generate, directory = spec.generate, spec.dir
    if not generate or not directory:
        return False
    made = demo.write_files(demo.DemoSpec(**dict(generate)), root / directory)
    if made:
        log.info("generated the demo data in %s", directory)
    return made


def load(spec: DataSpec, root: Path) -> dict[str, Table]:
    """Load every source of ``data.sources``, check its declared columns, fingerprint it.

    Args:
        spec: The ``data`` group (``plan.data``).
        root: The project folder, which relative paths are relative to.

    Raises:
        DataError: A file is missing or unreadable, or a declared key/timestamp
            column is absent or not parseable.
    """
    tables: dict[str, Table] = {}
    for name, declared in spec.sources.items():
        source = build_source(declared, root)
        where = f"data.sources.{name} ({source.location()})"
        try:
            frame = source.load()
        except DataError:
            raise
        except FileNotFoundError as exc:
            raise DataError(f"data error at {where}: file not found: {exc.filename or exc}") from exc
        except Exception as exc:  # pandas/pyarrow/sqlite raise many types for bad files
            raise DataError(f"data error at {where}: cannot read it: {_first_line(exc)}") from exc
        if not isinstance(frame, pd.DataFrame):  # a load_arg the schema does not know changed the result
            close = getattr(frame, "close", None)
            if callable(close):
                close()  # a TextFileReader holds the file open
            raise DataError(f"data error at {where}: the reader returned a {type(frame).__name__}, expected one "
                            f"DataFrame; check data.sources.{name}.load_args ({', '.join(source.load_args) or 'none'})")
        if source.key is None:  # TEMP until data-14 merges: a keyless source's key is its row number
            frame.insert(0, "row_number", range(1, len(frame) + 1))
            source = dataclasses.replace(source, key="row_number")
        frame = _check_columns(frame, source, where)
        tables[name] = Table(name, frame, source, fingerprint(frame))
        log.info("loaded %s: %d rows x %d columns", name, len(frame), frame.shape[1])
    return tables


def _check_columns(frame: pd.DataFrame, source: Source, where: str) -> pd.DataFrame:
    columns = list(map(str, frame.columns))
    for role, column in (("key", source.key), ("timestamp", source.timestamp)):
        if column is not None and column not in frame.columns:
            raise DataError(
                f"data error at {where}: {role} column {column!r} not found; "
                f"columns are: {', '.join(columns)}"
            )
    ts = source.timestamp
    if ts is None or pd.api.types.is_datetime64_any_dtype(frame[ts]):
        return frame
    column = frame[ts]
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise DataError(f"data error at {where}: timestamp column {ts!r} must hold datetimes or date text, "
                        f"got {column.dtype} values such as {column.dropna().head(3).tolist()}")
    text = column.astype(object).where(column.notna())
    parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    bad = parsed.isna() & text.notna()
    if bad.any():
        raise DataError(f"data error at {where}: timestamp column {ts!r} must hold datetimes, got "
                        f"{int(bad.sum())} values that are not, such as {text[bad].astype(str).head(3).tolist()}")
    return frame.assign(**{ts: parsed})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def align_time(when: Any, like: pd.Series) -> pd.Timestamp:
    """``when`` as a Timestamp comparable with the column ``like``: a naive time is UTC
    against a tz-aware column, and an aware time becomes naive UTC against a naive one."""
    stamp = pd.Timestamp(when)
    tz = getattr(like.dtype, "tz", None)
    if tz is not None and stamp.tzinfo is None:
        return stamp.tz_localize("UTC").tz_convert(tz)
    if tz is None and stamp.tzinfo is not None:
        return stamp.tz_convert("UTC").tz_localize(None)
    return stamp
