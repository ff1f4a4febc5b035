"""The prediction log read back by ``mlops monitor``: typed inputs, older JSON files, versions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.run.monitor import read_log
from engine.serve.predlog import PredictionLog


class Served:
    def __init__(self, version: int) -> None:
        self.version, self.threshold = version, 0.5

    def identity(self) -> dict[str, Any]:
        return {"name": "churn", "version": self.version, "run_id": "r" * 32, "sha256": "a" * 64}


def logged(folder: Path, version: int, inputs: pd.DataFrame) -> None:
    log = PredictionLog(folder, flush_s=60)
    n = len(inputs)
    scores = np.linspace(0.1, 0.9, n)
    assert log.append(Served(version), "req", inputs, list(range(n)), scores, (scores >= 0.5).astype(np.int8),
                      [[] for _ in range(n)], [False] * n, None, 1.0)
    log.close()


def test_typed_inputs_of_two_versions_and_an_older_json_file_read_as_one_frame(tmp_path: Path) -> None:
    folder = tmp_path / "churn"
    logged(folder, 1, pd.DataFrame({"plan": np.array(["annual", np.nan], dtype=object), "orders": [2.0, np.nan]}))
    logged(folder, 2, pd.DataFrame({"plan": np.array(["weekly"], dtype=object), "orders": [5.0], "tenure": [7.0]}))
    # a file the log wrote before its inputs were typed: one JSON text per row
    (typed,) = [t for t in map(pq.read_table, folder.glob("date=*/*.parquet")) if t.num_rows == 2]
    old = typed.set_column(typed.schema.get_field_index("inputs"), "inputs",
                           pa.array(['{"plan": "monthly", "orders": 3}', '{"plan": null, "orders": 1.5}']))
    pq.write_table(old, next(folder.glob("date=*")) / "part-old.parquet")
    files = sorted(folder.glob("date=*/*.parquet"))
    assert len(files) == 3
    start = pd.Timestamp(datetime.now(timezone.utc) - timedelta(hours=1))
    frame, inputs = read_log(files, start, None, ["plan", "orders"])
    assert len(frame) == len(inputs) == 5 and "inputs" not in frame.columns
    rows = sorted(zip(frame["model_version"], [p if isinstance(p, str) else None for p in inputs["plan"]],
                      inputs["orders"].astype(float).fillna(-1).tolist(), strict=True), key=repr)
    assert rows == sorted([(1, "annual", 2.0), (1, None, -1.0), (1, "monthly", 3.0), (1, None, 1.5),
                           (2, "weekly", 5.0)], key=repr)
    only_two, of_two = read_log(files, start, 2, ["plan", "orders"])
    assert of_two.to_dict("records") == [{"plan": "weekly", "orders": 5.0, "tenure": 7.0}]
    assert only_two["model_version"].tolist() == [2]
    later, none = read_log(files, pd.Timestamp(datetime.now(timezone.utc) + timedelta(hours=1)), None, ["plan"])
    assert later.empty and list(none.columns) == ["plan"]
