"""The churn demo by hand: plain pandas + scikit-learn, no ``engine`` imports.

This is the yardstick of ``bench/run_demo.py``: the same work as ``mlops run`` with
the default config (conf/), written the way a data scientist would write it in one
script. It reads the three demo files the engine generated (four sources: the CRM's
SQLite database holds its customer table and its support log), builds the same features
with the same semantics, makes the same split, fits the same Pipeline and estimator
under the same thread limit, computes the same metrics and writes the same artifacts
(predictions parquet, metrics json, joblib model) to a folder.

    python bench/baseline_churn.py --data-dir data/bench-100k [--out DIR]

The last stdout line is JSON: timings (load_s, fit_s, total_s, and per step) and
metrics. ``total_s`` is in-process, measured after the imports, like the engine's
``run.json`` ``duration_s`` (which starts after Hydra has composed the config).

Keep the constants below in sync with conf/ (config.yaml, features/churn.yaml,
split/holdout.yaml, model/logistic.yaml); run_demo.py checks them against the
engine's resolved config and compares ROC AUC and scores with the engine's run.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

AS_OF = pd.Timestamp("2026-10-01")
SEED = 7
TEST_SIZE = 0.25
THREADS = 1
THRESHOLD = 0.5
# conf/business/churn.yaml
CHURNERS_PER_MONTH = 1000
RETENTION_EFFECT = 0.5
DISCOUNTED_PRICE = 8.0

CATEGORICAL = ["plan", "segment"]
NUMERIC = ["n_orders", "total_expenditure", "mean_order_amount", "days_since_last_order",
           "orders_30d", "orders_90d", "n_contacts", "contacts_90d", "complaints_30d",
           "days_since_last_contact", "avg_expenditure", "tenure_days", "orders_per_month",
           "recent_share"]
FEATURES = CATEGORICAL + NUMERIC  # the engine's column order: attributes, aggregations, derived


def load(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    customers = pd.read_csv(data_dir / "customers.csv", parse_dates=["signup_date", "cancelled_at"])
    conn = sqlite3.connect(data_dir / "crm.db")
    try:
        crm = pd.read_sql("SELECT customer_id, active, segment FROM crm", conn)
        contacts = pd.read_sql("SELECT contact_id, customer_id, contacted_at, channel, topic, complaint FROM contacts",
                               conn, parse_dates=["contacted_at"])
    finally:
        conn.close()
    orders = pd.read_parquet(data_dir / "orders.parquet")
    return customers, crm, contacts, orders


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, missing where den is 0 (an average over nothing is unknown)."""
    return (num / den).mask(den == 0)


def build_features(customers: pd.DataFrame, crm: pd.DataFrame, contacts: pd.DataFrame, orders: pd.DataFrame,
                   as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """``conf/features/churn.yaml`` written by hand: what a data scientist would write.

    bench/features.py times this same function against the engine's feature stage.

    Same semantics as the engine: events strictly before ``as_of``; windows
    ``[as_of - 30d, as_of)``; customers without orders get 0 counts/sums and missing
    mean/recency; ``x / 0`` is missing; missing compares false.
    """
    signup, cancelled = customers["signup_date"], customers["cancelled_at"]
    population = (signup < as_of) & (cancelled.isna() | (cancelled > as_of))
    spine = customers.loc[population, ["customer_id", "plan", "signup_date", "cancelled_at"]].reset_index(drop=True)
    ids = spine["customer_id"]

    segment = crm.drop_duplicates("customer_id", keep="last").set_index("customer_id")["segment"]

    before = orders.loc[orders["ordered_at"] < as_of, ["customer_id", "ordered_at", "amount"]]
    per_customer = before.groupby("customer_id").agg(
        n_orders=("amount", "size"),
        total_expenditure=("amount", "sum"),
        mean_order_amount=("amount", "mean"),
        last_order=("ordered_at", "max"),
    )
    when = before["ordered_at"]
    per_customer["orders_30d"] = before.loc[when >= as_of - pd.Timedelta(days=30), "customer_id"].value_counts()
    per_customer["orders_90d"] = before.loc[when >= as_of - pd.Timedelta(days=90), "customer_id"].value_counts()
    per = per_customer.reindex(ids)

    seen = contacts.loc[contacts["contacted_at"] < as_of, ["customer_id", "contacted_at", "complaint"]]
    per_contact = seen.groupby("customer_id").agg(n_contacts=("contacted_at", "size"),
                                                  last_contact=("contacted_at", "max"))
    when = seen["contacted_at"]
    per_contact["contacts_90d"] = seen.loc[when >= as_of - pd.Timedelta(days=90), "customer_id"].value_counts()
    last_30d = seen.loc[when >= as_of - pd.Timedelta(days=30)]
    per_contact["complaints_30d"] = last_30d.groupby("customer_id")["complaint"].sum()
    support = per_contact.reindex(ids)

    def counted(column: str) -> np.ndarray:
        return per[column].fillna(0).to_numpy(dtype="float64")

    df = pd.DataFrame({
        "customer_id": ids,
        "plan": spine["plan"],
        "segment": ids.map(segment),
        "n_orders": counted("n_orders"),
        "total_expenditure": counted("total_expenditure"),
        "mean_order_amount": per["mean_order_amount"].to_numpy(),
        "days_since_last_order": ((as_of - per["last_order"]).dt.total_seconds() / 86400.0).to_numpy(),
        "orders_30d": counted("orders_30d"),
        "orders_90d": counted("orders_90d"),
        "n_contacts": support["n_contacts"].fillna(0).to_numpy(dtype="float64"),
        "contacts_90d": support["contacts_90d"].fillna(0).to_numpy(dtype="float64"),
        "complaints_30d": support["complaints_30d"].fillna(0).to_numpy(dtype="float64"),
        "days_since_last_contact": ((as_of - support["last_contact"]).dt.total_seconds() / 86400.0).to_numpy(),
    })
    df["avg_expenditure"] = ratio(df["total_expenditure"], df["n_orders"])
    df["tenure_days"] = (as_of - spine["signup_date"]).dt.total_seconds() / 86400.0
    df["orders_per_month"] = ratio(df["n_orders"], df["tenure_days"] / 30)
    df["recent_share"] = ratio(df["orders_30d"], df["orders_90d"])
    churned = (spine["cancelled_at"] > as_of) & (spine["cancelled_at"] <= as_of + pd.Timedelta(days=30))
    df["churned"] = churned.astype("int64")
    return df[["customer_id", *FEATURES, "churned"]]


def model_input(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain objects with NaN for missing: SimpleImputer wants one marker."""
    X = X.copy()
    for column in CATEGORICAL:
        X[column] = X[column].astype(object).where(X[column].notna(), np.nan)
    return X


def make_pipeline() -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=None, sparse_output=False)),
    ])
    columns = ColumnTransformer([("numeric", numeric, NUMERIC), ("categorical", categorical, CATEGORICAL)],
                                verbose_feature_names_out=False)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=SEED)
    return Pipeline([("preprocess", columns), ("model", model)])


def holdout_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict:
    y_pred = (y_score >= THRESHOLD).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    out = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0),
        "roc_auc": skm.roc_auc_score(y_true, y_score),
        "log_loss": skm.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier": skm.brier_score_loss(y_true, y_score),
    }
    out = {k: (None if math.isnan(v) else float(v)) for k, v in out.items()}
    out.update(threshold=THRESHOLD, n_test=int(len(y_true)), positives=int(y_true.sum()),
               tn=int(tn), fp=int(fp), fn=int(fn), tp=int(tp))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with customers.csv, crm.db, orders.parquet")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="baseline-churn-"))
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    started_epoch = time.time()  # lets the harness split start-up into before/after
    customers, crm, contacts, orders = load(args.data_dir)
    t1 = time.perf_counter()
    timings["load_s"] = t1 - t0

    table = build_features(customers, crm, contacts, orders)
    del customers, crm, contacts, orders
    t2 = time.perf_counter()
    timings["features_s"] = t2 - t1

    y = table["churned"]
    train, test = train_test_split(table.index, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    X_train, y_train = table.loc[train, FEATURES], y.loc[train]
    X_test, y_test = table.loc[test, FEATURES], y.loc[test]
    t3 = time.perf_counter()
    timings["split_s"] = t3 - t2

    pipeline = make_pipeline()
    with threadpool_limits(limits=THREADS):
        pipeline.fit(model_input(X_train), y_train)
    t4 = time.perf_counter()
    timings["fit_s"] = t4 - t3

    with threadpool_limits(limits=THREADS):
        scores = pipeline.predict_proba(model_input(X_test))[:, 1]
    metrics = holdout_metrics(y_test.to_numpy(), scores)
    recall = metrics["recall"] or 0.0
    business = {
        "churners_per_month": CHURNERS_PER_MONTH,
        "share_caught": recall,
        "churners_caught_per_month": CHURNERS_PER_MONTH * recall,
        "customers_retained_per_month": CHURNERS_PER_MONTH * recall * RETENTION_EFFECT,
        "simple_estimate_per_month": CHURNERS_PER_MONTH * recall * RETENTION_EFFECT * DISCOUNTED_PRICE,
    }
    pd.DataFrame({
        "customer_id": table.loc[test, "customer_id"].to_numpy(),
        "y_true": y_test.to_numpy(),
        "y_score": scores,
        "y_pred": (scores >= THRESHOLD).astype("int64"),
    }).to_parquet(out / "predictions.parquet", index=False)
    (out / "metrics.json").write_text(json.dumps({"metrics": metrics, "business": business}, indent=2) + "\n")
    t5 = time.perf_counter()
    timings["evaluate_s"] = t5 - t4

    joblib.dump(pipeline, out / "model.joblib", compress=("zlib", 3))
    t6 = time.perf_counter()
    timings["save_s"] = t6 - t5
    timings["total_s"] = t6 - t0

    print(f"baseline: {len(table)} rows, roc_auc={metrics['roc_auc']:.6f}, total {timings['total_s']:.2f}s -> {out}")
    print(json.dumps({**{k: round(v, 4) for k, v in timings.items()}, "rows": len(table),
                      "started_epoch": started_epoch, "roc_auc": metrics["roc_auc"], "metrics": metrics, "out": str(out)}))


if __name__ == "__main__":
    main()
