from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from engine.errors import DataError
from engine.plan import DataSpec
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
    from engine.errors import ConfigError
    from engine.validation import validate
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
