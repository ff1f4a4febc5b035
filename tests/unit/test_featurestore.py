from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

from engine.featurestore import FeatureStore, digest

FRAME = pd.DataFrame({"customer_id": [1, 2, 3], "n_orders": [3.0, 0.0, 7.0], "plan": ["a", None, "b"]})


def test_a_stored_table_comes_back_equal(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    assert store.get("k1") is None
    manifest = store.put("k1", FRAME, {"name": "orders", "kind": "aggregations"})
    assert manifest["rows"] == 3 and manifest["sha256"]
    pd.testing.assert_frame_equal(store.get("k1"), FRAME, check_dtype=False)
    assert [t.key for t in store.list()] == ["k1"]


def test_a_damaged_table_is_a_miss_not_a_wrong_answer(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    (tmp_path / "tables" / "k1.parquet").write_bytes(b"PAR1 truncated")
    assert store.get("k1") is None


def test_a_table_without_its_manifest_does_not_exist(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    (tmp_path / "tables" / "k1.json").unlink()  # as if killed between the two writes
    assert store.get("k1") is None and not list(store.list())


def test_remove(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    store.remove("k1")
    assert store.get("k1") is None and not list((tmp_path / "tables").iterdir())


def _build(root: str, n: int) -> None:
    store = FeatureStore(Path(root))
    frame = pd.DataFrame({"k": range(200_000), "v": [float(i) for i in range(200_000)]})
    for _ in range(n):
        store.put("same-key", frame, {"name": "big"})


def test_two_processes_building_the_same_key_leave_one_valid_table(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_build, args=(str(tmp_path), 3)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    table = FeatureStore(tmp_path).get("same-key")
    assert table is not None and len(table) == 200_000
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["same-key.json", "same-key.parquet"]


def test_group_history_reports_a_changed_definition_and_its_users(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    assert store.record_use("orders", "h1", 1, {"run": "r1", "model": "m.Logistic"}) == []
    assert store.record_use("orders", "h1", 1, {"run": "r2", "model": "m.Forest"}) == []
    earlier = store.record_use("orders", "h2", 2, {"run": "r3", "model": "m.Forest"})
    assert [d["hash"] for d in earlier] == ["h1"]
    assert [u["run"] for u in earlier[0]["used_by"]] == ["r1", "r2"]
    assert len(store.history("orders")["definitions"]) == 2


def test_digest_is_stable_and_order_free() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


@pytest.mark.parametrize("missing", ["groups", "tables"])
def test_an_empty_store_lists_nothing(tmp_path: Path, missing: str) -> None:
    assert list(FeatureStore(tmp_path / missing).list()) == []
