from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config.features import FeatureSpec
from engine.errors import ConfigError, DataError
from engine.stages import data, features

AS_OF = pd.Timestamp("2026-10-01")


def tables(customers: pd.DataFrame, orders: pd.DataFrame, crm: pd.DataFrame | None = None) -> dict[str, data.Table]:
    out = {
        "customers": data.Table("customers", customers, data.CsvSource(key="customer_id"), "x"),
        "orders": data.Table("orders", orders, data.CsvSource(key="order_id", timestamp="ordered_at"), "x"),
    }
    if crm is not None:
        out["crm"] = data.Table("crm", crm, data.CsvSource(key="customer_id"), "x")
    return out


CUSTOMERS = pd.DataFrame({
    "customer_id": [1, 2, 3, 4],
    "plan": ["monthly", "annual", "monthly", "family"],
    "signup_date": pd.to_datetime(["2026-01-01", "2026-07-03", "2025-10-01", "2026-01-01"]),
    "cancelled_at": pd.to_datetime([None, "2026-10-10", None, "2026-05-01"]),
})
ORDERS = pd.DataFrame({
    "order_id": range(1, 8),
    "customer_id": [1, 1, 1, 2, 2, 3, 1],
    "ordered_at": pd.to_datetime(["2026-06-01 00:00", "2026-09-20 00:00", "2026-09-30 23:59", "2026-08-01 00:00",
                                  "2026-09-25 00:00", "2026-01-15 00:00",
                                  "2026-10-01 00:00"]),  # exactly at the cut-off: excluded
    "amount": [10.0, 20.0, 30.0, 5.0, 15.0, 100.0, 1000.0],
})


def config(**changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "entity": {"key": "customer_id", "source": "customers"},
        "population": "cancelled_at is null or cancelled_at > as_of",
        "attributes": {"plan": "customers.plan"},
        "groups": {"orders": {"source": "orders", "aggregations": {
            "n_orders": {"agg": "count"},
            "total": {"agg": "sum", "column": "amount"},
            "mean_amount": {"agg": "mean", "column": "amount"},
            "recency": {"agg": "days_since_last"},
            "orders_30d": {"agg": "count", "window": "30d"},
            "biggest": {"agg": "max", "column": "amount"},
        }}},
        "derived": {"avg": "total / n_orders", "tenure_days": "days(as_of - signup_date)"},
        "target": {"name": "churned", "expr": "cancelled_at > as_of and cancelled_at <= as_of + 30d"},
    }
    cfg.update(changes)
    return cfg


def spec(cfg: dict[str, Any]) -> FeatureSpec:
    """The features part of a plan, as compiling a config with this group makes it."""
    return FeatureSpec.from_config(cfg)


def build(cfg: dict[str, Any] | None = None, orders: pd.DataFrame = ORDERS, **kw: Any) -> pd.DataFrame:
    table = features.build(spec(cfg or config()), tables(CUSTOMERS, orders, **kw), AS_OF)
    return table.frame.set_index("customer_id")


def test_population_aggregations_derived_and_target() -> None:
    frame = build()
    assert list(frame.index) == [1, 2, 3]  # 4 cancelled before the cut-off
    assert frame.loc[1, "n_orders"] == 3
    assert frame.loc[1, "total"] == 60.0
    assert frame.loc[1, "avg"] == 20.0
    assert frame.loc[1, "orders_30d"] == 2
    assert frame.loc[1, "recency"] == pytest.approx(1 / 1440)
    assert frame.loc[2, "tenure_days"] == 90.0
    assert frame["churned"].to_dict() == {1: 0, 2: 1, 3: 0}


def test_no_event_at_or_after_the_cut_off_changes_a_feature() -> None:
    """Leakage would change these values: a big order after as_of must not count."""
    later = pd.DataFrame({"order_id": [100, 101], "customer_id": [1, 3],
                          "ordered_at": pd.to_datetime(["2026-10-02", "2026-12-24"]), "amount": [5000.0, 7.0]})
    base = build()
    leaky = build(orders=pd.concat([ORDERS, later], ignore_index=True))
    pd.testing.assert_frame_equal(base, leaky)
    assert base.loc[1, "biggest"] == 30.0  # the 1000.0 at exactly 00:00 of as_of is excluded too


def test_an_entity_without_events_gets_zero_counts_and_missing_averages() -> None:
    frame = build(orders=ORDERS[ORDERS["customer_id"] != 3])
    assert frame.loc[3, "n_orders"] == 0 and frame.loc[3, "total"] == 0
    assert pd.isna(frame.loc[3, "avg"])  # 0 / 0 is missing, documented
    assert pd.isna(frame.loc[3, "recency"])


def test_attributes_join_other_sources_on_the_key() -> None:
    crm = pd.DataFrame({"customer_id": [3, 1, 2], "segment": ["student", "consumer", "small_business"]})
    cfg = config(attributes={"plan": "customers.plan", "segment": "crm.segment"})
    frame = build(cfg, crm=crm)
    assert frame["segment"].to_dict() == {1: "consumer", 2: "small_business", 3: "student"}


def test_tz_aware_event_times_are_compared_in_utc() -> None:
    orders = ORDERS.assign(ordered_at=ORDERS["ordered_at"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin"))
    pd.testing.assert_frame_equal(build(), build(orders=orders))


def test_an_unknown_column_in_an_expression_suggests_near_matches() -> None:
    cfg = config(derived={"avg": "totl / n_orders"})
    with pytest.raises(ConfigError) as info:
        build(cfg)
    assert info.value.path == "features.derived.avg"
    assert "unknown column 'totl'" in str(info.value)
    assert "did you mean 'total'" in str(info.value)


def test_an_unknown_source_lists_the_known_ones() -> None:
    cfg = config(attributes={"segment": "crms.segment"})
    with pytest.raises(ConfigError, match="unknown source 'crms'; expected one of: customers, orders"):
        build(cfg)


def test_an_aggregation_of_an_unknown_column() -> None:
    cfg = config(groups={"o": {"source": "orders", "aggregations": {"t": {"agg": "sum", "column": "amout"}}}})
    with pytest.raises(ConfigError, match="no column 'amout'; did you mean 'amount'"):
        build(cfg)


def test_duplicate_entity_keys_are_a_data_error() -> None:
    dup = pd.concat([CUSTOMERS, CUSTOMERS.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match="'customer_id' must identify a row"):
        features.build(spec(config()), tables(dup, ORDERS), AS_OF)


def test_derived_features_may_use_each_other_in_any_order() -> None:
    cfg = config(derived={"double_avg": "avg * 2", "avg": "total / n_orders"})
    assert build(cfg).loc[1, "double_avg"] == 40.0


def test_keys_of_different_kinds_are_a_data_error_not_an_empty_join() -> None:
    orders = ORDERS.assign(customer_id=ORDERS["customer_id"].astype(str))
    with pytest.raises(DataError, match="key 'customer_id' is number .* but text"):
        build(orders=orders)


def test_sum_of_text_is_a_data_error() -> None:
    orders = ORDERS.assign(amount=ORDERS["amount"].astype(str))
    with pytest.raises(DataError, match="sum needs numbers"):
        build(orders=orders)


def test_an_empty_population_says_so() -> None:
    with pytest.raises(DataError, match="no customers row passes"):
        build(config(population="signup_date > as_of + 3650d"))


def test_an_empty_entity_source_says_so() -> None:
    with pytest.raises(DataError, match="the entity source is empty"):
        features.build(spec(config()), tables(CUSTOMERS.iloc[:0], ORDERS), AS_OF)


def test_infinite_derived_values_are_missing() -> None:
    frame = build(config(derived={"avg": "total / n_orders", "log_orders": "log(n_orders)"}),
                  orders=ORDERS[ORDERS["customer_id"] != 3])
    assert pd.isna(frame.loc[3, "log_orders"])


def test_a_tz_aware_cut_off_against_naive_columns() -> None:
    table = features.build(spec(config()), tables(CUSTOMERS, ORDERS), pd.Timestamp("2026-10-01", tz="UTC"))
    pd.testing.assert_frame_equal(table.frame.set_index("customer_id"), build())


def test_text_where_dates_are_expected_is_a_data_error_naming_the_columns() -> None:
    customers = CUSTOMERS.assign(signup_date=CUSTOMERS["signup_date"].astype(str))
    with pytest.raises(DataError, match=r"signup_date \((str|object)\)"):
        features.build(spec(config(population="signup_date < as_of")), tables(customers, ORDERS), AS_OF)


# ------------------------------------------------------------------ per-row label times and as-of joins

LABELLED = pd.DataFrame({  # one customer scored at two moments: a training set over time
    "customer_id": [1, 1, 2],
    "label_at": pd.to_datetime(["2026-09-01", "2026-09-25", "2026-09-26"]),
    "plan": ["monthly", "monthly", "annual"],
    "signup_date": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-07-03"]),
    "cancelled_at": pd.to_datetime([None, None, "2026-10-10"]),
})


def labelled_config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"entity": {"key": "customer_id", "source": "customers", "label_time": "label_at"},
                            "population": None,
                            "derived": {"avg": "total / n_orders", "tenure_days": "days(cutoff - signup_date)"}}
    return config(**{**base, **changes})


def test_no_event_after_a_rows_own_label_time_influences_it() -> None:
    table = features.build(spec(labelled_config()), tables(LABELLED, ORDERS), AS_OF)
    frame = table.frame
    # Customer 1 at 09-01 has seen only the 06-01 order; at 09-25 also the 09-20 one.
    assert frame["n_orders"].tolist() == [1.0, 2.0, 2.0]
    assert frame["total"].tolist() == [10.0, 30.0, 20.0]
    assert frame["orders_30d"].tolist() == [0.0, 1.0, 1.0]
    assert frame["recency"].tolist() == [92.0, 5.0, 1.0]
    assert frame["tenure_days"].tolist() == [243.0, 267.0, 85.0]
    # Moving events after each row's label time changes nothing.
    later = ORDERS.assign(amount=np.where(ORDERS["ordered_at"] >= "2026-09-01", 999.0, ORDERS["amount"]))
    later_tables = tables(LABELLED, later)
    assert features.build(spec(labelled_config()), later_tables, AS_OF).frame.loc[0, "total"] == 10.0


def test_label_times_after_as_of_are_capped_at_as_of() -> None:
    late = LABELLED.assign(label_at=pd.to_datetime(["2026-12-01", "2026-12-02", "2026-12-01"]))
    frame = features.build(spec(labelled_config()), tables(late, ORDERS), AS_OF).frame
    assert frame["n_orders"].tolist() == [3.0, 3.0, 2.0]  # as if scored at as_of: 10-01 00:00 excluded


def test_an_attribute_from_a_source_with_history_is_joined_as_of_each_cut_off() -> None:
    history = pd.DataFrame({
        "customer_id": [1, 1, 2],
        "changed_at": pd.to_datetime(["2026-08-01", "2026-09-10", "2026-01-01"]),
        "segment": ["student", "consumer", "small_business"],
    })
    crm = data.Table("crm", history, data.CsvSource(key="customer_id", timestamp="changed_at"), "x")
    all_tables = {**tables(LABELLED, ORDERS), "crm": crm}
    cfg = labelled_config(attributes={"segment": "crm.segment"})
    assert features.build(spec(cfg), all_tables, AS_OF).frame["segment"].tolist() == [
        "student", "consumer", "small_business"]
    cfg = labelled_config(attributes={"segment": {"from": "crm.segment", "ttl": "45d"}})
    frame = features.build(spec(cfg), all_tables, AS_OF).frame
    assert frame["segment"].iloc[:2].tolist() == ["student", "consumer"]
    assert pd.isna(frame["segment"].iloc[2])  # the 2026-01-01 value is older than the ttl


def test_use_selects_groups_and_columns_without_changing_the_table(tmp_path: Any) -> None:
    from engine.store.featurestore import FeatureStore

    store = FeatureStore(tmp_path)
    full = features.build(spec(config()), tables(CUSTOMERS, ORDERS), AS_OF, store)
    some = features.build(spec(config(use=["orders", "tenure_days"])), tables(CUSTOMERS, ORDERS), AS_OF, store)
    assert some.features == ("n_orders", "total", "mean_amount", "recency", "orders_30d", "biggest", "tenure_days")
    assert list(some.X.columns) == list(some.features)
    assert {t["status"] for t in some.tables} == {"reused"}  # the stored tables serve every selection
    assert len(full.features) > len(some.features)


def test_with_label_times_the_population_sees_each_rows_cut_off() -> None:
    late = LABELLED.assign(signup_date=pd.to_datetime(["2026-09-10", "2026-01-01", "2026-07-03"]))
    cfg = labelled_config(population="signup_date < cutoff")
    frame = features.build(spec(cfg), tables(late, ORDERS), AS_OF).frame
    # Row 0 is labelled on 09-01, before its signup on 09-10: not a customer then (as_of would keep it).
    assert len(frame) == 2 and (frame["tenure_days"] >= 0).all()


def test_the_full_table_key_changes_with_a_sources_declared_timestamp(tmp_path: Any) -> None:
    from engine.store.featurestore import FeatureStore

    store = FeatureStore(tmp_path)
    shipped = ORDERS.assign(shipped_at=ORDERS["ordered_at"] + pd.Timedelta("40D"))
    by_order = tables(CUSTOMERS, shipped)
    by_ship = {**by_order, "orders": data.Table("orders", shipped,
                                               data.CsvSource(key="order_id", timestamp="shipped_at"), "x")}
    first = features.build(spec(config()), by_order, AS_OF, store)
    second = features.build(spec(config()), by_ship, AS_OF, store)
    assert {t["status"] for t in second.tables} == {"built"}
    assert first.frame["n_orders"].tolist() != second.frame["n_orders"].tolist()


def test_a_derived_feature_mixing_text_and_numbers_is_stored_as_text(tmp_path: Any) -> None:
    from engine.store.featurestore import FeatureStore

    cfg = config(derived={"avg": "total / n_orders", "mixed": "where(n_orders > 1, plan, 3)"})
    table = features.build(spec(cfg), tables(CUSTOMERS, ORDERS), AS_OF, FeatureStore(tmp_path))
    assert table.frame["mixed"].tolist() == ["monthly", "annual", "3"]


def test_a_failed_store_write_fails_the_build_and_leaves_no_table(tmp_path: Any, monkeypatch: Any) -> None:
    import engine.store.featurestore as featurestore
    from engine.store.featurestore import FeatureStore

    def disk_full(frame: pd.DataFrame) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(featurestore, "_encode", disk_full)
    store = FeatureStore(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        features.build(spec(config()), tables(CUSTOMERS, ORDERS), AS_OF, store)
    assert not list(store.list())


def test_deferred_writes_are_checked_by_flush(tmp_path: Any, monkeypatch: Any) -> None:
    import engine.store.featurestore as featurestore
    from engine.store.featurestore import FeatureStore

    store = FeatureStore(tmp_path)
    built = features.build(spec(config()), tables(CUSTOMERS, ORDERS), AS_OF, store, defer_writes=True)
    assert [m["key"] for m in store.flush()] == [t["key"] for t in built.tables]
    warm = features.build(spec(config()), tables(CUSTOMERS, ORDERS), AS_OF, FeatureStore(tmp_path))
    assert {t["status"] for t in warm.tables} == {"reused"}
    pd.testing.assert_frame_equal(warm.frame, built.frame)

    def disk_full(frame: pd.DataFrame) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(featurestore, "_encode", disk_full)
    other = FeatureStore(tmp_path / "other")
    # returns: not written yet
    features.build(spec(config()), tables(CUSTOMERS, ORDERS), AS_OF, other, defer_writes=True)
    with pytest.raises(OSError, match="No space left"):
        other.flush()
    assert not list(other.list())


def test_a_used_feature_missing_on_every_row_is_refused_and_an_unused_one_is_not(tmp_path: Any) -> None:
    from engine.store.featurestore import FeatureStore

    cfg = config(derived={"avg": "total / 0", "tenure_days": "days(as_of - signup_date)"})
    with pytest.raises(DataError, match=r"^data error at features.derived.avg: feature 'avg' \('total / 0'\) is "
                                        r"missing on all 3 rows; expected a value on at least one row"):
        build(cfg)
    store = FeatureStore(tmp_path)
    unused = features.build(spec({**cfg, "use": ["orders", "plan"]}), tables(CUSTOMERS, ORDERS), AS_OF, store)
    assert unused.frame["avg"].isna().all() and "avg" not in unused.features
    with pytest.raises(DataError, match="features.derived.avg"):  # the stored table is checked too
        features.build(spec(cfg), tables(CUSTOMERS, ORDERS), AS_OF, store)
    no_orders = ORDERS[ORDERS["customer_id"] == 4]  # only the customer outside the population
    with pytest.raises(DataError, match="^data error at features.groups.orders.aggregations.mean_amount: "):
        build(config(derived={}), orders=no_orders)


@pytest.mark.parametrize("key, value, path", [
    ("window", "9999999999999999999999d", "features.groups.orders.aggregations.orders_30d.window"),
    ("ttl", "99999999w", "features.attributes.plan.ttl"),
])
def test_durations_out_of_range_are_config_errors_before_any_data(key: str, value: str, path: str) -> None:
    from engine.config.features import FeatureSpec

    cfg = config()
    if key == "window":
        cfg["groups"]["orders"]["aggregations"]["orders_30d"]["window"] = value
    else:
        cfg["attributes"] = {"plan": {"from": "customers.plan", "ttl": value}}
    with pytest.raises(ConfigError, match=rf"^config error at {path}: expected a duration of at most 36525d"):
        FeatureSpec.from_config(cfg)


# ------------------------------------------------------------------ attribute selectors

SELECTED = pd.DataFrame({
    "customer_id": [1, 2, 3],
    "plan": ["monthly", "annual", "monthly"],
    "monthly charges": [10.0, 12.5, 9.0],     # not an identifier: a selector takes it as is
    "région": ["nord", "sud", "nord"],
    "free_text": ["a", "b", "c"],
    "left": ["Yes", "No", "No"],
})


def selector_config(**selector: Any) -> dict[str, Any]:
    return {
        "entity": {"key": "customer_id", "source": "customers"},
        "attributes": {"customer_columns": {"from": "customers", "columns": "all", **selector}},
        "target": {"name": "churned", "expr": "left == 'Yes'"},
    }


def selected(cfg: dict[str, Any]) -> features.FeatureTable:
    return features.build(spec(cfg), {"customers": data.Table("customers", SELECTED,
                                                              data.CsvSource(key="customer_id"), "x")}, AS_OF)


def test_a_selector_takes_every_column_but_the_key_the_target_and_the_excluded() -> None:
    table = selected(selector_config(exclude=["free_text"]))
    assert table.features == ("plan", "monthly charges", "région")
    assert list(table.frame.columns) == ["customer_id", "plan", "monthly charges", "région", "churned"]
    assert table.frame["churned"].tolist() == [1, 0, 0]
    assert table.spec is not None and table.spec.attributes["région"].selector == "customer_columns"
    # lineage (compliance reads it) knows every selected column
    assert table.spec.lineage()["monthly charges"] == frozenset({"customers.monthly charges"})


def test_a_selector_with_a_list_keeps_its_order_and_explicit_features_win() -> None:
    cfg = selector_config(columns=["région", "plan"])
    cfg["attributes"] = {"plan": "customers.free_text", **cfg["attributes"]}
    table = selected(cfg)
    assert table.features == ("plan", "région")
    assert table.frame["plan"].tolist() == ["a", "b", "c"]  # the explicit attribute, not the selector's column


def test_features_use_names_a_selector_or_its_columns() -> None:
    assert selected({**selector_config(), "use": ["customer_columns"]}).features == (
        "plan", "monthly charges", "région", "free_text")
    assert selected({**selector_config(), "use": ["région"]}).features == ("région",)
    with pytest.raises(ConfigError, match=r"features\.use\.0.*unknown feature or group 'regio'"):
        selected({**selector_config(), "use": ["regio"]})


@pytest.mark.parametrize(("selector", "path"), [
    ({"exclude": ["free_txt"]}, r"features\.attributes\.customer_columns\.exclude\.0.*did you mean 'free_text'"),
    ({"columns": ["plan", "nope"]}, r"features\.attributes\.customer_columns\.columns\.1.*no column 'nope'"),
])
def test_a_selector_naming_a_missing_column_is_one_config_error(selector: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        selected(selector_config(**selector))


def test_a_selected_column_missing_on_every_row_points_at_the_selectors_exclude() -> None:
    frame = SELECTED.assign(empty=np.nan)
    with pytest.raises(DataError, match=r"features\.attributes\.customer_columns\.exclude: feature 'empty'"):
        features.build(spec(selector_config()), {"customers": data.Table("customers", frame,
                                                                         data.CsvSource(key="customer_id"), "x")},
                       AS_OF)
# ------------------------------------------------------------------ labels: missing is never the negative class

LABELLED_BY_COLUMN = CUSTOMERS.assign(churn=["Yes", None, "No", None])


def label_config(**changes: Any) -> dict[str, Any]:
    return config(**{"population": None, "target": {"name": "churned", "expr": 'churn == "Yes"'}, **changes})


def test_a_missing_label_is_refused_with_its_count_and_keys() -> None:
    with pytest.raises(DataError, match=r"^data error at features\.target\.expr: the target 'churned' "
                                        r"\('churn == \"Yes\"'\) reads 'churn', missing on 2 of the 4 rows of the "
                                        r"population \(customer_id 2, 4\); expected a label on every row"):
        features.build(spec(label_config()), tables(LABELLED_BY_COLUMN, ORDERS), AS_OF)


@pytest.mark.parametrize("changes, rows", [
    ({"population": "churn is not null"}, [1, 3]),                                       # left out of the population
    ({"target": {"name": "churned", "expr": 'fillna(churn, "No") == "Yes"'}}, [1, 2, 3, 4]),  # said what it means
])
def test_a_missing_label_is_accepted_when_the_config_says_what_it_means(changes: dict, rows: list[int]) -> None:
    frame = features.build(spec(label_config(**changes)), tables(LABELLED_BY_COLUMN, ORDERS), AS_OF).frame
    assert frame["customer_id"].tolist() == rows
    assert frame.set_index("customer_id").loc[1, "churned"] == 1


def test_a_missing_event_time_in_the_target_means_the_event_has_not_happened() -> None:
    # cancelled_at is missing for customers who never cancelled: they are the negative class.
    frame = build(config(population=None))
    assert frame.loc[1, "churned"] == 0 and frame.loc[2, "churned"] == 1
