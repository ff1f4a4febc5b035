from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config.plan import DataSpec
from engine.errors import DataError
from engine.stages import data

ORDERS = pd.DataFrame({
    "order_id": [1, 2, 3],
    "customer_id": [10, 10, 11],
    "ordered_at": ["2026-09-01 10:00", "2026-09-15", "2026-09-20T08:30:00"],
    "amount": [9.5, 20.0, 3.25],
})


def config(**sources: dict) -> DataSpec:
    return DataSpec.from_config({"sources": sources})


def test_csv_parquet_and_a_real_sqlite_file_load_alike(tmp_path: Path) -> None:
    ORDERS.to_csv(tmp_path / "orders.csv", index=False)
    ORDERS.to_parquet(tmp_path / "orders.parquet", index=False)
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        ORDERS.to_sql("orders", conn, index=False)
    conn.close()
    common = {"key": "order_id", "timestamp": "ordered_at"}
    tables = data.load(config(
        from_csv={"type": "csv", "path": "orders.csv", **common},
        from_parquet={"type": "parquet", "path": "orders.parquet", **common},
        from_sql={"type": "sql", "url": "sqlite:///shop.db", "query": "SELECT * FROM orders", **common},
    ), tmp_path)
    frames = [tables[name].frame for name in ("from_csv", "from_parquet", "from_sql")]
    for frame in frames:
        assert pd.api.types.is_datetime64_any_dtype(frame["ordered_at"])
        assert frame["amount"].tolist() == [9.5, 20.0, 3.25]
    assert frames[0]["ordered_at"].tolist() == frames[2]["ordered_at"].tolist()
    # One content, one fingerprint, whatever the file format.
    assert len({tables[n].fingerprint for n in tables}) == 1
    record = tables["from_sql"].record()
    assert record["rows"] == 3 and record["fingerprint"].startswith("sha256:")


def test_load_args_reach_pandas(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("id;value\n1;2,5\n")
    tables = data.load(config(t={"type": "csv", "path": "semi.csv", "key": "id",
                                 "load_args": {"sep": ";", "decimal": ","}}), tmp_path)
    assert tables["t"].frame["value"].tolist() == [2.5]


def test_the_fingerprint_changes_with_any_value() -> None:
    changed = ORDERS.copy()
    changed.loc[2, "amount"] = 3.26
    assert data.fingerprint(ORDERS) != data.fingerprint(changed)
    assert data.fingerprint(ORDERS) == data.fingerprint(ORDERS.copy())


def test_a_missing_file_is_a_data_error_naming_the_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.sources\.orders .*file not found"):
        data.load(config(orders={"type": "parquet", "path": "nope.parquet", "key": "order_id"}), tmp_path)


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        data.load(config(c={"type": "sql", "url": "sqlite:///none.db", "query": "SELECT 1", "key": "x"}), tmp_path)
    assert not (tmp_path / "none.db").exists()


def test_a_bad_query_is_a_data_error(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        ORDERS.to_sql("orders", conn, index=False)
    conn.close()
    with pytest.raises(DataError, match="cannot read it: .*no such table"):
        data.load(config(c={"type": "sql", "url": "sqlite:///shop.db", "query": "SELECT * FROM nope",
                            "key": "order_id"}), tmp_path)


def test_a_declared_key_that_is_absent_lists_the_columns(tmp_path: Path) -> None:
    ORDERS.to_csv(tmp_path / "orders.csv", index=False)
    with pytest.raises(DataError, match="key column 'id' not found; columns are: order_id, customer_id"):
        data.load(config(o={"type": "csv", "path": "orders.csv", "key": "id"}), tmp_path)


def test_a_timestamp_column_that_holds_no_dates(tmp_path: Path) -> None:
    ORDERS.assign(ordered_at=["soon", "later", "never"]).to_csv(tmp_path / "orders.csv", index=False)
    with pytest.raises(DataError, match="timestamp column 'ordered_at' must hold datetimes"):
        data.load(config(o={"type": "csv", "path": "orders.csv", "key": "order_id", "timestamp": "ordered_at"}),
                  tmp_path)


def test_a_corrupt_parquet_file(tmp_path: Path) -> None:
    (tmp_path / "orders.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not Parquet: it holds text, as a CSV file does"):
        data.load(config(o={"type": "parquet", "path": "orders.parquet", "key": "order_id"}), tmp_path)


def test_demo_sources_generate_in_memory(tmp_path: Path) -> None:
    generate = {"customers": 200, "seed": 3}
    tables = data.load(config(
        customers={"type": "demo", "table": "customers", "generate": generate, "key": "customer_id"},
        orders={"type": "demo", "table": "orders", "generate": generate, "key": "order_id",
                "timestamp": "ordered_at"},
    ), tmp_path)
    assert len(tables["customers"].frame) == 200
    assert set(tables["orders"].frame["customer_id"]) <= set(tables["customers"].frame["customer_id"])
    assert not any(tmp_path.iterdir())


def test_prepare_writes_the_demo_files_once(tmp_path: Path) -> None:
    cfg = {"dir": "data/demo", "generate": {"customers": 300, "seed": 1}, "sources": {}}
    assert data.prepare(DataSpec.from_config(cfg), tmp_path) is True
    stamp = (tmp_path / "data/demo/orders.parquet").stat().st_mtime_ns
    assert data.prepare(DataSpec.from_config(cfg), tmp_path) is False
    assert (tmp_path / "data/demo/orders.parquet").stat().st_mtime_ns == stamp
    cfg["generate"]["customers"] = 400  # other settings: made again
    assert data.prepare(DataSpec.from_config(cfg), tmp_path) is True


def test_a_numeric_timestamp_column_is_refused_not_read_as_1970(tmp_path: Path) -> None:
    ORDERS.to_parquet(tmp_path / "orders.parquet", index=False)
    with pytest.raises(DataError, match="timestamp column 'customer_id' must hold datetimes or date text, got int64"):
        data.load(config(o={"type": "parquet", "path": "orders.parquet", "key": "order_id",
                            "timestamp": "customer_id"}), tmp_path)


def test_unparseable_timestamps_are_named(tmp_path: Path) -> None:
    ORDERS.assign(ordered_at=["2026-09-01", "garbage", "2026-09-03"]).to_csv(tmp_path / "o.csv", index=False)
    with pytest.raises(DataError, match=r"got 1 values that are not, such as \['garbage'\]"):
        data.load(config(o={"type": "csv", "path": "o.csv", "key": "order_id", "timestamp": "ordered_at"}),
                  tmp_path)


@pytest.mark.parametrize("source, load_args, kind", [
    ({"type": "csv", "path": "orders.csv"}, {"chunksize": 2}, "TextFileReader"),
    ({"type": "csv", "path": "orders.csv"}, {"iterator": True}, "TextFileReader"),
    ({"type": "sql", "url": "sqlite:///shop.db", "query": "SELECT * FROM orders"}, {"chunksize": 2}, "generator"),
])
def test_load_args_that_make_pandas_return_pieces_are_refused(tmp_path: Path, source: dict, load_args: dict,
                                                              kind: str) -> None:
    from engine.config.validation import validate
    from engine.errors import ConfigError
    from tests.conftest import compose_config

    ORDERS.to_csv(tmp_path / "orders.csv", index=False)
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        ORDERS.to_sql("orders", conn, index=False)
    conn.close()
    spec = {**source, "key": "order_id", "load_args": load_args}
    # The source code refuses what the reader returns, whatever the argument ...
    with pytest.raises(DataError, match=rf"^data error at data.sources.orders \(.*\): the reader returned a {kind}, "
                                        r"expected one DataFrame; check data.sources.orders.load_args"):
        data.load(config(orders=spec), tmp_path)
    # ... and mlops check refuses the known arguments before any data is read.
    cfg = compose_config()
    cfg["data"]["sources"]["customers"]["load_args"] = load_args
    (name,) = load_args
    with pytest.raises(ConfigError, match=rf"^config error at data.sources.customers.load_args.{name}: must be absent"):
        validate(cfg)


# ------------------------------------------------------------------ typed columns (data.sources.<name>.columns)

TYPED = {"tenure": "int", "charges": {"type": "float", "nullable": True}, "plan": "category", "active": "bool",
         "signed": "datetime", "note": {"type": "string", "nullable": True}}
CLEAN = pd.DataFrame({
    "id": [1, 2, 3],
    "tenure": [3, 4, 5],
    "charges": [10.5, None, 7.0],
    "plan": ["a", "b", "a"],
    "active": [True, False, True],
    "signed": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-05"]),
    "note": ["x", None, "z"],
})


def typed(**changes: object) -> dict:
    return {"key": "id", "columns": TYPED, **changes}


def write_all(frame: pd.DataFrame, tmp_path: Path) -> dict[str, dict]:
    """The frame as a CSV file, a Parquet file and an SQLite table; their source entries."""
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    with sqlite3.connect(tmp_path / "t.db") as conn:
        frame.to_sql("t", conn, index=False)
    conn.close()
    return {"csv": {"type": "csv", "path": "t.csv"}, "parquet": {"type": "parquet", "path": "t.parquet"},
            "sql": {"type": "sql", "url": "sqlite:///t.db", "query": "SELECT * FROM t"}}


def test_declared_types_give_one_frame_and_one_fingerprint_whatever_the_reader(tmp_path: Path) -> None:
    sources = write_all(CLEAN, tmp_path)
    tables = data.load(config(**{name: {**where, **typed()} for name, where in sources.items()}), tmp_path)
    frames = {name: table.frame for name, table in tables.items()}
    for frame in frames.values():
        assert str(frame["tenure"].dtype) == "int64" and str(frame["charges"].dtype) == "float64"
        assert isinstance(frame["plan"].dtype, pd.CategoricalDtype) and frame["active"].dtype == bool
        assert pd.api.types.is_datetime64_any_dtype(frame["signed"]) and isinstance(frame["note"].dtype, pd.StringDtype)
    # SQLite stores booleans as 0/1 and datetimes as text: the declaration makes them alike.
    assert len({table.fingerprint for table in tables.values()}) == 1
    schema = tables["sql"].record()["schema"]
    assert schema["active"] == {"type": "bool", "nullable": False, "declared": True}
    assert schema["id"] == {"type": "int", "nullable": True, "declared": False}


@pytest.mark.parametrize("reader", ["csv", "parquet", "sql"])
def test_values_that_are_not_of_the_declared_type_are_counted_and_shown_with_their_rows(tmp_path: Path,
                                                                                        reader: str) -> None:
    bad = CLEAN.assign(tenure=["three", "4", "5.5"])  # text in every format: SQLite and Parquet keep it so
    source = {**write_all(bad, tmp_path)[reader], **typed()}
    where = {"csv": r"'three' \(line 2\), '5\.5' \(line 4\)"}.get(reader, r"'three' \(row 1\), '5\.5' \(row 3\)")
    with pytest.raises(DataError, match=rf"^data error at data\.sources\.t\.columns\.tenure \(.*\): expected int, "
                                        rf"got 2 values that are not: {where}$"):
        data.load(config(t=source), tmp_path)


def test_a_declared_column_that_may_not_miss_a_value_names_where_it_does(tmp_path: Path) -> None:
    CLEAN.assign(plan=["a", None, None]).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"columns\.plan .*declared category, not nullable, got 2 missing values at "
                                        r"lines 3, 4; expected a value on every row, or declare it \{type: category, "
                                        r"nullable: true\}"):
        data.load(config(t={"type": "csv", "path": "t.csv", **typed()}), tmp_path)


def test_a_nullable_int_keeps_its_integers_and_its_gaps(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,big\n1,9007199254740993\n2,\n3, 7 \n")
    frame = data.load(config(t={"type": "csv", "path": "t.csv", "key": "id",
                                "columns": {"big": {"type": "int", "nullable": True}}}), tmp_path)["t"].frame
    assert str(frame["big"].dtype) == "Int64"
    assert frame["big"].tolist()[0] == 9007199254740993 and pd.isna(frame["big"][1]) and frame["big"][2] == 7


def test_blank_text_in_a_declared_number_is_a_missing_value(tmp_path: Path) -> None:
    # The classic export: a total that is a space for new customers.
    (tmp_path / "t.csv").write_text("id,total\n1,10.5\n2, \n3,1,234.5\n".replace("1,234.5", '"1,234.5"'))
    frame = data.load(config(t={"type": "csv", "path": "t.csv", "key": "id", "load_args": {"thousands": ","},
                                "columns": {"total": {"type": "float", "nullable": True}}}), tmp_path)["t"].frame
    assert frame["total"].tolist()[0] == 10.5 and pd.isna(frame["total"][1]) and frame["total"][2] == 1234.5


@pytest.mark.parametrize("text, ok", [("yes", True), ("N", True), ("1", True), ("maybe", False)])
def test_bools_read_the_usual_words(tmp_path: Path, text: str, ok: bool) -> None:
    (tmp_path / "t.csv").write_text(f"id,flag\n1,true\n2,{text}\n")
    source = config(t={"type": "csv", "path": "t.csv", "key": "id", "columns": {"flag": "bool"}})
    if ok:
        assert data.load(source, tmp_path)["t"].frame["flag"].dtype == bool
    else:
        with pytest.raises(DataError, match=r"expected bool, got 1 value that is not: 'maybe' \(line 3\)"):
            data.load(source, tmp_path)


def test_a_datetime_format_is_strict_and_without_one_the_usual_forms_parse(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,at\n1,2026-09-01 10:00\n2,2026-09-15\n3,2026-09-20T08:30:00\n")
    frame = data.load(config(t={"type": "csv", "path": "t.csv", "key": "id", "columns": {"at": "datetime"}}),
                      tmp_path)["t"].frame
    assert frame["at"].tolist() == [pd.Timestamp("2026-09-01 10:00"), pd.Timestamp("2026-09-15"),
                                  pd.Timestamp("2026-09-20 08:30")]
    with pytest.raises(DataError, match=r"expected datetime in the format %Y-%m-%d %H:%M, got 2 values that are "
                                        r"not: '2026-09-15' \(line 3\), '2026-09-20T08:30:00' \(line 4\)"):
        data.load(config(t={"type": "csv", "path": "t.csv", "key": "id",
                            "columns": {"at": {"type": "datetime", "format": "%Y-%m-%d %H:%M"}}}), tmp_path)


def test_a_declared_column_that_is_not_there_is_named(tmp_path: Path) -> None:
    CLEAN.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"columns\.tenur \(.*\): declared column 'tenur' is not in the data; "
                                        r"columns are: id, tenure"):
        data.load(config(t={"type": "csv", "path": "t.csv", "key": "id", "columns": {"tenur": "int"}}), tmp_path)


def test_infinite_numbers_are_refused_or_read_as_missing_in_every_float_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,a,b\n1,1.5,inf\n2,-inf,2\n3,1e999,3\n")
    with pytest.raises(DataError, match=r"infinite or out-of-float64-range values in 'a' \(2, first at line 3\), "
                                        r"'b' \(1, first at line 2\)"):
        data.load(config(t={"type": "csv", "path": "t.csv", "key": "id"}), tmp_path)
    frame = data.load(config(t={"type": "csv", "path": "t.csv", "key": "id", "infinite": "missing"}),
                      tmp_path)["t"].frame
    assert frame["a"].isna().tolist() == [False, True, True] and frame["b"].isna().tolist() == [True, False, False]


def test_a_source_without_a_key_is_numbered_from_1(tmp_path: Path) -> None:
    CLEAN.to_csv(tmp_path / "t.csv", index=False)
    table = data.load(config(t={"type": "csv", "path": "t.csv", "key": None}), tmp_path)["t"]
    assert table.frame.columns[0] == "row_number" and table.frame["row_number"].tolist() == [1, 2, 3]
    assert table.record()["key"] == "row_number" and table.source.key_column == "row_number"
    CLEAN.rename(columns={"id": "row_number"}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="the data has one; expected key: row_number"):
        data.load(config(t={"type": "csv", "path": "t.csv", "key": None}), tmp_path)


def test_a_text_column_of_numbers_but_for_a_few_values_is_a_warning(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(50))
    (tmp_path / "t.csv").write_text(f"id,total\n{rows}50, \n51,n/a?\n")
    with caplog.at_level("WARNING"):
        frame = data.load(config(t={"type": "csv", "path": "t.csv", "key": "id"}), tmp_path)["t"].frame
    assert isinstance(frame["total"].dtype, pd.StringDtype)  # inferred as today
    assert "column 'total' holds numbers but is read as text because 2 value(s) are not numbers: ' ' (line 52), " \
           "'n/a?' (line 53)" in caplog.text


def test_the_fingerprint_does_not_depend_on_how_the_text_is_chunked() -> None:
    import pyarrow as pa

    words = ["alpha", None, "", "beta", "gamma"]
    one = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(words)])))
    two = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(words[:2]), pa.array(words[2:])])))
    three = pd.Series(words, dtype=pd.StringDtype("python"))
    prints = {data.fingerprint(pd.DataFrame({"w": s.astype("str")})) for s in (one, two, three)}
    assert len(prints) == 1
    # ... and the text, the missing values and the order all count.
    for other in (["alpha", None, "", "beta", "gammb"], ["alpha", "", None, "beta", "gamma"],
                  ["alpha", None, "", "gamma", "beta"]):
        assert data.fingerprint(pd.DataFrame({"w": pd.Series(other, dtype="str")})) not in prints


def test_the_fingerprint_counts_missing_values_not_the_bits_they_hold() -> None:
    left = pd.DataFrame({"x": pd.array([1, None, 3], dtype="Int64"), "y": [1.0, np.nan, 3.0]})
    right = left.copy()
    right["y"] = np.array([1.0, -np.nan, 3.0])
    assert data.fingerprint(left) == data.fingerprint(right)
    assert data.fingerprint(left) != data.fingerprint(left.assign(x=pd.array([1, 0, 3], dtype="Int64")))
