from __future__ import annotations

import pytest

from engine.config.validation import ConfigOrigin, validate
from engine.errors import ConfigError
from tests.conftest import compose_config

WHERE = ConfigOrigin(choices={"model": "random_forest", "split": "holdout", "features": "churn"},
                   overrides=["model=random_forest"])


def check(*overrides: str) -> ConfigError:
    cfg = compose_config(*overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg, WHERE)
    return info.value


def test_the_default_config_is_valid() -> None:
    validate(compose_config())


def test_an_out_of_range_hyper_parameter_names_key_file_expected_and_given() -> None:
    error = check("model=random_forest", "model.n_estimators=-5")
    assert error.path == "model.n_estimators"
    assert error.source == "conf/model/random_forest.yaml"
    assert "must be an int in the range [1, inf)" in str(error)
    assert "Got -5" in str(error)
    assert str(error).startswith("config error at model.n_estimators (conf/model/random_forest.yaml): ")


def test_a_wrong_type_is_reported_with_the_value_given() -> None:
    error = check("split.test_size=abc")
    assert error.path == "split.test_size"
    assert "must be a number > 0 and < 1, got 'abc'" in str(error)


def test_an_unknown_key_suggests_the_near_match() -> None:
    error = check("+split.test_sise=0.3")
    assert error.path == "split.test_sise"
    assert "did you mean 'test_size'" in str(error)


def test_an_unknown_hyper_parameter_lists_the_estimators_parameters() -> None:
    error = check("model=random_forest", "+model.n_estimator=3")
    assert error.path == "model.n_estimator"
    assert "did you mean 'n_estimators'" in str(error)


def test_a_missing_required_key() -> None:
    error = check("~split.stratify")
    assert error.path == "split.stratify"
    assert "missing required key; expected true or false" in str(error)


def test_a_target_outside_the_allowlist_is_refused_before_import() -> None:
    error = check("model._target_=os.system")
    assert error.path == "model._target_"
    assert "'os.system' is not on the allowlist" in str(error)


def test_a_target_anywhere_in_the_config_is_checked() -> None:
    error = check("+model.estimator._target_=subprocess.call")
    assert error.path == "model.estimator._target_"
    assert "not on the allowlist" in str(error)


def test_an_unparseable_expression_names_its_key() -> None:
    error = check("features.derived.avg_expenditure='__import__(1)'")
    assert error.path == "features.derived.avg_expenditure"
    assert "is not allowed" in str(error)


def test_a_cycle_between_derived_features() -> None:
    error = check("+features.derived.a='b + 1'", "+features.derived.b='a * 2'")
    assert error.path.startswith("features.derived.")
    assert "cycle" in str(error)


def test_a_bad_cut_off_date() -> None:
    error = check("as_of=yesterday-ish")
    assert error.path == "as_of"


def test_an_invalid_window_duration() -> None:
    error = check("features.groups.order_behaviour.aggregations.orders_30d.window=thirty")
    assert error.path == "features.groups.order_behaviour.aggregations.orders_30d.window"
    assert "a duration such as 30d" in str(error)


def test_the_override_is_named_as_the_source_when_it_set_the_key() -> None:
    cfg = compose_config("split.test_size=2")
    where = ConfigOrigin(choices={"split": "holdout"}, overrides=["split.test_size=2"])
    with pytest.raises(ConfigError) as info:
        validate(cfg, where)
    assert info.value.source == "override split.test_size=2"


def test_config_error_is_also_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_a_run_without_a_cut_off_fails_clearly_instead_of_using_the_clock() -> None:
    error = check("as_of=null")
    assert error.path == "as_of" and "got None" in str(error)


def test_a_removed_cut_off_is_a_config_error_naming_it() -> None:
    from hydra import compose, initialize_config_dir

    from engine.config.validation import resolve
    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["~as_of"])
    with pytest.raises(ConfigError, match="Interpolation key 'as_of' not found"):
        resolve(cfg)


def test_quality_rule_keys_are_checked_per_rule_type() -> None:
    error = check("+quality.rules.plausible_age.values=[1]")
    assert error.path == "quality.rules.plausible_age.values"
    assert "unknown key" in str(error)
    error = check("quality.rules.known_plan.values=monthly")
    assert "must be a list, got 'monthly'" in str(error)
    error = check("~quality.rules.plausible_age.column")
    assert error.path == "quality.rules.plausible_age.column" and "missing required key" in str(error)


@pytest.mark.parametrize(("overrides", "path", "words"), [
    (["features.target.name=plan"], "features.attributes.plan", "already used by features.target.name"),
    (["+features.derived.customer_id=n_orders"], "features.derived.customer_id", "features.entity.key"),
    (["+features.groups.order_behaviour.aggregations.plan={agg: count}"],
     "features.groups.order_behaviour.aggregations.plan", "already used by features.attributes.plan"),
    (["+features.derived.left_in='days(cancelled_at - as_of)'"], "features.derived.left_in", "leaks the label"),
    (["+features.attributes.cancelled=customers.cancelled_at"], "features.attributes.cancelled", "leaks the label"),
    (["features.entity.source=billing"], "features.entity.source", "unknown source 'billing'"),
    (["features.attributes.segment=crms.segment"], "features.attributes.segment", "unknown source 'crms'"),
    (["features.groups.order_behaviour.source=crm"], "features.groups.order_behaviour.source", "declares no timestamp"),
    (["+features.groups.order_behaviour.aggregations.s={agg: sum}"],
     "features.groups.order_behaviour.aggregations.s.column", "needs a column"),
    (["features.groups.order_behaviour.aggregations.n_orders.agg=median"],
     "features.groups.order_behaviour.aggregations.n_orders.agg", "must be one of: count, sum"),
])
def test_feature_mistakes_are_found_before_any_data_is_read(overrides: list[str], path: str, words: str) -> None:
    error = check(*overrides)
    assert error.path == path
    assert words in str(error)


@pytest.mark.parametrize(("overrides", "path", "words"), [
    (["business.churners_per_month=100001"], "business.churners_per_month",
     "must be at most business.customers (the customers scored each month, 100000), got 100001"),
    (["business.discounted_price=12"], "business.discounted_price",
     "must be at most business.price (the price: the offer is a discount, 10.0), got 12"),
])
def test_business_inputs_that_contradict_each_other(overrides: list[str], path: str, words: str) -> None:
    error = check(*overrides)
    assert error.path == path and words in str(error)


def test_business_inputs_at_their_bounds_are_valid() -> None:
    validate(compose_config("business.churners_per_month=100000", "business.discounted_price=10"))


@pytest.mark.parametrize(("selector", "message"), [
    ("{from:customers,columns:all,exclude:[age]}", None),
    ("{from:customers,columns:[plan,age]}", None),
    ("{from:customers,columns:some}", r"features\.attributes\.everything\.columns: must be 'all' or a non-empty list"),
    ("{from:customers.plan,columns:all}", r"features\.attributes\.everything\.from: must be a source name"),
    ("{from:customers,columns:all,ttl:3d}", r"features\.attributes\.everything\.ttl: unknown key"),
    ("{from:nowhere,columns:all}", r"features\.attributes\.everything\.from.*unknown source 'nowhere'"),
])
def test_an_attribute_selector_is_checked_like_any_key(selector: str, message: str | None) -> None:
    cfg = compose_config(f"+features.attributes.everything={selector}")
    if message is None:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=message):
            validate(cfg)
@pytest.mark.parametrize("overrides, path, words", [
    (["++data.sources.customers.columns={age: integer}"], "data.sources.customers.columns.age",
     "must be one of: int, float, bool, str, string, category, datetime, got 'integer'"),
    (["++data.sources.customers.columns={age: {type: integer}}"], "data.sources.customers.columns.age.type",
     "must be one of: int, float, bool, str, string, category, datetime, got 'integer'"),
    (["++data.sources.customers.columns={age: {type: int, nulable: true}}"],
     "data.sources.customers.columns.age.nulable", "unknown key; did you mean 'nullable'?"),
    (["++data.sources.customers.columns={age: 5}"], "data.sources.customers.columns.age",
     "must be a type (int, float, bool, str, string, category, datetime) or a mapping"),
    (["++data.sources.customers.columns={age: {type: int, format: '%Y'}}"],
     "data.sources.customers.columns.age.format", "a format belongs to a datetime column, got one on a 'int' column"),
    (["+data.sources.orders.columns={ordered_at: str}"], "data.sources.orders.columns.ordered_at",
     "the source's timestamp column must be declared datetime, got 'str'"),
    (["+data.sources.orders.columns={ordered_at: datetime}", "+data.sources.orders.load_args.parse_dates=[ordered_at]"],
     "data.sources.orders.columns.ordered_at",
     "column 'ordered_at' is also typed in data.sources.orders.load_args (dtype or parse_dates)"),
    (["data.sources.customers.key=null", "++data.sources.customers.columns={row_number: int}"],
     "data.sources.customers.columns.row_number", "a source without a key gets the engine's 'row_number' column"),
    (["data.sources.customers.infinite=ignore"], "data.sources.customers.infinite",
     "must be one of: error, missing, got 'ignore'"),
    (["+data.sources.crm.encoding=latin-1"], "data.sources.crm.encoding", "must be absent: only a csv source has an"),
    (["+data.sources.customers.load_args.encoding=latin-1"], "data.sources.customers.load_args.encoding",
     "must be absent: set the source's own key, data.sources.<name>.encoding"),
])
def test_source_schemas_are_checked_before_any_data_is_read(overrides: list[str], path: str, words: str) -> None:
    error = check(*overrides)
    assert error.path == path, str(error)
    assert words in str(error), str(error)


def test_typed_keyless_sources_are_valid() -> None:
    validate(compose_config("data.sources.customers.key=null", "data.sources.customers.encoding=cp1252",
                            "++data.sources.customers.columns={age: {type: int, nullable: true}, plan: category, "
                            "last_name: {type: string, nullable: true}}", "+data.sources.orders.infinite=missing"))


@pytest.mark.parametrize("override, path", [
    ("+data.sources.crm.path=crm.csv", "data.sources.crm.path"),
    ("+data.sources.customers.query=SELECT 1", "data.sources.customers.query"),
    ("+data.sources.orders.table=orders", "data.sources.orders.table"),
])
def test_a_key_of_another_source_type_is_refused_not_a_crash(override: str, path: str) -> None:
    error = check(override)
    assert error.path == path and "must be absent: " in str(error), str(error)
