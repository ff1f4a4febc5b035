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


def test_four_sources_with_the_documented_columns() -> None:
    tables = demo.generate(demo.DemoSpec(customers=300))
    assert list(tables) == ["customers", "crm", "contacts", "orders"]
    assert list(tables["customers"]) == ["customer_id", "first_name", "last_name", "age", "signup_date",
                                         "plan", "active", "cancelled_at"]
    assert list(tables["crm"]) == ["customer_id", "active", "segment"]
    assert list(tables["contacts"]) == ["contact_id", "customer_id", "contacted_at", "channel", "topic", "complaint"]
    assert list(tables["orders"]) == ["order_id", "customer_id", "ordered_at", "amount"]
    for events in ("contacts", "orders"):
        assert set(tables[events]["customer_id"]) <= set(tables["customers"]["customer_id"])
    contacts = tables["contacts"]
    assert contacts["contact_id"].is_unique and contacts["contacted_at"].is_monotonic_increasing
    assert set(contacts["topic"]) <= set(demo.TOPICS) and set(contacts["channel"]) <= set(demo.CHANNELS)
    assert set(contacts["complaint"]) <= {0, 1} and contacts["complaint"].dtype == "int64"


def test_every_event_lies_in_its_customers_life_and_the_cancellation_at_its_moment() -> None:
    # Point in time: no order or contact after the cancellation (or the snapshot), so at
    # a cut-off before a customer cancels, nothing of the cancellation can be seen. The
    # contact in which a customer cancels is at the cancellation itself.
    spec = demo.DemoSpec(customers=5000)
    tables = demo.generate(spec)
    life = tables["customers"].set_index("customer_id")[["signup_date", "cancelled_at"]]
    end = life["cancelled_at"].fillna(pd.Timestamp(spec.snapshot))
    for events, ts in (("orders", "ordered_at"), ("contacts", "contacted_at")):
        frame = tables[events]
        who = frame["customer_id"]
        assert (frame[ts] >= who.map(life["signup_date"])).all(), events
        assert (frame[ts] <= who.map(end)).all(), events
    contacts = tables["contacts"]
    leaving = contacts["topic"] == "cancellation"
    at = contacts["customer_id"].map(life["cancelled_at"])
    assert (contacts.loc[leaving, "contacted_at"] == at[leaving]).all()
    assert (at[~leaving].isna() | (contacts.loc[~leaving, "contacted_at"] < at[~leaving])).all()
    assert leaving.sum() == life["cancelled_at"].notna().sum()  # one per cancellation


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


def _churn_auc(spec: demo.DemoSpec, as_of: pd.Timestamp) -> tuple[float, float]:
    """(churn rate, out-of-fold ROC AUC of a logistic regression on point-in-time features)."""
    tables = demo.generate(spec)
    customers, orders, contacts = tables["customers"], tables["orders"], tables["contacts"]
    alive = customers[customers["cancelled_at"].isna() | (customers["cancelled_at"] > as_of)]
    y = ((alive["cancelled_at"] > as_of) & (alive["cancelled_at"] <= as_of + pd.Timedelta("30D"))).astype(int)
    past = orders[orders["ordered_at"] < as_of]
    by = past.groupby("customer_id")
    recent = past[past["ordered_at"] >= as_of - pd.Timedelta("60D")].groupby("customer_id").size()
    seen = contacts[contacts["contacted_at"] < as_of]
    last_30d = seen[seen["contacted_at"] >= as_of - pd.Timedelta("30D")].groupby("customer_id")
    ids = alive["customer_id"]
    X = pd.DataFrame({
        "n": ids.map(by.size()).fillna(0),
        "recent": ids.map(recent).fillna(0),
        "recency": ids.map((as_of - by["ordered_at"].max()).dt.days).fillna(999),
        "monthly": (alive["plan"] == "monthly").astype(int),
        "tenure": (as_of - alive["signup_date"]).dt.days,
        "contacts_30d": ids.map(last_30d.size()).fillna(0),
        "complaints_30d": ids.map(last_30d["complaint"].sum()).fillna(0),
    })
    scores = cross_val_predict(LogisticRegression(max_iter=2000, class_weight="balanced"),
                               (X - X.mean()) / X.std(), y, cv=3, method="predict_proba")[:, 1]
    return float(y.mean()), float(roc_auc_score(y, scores))


def test_churn_is_about_one_percent_a_month_and_learnable_but_not_trivially() -> None:
    rate, auc = _churn_auc(SPEC, pd.Timestamp("2026-09-01"))
    assert 0.006 < rate < 0.016
    assert 0.82 < auc < 0.95  # as in real churn data


def test_a_weak_signal_leaves_churners_barely_separable() -> None:
    # signal=0: no unhappy spell before cancelling, only a slight drop in orders.
    as_of = pd.Timestamp("2026-09-01")
    rate, weak = _churn_auc(demo.DemoSpec(customers=20_000, seed=11, signal=0.0), as_of)
    assert 0.006 < rate < 0.016
    assert 0.6 < weak < 0.82 and weak < _churn_auc(SPEC, as_of)[1] - 0.06


def test_files_are_written_once_and_read_back_equal(tmp_path: Path) -> None:
    spec = demo.DemoSpec(customers=400)
    assert demo.write_files(spec, tmp_path) is True
    assert demo.write_files(spec, tmp_path) is False
    tables = demo.generate(spec)
    csv = pd.read_csv(tmp_path / "customers.csv", parse_dates=["signup_date", "cancelled_at"])
    assert csv["customer_id"].tolist() == tables["customers"]["customer_id"].tolist()
    with sqlite3.connect(tmp_path / "crm.db") as conn:
        crm = pd.read_sql("SELECT * FROM crm", conn)
        contacts = pd.read_sql("SELECT * FROM contacts", conn, parse_dates=["contacted_at"])
    conn.close()
    assert len(crm) == 400
    pd.testing.assert_frame_equal(contacts, tables["contacts"], check_dtype=False)
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


def test_the_declared_drift_changes_nothing_before_its_date() -> None:
    plain = demo.generate(demo.DemoSpec(customers=2_000, snapshot="2026-12-31"))
    drifted = demo.generate(demo.DemoSpec(customers=2_000, snapshot="2026-12-31", drift_after="2026-11-01"))
    after = pd.Timestamp("2026-11-01")
    before = plain["orders"][plain["orders"]["ordered_at"] < after]
    pd.testing.assert_frame_equal(drifted["orders"][drifted["orders"]["ordered_at"] < after], before)
    late_plain = plain["orders"][plain["orders"]["ordered_at"] >= after]
    late_drifted = drifted["orders"][drifted["orders"]["ordered_at"] >= after]
    assert 0.4 < len(late_drifted) / len(late_plain) < 0.6  # drift_order_rate 0.5
    merged = late_drifted.merge(late_plain, on="order_id", suffixes=("", "_plain"))
    assert np.allclose(merged["amount"], np.round(merged["amount_plain"] * 1.3, 2))
    assert "weekly" not in set(plain["customers"]["plan"])
    weekly = drifted["customers"]["plan"] == "weekly"
    assert 0.05 < weekly.mean() < 0.4
    early = drifted["contacts"]["contacted_at"] < after
    pd.testing.assert_frame_equal(drifted["contacts"][early], plain["contacts"][plain["contacts"]["contacted_at"] < after])
    # the new plan's customers churn more after the drift than the others
    customers = drifted["customers"]
    active = customers["cancelled_at"].isna() | (customers["cancelled_at"] > after)
    left = (customers["cancelled_at"] > after) & (customers["cancelled_at"] <= after + pd.Timedelta(days=30))
    assert left[weekly & active].mean() > 3 * left[~weekly & active].mean()


def test_files_made_before_the_drift_existed_keep_their_digest() -> None:
    assert demo.DemoSpec().digest() == demo.DemoSpec(drift_price_factor=2.0).digest()
    assert demo.DemoSpec().digest() != demo.DemoSpec(drift_after="2026-11-01").digest()
