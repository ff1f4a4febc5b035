"""Honest statistics of the default monitoring rules on the churn demo's features.

False alarms: undrifted demo data (a second draw of the same generator, another seed)
against each seed's reference, over 20 seeds, at the default thresholds with the
correction: at most 5% of the (seed, column) pairs may be flagged, with the large-sample
defaults (Wasserstein, Jensen-Shannon) and with the small-reference ones (KS and
chi-squared, Bonferroni-corrected). Power: the demo's declared drift (prices up, fewer
orders, a new contract type) is caught by the error rules in every seed.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config.monitor import MonitorSpec
from engine.config.plan import compile as compile_plan
from engine.stages import data, features, monitor
from tests.conftest import compose_config

SEEDS = range(20)


@cache
def _composed(*overrides: str) -> dict:
    return compose_config("data=demo", *overrides)


def feature_table(seed: int, customers: int, as_of: str, **generate: object) -> pd.DataFrame:
    """The demo's feature table (the model's input columns) for one seed, in memory."""
    overrides = [f"data.generate.{k}={v}" for k, v in generate.items()]
    cfg = copy.deepcopy(_composed(f"data.generate.customers={customers}", f"as_of={as_of}", *overrides))
    for holder in (cfg["data"], *cfg["data"]["sources"].values()):  # composed once: only the seed changes
        holder["generate"]["seed"] = seed
    plan = compile_plan(cfg)
    tables = data.load(plan.data, Path("."))
    return features.build(plan.features, tables, plan.settings.as_of, None).X


def _profile(X: pd.DataFrame) -> dict:
    return monitor.profile(X, np.full(10, 0.1), 0.5)


def _flags(spec: MonitorSpec, reference: dict, current: pd.DataFrame) -> list[bool]:
    rows = monitor.compare_columns(spec, reference, monitor.Current(current), list(reference["columns"]))
    return [bool(r["drifted"]) for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("customers", [3_000, 700], ids=["large-reference", "small-reference"])
def test_undrifted_data_flags_at_most_5_percent_of_seed_column_pairs(customers: int) -> None:
    spec = compile_plan(compose_config()).monitor  # conf/monitor/default.yaml: thresholds and correction
    flags: list[bool] = []
    methods = set()
    for seed in SEEDS:
        reference = _profile(feature_table(seed, customers, "2026-10-01"))
        methods |= {spec.test(c, e["type"], e["rows"]).method for c, e in reference["columns"].items()}
        flags += _flags(spec, reference, feature_table(1000 + seed, customers, "2026-10-01"))
    expected = {"wasserstein", "jensenshannon"} if customers > 1000 else {"ks", "chi2"}
    assert methods == expected
    assert len(flags) == 20 * 16
    assert np.mean(flags) <= 0.05, f"{sum(flags)} of {len(flags)} (seed, column) pairs flagged"


@pytest.mark.slow
def test_the_declared_drift_is_caught_in_every_seed() -> None:
    spec = compile_plan(compose_config()).monitor
    caught = []
    for seed in SEEDS:
        reference = _profile(feature_table(seed, 3_000, "2026-10-01"))
        drifted = feature_table(1000 + seed, 3_000, "2026-12-01", snapshot="2026-12-31", drift_after="2026-11-01")
        report = monitor.run(spec, reference, monitor.Current(drifted))
        caught.append({"plan_mix", "order_activity"} <= set(report.failed_errors))
    assert all(caught), f"missed in seeds {[s for s, c in zip(SEEDS, caught, strict=True) if not c]}"
