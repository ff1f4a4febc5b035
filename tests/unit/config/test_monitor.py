"""The monitoring declarations: docs/monitoring.md's reference is generated from them, and bad
rules are one config error naming the key."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engine.config.monitor import METHODS, RULE_TYPES, Chunks, Labels, MonitorSpec, reference
from engine.config.plan import compile as compile_plan
from engine.errors import ConfigError
from tests.conftest import compose_config

DOC = Path(__file__).resolve().parents[3] / "docs" / "monitoring.md"
BLOCK = re.compile(r"(<!-- monitor reference:[^\n]*-->\n)(.*?)(<!-- end of monitor reference -->)", re.S)


def test_the_docs_method_and_rule_reference_is_current() -> None:
    """Set MLOPS_UPDATE_DOCS=1 to rewrite the table from the declarations."""
    text = DOC.read_text()
    match = BLOCK.search(text)
    assert match, "docs/monitoring.md lost its reference markers"
    if os.environ.get("MLOPS_UPDATE_DOCS") == "1":
        DOC.write_text(BLOCK.sub(lambda m: m.group(1) + reference() + m.group(3), text))
        return
    assert match.group(2) == reference(), "run MLOPS_UPDATE_DOCS=1 pytest -n 0 " + __file__


def test_the_five_methods_and_every_rule_type_are_declared_and_executed() -> None:
    from engine.stages import monitor

    assert set(METHODS) == {"psi", "ks", "chi2", "wasserstein", "jensenshannon"} == set(monitor.IMPLEMENTATIONS)
    assert set(RULE_TYPES) == set(monitor.CHECKS)


@pytest.mark.parametrize(("override", "where", "problem"), [
    ("monitor.by_type.categorical.method=ks", "monitor.by_type.categorical.method", "does not apply to categorical"),
    ("+monitor.rules.plan_mix.method=kolmogorov", "monitor.rules.plan_mix.method", "must be one of"),
    ("monitor.rules.roc_auc.metric=auc", "monitor.rules.roc_auc.metric", "unknown metric 'auc'"),
    ("monitor.window=a week", "monitor.window", "a duration such as 7d"),
    ("monitor.correction=holm", "monitor.correction", "must be one of"),
    ("monitor.rules.outside_domain.max=2", "monitor.rules.outside_domain.max", "<= 1"),
    ("monitor.rules.roc_auc.sigma=0", "monitor.rules.roc_auc.sigma", "> 0"),
    ("monitor.chunks.current.by=week", "monitor.chunks.current.by", "must be one of: month, rows"),
    ("monitor.chunks.reference.count=1", "monitor.chunks.reference.count", ">= 2"),
    ("monitor.chunks.reference.size=500", "monitor.chunks.reference", "expected count or size, got both"),
    ("monitor.chunks.current.size=500", "monitor.chunks.current.size", "only with by: rows"),
    ("monitor.labels.time=", "monitor.labels.time", "non-empty"),
    ("~monitor.rules.roc_auc.max_drop", "monitor.rules.roc_auc", None),
])
def test_a_bad_monitor_key_is_one_config_error_naming_it(override: str, where: str, problem: str | None) -> None:
    if problem is None:  # a rule left with sigma only is a rule
        assert compile_plan(compose_config(override)).monitor.rules["roc_auc"].sigma == 3
        return
    with pytest.raises(ConfigError) as caught:
        compile_plan(compose_config(override))
    assert caught.value.path == where and problem in str(caught.value), str(caught.value)


def test_chunks_and_labels_parse_with_their_defaults() -> None:
    spec = compile_plan(compose_config()).monitor
    assert spec.chunks == Chunks(reference_count=10, reference_size=None, by="month", size=None)
    assert spec.labels == Labels()
    spec = MonitorSpec.from_config({"chunks": {"reference": {"count": None, "size": 250},
                                               "current": {"by": "rows", "size": 400}},
                                    "labels": {"time": "labelled_at"}})
    assert spec.chunks == Chunks(reference_count=None, reference_size=250, by="rows", size=400)
    assert spec.labels == Labels(time="labelled_at")
    with pytest.raises(ConfigError, match="expected min, max_drop or sigma"):
        MonitorSpec.from_config({"rules": {"v": {"check": "estimated_performance", "dimension": "performance",
                                                 "metric": "net_value_per_month"}}})


def test_on_failure_parses_the_retrain_and_its_cooldown() -> None:
    spec = MonitorSpec.from_config({"on_failure": {"retrain": {"experiment": "compare_models"}, "cooldown": "12h"}})
    assert spec.on_failure is not None and spec.on_failure.experiment == "compare_models"
    assert spec.on_failure.cooldown.total_seconds() == 12 * 3600 and spec.on_failure.promote is True
    assert compile_plan(compose_config()).monitor.on_failure is None
