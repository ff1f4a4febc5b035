"""Every rule type on edge data, and a differential test against plain pandas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config import quality as rules
from engine.errors import ConfigError
from engine.stages import data, quality

AS_OF = pd.Timestamp("2026-10-01")


def table(frame: pd.DataFrame, name: str = "t", key: str = "id") -> data.Table:
    return data.Table(name, frame, data.CsvSource(key=key), "x")


def check(frame: pd.DataFrame, others: dict[str, pd.DataFrame] | None = None, **spec: Any) -> quality.RuleResult:
    spec = {"dimension": "accuracy", "severity": "error", "source": "t", **spec}
    if spec["check"] in ("agree", "row_count_equal"):
        spec.pop("source")
    tables = {"t": table(frame), **{n: table(f, n) for n, f in (others or {}).items()}}
    report = quality.run(rules.QualitySpec.from_config({"rules": {"r": spec}}), quality.Context(tables, AS_OF))
    (result,) = report.results
    return result


FRAME = pd.DataFrame({
    "id": [1, 2, 3, 4, 5, 6],
    "age": [25, 17, None, 40, 130, 33],
    "plan": ["monthly", "annual", None, "gold", "monthly", "family"],
    "email": ["a@x.io", "bad", None, "c@y.org", "d@z.com", "e@w.net"],
    "amount": [10.0, 5.0, 8.0, np.nan, 3.0, 4.0],
    "discount": [1.0, 6.0, 0.0, 1.0, np.nan, 4.0],
    "ordered_at": pd.to_datetime(["2026-09-30 12:00", "2026-09-29", "2026-10-02", None, "2026-08-01", "2026-09-01"],
                                 format="ISO8601"),
})


# ------------------------------------------------------------------ each rule type


def test_not_null_counts_over_all_rows_with_examples() -> None:
    r = check(FRAME, check="not_null", column="age", mostly=0.8)
    assert (r.unexpected, r.denominator, r.denominator_kind) == (1, 6, "all rows")
    assert r.observed == pytest.approx(5 / 6, abs=1e-6) and r.passed
    assert r.examples == [{"key": 3, "value": None}]
    assert not check(FRAME, check="not_null", column="age", mostly=0.9).passed


def test_missing_share_is_bounded_above() -> None:
    r = check(FRAME, check="missing_share", column="plan", max=0.2)
    assert (r.unexpected, r.denominator, r.observed, r.passed) == (1, 6, pytest.approx(1 / 6, abs=1e-6), True)
    assert not check(FRAME, check="missing_share", column="plan", max=0.1).passed


def test_row_count_and_columns_exist() -> None:
    assert check(FRAME, check="row_count", min=6, max=6).passed
    r = check(FRAME, check="row_count", min=10)
    assert not r.passed and r.observed == 6 and r.unexpected is None
    r = check(FRAME, check="columns_exist", columns=["id", "age", "zip", "city"])
    assert not r.passed and (r.unexpected, r.denominator) == (2, 4)
    assert [e["value"] for e in r.examples] == ["zip", "city"]


def test_between_ignores_nulls_and_names_the_offenders() -> None:
    r = check(FRAME, check="between", column="age", min=18, max=100)
    assert (r.unexpected, r.denominator, r.denominator_kind) == (2, 5, "non-null rows")
    assert [e["key"] for e in r.examples] == [2, 5]
    assert check(FRAME, check="between", column="age", min=17, max=130).passed
    assert not check(FRAME, check="between", column="age", min=17, max=130, strict=True).passed


def test_between_on_dates() -> None:
    r = check(FRAME, check="between", column="ordered_at", min="2026-09-01", max="2026-09-30 23:59")
    assert (r.unexpected, r.denominator) == (2, 5)  # 2026-10-02 and 2026-08-01


def test_in_set_and_not_in_set() -> None:
    r = check(FRAME, check="in_set", column="plan", values=["monthly", "annual", "family"])
    assert (r.unexpected, r.denominator) == (1, 5) and r.examples == [{"key": 4, "value": "gold"}]
    r = check(FRAME, check="not_in_set", column="plan", values=["gold"])
    assert (r.unexpected, r.denominator) == (1, 5)


def test_regex_must_match_whole_value() -> None:
    r = check(FRAME, check="regex", column="email", pattern=r"[^@]+@[^@]+\.[a-z]+")
    assert (r.unexpected, r.denominator) == (1, 5) and r.examples[0]["value"] == "bad"


def test_dtype_judges_columns_and_mixed_values() -> None:
    assert check(FRAME, check="dtype", column="amount", expected="float").passed
    assert not check(FRAME, check="dtype", column="plan", expected="integer").passed
    mixed = pd.DataFrame({"id": [1, 2, 3, 4], "v": pd.Series([1, "2", 3.5, None], dtype=object)})
    r = check(mixed, check="dtype", column="v", expected="integer")
    assert (r.unexpected, r.denominator) == (2, 3)


def test_length_of_text() -> None:
    r = check(FRAME, check="length", column="email", min=6, max=7)
    assert (r.unexpected, r.denominator) == (1, 5)  # 'bad' is too short


@pytest.mark.parametrize(("stat", "q", "value"), [("min", None, 17.0), ("max", None, 130.0), ("mean", None, 49.0),
                                                   ("median", None, 33.0), ("quantile", 0.5, 33.0)])
def test_stat_within_bounds(stat: str, q: float | None, value: float) -> None:
    r = check(FRAME, check="stat", column="age", stat=stat, q=q, min=0, max=200)
    assert r.observed == pytest.approx(value) and r.passed
    assert not check(FRAME, check="stat", column="age", stat=stat, q=q, min=value + 1).passed


def test_unique_single_and_compound() -> None:
    frame = pd.DataFrame({"id": [1, 2, 2, 3, None], "day": [1, 1, 2, 1, 1]})
    r = check(frame, check="unique", columns=["id"])
    assert (r.unexpected, r.denominator) == (2, 4)
    r = check(frame, check="unique", columns=["id", "day"])
    assert (r.unexpected, r.denominator) == (0, 4) and r.passed


def test_compare_sides_may_be_expressions() -> None:
    # discount <= amount * 0.5: rows 1 (1 <= 5), 3 (0 <= 4) and 6 (4 <= 2: fails); 2 (6 <= 2.5: fails)
    r = check(FRAME, check="compare", left="discount", op="<=", right="amount * 0.5")
    assert (r.unexpected, r.denominator) == (2, 4)
    assert r.examples == [{"key": 2, "value": [6.0, 2.5]}, {"key": 6, "value": [4.0, 2.0]}]
    both = check(FRAME, check="compare", left="discount + 1", op="<", right="amount")
    assert (both.unexpected, both.denominator) == (2, 4)  # 7 < 5 and 5 < 4 fail
    against_a_number = check(FRAME, check="compare", left="age", op=">=", right="18")
    assert (against_a_number.unexpected, against_a_number.denominator) == (1, 5)


def test_a_compare_side_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"quality.rules.r.right: invalid expression 'amount \* \* 2'"):
        check(FRAME, check="compare", left="discount", op="<=", right="amount * * 2")
    with pytest.raises(ConfigError, match="has no column 'amout'; did you mean 'amount'"):
        check(FRAME, check="compare", left="discount", op="<=", right="amout * 2")


def test_a_compare_side_without_operators_is_a_column_as_written() -> None:
    frame = FRAME.rename(columns={"amount": "total amount"})
    r = check(frame, check="compare", left="discount", op="<=", right="total amount")
    assert (r.unexpected, r.denominator) == (1, 4)


def test_compare_two_columns_row_by_row() -> None:
    r = check(FRAME, check="compare", left="discount", op="<=", right="amount")
    assert (r.unexpected, r.denominator, r.denominator_kind) == (1, 4, "rows where both are non-null")
    assert r.examples == [{"key": 2, "value": [6.0, 5.0]}]


def test_agree_between_two_sources_on_a_key() -> None:
    billing = pd.DataFrame({"id": [1, 2, 3, 4], "active": [True, True, False, None]})
    crm = pd.DataFrame({"id": [4, 3, 2, 9], "active": [None, True, True, False]})
    r = check(billing, {"crm": crm}, check="agree", left="t.active", right="crm.active", key="id", dimension="consistency")
    assert (r.unexpected, r.denominator, r.denominator_kind) == (1, 3, "joined rows")
    assert r.examples == [{"key": 3, "value": {"t.active": False, "crm.active": True}}]


def test_foreign_key_and_equal_row_counts() -> None:
    customers = pd.DataFrame({"id": [1, 2, 3]})
    orders = pd.DataFrame({"id": [10, 11, 12, 13], "customer_id": [1, 4, None, 3]})
    r = check(orders, {"customers": customers}, check="foreign_key", column="customer_id",
              references="customers.id")
    assert (r.unexpected, r.denominator) == (1, 3) and r.examples == [{"key": 11, "value": 4.0}]
    r = check(orders, {"customers": customers}, check="row_count_equal", left="t", right="customers")
    assert not r.passed and r.observed == {"t": 4, "customers": 3} and r.unexpected == 1


def test_freshness_is_measured_against_as_of_never_the_clock() -> None:
    r = check(FRAME, check="freshness", column="ordered_at", max_age="1d", dimension="timeliness")
    assert r.passed and r.observed == "age 12.00h"  # the 2026-10-02 event is after as_of: ignored
    r = check(FRAME, check="freshness", column="ordered_at", max_age="6h", dimension="timeliness")
    assert not r.passed


def test_after_cutoff_share_and_newest_between() -> None:
    r = check(FRAME, check="after_cutoff", column="ordered_at", max=0.1, dimension="timeliness")
    assert (r.unexpected, r.denominator, r.passed) == (1, 5, False)
    assert check(FRAME, check="newest_between", column="ordered_at", min="2026-10-01", max="2026-10-03").passed
    assert not check(FRAME, check="newest_between", column="ordered_at", max="2026-10-01").passed


def test_a_filter_limits_the_rows_checked() -> None:
    r = check(FRAME, check="not_null", column="age", filter="plan == 'monthly'")
    assert (r.unexpected, r.denominator) == (0, 2)


# ------------------------------------------------------------------ edge data

EMPTY = FRAME.iloc[:0]
ROW_RULES = [
    {"check": "not_null", "column": "age"},
    {"check": "between", "column": "age", "min": 0, "max": 1},
    {"check": "in_set", "column": "plan", "values": ["x"]},
    {"check": "not_in_set", "column": "plan", "values": ["monthly"]},
    {"check": "regex", "column": "email", "pattern": "z+"},
    {"check": "dtype", "column": "plan", "expected": "integer"},
    {"check": "length", "column": "email", "max": 1},
    {"check": "unique", "columns": ["plan"]},
    {"check": "compare", "left": "amount", "op": "<", "right": "discount"},
    {"check": "after_cutoff", "column": "ordered_at", "max": 0.0},
    {"check": "missing_share", "column": "age", "max": 0.0},
]


@pytest.mark.parametrize("spec", ROW_RULES, ids=[s["check"] for s in ROW_RULES])
def test_an_empty_frame_has_nothing_unexpected(spec: dict[str, Any]) -> None:
    r = check(EMPTY, **spec)
    assert (r.unexpected, r.denominator) == (0, 0)
    assert r.passed and r.examples == []


@pytest.mark.parametrize("spec", [
    {"check": "row_count", "min": 1},
    {"check": "stat", "column": "age", "stat": "mean", "min": 0},
    {"check": "freshness", "column": "ordered_at", "max_age": "1d"},
    {"check": "newest_between", "column": "ordered_at", "min": "2000-01-01"},
], ids=lambda s: s["check"])
def test_aggregates_of_an_empty_frame_fail_clearly(spec: dict[str, Any]) -> None:
    assert not check(EMPTY, **spec).passed


def test_all_null_columns() -> None:
    nulls = pd.DataFrame({"id": [1, 2, 3], "v": [None, None, None], "ts": pd.to_datetime([None, None, None])})
    assert check(nulls, check="not_null", column="v").unexpected == 3
    r = check(nulls, check="between", column="v", min=0, max=1)
    assert (r.unexpected, r.denominator, r.passed) == (0, 0, True)
    assert check(nulls, check="in_set", column="v", values=[1]).denominator == 0
    assert not check(nulls, check="freshness", column="ts", max_age="1d").passed


def test_nan_and_none_are_both_missing() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "v": pd.Series([1.0, np.nan, None, 2.0], dtype=object)})
    assert check(frame, check="not_null", column="v").unexpected == 2
    assert check(frame, check="between", column="v", min=0, max=5).denominator == 2


def test_mixed_types_fail_a_numeric_rule_instead_of_crashing() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "v": pd.Series([5, "seven", 3.5, None], dtype=object)})
    r = check(frame, check="between", column="v", min=0, max=10)
    assert (r.unexpected, r.denominator) == (1, 3) and r.examples == [{"key": 2, "value": "seven"}]


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_timestamps_with_and_without_time_zones(tz: str | None) -> None:
    times = FRAME["ordered_at"] if tz is None else FRAME["ordered_at"].dt.tz_localize("UTC").dt.tz_convert(tz)
    frame = FRAME.assign(ordered_at=times)
    assert check(frame, check="freshness", column="ordered_at", max_age="1d", dimension="timeliness").observed \
        == "age 12.00h"
    assert check(frame, check="after_cutoff", column="ordered_at", max=1.0).unexpected == 1
    r = check(frame, check="between", column="ordered_at", min="2026-09-01", max="2026-09-30 23:59")
    assert r.unexpected == 2


def test_categorical_columns() -> None:
    frame = FRAME.assign(plan=FRAME["plan"].astype("category"))
    assert check(frame, check="in_set", column="plan", values=["monthly", "annual", "family"]).unexpected == 1
    assert check(frame, check="not_null", column="plan").unexpected == 1
    assert check(frame, check="unique", columns=["plan"]).unexpected == 2
    assert check(frame, check="regex", column="plan", pattern="[a-z]+ly").unexpected == 2
    assert check(frame, check="dtype", column="plan", expected="category").passed


# ------------------------------------------------------------------ bad rule configs


def test_a_column_that_does_not_exist_names_rule_column_and_near_match() -> None:
    with pytest.raises(ConfigError) as info:
        check(FRAME, check="between", column="agee", min=0)
    assert info.value.path == "quality.rules.r.column"
    assert "rule 'r': source 't' has no column 'agee'; did you mean 'age'?" in str(info.value)


def test_a_bound_of_the_wrong_type() -> None:
    with pytest.raises(ConfigError, match="must be a number for numeric column 'amount', got 'lots'"):
        check(FRAME, check="between", column="amount", min="lots")


def test_every_registered_rule_type_has_a_check() -> None:
    assert set(rules.RULE_TYPES) == set(quality.CHECKS)


# ------------------------------------------------------------------ differential


def random_frame(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 20, n)
    amount[rng.uniform(size=n) < 0.1] = np.nan
    return pd.DataFrame({
        "id": rng.integers(0, n, n),
        "amount": amount,
        "discount": np.where(rng.uniform(size=n) < 0.05, np.nan, rng.normal(10, 15, n)),
        "plan": pd.Series(rng.choice(["a", "b", "c", None], n), dtype=object),
        "code": pd.Series(rng.choice(["AB-1", "ab-2", "XY-33", None], n), dtype=object),
        "ts": pd.Timestamp("2026-09-01") + pd.to_timedelta(rng.uniform(0, 40, n), unit="D"),
    })


@pytest.mark.parametrize("seed", range(12))
def test_counts_agree_with_plain_pandas(seed: int) -> None:
    f = random_frame(seed)
    expected = {
        "not_null": (f["amount"].isna().sum(), len(f)),
        "missing_share": (f["plan"].isna().sum(), len(f)),
        "between": ((~f["amount"].between(30, 70) & f["amount"].notna()).sum(), f["amount"].notna().sum()),
        "in_set": ((~f["plan"].isin(["a", "b"]) & f["plan"].notna()).sum(), f["plan"].notna().sum()),
        "not_in_set": ((f["plan"].isin(["a"])).sum(), f["plan"].notna().sum()),
        "regex": ((~f["code"].str.fullmatch(r"[A-Z]{2}-\d+").fillna(True).astype(bool)).sum(),
                  f["code"].notna().sum()),
        "length": ((f["code"].str.len() > 4).sum(), f["code"].notna().sum()),
        "unique": (f["id"].duplicated(keep=False).sum(), len(f)),
        "compare": (((f["discount"] > f["amount"]) & f["discount"].notna() & f["amount"].notna()).sum(),
                    (f["discount"].notna() & f["amount"].notna()).sum()),
        "after_cutoff": ((f["ts"] > AS_OF).sum(), len(f)),
        "dtype": (0, f["amount"].notna().sum()),
        "foreign_key": ((~f["id"].isin(range(0, 150))).sum(), len(f)),
    }
    specs = {
        "not_null": {"column": "amount"},
        "missing_share": {"column": "plan", "max": 0.5},
        "between": {"column": "amount", "min": 30, "max": 70},
        "in_set": {"column": "plan", "values": ["a", "b"]},
        "not_in_set": {"column": "plan", "values": ["a"]},
        "regex": {"column": "code", "pattern": r"[A-Z]{2}-\d+"},
        "length": {"column": "code", "max": 4},
        "unique": {"columns": ["id"]},
        "compare": {"left": "discount", "op": "<=", "right": "amount"},
        "after_cutoff": {"column": "ts", "max": 1.0},
        "dtype": {"column": "amount", "expected": "float"},
        "foreign_key": {"column": "id", "references": "ref.id"},
    }
    ref = pd.DataFrame({"id": range(0, 150)})
    for name, spec in specs.items():
        r = check(f, {"ref": ref}, check=name, **spec)
        assert (r.unexpected, r.denominator) == tuple(int(v) for v in expected[name]), name
        assert len(r.examples) == min(r.unexpected, quality.MAX_EXAMPLES), name


@pytest.mark.parametrize("kind", ["int", "float_nan", "datetime_nat", "datetime_tz", "text", "category"])
def test_the_fast_duplicate_finder_agrees_with_pandas(kind: str) -> None:
    rng = np.random.default_rng(5)
    ints = rng.integers(0, 400, 500)
    column = {
        "int": pd.Series(ints),
        "float_nan": pd.Series(np.where(rng.uniform(size=500) < 0.1, np.nan, ints / 3)),
        "datetime_nat": pd.Series(pd.to_datetime(ints, unit="D").where(rng.uniform(size=500) > 0.1)),
        "datetime_tz": pd.Series(pd.to_datetime(ints, unit="D", utc=True)),
        "text": pd.Series(ints.astype(str)),
        "category": pd.Series(ints.astype(str)).astype("category"),
    }[kind]
    present = column.notna().to_numpy()
    expected = column.duplicated(keep=False).to_numpy() & present
    np.testing.assert_array_equal(quality._duplicated(column) & present, expected)


@pytest.mark.parametrize(("spec", "path"), [
    ({"check": "stat", "column": "age", "stat": "quantile", "q": 1.5}, "quality.rules.r.q"),
    ({"check": "regex", "column": "email", "pattern": "("}, "quality.rules.r.pattern"),
    ({"check": "newest_between", "column": "ordered_at", "min": "nope"}, "quality.rules.r.min"),
    ({"check": "unique", "columns": []}, "quality.rules.r.columns"),
    ({"check": "row_count", "min": 10, "max": 5}, "quality.rules.r.min"),
    ({"check": "agree", "left": "t.a", "right": "u.a", "key": "id", "filter": "a > 1"}, "quality.rules.r.filter"),
])
def test_bad_rule_parameters_are_config_errors_before_any_check(spec: dict[str, Any], path: str) -> None:
    from engine.config.validation import validate
    from tests.conftest import compose_config

    cfg = compose_config()
    cfg["quality"]["rules"] = {"r": {"dimension": "accuracy", **({"source": "customers"} if spec["check"] not in (
        "agree",) else {}), **spec}}
    if spec["check"] == "agree":
        cfg["quality"]["rules"]["r"].update(left="customers.active", right="crm.active")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.path == path, str(info.value)


def test_a_compare_rule_from_config_validates() -> None:
    from engine.config.validation import validate
    from tests.conftest import compose_config

    cfg = compose_config()
    cfg["quality"]["rules"] = {"discount": {"dimension": "consistency", "check": "compare", "source": "orders",
                                            "left": "amount", "op": "<=", "right": "amount"}}
    validate(cfg)
