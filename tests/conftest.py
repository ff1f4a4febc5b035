"""Shared fixtures: the real conf/ composed in-process, and a tiny project for the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
MLOPS = shutil.which("mlops", path=str(Path(sys.executable).parent)) or shutil.which("mlops")

#: Small enough for seconds per run, large enough to have churners in the hold-out.
#: No report.html per run (matplotlib, ~1.5 s a run): the tests of reports ask for one.
SMALL_DATA = """\
# @package _global_
data:
  generate:
    customers: 4000
report: false
"""


def compose_config(*overrides: str) -> dict[str, Any]:
    """Compose the repository's conf/ with overrides and resolve it to plain data."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return resolved


def without_local(folder: str, names: list[str]) -> list[str]:
    """``shutil.copytree``'s ignore: this machine's conf/local/default.yaml stays behind."""
    return ["default.yaml"] if Path(folder).name == "local" else []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of conf/ in tmp_path, with small demo data: a user's project folder."""
    shutil.copytree(CONF, tmp_path / "conf", ignore=without_local)
    (tmp_path / "conf" / "local" / "default.yaml").write_text(SMALL_DATA)
    return tmp_path


def run_mlops(cwd: Path, *args: str, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the real ``mlops`` command in a subprocess."""
    assert MLOPS, "the mlops console script is not installed in this environment"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([MLOPS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)


def champion_project(root: Path) -> Path:
    """A project at ``root`` (conf/ and small demo data) that has run once and registered
    its model as churn@champion, through the real command."""
    shutil.copytree(CONF, root / "conf", ignore=without_local)
    (root / "conf" / "local" / "default.yaml").write_text(SMALL_DATA)
    for args in (("run",), ("registry", "register", "latest", "--name", "churn"),
                 ("registry", "promote", "churn/1", "--alias", "champion")):
        done = run_mlops(root, *args)
        assert done.returncode == 0, done.stderr
    return root


def project_registry(project: Path) -> Any:
    """The registry of a project with the default store (``outputs/mlops.db``, ``outputs/registry``)."""
    from engine.store.registry import Registry

    return Registry(project / "outputs" / "registry", tracking_uri=f"sqlite:///{project / 'outputs' / 'mlops.db'}")


def registry_entry(project: Path, name: str = "churn") -> dict[str, Any]:
    """A registered model's entry (versions, aliases, alias history), as the project's store keeps it."""
    entry: dict[str, Any] = project_registry(project).read(name)
    return entry


def edit_registered_version(project: Path, version: dict[str, Any], name: str = "churn") -> None:
    """Replace a version's record in the project's store, as someone with write access to it could."""
    import sqlite3

    with sqlite3.connect(project / "outputs" / "mlops.db") as conn:
        conn.execute("UPDATE registry_versions SET record = ? WHERE name = ? AND version = ?",
                     (json.dumps(version), name, version["version"]))
    conn.close()


def run_dirs(project: Path, kind: str = "runs") -> list[Path]:
    """Run directories under outputs/, oldest first."""
    pattern = "*/*" if kind == "runs" else "*/*/*"
    return sorted(p for p in (project / "outputs" / kind).glob(pattern) if p.is_dir())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def sweep_jobs(sweep: Path) -> dict[str, dict[str, Any]]:
    """Job number -> run.json of every job folder of a sweep, in job order."""
    jobs = sorted(sweep.glob("[0-9]*"), key=lambda job: int(job.name))
    return {job.name: read_json(job / "run.json") for job in jobs}


@pytest.fixture
def in_tmp_cwd(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The superuser URI of a PostgreSQL server for the tests: ``MLOPS_TEST_POSTGRES_URI``
    (what .ci/run exports after starting its cluster), else a throw-away cluster started
    here, else the test is skipped."""
    from tests import postgres

    if os.environ.get("MLOPS_TEST_POSTGRES_URI"):
        yield os.environ["MLOPS_TEST_POSTGRES_URI"]
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[test]')")
    with postgres.cluster() as started:
        if started is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql) and MLOPS_TEST_POSTGRES_URI "
                        "is not set")
        yield started.uri


@pytest.fixture
def postgres_uri(postgres_server: str) -> Iterator[str]:
    """The URI of a new, empty database of its own on the test server, dropped afterwards."""
    from tests import postgres

    uri = postgres.create_database(postgres_server)
    try:
        yield uri
    finally:
        postgres.drop_database(postgres_server, uri)
