"""Every command's ``--help``, inside a project and outside one: exit 0 and its usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_mlops

COMMANDS = [["init"], ["init", "somewhere"], ["validate"], ["diff"], ["run"], ["quality"], ["check"], ["features"], ["features", "list"], ["features", "show"],
            ["features", "gc"], ["features", "materialize"], ["runs"], ["runs", "reindex"],
            ["runs", "sync-mlflow"], ["show"], ["compare"], ["reproduce"], ["registry"],
            ["registry", "register"], ["registry", "show"], ["registry", "promote"], ["report"], ["monitor"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_outside_a_project(tmp_path: Path, command: list[str], flag: str) -> None:
    done = run_mlops(tmp_path, *command, flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mlops ")
    assert done.stderr == ""
    assert not any(tmp_path.iterdir()), "help wrote something"


@pytest.mark.parametrize("command", [["run"], ["quality"], ["features", "materialize"], ["show"], ["check"],
                                     ["compare", "latest"], ["runs", "--limit", "3"]], ids=" ".join)
def test_help_inside_a_project(project: Path, command: list[str]) -> None:
    done = run_mlops(project, *command, "--help")
    assert done.returncode == 0, done.stderr
    if command[0] in ("run", "quality", "features"):  # Hydra's help: the project's config groups
        assert "model: gradient_boosting, logistic, random_forest" in done.stdout
    else:
        assert done.stdout.startswith(f"usage: mlops {command[0]}")
    assert not (project / "outputs").exists()


def test_a_bad_argument_still_says_where_to_look(tmp_path: Path) -> None:
    done = run_mlops(tmp_path, "show", "latest", "--bogus")
    assert done.returncode == 2
    assert done.stderr.strip() == "mlops: usage error: unrecognized arguments: --bogus (see mlops show --help)"
