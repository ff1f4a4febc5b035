from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.run.record import RunRecord


def read(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


def test_a_run_is_running_until_finished(tmp_path: Path) -> None:
    record = RunRecord(tmp_path, name="t", seed=1)
    assert not (tmp_path / "run.json").exists()
    record.start()
    assert read(tmp_path)["status"] == "running"
    with record.stage("ingest") as stage:
        assert read(tmp_path)["stages"]["ingest"]["status"] == "running"  # written as the stage starts
        stage["rows"] = 3
    record.update(data={"rows": 3})
    with record.stage("quality"):
        on_disk = read(tmp_path)  # the outcome of ingest and the update arrive with the next save
        assert on_disk["stages"]["ingest"]["status"] == "succeeded"
        assert on_disk["stages"]["ingest"]["rows"] == 3
        assert on_disk["stages"]["ingest"]["duration_s"] >= 0
        assert on_disk["data"] == {"rows": 3}
        assert on_disk["status"] == "running"
    record.finish("succeeded")
    on_disk = read(tmp_path)
    assert on_disk["status"] == "succeeded" and on_disk["ended_at"] is not None
    assert on_disk["stages"]["quality"]["status"] == "succeeded"


def test_a_failing_stage_is_recorded_as_failed(tmp_path: Path) -> None:
    record = RunRecord(tmp_path, name="t")
    record.start()
    with pytest.raises(RuntimeError):
        with record.stage("train"):
            raise RuntimeError("boom")
    record.finish("failed", {"message": "boom"})
    on_disk = read(tmp_path)
    assert on_disk["stages"]["train"]["status"] == "failed"
    assert on_disk["status"] == "failed" and on_disk["error"]["message"] == "boom"


def test_a_ctrl_c_while_the_stage_start_is_written_marks_the_stage_interrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal lands while run.json is written as the stage starts (a watcher that saw
    the stage running sent it): the stage must not stay `running` in an interrupted run."""
    record = RunRecord(tmp_path, name="t")
    record.start()
    written = record.save

    def save_then_interrupt(durable: bool = False) -> None:
        written(durable)
        raise KeyboardInterrupt

    monkeypatch.setattr(record, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with record.stage("train"):
            pass
    monkeypatch.setattr(record, "save", written)
    record.finish("interrupted")
    assert read(tmp_path)["stages"]["train"]["status"] == "interrupted"
