"""Fixtures of the functional tests of mlops serve, predict and registry export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import CONF, SMALL_DATA, run_mlops, without_local


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that has run once and registered its model as churn@champion."""
    root = tmp_path_factory.mktemp("serve") / "project"
    shutil.copytree(CONF, root / "conf", ignore=without_local)
    (root / "conf" / "local" / "default.yaml").write_text(SMALL_DATA)
    for args in (("run",), ("registry", "register", "latest", "--name", "churn"),
                 ("registry", "promote", "churn/1", "--alias", "champion")):
        done = run_mlops(root, *args)
        assert done.returncode == 0, done.stderr
    return root
