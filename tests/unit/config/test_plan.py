from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from engine.config import expr, plan
from engine.config import quality as rules
from engine.config.business import BusinessSpec, Economics
from engine.config.features import AggregationSpec, Attribute, ColumnSpec, FeatureSpec
from engine.config.plan import DataSpec, ModelSpec, Plan, Preprocess, SourceSpec, SplitSpec
from engine.config.validation import ConfigOrigin, validate
from engine.errors import ConfigError
from tests.conftest import CONF, compose_config


def test_the_default_config_compiles_into_typed_parts() -> None:
    compiled = plan.compile(compose_config())
    assert isinstance(compiled, Plan)
    assert compiled.settings.name == "churn" and compiled.settings.seed == 7
    assert compiled.settings.as_of == pd.Timestamp("2026-10-01")
    assert (compiled.settings.threads, compiled.settings.cache, compiled.settings.report) == (1, False, True)

    orders = compiled.data.sources["orders"]
    assert orders == SourceSpec(name="orders", type="parquet", key="order_id", timestamp="ordered_at",
                                location="data/churn/orders.parquet", options=orders.options)
    customers = compiled.data.sources["customers"]
    assert customers.load_args == {} and customers.key_column == "customer_id" and customers.infinite == "error"
    assert customers.columns["cancelled_at"] == ColumnSpec(type="datetime", nullable=True)
    assert customers.columns["age"] == ColumnSpec(type="int") and customers.options["columns"] is customers.columns
    assert compiled.data.sources["crm"].location == "sqlite:///data/churn/crm.db"
    assert (compiled.data.dir, compiled.data.generate["customers"]) == ("data/churn", 20000)
    assert compiled.data.timestamps() == {"customers": None, "crm": None, "contacts": "contacted_at",
                                          "orders": "ordered_at"}

    assert isinstance(compiled.quality, rules.QualitySpec)
    fresh = compiled.quality.rules["orders_fresh"]
    assert isinstance(fresh, rules.Freshness) and fresh.max_age_delta == pd.Timedelta(days=1)

    features = compiled.features
    assert isinstance(features, FeatureSpec)
    assert (features.key, features.entity_source, features.target) == ("customer_id", "customers", "churned")
    assert all(not isinstance(node, str) for node in features.expressions.values())  # parsed trees
    assert features.attributes["segment"] == Attribute("crm", "segment")
    group = features.groups["order_behaviour"]
    assert group.source == "orders" and group.version == 1
    assert group.aggregations["orders_30d"] == AggregationSpec("count", None, pd.Timedelta(days=30))
    assert features.store == "outputs/feature_store"

    assert compiled.model == ModelSpec("sklearn.linear_model.LogisticRegression",
                                       {"C": 1.0, "class_weight": "balanced", "max_iter": 1000, "random_state": 7},
                                       Preprocess("median", True, "most_frequent", None))
    assert compiled.split == SplitSpec(test_size=0.25, stratify=True, seed=7)
    business = compiled.business
    assert isinstance(business, BusinessSpec) and isinstance(business.economics, Economics)
    assert business.economics.price == 10.0 and business.threshold == "best" and not business.tunes_threshold
    assert {r.name for r in business.requirements} >= {"min_roc_auc", "protected_columns"}
    assert "requirements" not in business.inputs and business.inputs["customers"] == 100000


def test_a_plan_is_frozen() -> None:
    compiled = plan.compile(compose_config())
    for part in (compiled, compiled.settings, compiled.data, compiled.quality, compiled.features, compiled.model,
                 compiled.split, compiled.business, compiled.data.sources["orders"]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            part.seed = 1  # type: ignore[misc, union-attr]


def test_compile_takes_the_composed_config_unresolved_too() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=random_forest"])
    assert plan.compile(cfg).model.params["random_state"] == 7  # ${seed}, resolved


@pytest.mark.parametrize("overrides", [
    ["model=random_forest", "model.n_estimators=-5"],
    ["+split.test_sise=0.3"],
    ["model._target_=os.system"],
    ["as_of=someday"],
    ["features.derived.avg_expenditure=n_orders.__class__"],
    ["quality.rules.orders_fresh.max_age=soon"],
    ["business.soft_requirements=[nope]"],
    ["business.discounted_price=11"],
], ids=lambda o: " ".join(o))
def test_a_bad_config_raises_the_one_line_error_validate_raises(overrides: list[str]) -> None:
    where = ConfigOrigin(choices={"model": "random_forest"}, overrides=overrides)
    with pytest.raises(ConfigError) as compiled:
        plan.compile(compose_config(*overrides), where)
    with pytest.raises(ConfigError) as validated:
        validate(compose_config(*overrides), where)
    assert str(compiled.value) == str(validated.value) and "\n" not in str(compiled.value)


def test_the_feature_spec_parses_each_expression_once(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    parse = expr.parse

    def counted(text: str) -> expr.Node:
        seen.append(text)
        return parse(text)

    monkeypatch.setattr(expr, "parse", counted)
    cfg = compose_config()["features"]
    spec = FeatureSpec.from_config(cfg)
    declared = [cfg["population"], *cfg["derived"].values(), cfg["target"]["expr"],
                *(agg["window"] for group in cfg["groups"].values() for agg in group["aggregations"].values()
                  if agg.get("window"))]
    assert sorted(seen) == sorted(declared)  # one parse per declaration (two windows may both say 30d)
    seen.clear()
    spec.lineage({"orders": "ordered_at"})  # from the parsed trees
    assert seen == []


def test_each_part_is_built_from_its_group_alone() -> None:
    cfg = compose_config()
    assert DataSpec.from_config(cfg["data"]).sources["orders"].timestamp == "ordered_at"
    assert SplitSpec.from_config(cfg["split"]).test_size == 0.25
    assert ModelSpec.from_config({"_target_": "sklearn.linear_model.LogisticRegression"}).name == "LogisticRegression"
    assert BusinessSpec.from_config(cfg["business"]).requirements
    assert list(rules.QualitySpec.from_config(cfg["quality"]).rules) == list(cfg["quality"]["rules"])


def test_passthrough_features_are_attributes_and_bare_spine_columns() -> None:
    cfg = compose_config()["features"]
    derived = {**cfg["derived"], "age_as_is": "age", "tenure_again": "tenure_days", "cut": "as_of"}
    spec = FeatureSpec.from_config({**cfg, "derived": derived})
    # an attribute, a spine column named as it is; not a feature renamed, nor the cut-off
    assert spec.passthrough() == {"plan": ("customers", "plan"), "segment": ("crm", "segment"),
                                  "age_as_is": ("customers", "age")}
