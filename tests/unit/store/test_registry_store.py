"""The registry's entries in the metadata store, once per backend: SQLite (the default)
and PostgreSQL (a team's). Versions, aliases and alias history are rows; the model files
stay under the artifact root, and every integrity check of a load is kept."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import load_model
from engine.store import copy, tracking
from engine.store.registry import ModelIntegrityError, Registry
from tests.unit.store import backends
from tests.unit.store.test_registry import make_run


def promote_at_once(root: str, version: int, start: Any) -> None:
    """One process's promotion, started with the other's (its own connection, as another process has)."""
    mine = Registry(Path(root))
    start.wait()
    mine.promote("churn", version, "champion")


class RegistryStoreContract:
    """What the registry does on every store; a subclass provides ``uri`` and ``other_uri``."""

    @pytest.fixture
    def uri(self, tmp_path: Path) -> str:
        raise NotImplementedError

    @pytest.fixture
    def other_uri(self, tmp_path: Path) -> str:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def in_store(self, uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
        """Runs and the registry in the test's own store."""
        monkeypatch.setenv("MLOPS_TRACKING_URI", uri)
        yield uri

    def test_versions_and_aliases_live_in_the_store_and_models_under_the_artifact_root(self, tmp_path: Path) -> None:
        shared = tmp_path / "team-share" / "registry"  # the team's network file system, mounted here
        registry = Registry(shared)
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

    def test_a_promote_changes_the_stamp_another_process_polls(self, tmp_path: Path) -> None:
        registry = Registry(tmp_path / "registry")
        registry.register("churn", make_run(tmp_path, "a"))
        registry.register("churn", make_run(tmp_path, "b"))
        server = Registry(tmp_path / "registry")  # mlops serve's view, its own connection
        seen = server.stamp("churn")
        assert server.stamp("churn") == seen  # nothing changed: the same stamp
        registry.promote("churn", 1, "champion")
        assert server.stamp("churn") != seen
        seen = server.stamp("churn")
        registry.promote("churn", 1, "champion")  # the same version again is a move too
        assert server.stamp("churn") != seen
        assert Registry(tmp_path / "registry").stamp("nothing") in (None, (0, 0))

    def test_two_processes_promoting_one_alias_at_once_leave_a_consistent_history(self, tmp_path: Path) -> None:
        registry = Registry(tmp_path / "registry")
        for name in ("a", "b"):
            registry.register("churn", make_run(tmp_path, name))
        context = multiprocessing.get_context("fork")
        rounds = 8
        for _ in range(rounds):
            start = context.Barrier(2)
            processes = [context.Process(target=promote_at_once, args=(str(tmp_path / "registry"), v, start))
                         for v in (1, 2)]
            for process in processes:
                process.start()
            for process in processes:
                process.join(60)
            assert [p.exitcode for p in processes] == [0, 0]
        entry = Registry(tmp_path / "registry").read("churn")
        history = entry["alias_history"]
        assert len(history) == 2 * rounds
        assert sorted(m["version"] for m in history) == [1] * rounds + [2] * rounds
        for before, after in zip(history, history[1:], strict=False):
            assert after["previous"] == before["version"]  # each move saw the one before it
            assert after["at"] >= before["at"]
        assert entry["aliases"]["champion"] == history[-1]["version"]  # the alias is on the later one

    def test_a_model_in_a_json_registry_file_is_read_then_moved_into_the_store_once(self, tmp_path: Path) -> None:
        root = tmp_path / "registry"
        earlier = Registry(root, tracking_uri=f"sqlite:///{tmp_path / 'scratch.db'}")
        earlier.register("churn", make_run(tmp_path, "a"))
        earlier.promote("churn", 1, "champion")
        earlier.promote("churn", 1, "challenger")
        entry = earlier.read("churn")
        for version in entry["versions"]:
            version.pop("artifact_root")  # as an engine before the store wrote it
        (root / "churn.json").write_text(json.dumps(entry))  # an earlier engine's registry file
        registry = Registry(root)
        assert registry.read("churn") == entry and registry.names() == ["churn"]  # read from the file
        assert load_model("churn@champion", root).predict([[0]]).shape == (1,)
        assert registry.entries.read("churn") is None  # reading moves nothing
        registry.register("churn", make_run(tmp_path, "b"))  # the next change moves it, whole, with itself
        stored = registry.entries.read("churn")
        assert [v["version"] for v in stored["versions"]] == [1, 2]
        assert stored["versions"][0] == entry["versions"][0]
        assert list(stored["aliases"].items()) == [("champion", 1), ("challenger", 1)]  # in the order first set
        assert stored["alias_history"] == entry["alias_history"]  # every move, in order, with its time
        assert not (root / "churn.json").exists() and (root / "churn.json.moved").is_file()
        (root / "churn.json").write_text("not read again")  # a file there now is not the registry
        registry.promote("churn", 2, "champion")
        assert Registry(root).read("churn")["aliases"] == {"champion": 2, "challenger": 1}
        assert len(Registry(root).read("churn")["alias_history"]) == 3

    def test_db_copy_moves_the_registry_with_its_alias_history(self, tmp_path: Path, uri: str,
                                                               other_uri: str) -> None:
        registry = Registry(tmp_path / "registry")
        registry.register("churn", make_run(tmp_path, "a"))
        registry.register("churn", make_run(tmp_path, "b"))
        for version in (1, 2, 1):
            registry.promote("churn", version, "champion")
        report = copy.copy(uri, other_uri, tmp_path)
        counts = {"registry_versions": 2, "registry_aliases": 1, "registry_alias_history": 3}
        assert {t: report[t]["target"][0] for t in counts} == counts
        assert report["runs"]["target"][0] == 2
        again = copy.copy(uri, other_uri, tmp_path)  # idempotent
        assert {t: r["target"] for t, r in again.items()} == {t: r["target"] for t, r in report.items()}
        there = Registry(tmp_path / "registry", tracking_uri=other_uri)  # what the destination's registry reads
        assert there.read("churn") == registry.read("churn")
        assert there.resolve("churn@champion")[1]["version"] == 1
        assert load_model("churn@champion", tmp_path / "registry", tracking_uri=other_uri).predict([[0]]).shape == (1,)
        registry.entries.store.run(lambda conn: conn.exec_driver_sql("DELETE FROM registry_alias_history"),
                                   write=True)
        copy.copy(other_uri, uri, tmp_path)  # and back: the history returns, in order
        moves = Registry(tmp_path / "registry").read("churn")["alias_history"]
        assert [m["version"] for m in moves] == [1, 2, 1]
        assert Registry(tmp_path / "registry").read("churn") == there.read("churn")
        assert tracking.open_store(other_uri, tmp_path).get("a-0000") is not None


class TestSqliteRegistry(backends.Sqlite, RegistryStoreContract):
    pass


class TestPostgresRegistry(backends.Postgres, RegistryStoreContract):
    pass
