"""The run cache's key: what changes a result changes the key, nothing else does."""

from __future__ import annotations

from engine import runcache

CONFIG = {"name": "churn", "seed": 7, "model": {"_target_": "x.Y", "C": 1.0}, "tracking": {"uri": "sqlite:///a.db"}}
DATA = {"customers": "sha256:aa", "orders": "sha256:bb"}
CODE = {"git": {"commit": "c1", "diff_sha256": None}, "engine": {"git": {"commit": "e1", "diff_sha256": None}},
        "packages": {"scikit-learn": "1.9.1"}, "command": ["mlops", "run"], "overrides": []}


def test_where_and_why_a_run_is_recorded_do_not_change_its_key() -> None:
    base = runcache.key(CONFIG, DATA, CODE)
    assert base.startswith("sha256:")
    moved = {**CONFIG, "name": "other", "tracking": {"uri": "sqlite:///b.db"}, "hypothesis": "h", "cache": True}
    assert runcache.key(moved, dict(reversed(DATA.items())), {**CODE, "command": ["x"], "overrides": ["a=b"]}) == base


def test_config_data_and_code_each_change_the_key() -> None:
    base = runcache.key(CONFIG, DATA, CODE)
    assert runcache.key({**CONFIG, "model": {"_target_": "x.Y", "C": 0.5}}, DATA, CODE) != base
    assert runcache.key(CONFIG, {**DATA, "orders": "sha256:cc"}, CODE) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "git": {"commit": "c2", "diff_sha256": None}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "git": {"commit": "c1", "diff_sha256": "d"}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "engine": {"git": {"commit": "e2"}}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "packages": {"scikit-learn": "1.9.2"}}) != base
