"""Fixtures of the functional tests of mlops serve, predict and registry export."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import champion_project


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that has run once and registered its model as churn@champion."""
    root = tmp_path_factory.mktemp("serve") / "project"
    return champion_project(root)
