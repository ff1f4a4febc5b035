"""``mlops init``: a user's own table to a project that trains with no edit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.conftest import read_json, run_dirs, run_mlops, sweep_jobs
from tests.datasets import customers


def plain_scikit_learn_auc(frame: pd.DataFrame, target: str, positive: object) -> float:
    """The acceptance baseline: median imputation and scaling, dense one-hot encoding,
    train_test_split(test_size=0.25, stratify=y, random_state=0), LogisticRegression."""
    y = (frame[target] == positive).astype(int)
    X = frame.drop(columns=[target])
    numeric = [c for c in X if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X if c not in numeric]
    X = X.assign(**{c: X[c].astype(str).where(X[c].notna(), np.nan).astype(object) for c in categorical})
    pipeline = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
             numeric),
            ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                      ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]),
             categorical)])),
        ("model", LogisticRegression(max_iter=1000))])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    pipeline.fit(X_train, y_train)
    return float(roc_auc_score(y_test, pipeline.predict_proba(X_test)[:, 1]))


def init(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = run_mlops(tmp_path, "init", *args)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
def test_init_then_run_matches_plain_scikit_learn_and_the_sweep_runs(tmp_path: Path) -> None:
    frame = customers(4000, seed=1)
    frame.to_csv(tmp_path / "customers.csv", index=False)
    status, out, err = init(tmp_path, "shop", "--data", "customers.csv", "--target", "Churn")
    assert status == 0, err
    assert "left out: customer id (identifier), country (constant), notes (empty), signed_up (date)" in out
    project = tmp_path / "shop"
    done = run_mlops(project, "run", "seed=0", "split.test_size=0.25", "report=false")
    assert done.returncode == 0, done.stderr
    (run,) = run_dirs(project)
    record = read_json(run / "run.json")
    assert record["status"] == "succeeded"
    features = record["stages"]["features"]["features"]
    assert features == ["tenure", "Monthly.Charges", "total charges", "contract", "région", "senior", "paperless"]
    assert record["quality"]["failed_errors"] == [] and record["quality"]["failed_warnings"] == []
    # The same columns, read as the project reads them (blanks as missing), in plain scikit-learn.
    read = pd.read_csv(tmp_path / "customers.csv", na_values={"total charges": [" "]})
    expected = plain_scikit_learn_auc(read[[*features, "Churn"]], "Churn", "Yes")
    got = read_json(run / "metrics.json")["metrics"]["roc_auc"]
    assert abs(got - expected) < 0.005, (got, expected)

    sweep = run_mlops(project, "run", "experiment=shop", "report=false")
    assert sweep.returncode == 0, sweep.stderr
    (folder,) = (project / "outputs" / "sweeps").glob("*/*")
    jobs = sweep_jobs(folder)
    assert [job["status"] for job in jobs.values()] == ["succeeded"] * 3
    assert {job["model"]["target"].rsplit(".", 1)[1] for job in jobs.values()} == {
        "LogisticRegression", "RandomForestClassifier", "HistGradientBoostingClassifier"}
    assert run_mlops(project, "check", "--all").returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_parquet_and_sqlite_tables_with_a_key_a_timestamp_and_missing_labels(tmp_path: Path, kind: str) -> None:
    frame = customers(1500, seed=2).rename(columns={"Churn": "Churn Label"})
    frame["signed_up"] = pd.to_datetime(frame["signed_up"])
    frame["total charges"] = pd.to_numeric(frame["total charges"], errors="coerce")  # typed storage: no blanks
    frame.loc[frame.index[::50], "Churn Label"] = None  # 30 rows without a label
    if kind == "parquet":
        frame.to_parquet(tmp_path / "accounts.parquet")
        source = ["--data", "accounts.parquet"]
    else:
        with sqlite3.connect(tmp_path / "crm.db") as conn:
            frame.assign(signed_up=frame["signed_up"].dt.strftime("%Y-%m-%d")).to_sql("accounts", conn, index=False)
        source = ["--data", "sqlite:///crm.db", "--query", "accounts"]
    status, out, err = init(tmp_path, "p", *source, "--target", "Churn Label", "--key", "customer id",
                            "--timestamp", "signed_up")
    assert status == 0, err
    assert "the target is missing in 30 rows: features.population leaves them out" in out
    done = run_mlops(tmp_path / "p", "run", "report=false")
    assert done.returncode == 0, done.stderr
    (run,) = run_dirs(tmp_path / "p")
    record = read_json(run / "run.json")
    assert record["stages"]["features"]["rows"] == 1470
    assert record["quality"]["failed_errors"] == [] and record["quality"]["failed_warnings"] == []
    text = (tmp_path / "p" / "conf" / "quality" / "p.yaml").read_text()
    assert "check: unique" in text and "check: freshness" in text


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path) -> None:
    frame = customers(200)
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.assign(Churn=np.resize(["a", "b", "c"], 200)).to_csv(tmp_path / "multi.csv", index=False)
    (tmp_path / "garbage.csv").write_bytes(b"a,b\n1,2,3,4\n\"unclosed\n")
    cases = {
        ("--data", "missing.csv", "--target", "Churn"): "usage error: --data 'missing.csv': file not found",
        ("--data", "c.csv", "--target", "churned"): "usage error: --target 'churned' is not a column; columns are: ",
        ("--data", "c.csv"): "usage error: the following arguments are required: --target (see mlops init --help)",
        ("--data", "multi.csv", "--target", "Churn"): "usage error: --target 'Churn' is multi-class: 3 values",
        ("--data", "c.csv", "--target", "contract"): "usage error: --target 'contract' is multi-class",
        ("--data", "c.csv", "--target", "Churn", "--positive", "Maybe"): "usage error: --positive 'Maybe' is not",
        ("--data", "garbage.csv", "--target", "a"): "data error at --data 'garbage.csv': cannot read it as CSV: ",
        ("--data", "c.csv", "--target", "Churn", "--name", "9 lives"): "usage error: --name '9 lives' must start",
    }
    for args, message in cases.items():
        status, _, err = init(tmp_path, "p", *args)
        assert status == 2, (args, err)
        (line,) = err.strip().splitlines()
        assert line.startswith(f"mlops: {message}"), (args, line)
    assert not (tmp_path / "p" / "conf").exists()  # nothing written by a refused init


def test_an_existing_conf_is_kept_unless_force(tmp_path: Path) -> None:
    customers(200).to_csv(tmp_path / "c.csv", index=False)
    assert init(tmp_path, "p", "--data", "c.csv", "--target", "Churn")[0] == 0
    business = tmp_path / "p" / "conf" / "business" / "p.yaml"
    business.write_text("# mine\n")
    status, _, err = init(tmp_path, "p", "--data", "c.csv", "--target", "Churn")
    assert status == 2 and err.strip() == f"mlops: usage error: {tmp_path / 'p' / 'conf'} already exists; --force " \
                                         "overwrites its files".replace(str(tmp_path) + "/", "")
    assert business.read_text() == "# mine\n"
    assert init(tmp_path, "p", "--data", "c.csv", "--target", "Churn", "--force")[0] == 0
    assert "PLACEHOLDER" in business.read_text()


def test_help_exits_0(tmp_path: Path) -> None:
    done = run_mlops(tmp_path, "init", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: mlops init DIR --data PATH_OR_URL --target")
    assert "init       DIR --data" in run_mlops(tmp_path, "--help").stdout
