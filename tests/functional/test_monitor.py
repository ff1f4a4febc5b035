"""``mlops monitor`` end to end: the real command in a subprocess on a small trained project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import champion_project, read_json, registry_entry, run_mlops

DRIFT = ("data.generate.snapshot=2026-12-31", "data.generate.drift_after=2026-11-01")


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of its own (monitoring the drift rewrites its demo files) with churn@champion."""
    root = tmp_path_factory.mktemp("monitor") / "project"
    return champion_project(root)


def test_help_exits_0_and_bad_arguments_are_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_mlops(tmp_path, "monitor", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: mlops monitor MODEL")
    assert "6" in run_mlops(tmp_path, "--help").stdout.split("exit statuses:")[1]
    for args in (("monitor",), ("monitor", "churn@champion", "--since", "7d", "--current", "features"),
                 ("monitor", "churn@champion", "--as-of", "2026-12-01")):
        done = run_mlops(tmp_path, *args)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("mlops: usage error")


@pytest.mark.slow
def test_undrifted_data_passes_and_the_declared_drift_exits_6_naming_the_columns(champion: Path) -> None:
    record = read_json(next((champion / "outputs" / "runs").glob("*/*/run.json")))
    assert record["model"]["reference_profile"]["path"] == "model/reference_profile.json"
    version = registry_entry(champion)["versions"][0]
    assert version["reference_profile"] == "churn/1/reference_profile.json"

    quiet = run_mlops(champion, "monitor", "churn@champion", "--current", "features", "--as-of", "2026-10-15")
    assert quiet.returncode == 0, quiet.stderr
    assert "monitor: passed" in quiet.stdout

    drifted = run_mlops(champion, "monitor", "churn@champion", "--current", "features", "--as-of", "2026-12-01",
                        *DRIFT)
    assert drifted.returncode == 6, drifted.stderr
    (line,) = drifted.stderr.strip().splitlines()
    assert line.startswith("mlops: monitoring failed: 2 rule(s) of severity error failed: plan_mix")
    assert "plan" in line and "orders_30d" in line and "Traceback" not in drifted.stderr

    folders = sorted((champion / "outputs" / "monitor").glob("*/*"))
    assert len(folders) == 2
    body = read_json(folders[-1] / "monitor.json")
    assert body["passed"] is False and body["failed_errors"] == ["plan_mix", "order_activity"]
    assert {"plan", "orders_30d", "days_since_last_order"} <= set(body["drifted_columns"])
    assert len(body["trend"]) == 1  # the earlier, quiet run
    assert "<h2>Drift per feature</h2>" in (folders[-1] / "report.html").read_text()
    assert read_json(folders[-1] / "run.json")["status"] == "failed_monitor"

    listed = run_mlops(champion, "runs", "--where", "kind = monitor", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["status"] for r in rows) == ["failed_monitor", "succeeded"]
    latest = run_mlops(champion, "show", "latest")
    assert "kind: run" in latest.stdout  # latest: still the latest training run

    # the same drifted rows through the prediction log: scored by mlops predict, read by --since
    assert run_mlops(champion, "features", "materialize", "as_of=2026-12-01", *DRIFT).returncode == 0
    scored = run_mlops(champion, "predict", "churn@champion", "--input", "feature-store", "--output", "s.parquet")
    assert scored.returncode == 0, scored.stderr
    logged = run_mlops(champion, "monitor", "churn@champion", "--since", "1d")
    assert logged.returncode == 6, logged.stderr
    assert read_json(sorted((champion / "outputs" / "monitor").glob("*/*"))[-1] / "monitor.json")[
        "drifted_columns"] == body["drifted_columns"]


RETRAIN = """\
monitor:
  on_failure:
    retrain:
      experiment: compare_models
      # one model, and a policy any retrained model passes: this test is about the loop
      overrides: [hydra.sweeper.params.model=logistic, promotion.latency.p99_ms=60000,
                  promotion.metrics.roc_auc.min_change=-1, promotion.metrics.net_value_per_month.min_change=-1e9,
                  promotion.metrics.log_loss.min_relative_change=-1]
    promote: true
    cooldown: 1d
"""


@pytest.mark.slow
def test_a_failed_monitor_retrains_validates_promotes_and_records_the_lineage(champion: Path) -> None:
    local = champion / "conf" / "local" / "default.yaml"
    local.write_text(local.read_text() + RETRAIN)
    done = run_mlops(champion, "monitor", "churn@champion", "--current", "features", "--as-of", "2026-12-01", *DRIFT)
    assert done.returncode == 6, done.stderr
    assert "monitor: retrain passed: churn/2; the alias moved to churn/2" in done.stdout, done.stdout
    registry = registry_entry(champion)
    assert registry["aliases"]["champion"] == 2
    folder = sorted((champion / "outputs" / "monitor").glob("*/*"))[-1]
    monitor_run = read_json(folder / "run.json")
    retrain = monitor_run["retrain"]
    assert retrain["status"] == "passed" and retrain["version"] == "churn/2" and retrain["as_of"] == "2026-11-30"
    assert registry["versions"][1]["run_id"] == retrain["run_id"]
    trained = read_json(Path(retrain["run_dir"]) / "run.json")
    assert trained["lineage"]["monitor_run"] == monitor_run["id"] and trained["as_of"].startswith("2026-11-30")
    assert read_json(Path(retrain["run_dir"]) / "validation.json")["passed"] is True
    assert read_json(Path(retrain["sweep_dir"]) / "retrain.json")["monitor_run"] == monitor_run["id"]
    shown = run_mlops(champion, "show", monitor_run["id"][:8]).stdout
    assert "lineage.version: churn/2" in shown and f"lineage.run_id: {retrain['run_id']}" in shown
    assert f"lineage.monitor_run: {monitor_run['id']}" in run_mlops(champion, "show", retrain["run_id"][:8]).stdout

    # the new champion learnt the drifted data: it passes where the old one failed
    settled = run_mlops(champion, "monitor", "churn@champion", "--current", "features", "--as-of", "2026-12-01", *DRIFT)
    assert settled.returncode == 0, settled.stderr
    # the old one still fails, and the cooldown keeps a second retrain from starting
    again = run_mlops(champion, "monitor", "churn/1", "--current", "features", "--as-of", "2026-12-01", *DRIFT)
    assert again.returncode == 6
    assert "monitor: retrain skipped (cooldown: the last retrain of churn started" in again.stdout
    assert registry_entry(champion)["aliases"]["champion"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(("args", "line"), [
    (("nosuch@champion",), "mlops: usage error: no registered model 'nosuch'; expected one of: churn"),
    (("churn@nope",), "mlops: usage error: model 'churn' has no alias 'nope'; expected one of: champion"),
    (("churn@champion", "--current", "missing.csv"), "mlops: usage error: --current missing.csv: no such file"),
    (("churn@champion", "monitor.correction=holm"), "mlops: config error at monitor.correction (override "
                                                     "monitor.correction=holm): must be one of: none, bonferroni, fdr"),
])
def test_bad_input_is_one_line_and_exit_2(champion: Path, args: tuple[str, ...], line: str) -> None:
    done = run_mlops(champion, "monitor", *args)
    assert done.returncode == 2 and done.stderr.startswith(line), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_labels_of_their_own_are_joined_point_in_time_and_cbpe_values_the_month(tmp_path: Path) -> None:
    """``--labels FILE``: the logged rows' labels from a file, by key, within label_delay after
    each row's cut-off; the realised ROC AUC is the one of exactly those rows, the CBPE
    estimates are recorded, and the rows are judged per chunk against the reference band."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    root = champion_project(tmp_path / "project")
    profile = read_json(next((root / "outputs" / "runs").glob("*/*/model/reference_profile.json")))["scores"]
    metrics = read_json(next((root / "outputs" / "runs").glob("*/*/metrics.json")))["metrics"]
    assert profile["net_value_per_month"] == metrics["net_value_per_month"]  # the hold-out's realised value
    assert profile["chunks"]["count"] == 10 and profile["chunks"]["realised"]["net_value_per_month"]["std"] >= 0
    assert run_mlops(root, "features", "materialize").returncode == 0
    scored = run_mlops(root, "predict", "churn@champion", "--input", "feature-store", "--output", "s.parquet")
    assert scored.returncode == 0, scored.stderr
    rows = pd.read_parquet(root / "s.parquet")
    cutoff = pd.Timestamp(rows["as_of"].iloc[0])
    rng = np.random.default_rng(0)
    truth = (rng.uniform(size=len(rows)) < rows["score"]).astype(int)
    # a third known the day before the cut-off (not yet: left out), a third inside the
    # 30 days, a third after them (too late: left out); and a key no row has
    days = np.resize([-1, 12, 45], len(rows))
    labels = pd.DataFrame({"customer_id": rows["key"], "churned": truth,
                           "labelled_at": [cutoff + pd.Timedelta(days=int(d)) for d in days]})
    labels = pd.concat([labels, pd.DataFrame({"customer_id": ["nobody"], "churned": [1],
                                              "labelled_at": [cutoff + pd.Timedelta(days=1)]})])
    labels.to_csv(root / "labels.csv", index=False)

    done = run_mlops(root, "monitor", "churn@champion", "--since", "1d", "--labels", "labels.csv",
                     "monitor.labels.time=labelled_at", "monitor.chunks.current.by=rows",
                     "monitor.chunks.current.size=1000")
    assert done.returncode == 0, done.stderr
    inside = days == 12
    assert f"--labels labels.csv ({len(labels)} label rows): {inside.sum()} of {len(rows)} row(s) labelled by " \
           "key, within 30d after their cut-off" in done.stdout
    folder = sorted((root / "outputs" / "monitor").glob("*/*"))[-1]
    body = read_json(folder / "monitor.json")
    rules = {r["rule"]: r for r in body["rules"]}
    assert rules["roc_auc"]["observed"] == pytest.approx(roc_auc_score(truth[inside], rows["score"][inside]),
                                                         abs=1e-6)
    assert rules["roc_auc"]["threshold"]["sigma"] == 3 and len(rules["roc_auc"]["chunks"]) == len(rows) // 1000
    value = rules["estimated_value"]
    assert value["metric"] == "net_value_per_month" and value["verdict"] in ("passed", "failed")
    assert [c["chunk"] for c in value["chunks"]][0] == "rows 0-999"
    assert body["current"]["labels"] == "labels.csv"
    # a chunk's sampling error where the hold-out had the observations to measure it on
    # (this small project's hold-out may hold fewer than 30 churners: then none)
    measured = profile.get("sampling_error") or {}
    assert "accuracy" in measured
    for rule in (rules["roc_auc"], value):
        assert all((c["sampling_error"] is not None and c["sampling_error"] > 0) == (rule["metric"] in measured)
                   for c in rule["chunks"] if c["value"] is not None)
    html = (folder / "report.html").read_text()
    assert "<h2>Performance per chunk</h2>" in html and "± 3 sampling errors" in html


@pytest.mark.slow
def test_a_bad_labels_file_is_one_line_and_exit_2_before_any_monitor_run(champion: Path) -> None:
    (champion / "labels.csv").write_text("customer_id,churned\n100001,maybe\n")
    before = sorted((champion / "outputs" / "monitor").glob("*/*"))
    done = run_mlops(champion, "monitor", "churn@champion", "--labels", "labels.csv")
    assert done.returncode == 2
    assert done.stderr.strip() == "mlops: data error at labels.csv: column 'churned' (the label): expected 0/1 or " \
                                  "true/false, got text, e.g. 'maybe'"
    assert sorted((champion / "outputs" / "monitor").glob("*/*")) == before
