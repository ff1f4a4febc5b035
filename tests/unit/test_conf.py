"""Every option of every config group composes and validates (the CI check of conf/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.validation import validate
from tests.conftest import CONF, compose_config

GROUPS = ["data", "quality", "features", "model", "split", "business", "promotion", "monitor", "experiment"]
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def test_every_group_has_options() -> None:
    assert {group for group, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_validates(group: str, option: str) -> None:
    validate(compose_config(f"{group}={option}"))


def test_every_key_in_conf_is_explained_by_a_comment() -> None:
    """conf/ is documentation: each file starts with a comment saying what it is for."""
    for path in CONF.rglob("*.yaml"):
        first = Path(path).read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), f"{path} does not start with a comment"


def test_a_run_writes_its_report_by_default_and_reuses_nothing() -> None:
    cfg = compose_config()
    assert cfg["report"] is True and cfg["cache"] is False
