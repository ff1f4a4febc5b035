"""``mlops predict``: batch scoring with serving's checks, through the real command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_mlops
from tests.functional.serving import feature_rows, in_process_scores

pytestmark = pytest.mark.slow


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(trained, copy, symlinks=True)
    shutil.rmtree(copy / "outputs" / "predictions", ignore_errors=True)
    return copy


def test_a_csv_is_scored_like_the_model_in_process_and_logged(project: Path) -> None:
    rows = feature_rows(project, 40)
    rows.loc[rows.index[3], "plan"] = "daily"
    rows.to_csv(project / "new.csv", index=False)
    done = run_mlops(project, "predict", "churn@champion", "--input", "new.csv", "--output", "scores.parquet",
                     "--progress", "--chunk-rows", "16")
    assert done.returncode == 0, done.stderr
    assert "scored 40 of 40 rows with churn/1" in done.stdout and "1 outside the training domain" in done.stdout
    assert "scored 16 / 40 rows" in done.stderr and "scored 40 / 40 rows (100%" in done.stderr
    scores = pd.read_parquet(project / "scores.parquet")
    assert scores["row"].tolist() == list(range(40))
    assert scores["key"].tolist() == [str(k) for k in rows["customer_id"]]
    assert scores["score"].tolist() == pytest.approx(in_process_scores(project, rows), abs=1e-12)
    assert scores["in_domain"].tolist() == [i != 3 for i in range(40)]
    assert list(scores["domain_flags"].iloc[3]) == ["plan:unseen_category"]
    assert [list(f) for f in scores["rule_flags"]] == [["known_plan:plan"] if i == 3 else [] for i in range(40)]
    logged = pd.read_parquet(project / "outputs" / "predictions" / "churn")
    assert len(logged) == 40 and sorted(logged["score"]) == pytest.approx(sorted(scores["score"]), abs=0)


def test_quality_enforce_stops_at_the_first_row_breaking_an_error_rule(project: Path) -> None:
    rows = feature_rows(project, 20)
    rows.loc[rows.index[12], "plan"] = "daily"
    rows.to_csv(project / "new.csv", index=False)
    done = run_mlops(project, "predict", "churn@champion", "--input", "new.csv", "--output", "scores.parquet",
                     "--quality", "enforce")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "mlops: data error in --input at row 12 column 'plan': quality rule 'known_plan' (in_set) expects one of "
        "['monthly', 'annual', 'family', 'weekly'], got 'daily'"]
    assert not (project / "scores.parquet").exists()


def test_keys_alone_are_scored_from_the_feature_store(project: Path) -> None:
    keys = feature_rows(project, 5)["customer_id"].tolist()
    pd.DataFrame({"customer_id": [*keys, -1]}).to_parquet(project / "keys.parquet")
    done = run_mlops(project, "predict", "churn/1", "--input", "keys.parquet", "--output", "out.parquet", "--no-log")
    assert done.returncode == 0, done.stderr
    assert "scored 5 of 6 rows" in done.stdout and "1 unknown key(s)" in done.stdout
    scores = pd.read_parquet(project / "out.parquet")
    assert scores["status"].tolist() == [200] * 5 + [404]
    assert scores["as_of"].iloc[0] == "2026-10-01T00:00:00" and pd.isna(scores["score"].iloc[5])
    assert not (project / "outputs" / "predictions").exists()


def test_a_bad_row_is_one_line_naming_row_and_column_and_nothing_is_written(project: Path) -> None:
    rows = feature_rows(project, 30)
    text = rows.to_csv(index=False).splitlines()
    cells = text[21].split(",")
    cells[list(rows.columns).index("tenure_days")] = "soon"
    text[21] = ",".join(cells)
    (project / "bad.csv").write_text("\n".join(text) + "\n")
    done = run_mlops(project, "predict", "churn@champion", "--input", "bad.csv", "--output", "scores.parquet",
                     "--chunk-rows", "8")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "mlops: data error in --input at row 20 column 'tenure_days': expected a number or null, got text \"soon\""]
    assert not (project / "scores.parquet").exists()


@pytest.mark.parametrize(("args", "line"), [
    (("nobody@champion", "--input", "x.csv", "--output", "o.parquet"), "no registered model 'nobody'"),
    (("churn@champion", "--input", "missing.csv", "--output", "o.parquet"), "--input: missing.csv is not a file"),
    (("churn@champion", "--input", "x.csv", "--output", "o.csv"), "--output: expected a .parquet file"),
    (("churn@champion", "--output", "o.parquet"), "predict needs --input"),
], ids=["unknown-model", "missing-input", "csv-output", "no-input"])
def test_bad_arguments_are_one_line_and_exit_2(project: Path, args: tuple[str, ...], line: str) -> None:
    done = run_mlops(project, "predict", *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and line in done.stderr and "Traceback" not in done.stderr
