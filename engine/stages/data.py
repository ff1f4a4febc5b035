"""Ingestion: ``conf/data/`` sources loaded into DataFrames, each with a fingerprint.

A source is a small frozen declaration whose fields are the YAML keys one to one; its
``load()`` returns a DataFrame. Types register themselves by name, so a new type is
one class with ``@register("name")``.

Every source goes through the same steps after it is read, so a CSV file, a Parquet
file and a SQL query are held to one standard:

1. the file is what its type says (sniffed from its first bytes), not empty, decodes
   in the source's ``encoding``, has one field per header column and no header name
   twice, and has at least one row;
2. declared ``columns`` get their type: values that do not parse stop the run with
   their count and a few of them with their line (CSV) or row numbers; a column not
   declared ``nullable`` may not miss a value. A CSV source hands its declared types to
   ``pandas.read_csv`` itself, so a clean file is parsed once, at the reader's speed;
   only a file that the reader refuses is read again as text to say what is wrong;
3. infinite and out-of-float64-range numbers stop the run (``infinite: error``) or
   become missing values (``infinite: missing``), in every float column;
4. a source without a key gets :data:`~engine.specs.ROW_NUMBER`.

Columns not declared are inferred by the reader, as pandas does; a text column that
holds numbers but for a few values is logged as a warning, since it would otherwise
reach the model as a category of every distinct number.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
import sqlite3
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from engine.config.features import ROW_NUMBER, ColumnSpec
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
        key: The column that identifies a row (an entity id or an event id); None: the
            engine adds :data:`~engine.specs.ROW_NUMBER`.
        timestamp: The event-time column, for event sources; parsed to datetimes.
        columns: Declared column types (parsed ``columns``); the others are inferred.
        infinite: ``error``: an infinite number stops the run; ``missing``: it is read
            as a missing value.
        load_args: Passed through to the pandas reader.
        description: For people; not used by the engine.
    """

    key: str | None = None
    timestamp: str | None = None
    columns: Mapping[str, ColumnSpec] = field(default_factory=dict)
    infinite: str = "error"
    load_args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    type_name: ClassVar[str] = ""

    def load(self) -> pd.DataFrame:
        """Read the whole source into a DataFrame."""
        raise NotImplementedError(f"source type {self.type_name!r} cannot load")

    def location(self) -> str:
        """Where the data lives, for messages and the run record."""
        return self.type_name

    def rows(self, positions: Any) -> str:
        """Where rows are, for messages: ``row 5`` or ``rows 5, 9`` (from 1, in read order).

        Args:
            positions: The rows' positions in the loaded frame, from 0.
        """
        numbers = [int(p) + 1 for p in positions]
        return f"row{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"

    @property
    def key_column(self) -> str:
        """The column that identifies a row: the declared key, or :data:`~engine.specs.ROW_NUMBER`."""
        return self.key or ROW_NUMBER


@register("csv")
@dataclass(frozen=True)
class CsvSource(Source):
    """A CSV file, read with ``pandas.read_csv``, declared columns typed by the reader.

    Args:
        path: The file (a ``.gz``, ``.zip``, ... name is decompressed by pandas).
        encoding: The file's text encoding (a Python codec name).
    """

    path: str = ""
    encoding: str = "utf-8"

    def load(self) -> pd.DataFrame:
        args = _reader_args(self.load_args, self.columns)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format": checked after
                return pd.read_csv(self.path, encoding=self.encoding, **args)
        except (ValueError, TypeError) as exc:
            if not self.columns or isinstance(exc, pd.errors.ParserError | pd.errors.EmptyDataError | UnicodeError):
                raise
        # A declared column holds a value the reader could not take: read the declared
        # columns as text, and let the type checks say which values and where.
        args = dict(self.load_args)
        args["dtype"] = _with_defaults(args.get("dtype"), dict.fromkeys(self.columns, "str"))
        return pd.read_csv(self.path, encoding=self.encoding, **args)

    def location(self) -> str:
        return self.path

    def rows(self, positions: Any) -> str:
        first = _first_line_of_rows(self.load_args)
        if first is None:
            return super().rows(positions)
        numbers = [int(p) + first for p in positions]
        return f"line{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def _first_line_of_rows(load_args: Mapping[str, Any]) -> int | None:
    """The file line of the first row: 2 below a header line; None when ``load_args``
    (comments, skipped rows by list, ...) make the line of a row unknowable from its position."""
    if any(k in load_args for k in ("comment", "skipfooter", "index_col", "names")):
        return None
    skip = load_args.get("skiprows", 0) or 0
    header = load_args.get("header", "infer")
    if not isinstance(skip, int) or isinstance(skip, bool):
        return None
    if header is None:
        return 1 + skip
    if header == "infer":
        return 2 + skip
    return header + 2 + skip if isinstance(header, int) and not isinstance(header, bool) else None


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
            "key": self.source.key_column,
            "schema": schema(self.frame, self.source.columns),
            "fingerprint": self.fingerprint,
        }


def type_of(dtype: Any) -> str:
    """The column type (``int``, ``float``, ``bool``, ``datetime``, ``category``, ``str``) of a dtype.

    Text, and anything else pandas holds as objects, is ``str``: the model encodes it as
    categories, as it does text.
    """
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    return "str"


def schema(frame: pd.DataFrame, declared: Mapping[str, ColumnSpec] | None = None) -> dict[str, dict[str, Any]]:
    """Each column's type as the run records it: declared, or inferred from the data.

    A declared column records its declaration (``nullable`` as declared); an inferred
    one its type, ``nullable: true`` (nothing was promised) and ``declared: false``.
    """
    declared = declared or {}
    out: dict[str, dict[str, Any]] = {}
    for column, dtype in frame.dtypes.items():
        spec = declared.get(str(column))
        out[str(column)] = ({**spec.to_json(), "declared": True} if spec is not None
                            else {"type": type_of(dtype), "nullable": True, "declared": False})
    return out


def fingerprint(frame: pd.DataFrame) -> str:
    """A sha256 of a frame's content: column names, dtypes and every value, in order.

    Each column is hashed from its values' bytes (text: every value's length and its
    UTF-8 bytes; missing values as a bit mask), never row by row in Python, so the same
    content gives the same fingerprint whichever reader (CSV, Parquet, SQL) produced it.
    """
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    for position in range(frame.shape[1]):
        digest.update(_column_digest(frame.iloc[:, position]))
    return "sha256:" + digest.hexdigest()


def _column_digest(values: pd.Series) -> bytes:
    digest = hashlib.sha256()
    missing = values.isna().to_numpy(dtype=bool)
    digest.update(np.packbits(missing).tobytes())
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        digest.update(_column_digest(pd.Series(dtype.categories)))
        digest.update(values.cat.codes.to_numpy(dtype="int64").tobytes())
    elif pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        digest.update(values.to_numpy().view("int64").tobytes())
    elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        # A missing value's bits are whatever they are (NaN payloads, masked slots): the
        # mask above says where they are, and they are hashed as zeros.
        numpy_dtype = getattr(dtype, "numpy_dtype", dtype)
        filled = values.to_numpy(dtype=numpy_dtype, na_value=0) if missing.any() else values.to_numpy(numpy_dtype)
        digest.update(np.ascontiguousarray(filled).tobytes())
    elif isinstance(dtype, pd.StringDtype):
        _text_digest(digest, values)
    else:  # objects of mixed kinds (a SQL column of numbers and text): pandas' own row hashes
        digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return digest.digest()


def _text_digest(digest: Any, values: pd.Series) -> None:
    """Feed the lengths and the UTF-8 bytes of a text column, chunk by chunk of its Arrow
    array: two streams, so the chunking (which differs between readers) does not count."""
    import pyarrow as pa

    arrow = values.array.__arrow_array__() if hasattr(values.array, "__arrow_array__") else \
        pa.array(values.to_numpy(dtype=object, na_value=None), type=pa.large_string())
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    lengths, data = hashlib.sha256(), hashlib.sha256()
    for chunk in chunks:
        chunk = chunk.cast(pa.large_string())
        _, offsets, content = chunk.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64)[chunk.offset:chunk.offset + len(chunk) + 1]
        lengths.update(np.diff(bounds).tobytes())
        if content is not None and len(bounds):
            data.update(memoryview(content)[bounds[0]:bounds[-1]])
    digest.update(lengths.digest())
    digest.update(data.digest())


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
    """Load every source of ``data.sources``, type and check its columns, fingerprint it.

    Args:
        spec: The ``data`` group (``plan.data``).
        root: The project folder, which relative paths are relative to.

    Raises:
        DataError: A file is missing, unreadable, empty, not the format its type says,
            not in its encoding, ragged, has a column name twice or no rows; a declared
            column is absent, holds values that are not of its type or misses values it
            may not miss; a number is infinite (``infinite: error``); a key or timestamp
            column is absent or not parseable. One line, naming the source and where.
    """
    tables: dict[str, Table] = {}
    for name, declared in spec.sources.items():
        source = build_source(declared, root)
        where = f"data.sources.{name} ({source.location()})"
        frame = _read(source, name, where)
        frame = _typed(frame, source, name)
        frame = _check_columns(frame, source, where)
        tables[name] = Table(name, frame, source, fingerprint(frame))
        log.info("loaded %s: %d rows x %d columns", name, len(frame), frame.shape[1])
    return tables


# ------------------------------------------------------------------ reading, and files that cannot be read


def _read(source: Source, name: str, where: str) -> pd.DataFrame:
    """The source's frame, or a DataError saying what is wrong with the file and where."""
    _check_file(source, name, where)
    try:
        frame = source.load()
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"data error at {where}: file not found: {exc.filename or exc}") from exc
    except Exception as exc:  # pandas/pyarrow/sqlite raise many types for bad files
        raise DataError(f"data error at {where}: {_explain(source, name, exc)}") from exc
    if not isinstance(frame, pd.DataFrame):  # a load_arg the schema does not know changed the result
        close = getattr(frame, "close", None)
        if callable(close):
            close()  # a TextFileReader holds the file open
        raise DataError(f"data error at {where}: the reader returned a {type(frame).__name__}, expected one "
                        f"DataFrame; check data.sources.{name}.load_args ({', '.join(source.load_args) or 'none'})")
    _check_names(frame, source, where)
    if isinstance(source, CsvSource):
        _check_fields(frame, source, where)
    if frame.empty:
        what = {"csv": "the file has a header but no rows", "sql": "the query returned no rows"}.get(
            source.type_name, "it has no rows")
        raise DataError(f"data error at {where}: {what} (columns: {_names(frame.columns)}); expected at least one row")
    return frame


#: How files of other kinds start (their "magic" bytes), to say what a file is when it
#: is not what its source type says.
_MAGIC = (
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one)"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"ARROW1", "an Arrow (Feather) file"),
    (b"%PDF", "a PDF document"),
)
#: File name endings pandas decompresses by itself (``compression="infer"``).
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz")


def _sniff(head: bytes) -> str:
    """What a file is, from its first bytes: one of :data:`_MAGIC`'s names, or text."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):  # NULs: binary, unless UTF-16
        return "binary data"
    return "text"


def _file_of(source: Source) -> Path | None:
    """The single file a source reads, if it reads one."""
    if isinstance(source, CsvSource | ParquetSource):
        return Path(source.path)
    if isinstance(source, SqlSource) and source.url.startswith("sqlite:///"):
        return Path(source.url.removeprefix("sqlite:///"))
    return None


def _check_file(source: Source, name: str, where: str) -> None:
    """An empty file, or one that is not what the source's type says, is refused before it is parsed.

    Sixteen bytes are read: a Parquet file, a workbook or a compressed file read as CSV
    would otherwise give a decoding error (or, in a one-byte encoding, nonsense columns).
    """
    path = _file_of(source)
    if path is None or not path.is_file():
        return  # missing: the reader says "file not found"; a folder: a Parquet dataset
    expected = {"csv": "a header line and rows", "parquet": "a Parquet file",
                "sql": "an SQLite database"}[source.type_name]
    if path.stat().st_size == 0:
        raise DataError(f"data error at {where}: the file is empty (0 bytes); expected {expected}")
    with path.open("rb") as handle:
        found = _sniff(handle.read(16))
    if isinstance(source, CsvSource):
        compressed = found.endswith("compressed file") or found.startswith("a zip archive")
        if found == "text" or (compressed and (path.name.endswith(_COMPRESSED)
                                                         or source.load_args.get("compression"))):
            return
        hint = {"a Parquet file": "type: parquet", "an SQLite database": "type: sql with a sqlite:/// url"}.get(
            found, "a CSV file, or a name pandas decompresses (.gz, .zip, ...)" if compressed else "a CSV file")
        raise DataError(f"data error at {where}: the file is {found.split(' (')[0]}, not CSV as type: csv says; "
                        f"expected {hint}")
    held = "it holds text, as a CSV file does" if found == "text" else f"it is {found.split(' (')[0]}"
    if isinstance(source, ParquetSource) and found != "a Parquet file":
        raise DataError(f"data error at {where}: the file is not Parquet: {held}; expected a Parquet file, or "
                        f"type: csv for a CSV file")
    if isinstance(source, SqlSource) and found != "an SQLite database":
        raise DataError(f"data error at {where}: the file is not an SQLite database: {held}; expected {expected}")


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _explain(source: Source, name: str, exc: Exception) -> str:
    """What a reader's exception means for the user, as the second half of one line."""
    if isinstance(exc, UnicodeError):
        return _decoding_problem(source, name, exc)
    if isinstance(exc, pd.errors.EmptyDataError):
        return "the file holds no header line (it is blank); expected a header line and rows"
    text = _first_line(exc)
    if isinstance(exc, pd.errors.ParserError):
        match = _FIELDS.search(text)
        if match:
            expected, line, saw = match.groups()
            return (f"line {line} has {saw} fields, the header has {expected}; expected one field per column "
                    "(quote a value that holds the separator)")
        return f"cannot parse it: {text.removeprefix('Error tokenizing data. C error: ')}"
    return f"cannot read it: {text}"


def _decoding_problem(source: Source, name: str, exc: UnicodeError) -> str:
    """Where the first byte that does not decode is: its value and line, found by decoding
    the file again in blocks (only after the reader failed)."""
    encoding = getattr(source, "encoding", "utf-8")
    fix = f"set data.sources.{name}.encoding to the file's encoding (latin-1, cp1252, ...)"
    path = _file_of(source)
    if path is None or not path.is_file() or path.name.endswith(_COMPRESSED):
        return f"the file is not valid {encoding} ({_first_line(exc)}); {fix}"
    decoder = codecs.getincrementaldecoder(encoding)()
    line, offset = 1, 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                start = max(err.start, 0)
                bad = err.object[start:start + 1]
                line += bytes(err.object[:start]).count(b"\n")
                return (f"byte 0x{bytes(bad).hex()} at line {line} (byte {offset + start}) is not valid {encoding}; "
                        f"{fix}")
            line += block.count(b"\n")
            offset += len(block)
    return f"the file is not valid {encoding} ({_first_line(exc)}); {fix}"


def _check_names(frame: pd.DataFrame, source: Source, where: str) -> None:
    """No column name twice: pandas renames a CSV header's second ``a`` to ``a.1``, and a
    query may select two columns of one name; either way a rule or feature would read one
    of them without saying which."""
    names = [str(c) for c in frame.columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if not twice and isinstance(source, CsvSource) and _mangled(names):
        twice = _csv_header_repeats(source)
    if twice:
        place = "the header" if isinstance(source, CsvSource) else "its columns"
        raise DataError(f"data error at {where}: column name{'s' if len(twice) > 1 else ''} "
                        f"{', '.join(map(repr, twice))} appear{'' if len(twice) > 1 else 's'} more than once in "
                        f"{place}; expected each name once: rename the repeats")


def _mangled(names: list[str]) -> bool:
    """Whether a name looks like pandas' rename of a repeat (``a.1`` beside ``a``)."""
    present = set(names)
    return any(m and m.group(1) in present for m in map(re.compile(r"^(.*)\.\d+$").match, names))


def _csv_header_repeats(source: CsvSource) -> list[str]:
    """The names the CSV header line holds more than once, read raw (one line)."""
    args = {k: v for k, v in source.load_args.items() if k in ("sep", "delimiter", "quotechar", "skiprows")}
    if source.load_args.get("header", "infer") not in ("infer", 0):
        return []
    header = pd.read_csv(source.path, encoding=source.encoding, header=None, nrows=1, dtype="str", **args)
    names = [str(v) for v in header.iloc[0].tolist()]
    return sorted({n for n in names if names.count(n) > 1})


#: load_args that leave one CSV line one row, with the fields the header has: the
#: field-count check below reads the file the same way with pyarrow.
_PLAIN_CSV_ARGS = frozenset({"sep", "delimiter", "quotechar", "dtype", "parse_dates", "date_format", "na_values",
                             "keep_default_na", "true_values", "false_values", "decimal", "thousands",
                             "low_memory", "usecols", "na_filter"})


def _check_fields(frame: pd.DataFrame, source: CsvSource, where: str) -> None:
    """Every CSV line has as many fields as the header.

    pandas refuses a line with more fields, but fills a short line's last columns with
    missing values, and takes a first column as the index when the header is one name
    short. Both leave a trace (missing values in the last column, an index that is not
    0, 1, 2, ...), and only then is the file read again with pyarrow, whose reader counts
    fields, to find the short lines.
    """
    if not set(source.load_args) <= _PLAIN_CSV_ARGS:
        return
    sep = source.load_args.get("sep", source.load_args.get("delimiter", ","))
    if not isinstance(sep, str) or len(sep) != 1:
        return  # a regular expression or sniffed separator: pyarrow cannot read it alike
    default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    if default_index and "usecols" not in source.load_args and (
            frame.empty or not frame.iloc[:, -1].isna().any()):
        return
    import pyarrow as pa
    from pyarrow import csv

    short: list[tuple[int | None, int, int]] = []

    def keep(row: Any) -> str:
        short.append((row.number, row.actual_columns, row.expected_columns))
        return "skip"

    first = str(frame.columns[0])  # one column converted, as text: the fields are counted all the same
    # Threads first (a short line is rare); one thread again only to number the lines found.
    for threads in (True, False):
        short.clear()
        try:
            csv.read_csv(source.path, read_options=csv.ReadOptions(encoding=source.encoding, use_threads=threads),
                         parse_options=csv.ParseOptions(delimiter=sep, newlines_in_values=True,
                                                        quote_char=source.load_args.get("quotechar", '"'),
                                                        invalid_row_handler=keep),
                         convert_options=csv.ConvertOptions(include_columns=[first],
                                                            column_types={first: pa.string()}))
        except (pa.ArrowInvalid, OSError):
            return  # pandas read it: a difference of readers is not the user's problem
        if not short or all(number is not None for number, _, _ in short):
            break
    if short:
        shown = ", ".join(f"line {n} has {actual}" if n is not None else f"a line has {actual}"
                          for n, actual, _ in short[:5])
        raise DataError(f"data error at {where}: {len(short)} line{'s' if len(short) > 1 else ''} "
                        f"{'do' if len(short) > 1 else 'does'} not have the header's {short[0][2]} fields: {shown}; "
                        "expected one field per column")


# ------------------------------------------------------------------ declared column types


#: pandas dtypes ``read_csv`` is given for a declared type: (type, nullable) -> dtype. A
#: non-nullable int or bool gets numpy's dtype, so a missing value makes the reader fail
#: and the checks say where it is.
_READER_DTYPES = {("int", False): "int64", ("int", True): "Int64", ("float", False): "float64",
                  ("float", True): "float64", ("bool", False): "bool", ("bool", True): "boolean",
                  ("str", False): "str", ("str", True): "str", ("category", False): "category",
                  ("category", True): "category"}
#: Text read as true or false in a declared bool column (case and spaces ignored).
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def _reader_args(load_args: Mapping[str, Any], columns: Mapping[str, ColumnSpec]) -> dict[str, Any]:
    """``load_args`` plus the declared types, as ``read_csv`` takes them."""
    args = dict(load_args)
    if not columns:
        return args
    dtype = {c: _READER_DTYPES[(s.type, s.nullable)] for c, s in columns.items() if s.type != "datetime"}
    args["dtype"] = _with_defaults(args.get("dtype"), dtype)
    dates = [c for c, s in columns.items() if s.type == "datetime"]
    parse_dates = args.get("parse_dates")
    if dates and (parse_dates is None or isinstance(parse_dates, list)):
        args["parse_dates"] = [*(parse_dates or []), *dates]
        formats = {c: s.format for c, s in columns.items() if s.type == "datetime" and s.format}
        if formats and "date_format" not in args:
            args["date_format"] = formats
    return args


def _with_defaults(given: Any, declared: dict[str, Any]) -> Any:
    """The declared dtypes over ``load_args.dtype``: a mapping, or one dtype for every column."""
    if given is None:
        return declared
    if isinstance(given, Mapping):
        return {**given, **declared}
    from collections import defaultdict

    return defaultdict(lambda: given, declared)


def _typed(frame: pd.DataFrame, source: Source, name: str) -> pd.DataFrame:
    """The frame with its declared columns of their declared types, infinities handled.

    Raises:
        DataError: A declared column is absent, holds values that are not of its type,
            or misses values it may not miss; a float is infinite (``infinite: error``).
    """
    where = f"({source.location()})"
    absent = [c for c in source.columns if c not in frame.columns]
    if absent:
        raise DataError(f"data error at data.sources.{name}.columns.{absent[0]} {where}: declared column "
                        f"{absent[0]!r} is not in the data; columns are: {_names(frame.columns)}")
    changed: dict[str, pd.Series] = {}
    for column, spec in source.columns.items():
        values = frame[column]
        if not _has_type(values, spec):
            parsed, bad = _parse(values, spec, source.load_args)
            if bad.any():
                positions = np.flatnonzero(bad)
                shown = ", ".join(f"{_shown(values.iloc[p])} ({source.rows([p])})" for p in positions[:5])
                raise DataError(f"data error at data.sources.{name}.columns.{column} {where}: expected {spec.type}"
                                f"{f' in the format {spec.format}' if spec.format else ''}, got "
                                f"{len(positions)} value{'s' if len(positions) > 1 else ''} that "
                                f"{'are' if len(positions) > 1 else 'is'} not: {shown}")
            changed[column] = values = parsed
    if changed:
        frame = frame.copy(deep=False)
        for column, values in changed.items():
            frame[column] = values
    frame = _infinite(frame, source, name)
    for column, spec in source.columns.items():
        missing = frame[column].isna().to_numpy()
        if not spec.nullable and missing.any():
            positions = np.flatnonzero(missing)
            raise DataError(f"data error at data.sources.{name}.columns.{column} {where}: declared {spec.type}, not "
                            f"nullable, got {len(positions)} missing value{'s' if len(positions) > 1 else ''} at "
                            f"{source.rows(positions[:5])}{', ...' if len(positions) > 5 else ''}; expected a value "
                            f"on every row, or declare it {{type: {spec.type}, nullable: true}}")
    if not (source.columns and len(source.columns) == frame.shape[1]):
        _warn_numbers_as_text(frame, source, name)
    return frame


def _has_type(values: pd.Series, spec: ColumnSpec) -> bool:
    """Whether a column already holds the declared type's dtype (the reader gave it)."""
    dtype = values.dtype
    if spec.type == "datetime":
        return pd.api.types.is_datetime64_any_dtype(dtype)
    if spec.type == "category":
        return isinstance(dtype, pd.CategoricalDtype)
    if spec.type == "str":
        return isinstance(dtype, pd.StringDtype)
    return str(dtype) == _READER_DTYPES[(spec.type, spec.nullable)]


def _parse(values: pd.Series, spec: ColumnSpec, load_args: Mapping[str, Any]) -> tuple[pd.Series, np.ndarray]:
    """A column converted to the declared type, and where its values are not of that type.

    Vectorised: text is parsed with pandas' converters, never value by value in Python
    (only datetimes that the inferred format does not fit are parsed one by one, by
    pandas). Blank text is a missing value; the nullable check comes after.

    Returns:
        The converted column, and a boolean array: True where a present value is not of
        the type.
    """
    dtype, kind = values.dtype, spec.type
    if kind in ("str", "category"):
        text = values.astype("str") if not isinstance(dtype, pd.StringDtype) else values
        return (text.astype("category") if kind == "category" else text), np.zeros(len(values), dtype=bool)
    if pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype) and kind != "datetime"):
        return _from_numbers(values, spec)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return values, values.notna().to_numpy()  # a datetime read as a number, or the other way round
    text = values.astype("str").str.strip()
    present = text.notna() & (text != "")
    text = text.where(present)
    if kind == "datetime":
        parsed = _datetimes(text, spec.format)
    elif kind == "bool":
        true_values = (*_TRUE, *(str(v).lower() for v in load_args.get("true_values") or []))
        false_values = (*_FALSE, *(str(v).lower() for v in load_args.get("false_values") or []))
        lower = text.str.lower()
        parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        parsed[lower.isin(true_values).to_numpy()] = True
        parsed[lower.isin(false_values).to_numpy()] = False
    else:
        thousands, decimal = load_args.get("thousands"), load_args.get("decimal", ".")
        if thousands:
            text = text.str.replace(thousands, "", regex=False)
        if decimal != ".":
            text = text.str.replace(decimal, ".", regex=False)
        parsed = pd.to_numeric(text, errors="coerce", dtype_backend="numpy_nullable")
    bad = (present & parsed.isna()).to_numpy()
    if kind == "int":
        parsed, bad = _integral(parsed, bad)
    return _final(parsed, spec), bad


def _from_numbers(values: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, np.ndarray]:
    """A numeric or bool column (Parquet, SQL) as the declared int, float or bool."""
    present = values.notna().to_numpy()
    if spec.type == "float":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values, present  # true is not a number
        return values.astype("float64"), np.zeros(len(values), dtype=bool)
    if spec.type == "bool":
        if pd.api.types.is_bool_dtype(values.dtype):
            return _final(values.astype("boolean"), spec), np.zeros(len(values), dtype=bool)
        bad = present & ~values.isin([0, 1]).to_numpy()
        return _final(values.astype("Float64").where(~bad).astype("boolean"), spec), bad
    if pd.api.types.is_bool_dtype(values.dtype):
        return values, present
    parsed, bad = _integral(values.astype("Float64") if pd.api.types.is_float_dtype(values.dtype) else values,
                            np.zeros(len(values), dtype=bool))
    return _final(parsed, spec), bad


def _integral(numbers: pd.Series, bad: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    """Numbers as Int64, marking those that are not whole or outside int64 as bad."""
    if pd.api.types.is_integer_dtype(numbers.dtype):
        return numbers.astype("Int64"), bad
    as_float = numbers.astype("Float64")
    whole = (as_float % 1 == 0) & (as_float.abs() < 2.0 ** 63)
    bad = bad | (as_float.notna() & ~whole.fillna(False)).to_numpy()
    return as_float.where(whole.fillna(False)).round().astype("Int64"), bad


def _final(parsed: pd.Series, spec: ColumnSpec) -> pd.Series:
    """The dtype a declared column ends with: the reader's for the declaration (see
    :data:`_READER_DTYPES`), nullable ones kept while values are missing (the missing
    check then says where)."""
    if spec.type == "datetime":
        return parsed
    target = _READER_DTYPES[(spec.type, spec.nullable)]
    if parsed.isna().any() and target in ("int64", "bool"):
        return parsed
    return parsed.astype(target)


def _datetimes(text: pd.Series, format: str | None) -> pd.Series:  # noqa: A002 - the YAML key
    """Text as datetimes: in ``format`` when declared (strictly); else in the format pandas
    infers from the first value, and what that does not fit in any format pandas reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if format:
            return pd.to_datetime(text, format=format, errors="coerce")
        parsed = pd.to_datetime(text, errors="coerce")
        retry = parsed.isna() & text.notna()
        if retry.any():
            again = pd.to_datetime(text[retry], format="mixed", errors="coerce")
            if not pd.api.types.is_datetime64_any_dtype(again):  # offsets of several time zones
                again = pd.to_datetime(text[retry], format="mixed", errors="coerce", utc=True)
            if getattr(again.dtype, "tz", None) != getattr(parsed.dtype, "tz", None):
                again = again.dt.tz_convert(None) if getattr(again.dtype, "tz", None) else again
            parsed = parsed.copy()
            parsed[retry] = again.astype(parsed.dtype)
    return parsed


def _infinite(frame: pd.DataFrame, source: Source, name: str) -> pd.DataFrame:
    """Infinite and out-of-float64-range numbers (``1e999`` reads as infinite): refused,
    or missing values with ``infinite: missing``; a model cannot fit them either way."""
    found: dict[Any, np.ndarray] = {}
    for position, dtype in enumerate(frame.dtypes):
        if pd.api.types.is_float_dtype(dtype):
            values = frame.iloc[:, position].to_numpy(dtype="float64", na_value=np.nan)
            infinite = np.isinf(values)
            if infinite.any():
                found[frame.columns[position]] = infinite
    if not found:
        return frame
    if source.infinite == "missing":
        log.info("data.sources.%s: %s infinite value(s) read as missing (infinite: missing)", name,
                 ", ".join(f"{c} {int(m.sum())}" for c, m in found.items()))
        frame = frame.copy(deep=False)
        for column, infinite in found.items():
            frame[column] = frame[column].where(~infinite)
        return frame
    shown = ", ".join(f"{c!r} ({int(m.sum())}, first at {source.rows(np.flatnonzero(m)[:1])})"
                      for c, m in found.items())
    raise DataError(f"data error at data.sources.{name} ({source.location()}): infinite or out-of-float64-range "
                    f"values in {shown}; expected finite numbers, or set data.sources.{name}.infinite: missing to "
                    "read them as missing values")


#: A text column whose sample is at least this share numbers is checked whole.
_NUMERIC_SHARE = 0.9
_SAMPLE = 2000


def _warn_numbers_as_text(frame: pd.DataFrame, source: Source, name: str) -> None:
    """Warn about an inferred text column that holds numbers but for a few values.

    One stray value (a blank, ``n/a``, ``?``) makes pandas read a numeric column as text,
    and the model would one-hot encode every distinct number. A sample decides which
    columns are worth parsing whole, so a text column costs a few thousand values.
    """
    for column in frame.columns:
        values = frame[column]
        if column in source.columns or not (isinstance(values.dtype, pd.StringDtype) or values.dtype == object):
            continue
        sample = values.iloc[:_SAMPLE].dropna()
        if len(sample) < 10:
            continue
        if pd.to_numeric(sample.astype("str"), errors="coerce").notna().mean() < _NUMERIC_SHARE:
            continue
        present = values.notna()
        numbers = pd.to_numeric(values.astype("str"), errors="coerce")
        stray = (present & numbers.isna()).to_numpy()
        if stray.any() and stray.sum() <= (1 - _NUMERIC_SHARE) * present.sum():
            positions = np.flatnonzero(stray)
            shown = ", ".join(f"{_shown(values.iloc[p])} ({source.rows([p])})" for p in positions[:5])
            log.warning("data.sources.%s.columns.%s: column %r holds numbers but is read as text because %d value(s) "
                        "are not numbers: %s; declare it (%s: {type: float, nullable: true}) to read blanks as "
                        "missing and stop the run on other text", name, column, column, len(positions), shown,
                        column)


# ------------------------------------------------------------------ keys and timestamps


def _check_columns(frame: pd.DataFrame, source: Source, where: str) -> pd.DataFrame:
    columns = list(map(str, frame.columns))
    if source.key is None:
        if ROW_NUMBER in frame.columns:
            raise DataError(f"data error at {where}: the source declares no key, so the engine numbers its rows in "
                            f"a column {ROW_NUMBER!r}, but the data has one; expected key: {ROW_NUMBER} to use it, "
                            "or another name for it")
        # The row's number from 1, first: the key of a table that has none (a single CSV
        # export usually has none); predictions and examples name rows by it.
        frame = frame.copy(deep=False)
        frame.insert(0, ROW_NUMBER, np.arange(1, len(frame) + 1, dtype="int64"))
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


def _shown(value: Any) -> str:
    """A value as a message shows it: text quoted, numbers plain (not ``np.float64(2.5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _names(columns: Any) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


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
