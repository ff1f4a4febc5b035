from __future__ import annotations

from pathlib import Path

import pytest

from engine import files


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    files.write_json(target, {"status": "running"})
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(target) as tmp:
            tmp.write_text('{"status": "succ')
            raise KeyboardInterrupt
    assert target.read_text().strip().endswith("}")
    assert '"running"' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_sha256_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"abc")
    assert files.sha256_file(tmp_path / "a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_leftovers_finds_the_temp_files_atomic_path_names_and_only_those(tmp_path: Path) -> None:
    from engine.files import atomic_path, leftovers

    (tmp_path / "notes.tmp").write_text("a user's file")
    with atomic_path(tmp_path / "table.parquet") as tmp:
        tmp.write_bytes(b"half written")  # a kill here leaves exactly this file
        assert leftovers(tmp_path, 0) == [tmp]
        assert leftovers(tmp_path, 3600) == []  # a write in progress is young
    assert leftovers(tmp_path, 0) == [] and leftovers(tmp_path / "missing", 0) == []
