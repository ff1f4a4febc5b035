"""The registry of a team: versions, aliases and alias history in the PostgreSQL store,
model files under a shared artifact root, every integrity check of a load kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import load_model
from engine.store import copy, tracking
from engine.store.registry import ModelIntegrityError, Registry
from tests.unit.store.test_registry import make_run


@pytest.fixture(autouse=True)
def server_store(postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs and the registry on the test's own PostgreSQL database."""
    monkeypatch.setenv("MLOPS_TRACKING_URI", postgres_uri)
    yield postgres_uri


def test_versions_and_aliases_live_in_the_store_and_models_under_the_artifact_root(
        tmp_path: Path, server_store: str) -> None:
    shared = tmp_path / "team-share" / "registry"  # the team's network file system, mounted here
    registry = Registry(shared)
    assert registry.entries is not None
    assert registry.register("churn", make_run(tmp_path, "a"))["artifact_root"] == str(shared.resolve())
    registry.register("churn", make_run(tmp_path, "b", auc=0.9))
    registry.promote("churn", 1, "champion")
    registry.promote("churn", 2, "champion")
    assert not (shared / "churn.json").exists()  # no registry file: the store holds the entry
    assert (shared / "churn" / "2" / "model.skops").is_file()
    elsewhere = Registry(tmp_path / "another-host-mount")  # a member whose registry folder lacks the files
    entry = elsewhere.read("churn")
    assert entry["aliases"] == {"champion": 2} and elsewhere.names() == ["churn"]
    assert [(m["previous"], m["version"]) for m in entry["alias_history"]] == [(None, 1), (1, 2)]
    assert load_model("churn@champion", tmp_path / "another-host-mount").predict([[3]]).shape == (1,)
    (shared / "churn" / "2" / "model.skops").write_bytes(b"PK\x03\x04 changed")
    with pytest.raises(ModelIntegrityError, match="sha256"):  # still verified on load
        load_model("churn@champion", shared)


def test_two_promotes_of_one_alias_at_once_leave_a_consistent_history(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    for name in ("a", "b"):
        registry.register("churn", make_run(tmp_path, name))
    rounds = 8
    for _ in range(rounds):
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def promote(version: int, start: threading.Barrier, errors: list[BaseException]) -> None:
            mine = Registry(tmp_path / "registry")  # its own connection, as another process has
            start.wait()
            try:
                mine.promote("churn", version, "champion")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=promote, args=(v, start, errors)) for v in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
    entry = Registry(tmp_path / "registry").read("churn")
    history = entry["alias_history"]
    assert len(history) == 2 * rounds
    for before, after in zip(history, history[1:], strict=False):
        assert after["previous"] == before["version"]  # each move saw the one before it
    assert entry["aliases"]["champion"] == history[-1]["version"]  # the alias is on the later one


def test_a_model_in_a_json_registry_file_is_read_and_moved_into_the_store(tmp_path: Path) -> None:
    files = Registry(tmp_path / "registry", tracking_uri=f"sqlite:///{tmp_path / 'local.db'}")
    assert files.entries is None
    files.register("churn", make_run(tmp_path, "a"))
    files.promote("churn", 1, "champion")
    team = Registry(tmp_path / "registry")
    assert team.read("churn")["aliases"] == {"champion": 1}  # readable from the file
    assert team.entries.read("churn") is None
    team.register("churn", make_run(tmp_path, "b"))  # the next change moves it into the store
    stored = team.entries.read("churn")
    assert [v["version"] for v in stored["versions"]] == [1, 2] and stored["aliases"] == {"champion": 1}
    assert len(stored["alias_history"]) == 1


def test_db_copy_moves_the_registry_with_its_alias_history(tmp_path: Path, server_store: str) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    registry.register("churn", make_run(tmp_path, "b"))
    for version in (1, 2, 1):
        registry.promote("churn", version, "champion")
    local = f"sqlite:///{tmp_path / 'copy.db'}"
    report = copy.copy(server_store, local, tmp_path)
    assert {t: report[t]["target"][0] for t in ("registry_versions", "registry_aliases",
                                                "registry_alias_history")} == \
        {"registry_versions": 2, "registry_aliases": 1, "registry_alias_history": 3}
    assert report["runs"]["target"][0] == 2
    back = Registry(tmp_path / "registry", tracking_uri=server_store)
    back.entries.store.run(lambda conn: conn.exec_driver_sql("DELETE FROM registry_alias_history"))
    copy.copy(local, server_store, tmp_path)  # and back: the history returns, in order
    moves = back.read("churn")["alias_history"]
    assert [m["version"] for m in moves] == [1, 2, 1]
    assert json.dumps(back.read("churn")["versions"][0], sort_keys=True) == \
        json.dumps(registry.read("churn")["versions"][0], sort_keys=True)
    assert tracking.open_store(local, tmp_path).get("a-0000") is not None
