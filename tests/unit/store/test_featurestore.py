from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import pandas as pd
import pytest

from engine.store.featurestore import FeatureStore, digest

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


def test_a_flipped_byte_is_a_miss_even_when_the_size_is_right(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    path = tmp_path / "tables" / "k1.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # silent bit rot: Parquet would often still decode it
    path.write_bytes(bytes(data))
    assert store.get("k1") is None
    assert "does not match its manifest" in caplog.text


def test_a_truncated_table_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    path = tmp_path / "tables" / "k1.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    assert store.get("k1") is None
    assert "its manifest says" in caplog.text


def test_a_table_queued_for_the_writer_is_visible_after_flush(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.put_later("k1", FRAME, {"name": "orders"})
    store.put_later("k2", FRAME.head(2), {"name": "orders"})
    written = store.flush()
    assert [m["key"] for m in written] == ["k1", "k2"] and written[1]["rows"] == 2
    assert store.flush() == []  # nothing left to wait for
    pd.testing.assert_frame_equal(FeatureStore(tmp_path).get("k1"), FRAME)  # another process' view


def test_get_waits_for_the_same_stores_queued_write(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.put_later("k1", FRAME, {"name": "orders"})
    pd.testing.assert_frame_equal(store.get("k1"), FRAME)


def test_editing_a_frame_after_queueing_it_does_not_change_the_stored_table(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    frame = FRAME.copy()
    store.put_later("k1", frame, {"name": "orders"})
    frame.loc[0, "n_orders"] = -1.0  # copy-on-write: the writer keeps the values it was given
    frame["plan"] = "changed"
    store.flush()
    pd.testing.assert_frame_equal(store.get("k1"), FRAME)


def test_a_failed_background_write_raises_at_flush_and_leaves_no_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.store.featurestore as featurestore

    real_write = open

    def disk_full(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode and str(path).endswith(".tmp") and ".k-bad.parquet." in str(path):
            raise OSError(28, "No space left on device")
        return real_write(path, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(featurestore, "open", disk_full, raising=False)
    store = FeatureStore(tmp_path)
    store.put_later("k-good", FRAME, {"name": "orders"})
    store.put_later("k-bad", FRAME, {"name": "orders"})
    with pytest.raises(OSError, match="No space left"):
        store.flush()
    assert store.get("k-bad") is None and [t.key for t in store.list()] == ["k-good"]
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["k-good.json", "k-good.parquet"]


def test_a_write_that_dies_before_its_manifest_leaves_no_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.store.featurestore as featurestore

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as if the process stopped between the table and its manifest

    monkeypatch.setattr(featurestore, "write_json", killed)
    store = FeatureStore(tmp_path)
    store.put_later("k1", FRAME, {"name": "orders"})
    with pytest.raises(KeyboardInterrupt):
        store.flush()
    monkeypatch.undo()
    assert store.get("k1") is None and not list(store.list())


def test_verify_checks_the_sha256_of_the_whole_file(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    manifest = store.put("k1", FRAME, {"name": "orders"})
    assert manifest["crc32"] and manifest["sha256"] and store.verify("k1")
    path = tmp_path / "tables" / "k1.parquet"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x80
    path.write_bytes(bytes(data))
    assert not store.verify("k1") and not store.verify("absent")


def test_a_manifest_without_a_crc32_is_checked_with_its_sha256(tmp_path: Path) -> None:
    import json

    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    manifest_path = tmp_path / "tables" / "k1.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["crc32"]  # as written by an earlier version of the engine
    manifest_path.write_text(json.dumps(manifest))
    pd.testing.assert_frame_equal(store.get("k1"), FRAME)
    manifest["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    assert store.get("k1") is None


def test_a_failed_background_write_is_logged_even_if_nobody_flushes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import engine.store.featurestore as featurestore

    def disk_full(frame: pd.DataFrame) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(featurestore, "_encode", disk_full)
    store = FeatureStore(tmp_path)
    store.put_later("k1", FRAME, {"name": "orders"})
    store._writer.shutdown(wait=True)  # type: ignore[union-attr]  # the writer is done (callbacks too); no flush
    assert "writing table k1" in caplog.text and "No space left" in caplog.text
    assert not list(store.list())


def test_missing_floats_are_stored_as_nan_and_missing_text_as_null(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"id": [1, 2, 3], "x": [1.5, np.nan, 2.0], "plan": pd.Series(["a", None, "b"], dtype="str")})
    store = FeatureStore(tmp_path)
    store.put("k", frame, {"name": "t"})
    back = store.get("k")
    assert back is not None and back.equals(frame) and list(back.dtypes) == list(frame.dtypes)
    stored = pq.read_table(tmp_path / "tables" / "k.parquet")
    assert stored.column("x").null_count == 0  # NaN itself: no definition levels to decode
    assert stored.column("plan").null_count == 1


@pytest.mark.parametrize("text, problem", [
    ("[]", "is a list; expected a JSON object"),
    ('{"crc32": "0"}', "has a bytes of the wrong type (null)"),
    ('{"bytes": "12", "crc32": "0"}', "has a bytes of the wrong type (a string)"),
    ('{"bytes": 12}', "has neither crc32 nor sha256"),
    ('{"bytes": 12, "crc32": "0", "groups": [1]}', "has groups that are not objects"),
    ("{not json", "is not valid JSON"),
])
def test_a_manifest_of_the_wrong_shape_is_a_logged_miss_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                   text: str, problem: str) -> None:
    store = FeatureStore(tmp_path)
    store.put("k1", FRAME, {"name": "orders"})
    store.put("k2", FRAME, {"name": "orders"})
    (tmp_path / "tables" / "k1.json").write_text(text)
    assert store.get("k1") is None and store.manifest("k1") is None
    assert f"table k1 is ignored: its manifest {problem}" in caplog.text
    assert [t.key for t in store.list()] == ["k2"]
    ((key, found),) = store.damaged()
    assert key == "k1" and found.startswith(str(tmp_path / "tables" / "k1.json")) and problem in found


@pytest.mark.parametrize("text, problem", [
    ("[1, 2", "not valid JSON"),
    ("[]", "got a list"),
    ('{"definitions": 5}', "got definitions: a number"),
    ('{"definitions": [{"used_by": []}]}', 'got definitions.0: {"used_by": []}'),
    ('{"definitions": [{"hash": "h1", "used_by": [3]}]}', "got definitions.0"),
])
def test_a_garbage_group_history_is_refused_never_reset(tmp_path: Path, text: str, problem: str) -> None:
    from engine.errors import DataError

    store = FeatureStore(tmp_path)
    store.record_use("orders", "h1", 1, {"run": "r1"})
    path = tmp_path / "groups" / "orders.json"
    path.write_text(text)
    for read in (lambda: store.history("orders"), lambda: store.record_use("orders", "h1", 1, {"run": "r2"}),
                 lambda: list(store.histories())):
        with pytest.raises(DataError, match=f"^data error at feature group history {re.escape(str(path))}: .*"
                                            f"{re.escape(problem)}"):
            read()
    assert path.read_text() == text  # kept as it was, for a person to look at


def test_group_names_cannot_be_paths(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    (tmp_path / "secret.json").write_text('{"definitions": []}')
    for name in ("../secret", str(tmp_path / "secret"), "a/b", ""):
        with pytest.raises(ValueError, match="is not an identifier"):
            store.history(name)
        with pytest.raises(ValueError, match="is not an identifier"):
            store.record_use(name, "h", 1, {})
    assert not (tmp_path / "store").exists()


def test_features_show_refuses_a_path_and_gc_collects_what_killed_writers_leave(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from engine.cli import features as featurestore_cli
    from engine.errors import UsageError

    store = FeatureStore(tmp_path / "store")
    with pytest.raises(UsageError, match=r"features show takes a feature group or table name .*got '\.\./\.\./etc'"):
        featurestore_cli.show(store.root, "../../etc")
    store.put("kept", FRAME, {"name": "orders"})
    store.put("damaged", FRAME, {"name": "orders"})
    (store.tables / "damaged.json").write_text('"not a manifest"')
    leftovers = [store.tables / ".kept.parquet.ab12cd34.tmp", store.tables / ".x.json.zz99yy88.tmp",
                 store.tables / "orphan.parquet"]
    store.groups.mkdir()
    leftovers.append(store.groups / ".orders.json.k2j3h4k5.tmp")
    young = store.tables / ".young.parquet.aaaaaaaa.tmp"
    for path in [*leftovers, young]:
        path.write_bytes(b"half")
    old = os.stat(store.tables / "kept.json").st_mtime - 7200
    for path in [*leftovers, store.tables / "damaged.json", store.tables / "damaged.parquet"]:
        os.utime(path, (old, old))
    not_ours = store.tables / "notes.tmp"  # not named as atomic_path names its temp files
    not_ours.write_text("mine")
    os.utime(not_ours, (old, old))

    featurestore_cli.gc(store.root, tmp_path / "outputs", dry_run=True, keep_recent_min=60)
    assert all(p.exists() for p in leftovers) and "would remove 0 table(s) and 6 file(s)" in capsys.readouterr().out
    featurestore_cli.gc(store.root, tmp_path / "outputs", dry_run=False, keep_recent_min=60)
    out = capsys.readouterr().out
    assert not any(p.exists() for p in leftovers) and "removed tables/damaged.json (damaged manifest)" in out
    assert not (store.tables / "damaged.parquet").exists()
    assert young.exists() and not_ours.exists()  # a write in progress, and a file that is not ours
    assert [t.key for t in store.list()] == ["kept"]  # younger than --keep-recent
