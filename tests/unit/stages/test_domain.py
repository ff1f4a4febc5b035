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
    assert domain.flags(pd.DataFrame({"id": ["never seen"]}), domain.profile(frame)) == [[]]


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
    assert flagged[0] == []  # amount may be missing: it was in training
    assert flagged[1] == [{"column": "plan", "flag": "unseen_category", "value": "weekly"},
                          {"column": "n_orders", "flag": "below_range", "value": 0, "min": 1}]
    assert {(f["column"], f["flag"]) for f in flagged[2]} == {("plan", "missing"), ("n_orders", "above_range"),
                                                             ("vip", "missing")}
