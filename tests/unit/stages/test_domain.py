"""The training domain of a model's input: profile, file, flags."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.stages import domain


@pytest.fixture
def training() -> pd.DataFrame:
    return pd.DataFrame({
        "plan": ["annual", "monthly", "annual", "monthly"],
        "n_orders": [1, 2, 3, 10],
        "amount": [1.5, np.nan, 3.0, 4.5],
        "vip": [True, False, False, True],
    })


def test_profile_records_types_categories_ranges_and_missing_shares(training: pd.DataFrame) -> None:
    key = pd.Series([7, 8, 9, 10], name="customer_id")
    profile = domain.profile(training, key)
    assert profile["key"] == {"name": "customer_id", "type": "integer"}
    assert profile["rows"] == 4 and list(profile["columns"]) == ["plan", "n_orders", "amount", "vip"]
    columns = profile["columns"]
    assert columns["plan"] == {"type": "string", "missing_share": 0.0, "categories": ["annual", "monthly"],
                               "distinct": 2}
    assert columns["n_orders"] == {"type": "integer", "missing_share": 0.0, "min": 1, "max": 10}
    assert columns["amount"] == {"type": "number", "missing_share": 0.25, "min": 1.5, "max": 4.5}
    assert columns["vip"]["type"] == "boolean" and columns["vip"]["categories"] == ["False", "True"]


def test_many_distinct_values_are_not_kept_as_categories() -> None:
    frame = pd.DataFrame({"id": [f"x{i}" for i in range(domain.MAX_CATEGORIES + 1)]})
    column = domain.profile(frame)["columns"]["id"]
    assert column["categories"] is None and column["distinct"] == domain.MAX_CATEGORIES + 1
    assert [list(row) for row in domain.flags(pd.DataFrame({"id": ["never seen"]}), domain.profile(frame))] == [[]]


def test_saved_file_hash_is_returned_and_it_reads_back(training: pd.DataFrame, tmp_path: Path) -> None:
    profile = domain.profile(training)
    digest = domain.save(profile, tmp_path)
    payload = (tmp_path / domain.DOMAIN_FILE).read_bytes()
    assert hashlib.sha256(payload).hexdigest() == digest
    assert domain.read(payload, "here") == json.loads(json.dumps(profile))


@pytest.mark.parametrize("payload", [b"{", b"[]", b'{"format": 99, "columns": {}}',
                                     b'{"format": 1, "columns": {"a": {"type": "object"}}}'])
def test_a_file_of_another_shape_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match="here"):
        domain.read(payload, "here")


def test_flags_name_the_column_and_the_way_out_of_the_domain(training: pd.DataFrame) -> None:
    profile = domain.profile(training)
    rows = pd.DataFrame({
        "plan": ["annual", "weekly", None],
        "n_orders": [2.0, 0.0, 11.0],
        "amount": [np.nan, 2.0, 2.0],
        "vip": [True, False, None],
    })
    flagged = domain.flags(rows, profile)
    assert list(flagged[0]) == []  # amount may be missing: it was in training
    assert flagged[1] == [{"column": "plan", "flag": "unseen_category", "value": "weekly"},
                          {"column": "n_orders", "flag": "below_range", "value": 0, "min": 1}]
    assert {(f["column"], f["flag"]) for f in flagged[2]} == {("plan", "missing"), ("n_orders", "above_range"),
                                                             ("vip", "missing")}


# ------------------------------------------------------------------ the row rules kept with the model

RULES = {"rules": {
    "known_plan": {"check": "in_set", "dimension": "accuracy", "source": "customers", "column": "plan",
                   "values": ["annual", "monthly"]},
    "plausible_age": {"check": "between", "dimension": "accuracy", "source": "customers", "column": "age",
                      "min": 18, "max": 100, "severity": "warn", "mostly": 0.99},
    "adult_plan": {"check": "in_set", "dimension": "accuracy", "source": "customers", "column": "plan",
                   "values": ["annual"], "filter": "age >= 65"},
    "cheap_orders": {"check": "between", "dimension": "accuracy", "source": "orders", "column": "amount",
                     "max": 100},  # n_orders aggregates it: not the column as it is
    "unique_ids": {"check": "unique", "dimension": "consistency", "source": "customers",
                   "columns": ["customer_id"]},  # judges a table, not a row
    "email_seen": {"check": "not_null", "dimension": "completeness", "source": "customers",
                   "column": "email"},  # not a model input
    "spend_vs_age": {"check": "compare", "dimension": "consistency", "source": "customers", "left": "spend",
                     "op": "<=", "right": "age * 10"},
}}


@pytest.fixture
def kept() -> list[dict]:
    from engine.config.quality import QualitySpec

    passthrough = {"plan": ("customers", "plan"), "customer_age": ("customers", "age"),
                   "spend": ("customers", "spend"), "email": ("crm", "email")}
    return domain.row_rules(QualitySpec.from_config(RULES), passthrough,
                            ["plan", "customer_age", "spend", "n_orders", "email"])


def test_only_rules_judging_one_row_on_inputs_taken_as_they_are_are_kept(kept: list[dict]) -> None:
    assert [(r["name"], r["inputs"]) for r in kept] == [
        ("known_plan", {"plan": "plan"}),
        ("plausible_age", {"age": "customer_age"}),
        ("adult_plan", {"age": "customer_age", "plan": "plan"}),
        ("spend_vs_age", {"age": "customer_age", "spend": "spend"})]
    assert kept[1]["rule"] == {"check": "between", "dimension": "accuracy", "severity": "warn", "mostly": 0.99,
                               "filter": None, "description": "", "source": "customers", "column": "age",
                               "min": 18, "max": 100, "strict": False}


def test_kept_rules_survive_the_file_and_judge_each_row_alone(kept: list[dict], training: pd.DataFrame,
                                                             tmp_path: Path) -> None:
    inputs = pd.DataFrame({"plan": ["annual", "weekly", "monthly", None], "customer_age": [30, 15, 70, 40],
                           "spend": [100.0, 10.0, 600.0, np.nan], "n_orders": [1, 2, 3, 4], "email": list("abcd")})
    domain.save(domain.profile(inputs, rules=kept), tmp_path)
    payload = (tmp_path / domain.DOMAIN_FILE).read_bytes()
    rules = domain.read_rules(domain.read(payload, "x"), "x")
    found = domain.rule_violations(inputs, rules)
    assert [[(v["rule"], v["column"], v["value"]) for v in row] for row in found] == [
        [],
        [("known_plan", "plan", "weekly"), ("plausible_age", "customer_age", 15)],
        [("adult_plan", "plan", "monthly")],  # the filter: only rows aged 65 and over are judged
        [],  # a missing plan is not judged by in_set (not_null's job); a missing side skips compare
    ]
    assert found[1][1]["severity"] == "warn" and found[1][1]["expected"] == "a value in [18, 100]"
    # text as the server's checks type it (objects) is judged as pandas' str dtype is
    assert domain.rule_violations(inputs.astype({"plan": object, "email": object}), rules) == found
    assert domain.rule_violations(inputs.iloc[[2]].assign(spend=[800.0]), rules)[0][-1]["rule"] == "spend_vs_age"


def test_a_model_without_rules_keeps_its_file_as_before(training: pd.DataFrame) -> None:
    assert "rules" not in domain.profile(training)
    assert [list(row) for row in domain.rule_violations(training, [])] == [[] for _ in range(len(training))]


@pytest.mark.parametrize(("entry", "words"), [
    ({"name": "r", "rule": {"check": "unique", "dimension": "accuracy", "source": "s", "columns": ["a"]},
      "inputs": {"a": "plan"}}, "does not judge single rows"),
    ({"name": "r", "rule": {"check": "in_set", "dimension": "accuracy", "source": "s", "column": "a",
                            "values": [1]}, "inputs": {"a": "nope"}}, "unknown input 'nope'"),
    ({"name": "r", "rule": {"check": "in_set", "dimension": "accuracy", "source": "s", "column": "a",
                            "values": [1], "surprise": 1}, "inputs": {"a": "plan"}}, "expected a quality rule"),
    ({"rule": {}}, "expected a quality rule"),
])
def test_a_rule_entry_this_engine_cannot_apply_is_refused(training: pd.DataFrame, entry: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        domain.read_rules({**domain.profile(training), "rules": [entry]}, "input_domain.json")


def test_category_flags_judge_each_value_s_text_whatever_its_type() -> None:
    """True, 1 and 1.0 are one value to a set but three categories to the Pipeline; a list
    (a frame from elsewhere) is judged by its text, not refused."""
    spec = {"columns": {"c": {"type": "string", "missing_share": 0.0, "categories": ["1", "True"]}}}
    values = pd.Series([True, 1, 1.0, ["a"], "True"], dtype=object)
    flagged = domain.flags(pd.DataFrame({"c": values}), spec)
    assert [[f["value"] for f in row] for row in flagged] == [[], [], ["1.0"], ["['a']"], []]
