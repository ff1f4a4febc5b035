from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from engine.stages import demo

SPEC = demo.DemoSpec(customers=20_000, seed=11)


def test_same_seed_same_tables() -> None:
    a, b = demo.generate(demo.DemoSpec(customers=500)), demo.generate(demo.DemoSpec(customers=500))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    c = demo.generate(demo.DemoSpec(customers=500, seed=8))
    assert not a["orders"].equals(c["orders"])


def test_three_sources_with_the_documented_columns() -> None:
    tables = demo.generate(demo.DemoSpec(customers=300))
    assert list(tables["customers"]) == ["customer_id", "first_name", "last_name", "age", "signup_date",
                                         "plan", "active", "cancelled_at"]
    assert list(tables["crm"]) == ["customer_id", "active", "segment"]
    assert list(tables["orders"]) == ["order_id", "customer_id", "ordered_at", "amount"]
    assert set(tables["orders"]["customer_id"]) <= set(tables["customers"]["customer_id"])


def test_the_four_defects_appear_at_their_rates() -> None:
    tables = demo.generate(SPEC)
    customers, crm, orders = tables["customers"], tables["crm"], tables["orders"]
    wrong_age = ~customers["age"].between(18, 100)
    assert abs(wrong_age.mean() - SPEC.wrong_age_rate) < 0.005
    assert abs(customers["last_name"].isna().mean() - SPEC.missing_last_name_rate) < 0.02
    joined = customers.merge(crm, on="customer_id", suffixes=("_billing", "_crm"))
    disagree = joined["active_billing"] != joined["active_crm"]
    assert abs(disagree.mean() - SPEC.crm_disagree_rate) < 0.006
    snapshot = pd.Timestamp(SPEC.snapshot)
    assert orders["ordered_at"].max() < snapshot - pd.Timedelta("1D")  # the last day is missing
    assert orders["ordered_at"].max() > snapshot - pd.Timedelta("2D")


def test_churn_is_about_one_percent_a_month_and_learnable_but_not_trivially() -> None:
    tables = demo.generate(SPEC)
    customers, orders = tables["customers"], tables["orders"]
    as_of = pd.Timestamp("2026-09-01")
    alive = customers[customers["cancelled_at"].isna() | (customers["cancelled_at"] > as_of)]
    y = ((alive["cancelled_at"] > as_of) & (alive["cancelled_at"] <= as_of + pd.Timedelta("30D"))).astype(int)
    assert 0.006 < y.mean() < 0.016
    past = orders[orders["ordered_at"] < as_of]
    by = past.groupby("customer_id")
    recent = past[past["ordered_at"] >= as_of - pd.Timedelta("60D")].groupby("customer_id").size()
    X = pd.DataFrame({
        "n": alive["customer_id"].map(by.size()).fillna(0),
        "recent": alive["customer_id"].map(recent).fillna(0),
        "recency": alive["customer_id"].map((as_of - by["ordered_at"].max()).dt.days).fillna(999),
        "monthly": (alive["plan"] == "monthly").astype(int),
        "tenure": (as_of - alive["signup_date"]).dt.days,
    })
    scores = cross_val_predict(LogisticRegression(max_iter=2000, class_weight="balanced"),
                               (X - X.mean()) / X.std(), y, cv=3, method="predict_proba")[:, 1]
    auc = roc_auc_score(y, scores)
    assert 0.65 < auc < 0.97


def test_files_are_written_once_and_read_back_equal(tmp_path: Path) -> None:
    spec = demo.DemoSpec(customers=400)
    assert demo.write_files(spec, tmp_path) is True
    assert demo.write_files(spec, tmp_path) is False
    tables = demo.generate(spec)
    csv = pd.read_csv(tmp_path / "customers.csv", parse_dates=["signup_date", "cancelled_at"])
    assert csv["customer_id"].tolist() == tables["customers"]["customer_id"].tolist()
    with sqlite3.connect(tmp_path / "crm.db") as conn:
        crm = pd.read_sql("SELECT * FROM crm", conn)
    conn.close()
    assert len(crm) == 400
    parquet = pd.read_parquet(tmp_path / "orders.parquet")
    np.testing.assert_array_equal(parquet["amount"].to_numpy(), tables["orders"]["amount"].to_numpy())
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_half_written_directory_is_generated_again(tmp_path: Path) -> None:
    spec = demo.DemoSpec(customers=200)
    demo.write_files(spec, tmp_path)
    (tmp_path / demo.MANIFEST).unlink()  # as if killed before the manifest was written
    (tmp_path / "orders.parquet").write_bytes(b"truncated")
    assert demo.write_files(spec, tmp_path) is True
    assert len(pd.read_parquet(tmp_path / "orders.parquet")) > 0
