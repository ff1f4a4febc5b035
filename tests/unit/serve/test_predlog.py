"""The prediction log: a bounded queue, a background writer, partitioned Parquet read back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from engine.serve.predlog import SCHEMA, PredictionLog


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
    assert pq.read_schema(files[0]).equals(SCHEMA, check_metadata=False)
    table = pd.read_parquet(tmp_path / "churn")
    assert len(table) == 5 and written == [5] and log.written_rows == 5
    assert table["request_id"].tolist() == ["one"] * 3 + ["two"] * 2
    assert table["model_version"].tolist() == [3, 3, 3, 4, 4]
    assert table["key"].tolist() == ["100", "101", "102", "100", "101"]
    assert table["inputs"].iloc[1] == '{"plan":"annual","n_orders":1.5}'
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
