"""The written conf/ tree: it compiles, its rules pass on the data they came from, and its
YAML reads back as what was meant."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from engine.cli.init import init_command
from engine.config import plan as planning
from engine.config.validation import resolve
from engine.scaffold import write
from engine.stages import data, quality
from tests.datasets import customers


def compiled(root: Path, *overrides: str) -> planning.Plan:
    """The generated project's config, composed as ``mlops run`` composes it, and compiled."""
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    return planning.compile(resolve(cfg))


def rules_on_own_data(root: Path) -> quality.QualityReport:
    plan = compiled(root)
    tables = data.load(plan.data, root)
    return quality.run(plan.quality, quality.Context(tables, plan.settings.as_of))


def tricky() -> pd.DataFrame:
    """Values YAML and OmegaConf would misread if written carelessly."""
    rng = np.random.default_rng(3)
    rows = 400
    label = rng.choice(["churned", "stayed", None], rows, p=[0.3, 0.6, 0.1])
    return pd.DataFrame({
        "plan ${oops}": rng.choice(["${name}", "it's", 'say "hi"', "yes", "no", "007", "null", "~"], rows),
        "flag": rng.choice([True, False, None], rows),
        "tiny": rng.uniform(1e-7, 3e-7, rows),
        "big": rng.uniform(-2e12, 5e12, rows),
        "count": rng.integers(-5, 5, rows),
        "seen_at": pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s"),
        "Churn Label": label,
    })


@pytest.mark.parametrize("case", ["customers", "keyed", "tricky"])
def test_the_rules_pass_on_the_data_they_were_made_from(tmp_path: Path, case: str) -> None:
    root = tmp_path / "project"
    if case == "tricky":
        tricky().to_parquet(tmp_path / "t.parquet")
        args = ["--data", str(tmp_path / "t.parquet"), "--target", "Churn Label", "--positive", "churned",
                "--timestamp", "seen_at"]
    else:
        customers().to_csv(tmp_path / "c.csv", index=False)
        args = ["--data", str(tmp_path / "c.csv"), "--target", "Churn"]
        if case == "keyed":
            args += ["--key", "customer id", "--timestamp", "signed_up"]
    assert init_command([str(root), *args]) == 0
    report = rules_on_own_data(root)
    assert not report.gate_failures and not report.warnings
    text = (root / "conf" / "quality" / "project.yaml").read_text()
    for check in ("row_count", "not_null", "between"):
        assert f"check: {check}" in text
    if case != "tricky":
        assert "check: in_set" in text and "check: missing_share" in text
    if case in ("keyed", "tricky"):
        assert "check: freshness" in text
    assert ("check: unique" in text) == (case == "keyed")


def test_the_tricky_values_reach_the_config_as_they_are(tmp_path: Path) -> None:
    frame = tricky()
    frame.to_parquet(tmp_path / "t.parquet")
    root = tmp_path / "p"
    init_command([str(root), "--data", str(tmp_path / "t.parquet"), "--target", "Churn Label", "--positive",
                  "churned", "--timestamp", "seen_at", "--name", "odd"])
    plan = compiled(root)
    (source,) = plan.data.sources.values()
    declared = plan.config["data"]["sources"][source.name]["columns"]
    assert declared["plan ${oops}"] == "category" and declared["flag"] == {"type": "bool", "nullable": True}
    assert declared["seen_at"] == "datetime" and source.key is None and source.timestamp == "seen_at"
    rule = plan.quality.rules["plan_oops_values"]
    assert sorted(rule.values) == sorted(frame["plan ${oops}"].unique())
    # the target: a missing label is left out of the population, never trained as 0
    assert plan.features.population == "`Churn Label` is not null"
    assert plan.features.target_expr == "`Churn Label` == 'churned'" and plan.features.target == "churn_label"
    assert plan.settings.as_of == frame["seen_at"].max().normalize() + pd.Timedelta(days=1)


@pytest.mark.parametrize("value", ["${name}", "it's", 'say "hi"', "yes", "No", "007", "null", "~", "a: b", "#x",
                                   "", " lead", "é", "-", "1e3", "true", 0.1, 1e-300, -0.0, 7, None, True])
def test_a_scalar_reads_back_as_itself(value: Any) -> None:
    loaded = OmegaConf.create(f"v: {write.scalar(value)}\nl: {write.flow_value([value])}\n")
    assert OmegaConf.to_container(loaded, resolve=True) == {"v": value, "l": [value]}
    if isinstance(value, str):
        assert list(OmegaConf.create(f"{write.key(value)}: 1\n")) == [value]


@pytest.mark.parametrize("seed", range(200))
def test_a_margin_always_contains_what_was_observed(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-8, 12)
    low, high = sorted(rng.normal(rng.normal() * scale, scale, 2))
    integer = bool(seed % 3 == 0)
    if integer:
        low, high = math.floor(low), math.ceil(high)
    lower, upper = write._margin(low, high, integer)
    assert lower <= low and upper >= high
    if low >= 0:  # never below 0 unless the data is
        assert lower >= 0


def test_nothing_of_the_churn_demo_leaks_in(tmp_path: Path) -> None:
    frame = customers().rename(columns={"Churn": "left", "customer id": "account"})
    frame.to_csv(tmp_path / "accounts.csv", index=False)
    init_command([str(tmp_path / "shop"), "--data", str(tmp_path / "accounts.csv"), "--target", "left"])
    conf = tmp_path / "shop" / "conf"
    for path in conf.rglob("*.yaml"):
        text = path.read_text()
        for demo in ("customer_id", "cancelled_at", "order_behaviour", "100000", "protected_columns: [age]",
                     "compare_models", "data/churn", "3,200", "discounted_price: 8"):
            assert demo not in text, (path, demo)
    names = sorted(p.relative_to(conf).as_posix() for p in conf.rglob("*") if p.is_file())
    assert names == ["business/shop.yaml", "config.yaml", "data/shop.yaml", "experiment/shop.yaml",
                     "features/shop.yaml", "local/.gitkeep", "model/hist_gradient_boosting.yaml",
                     "model/logistic.yaml", "model/random_forest.yaml", "promotion/default.yaml", "quality/none.yaml", "quality/shop.yaml",
                     "split/holdout.yaml"]
    plan = compiled(tmp_path / "shop")
    assert plan.business.requirements == () or all(r.value is None for r in plan.business.requirements)
    assert plan.business.threshold == 0.5
