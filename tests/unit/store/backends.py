"""The two backends a store contract runs on, as mixins giving its ``uri`` fixture and
``other_uri`` (the other backend: where ``db copy`` goes)."""

from __future__ import annotations

from pathlib import Path

import pytest


class Sqlite:
    @pytest.fixture
    def uri(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'mlops.db'}"

    @pytest.fixture
    def other_uri(self, postgres_uri: str) -> str:
        return postgres_uri


class Postgres:
    @pytest.fixture
    def uri(self, postgres_uri: str) -> str:
        return postgres_uri

    @pytest.fixture
    def other_uri(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'copy.db'}"
