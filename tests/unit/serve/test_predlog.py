"""The prediction log: a bounded queue, a background writer, partitioned Parquet read back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.serve import predlog
from engine.serve.predlog import PredictionLog


@dataclass
class FakeServed:
    version: int = 3
    threshold: float = 0.4

    def identity(self) -> dict[str, Any]:
        return {"name": "churn", "version": self.version, "alias": "champion", "run_id": "r" * 32,
                "sha256": "a" * 64}


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"plan": ["annual"] * n, "n_orders": np.arange(n, dtype=float) + 0.5},
                        index=pd.RangeIndex(start, start + n))


def append(log: PredictionLog, n: int, request: str = "req", served: FakeServed | None = None) -> bool:
    rows = frame(n)
    return log.append(served or FakeServed(), request, rows, list(range(100, 100 + n)), np.linspace(0, 1, n),
                      np.linspace(0, 1, n) >= 0.4, [[{"column": "plan", "flag": "unseen_category", "value": "x"}]]
                      + [[] for _ in range(n - 1)], [False] * n, None, 12.5)


def test_every_row_is_written_and_pandas_reads_the_partitioned_folder(tmp_path: Path) -> None:
    written: list[int] = []
    log = PredictionLog(tmp_path / "churn", flush_s=60, on_written=written.append)
    assert append(log, 3, "one") and append(log, 2, "two", FakeServed(version=4))
    log.close()
    files = sorted((tmp_path / "churn").glob("date=*/part-*.parquet"))
    assert len(files) == 1 and files[0].parent.name.startswith("date=20")
    assert pq.read_schema(files[0]).equals(predlog.schema(pa.struct([("plan", pa.string()), ("n_orders", pa.float64())])),
                          check_metadata=False)
    table = pd.read_parquet(tmp_path / "churn")
    assert len(table) == 5 and written == [5] and log.written_rows == 5
    assert table["request_id"].tolist() == ["one"] * 3 + ["two"] * 2
    assert table["model_version"].tolist() == [3, 3, 3, 4, 4]
    assert table["key"].tolist() == ["100", "101", "102", "100", "101"]
    assert table["inputs"].iloc[1] == {"plan": "annual", "n_orders": 1.5}
    assert table["in_domain"].tolist() == [False, True, True, False, True]
    assert list(table["domain_flags"].iloc[0]) == ["plan:unseen_category"]
    assert table["decision"].tolist() == [0, 1, 1, 0, 1] and table["latency_ms"].iloc[0] == 12.5
    assert str(table["received_at"].dtype).startswith("datetime64") and table["source"].unique().tolist() == ["request"]


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(tmp_path / "churn", max_queued_rows=5, flush_s=60, on_dropped=dropped.append)
    assert append(log, 3)
    assert not append(log, 3)  # 6 > 5 rows would wait
    assert append(log, 2)
    log.close()
    assert dropped == [3] and log.dropped_rows == 3 and log.describe()["dropped_rows"] == 3
    assert len(pd.read_parquet(tmp_path / "churn")) == 5


def test_rows_are_written_every_flush_interval_without_a_close(tmp_path: Path) -> None:
    import time

    log = PredictionLog(tmp_path / "churn", flush_s=0.2)
    append(log, 4)
    deadline = time.monotonic() + 20
    while log.written_rows < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.written_rows == 4 and len(pd.read_parquet(tmp_path / "churn")) == 4
    log.close()


def test_a_failed_write_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "churn"
    blocker.write_text("a file where the folder should be")
    log = PredictionLog(blocker, flush_s=60)
    append(log, 2)
    log.close()
    assert log.failed_rows == 2 and log.written_rows == 0 and log.queued_rows == 0


def test_duckdb_reads_the_partitioned_log_with_its_date_column(tmp_path: Path) -> None:
    import duckdb

    log = PredictionLog(tmp_path / "churn", flush_s=60)
    assert append(log, 4, "one") and append(log, 3, "two", FakeServed(version=4))
    log.close()
    (day,) = [p.name.removeprefix("date=") for p in (tmp_path / "churn").iterdir()]
    pattern = str(tmp_path / "churn" / "*" / "*.parquet")
    rows = duckdb.sql(f"SELECT model_version, count(*), sum(decision), min(date) FROM read_parquet('{pattern}', "
                      "hive_partitioning = true) GROUP BY 1 ORDER BY 1").fetchall()
    assert [(v, n, d) for v, n, d, _ in rows] == [(3, 4, 2), (4, 3, 2)]  # decisions: scores >= 0.4
    assert {str(date) for *_, date in rows} == {day}
    flags = duckdb.sql(f"SELECT domain_flags FROM read_parquet('{pattern}') WHERE len(domain_flags) > 0").fetchall()
    assert flags == [(["plan:unseen_category"],), (["plan:unseen_category"],)]
    orders = duckdb.sql(f"SELECT sum(inputs.n_orders) FROM read_parquet('{pattern}', union_by_name = true)").fetchall()
    assert orders == [(sum(np.arange(4) + 0.5) + sum(np.arange(3) + 0.5),)]


def test_inputs_are_typed_as_the_model_took_them_and_a_batch_spanning_versions_writes_a_file_each(
        tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "churn", flush_s=60)
    old = pd.DataFrame({"plan": np.array(["annual", np.nan, 'say "hi"\n'], dtype=object),
                        "n_orders": [1.0, np.nan, np.inf]}, index=pd.Index([0, 2, 5]))
    stored = pd.DataFrame({"plan": pd.Categorical(["weekly", None]), "n_orders": pd.array([3, None], dtype="Int64"),
                           "vip": [True, False]}, index=pd.Index([1, 3]))
    assert log.append(FakeServed(version=3), "a", old, [1, 2, 3], np.array([.1, .5, .9]), np.array([0, 1, 1]),
                      [[], [], []], [False] * 3, None, 1.0)
    assert log.append(FakeServed(version=4), "b", stored, ["k1", "k2"], np.array([.2, .7]), np.array([0, 1]),
                      [[], []], [True, True], "2026-11-01", 2.0,
                      [[{"rule": "known_plan", "column": "plan", "severity": "error"}], []])
    log.close()
    files = sorted((tmp_path / "churn").glob("date=*/part-*.parquet"))
    assert len(files) == 2  # one per version: their inputs differ
    first, second = (pq.read_table(f) for f in files)
    if first.column("model_version")[0].as_py() == 4:
        first, second = second, first
    assert first.schema.field("inputs").type == pa.struct([("plan", pa.string()), ("n_orders", pa.float64())])
    assert first.column("inputs").to_pylist() == [{"plan": "annual", "n_orders": 1.0},
                                                  {"plan": None, "n_orders": None},
                                                  {"plan": 'say "hi"\n', "n_orders": float("inf")}]
    assert first.column("row").to_pylist() == [0, 2, 5] and first.column("as_of").to_pylist() == [None] * 3
    assert second.schema.field("inputs").type == pa.struct([("plan", pa.string()), ("n_orders", pa.float64()),
                                                            ("vip", pa.string())])
    assert second.column("inputs").to_pylist() == [{"plan": "weekly", "n_orders": 3.0, "vip": "True"},
                                                   {"plan": None, "n_orders": None, "vip": "False"}]
    assert second.column("source").to_pylist() == ["feature_store"] * 2
    assert second.column("as_of").to_pylist() == ["2026-11-01"] * 2
    assert second.column("rule_flags").to_pylist() == [["known_plan:plan"], []]
    assert second.column("key").to_pylist() == ["k1", "k2"]
    unified = pa.unify_schemas([first.schema, second.schema])
    assert unified.field("inputs").type.get_field_index("vip") == 2


def test_many_small_requests_and_one_large_give_the_same_log_rows(tmp_path: Path) -> None:
    rows = frame(50)
    one, many = PredictionLog(tmp_path / "one", flush_s=60), PredictionLog(tmp_path / "many", flush_s=60)
    scores = np.linspace(0, 1, 50)
    one.append(FakeServed(), "r", rows, list(range(50)), scores, scores >= .4, [[]] * 50, [False] * 50, None, 1.0)
    for i in range(50):
        many.append(FakeServed(), "r", rows.iloc[[i]], [i], scores[[i]], scores[[i]] >= .4, [[]], [False], None, 1.0)
    one.close()
    many.close()
    a, b = (pd.read_parquet(tmp_path / name).drop(columns="received_at") for name in ("one", "many"))
    pd.testing.assert_frame_equal(a, b)
    assert a["inputs"].tolist() == [{"plan": "annual", "n_orders": i + 0.5} for i in range(50)]


def test_requests_joined_from_their_checked_arrays_log_what_their_frames_log() -> None:
    """Many requests' inputs are joined with numpy from the arrays the checks typed; the
    table equals the one joined by pandas from their frames (missing text and numbers too)."""
    from datetime import datetime, timezone

    def entry(i: int, with_arrays: bool) -> predlog._Entry:
        rows = pd.DataFrame({"plan": np.array(["annual", np.nan][: 1 + i % 2], dtype=object),
                             "n_orders": np.array([float(i), np.nan][: 1 + i % 2])}, index=pd.RangeIndex(1 + i % 2))
        rows["plan"] = rows["plan"].astype(object)
        arrays = {name: rows[name].to_numpy() for name in rows.columns} if with_arrays else None
        n = len(rows)
        return predlog._Entry(datetime(2026, 11, 30, tzinfo=timezone.utc), f"req{i}", FakeServed().identity(), 0.4,
                              rows, [i] * n, np.full(n, 0.5), np.ones(n, dtype=np.int8), [()] * n, [False] * n, None,
                              1.0, None, arrays)

    joined = predlog.to_table([entry(i, True) for i in range(7)])
    assert joined.equals(predlog.to_table([entry(i, False) for i in range(7)]))
    assert joined["inputs"].to_pylist()[1:3] == [{"plan": "annual", "n_orders": 1.0}, {"plan": None, "n_orders": None}]
