"""Data quality through the real mlops command: the table, quality.json, the gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import read_json, run_dirs, run_mlops

DIMENSIONS = ("accuracy", "completeness", "consistency", "timeliness")
DEMO_DEFECTS = {"plausible_age", "last_name_present", "active_agrees", "orders_fresh"}


def test_the_demo_passes_with_warnings_and_records_every_rule(project: Path) -> None:
    done = run_mlops(project, "run")
    assert done.returncode == 0, done.stderr
    for dimension in DIMENSIONS:
        assert f"] {dimension}" in done.stdout  # a table row per dimension
    assert "WARN" in done.stdout
    run = run_dirs(project)[0]
    report = read_json(run / "quality.json")
    assert report["gate"] == "passed"
    assert set(report["failed_warnings"]) == DEMO_DEFECTS  # each injected defect is caught
    declared = OmegaConf.load(project / "conf" / "quality" / "churn.yaml")["rules"]
    assert [r["rule"] for r in report["rules"]] == list(declared)  # every rule, in order
    for rule in report["rules"]:
        assert {"observed", "threshold", "passed", "unexpected", "denominator", "denominator_kind",
                "examples"} <= set(rule)
    by_name = {r["rule"]: r for r in report["rules"]}
    age = by_name["plausible_age"]
    assert age["denominator_kind"] == "non-null rows" and age["denominator"] == 4000
    assert 0 < age["unexpected"] < 200 and len(age["examples"]) == 20
    assert all(not 18 <= e["value"] <= 100 for e in age["examples"])
    assert by_name["active_agrees"]["examples"][0]["value"].keys() == {"customers.active", "crm.active"}
    assert {d: s["rules"] for d, s in report["scores"].items()} == {
        "accuracy": 5, "completeness": 3, "consistency": 4, "timeliness": 1}
    assert (run / "model" / "model.skops").exists()


def test_strict_quality_fails_the_gate_before_features(project: Path) -> None:
    done = run_mlops(project, "run", "quality=strict")
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "mlops: quality gate failed: 4 rule(s) of severity error failed: plausible_age, last_name_present, "
        "active_agrees, orders_fresh (details in quality.json)"]
    run = run_dirs(project)[0]
    record = read_json(run / "run.json")
    assert record["status"] == "failed_quality"
    assert set(record["quality"]["failed_errors"]) == DEMO_DEFECTS
    assert "features" not in record["stages"] and "train" not in record["stages"]
    assert not (run / "model").exists() and not (run / "metrics.json").exists()
    assert read_json(run / "quality.json")["gate"] == "failed"


def test_mlops_quality_checks_only_the_data(project: Path) -> None:
    done = run_mlops(project, "quality", "quality.rules.orders_fresh.max_age=3d")
    assert done.returncode == 0, done.stderr
    assert "passed with 3 warning(s)" in done.stdout
    (check,) = sorted((project / "outputs" / "quality").glob("*/*"))
    record = read_json(check / "run.json")
    assert record["kind"] == "quality" and record["status"] == "succeeded"
    assert set(record["stages"]) == {"validate", "ingest", "quality"}
    assert not (project / "outputs" / "runs").exists()
    assert run_mlops(project, "quality", "quality=strict").returncode == 3


@pytest.mark.slow
def test_mlops_quality_sweeps_with_overrides_after_the_multirun_flag(project: Path) -> None:
    done = run_mlops(project, "quality", "-m", "quality.rules.plausible_age.mostly=0.9,0.95")
    assert done.returncode == 0, done.stderr
    (sweep,) = sorted((project / "outputs" / "quality").glob("*/*"))  # the sweep folder, one job each below
    assert sorted(read_json(job / "run.json")["kind"] for job in sweep.iterdir() if job.is_dir()) == ["quality"] * 2


BAD_RULES = [
    (["quality.rules.plausible_age.check=nott_null"], "quality.rules.plausible_age.check",
     "must be one of: after_cutoff, agree, between"),
    (["quality.rules.plausible_age.column=agee"], "quality.rules.plausible_age.column",
     "rule 'plausible_age': source 'customers' has no column 'agee'; did you mean 'age'?"),
    (["quality.rules.plausible_age.min=eighteen"], "quality.rules.plausible_age.min",
     "must be a number for numeric column 'age', got 'eighteen'"),
    (["quality.rules.known_plan.values=monthly"], "quality.rules.known_plan.values", "must be a list, got 'monthly'"),
    (["quality.rules.plausible_age.mostly=1.5"], "quality.rules.plausible_age.mostly",
     "must be a number >= 0 and <= 1, got 1.5"),
    (["quality.rules.plausible_age.mostly=-0.1"], "quality.rules.plausible_age.mostly", "got -0.1"),
    (["quality.rules.plausible_age.source=custmers"], "quality.rules.plausible_age.source",
     "reads source 'custmers', which data.sources does not define; did you mean 'customers'?"),
    (["+quality.rules.plausible_age.maximum=3"], "quality.rules.plausible_age.maximum", "unknown key"),
    (["quality.rules.orders_fresh.max_age=soon"], "quality.rules.orders_fresh.max_age", "a duration such as 30d"),
]


@pytest.mark.parametrize(("overrides", "path", "words"), BAD_RULES, ids=[" ".join(c[0]) for c in BAD_RULES])
def test_a_bad_rule_config_exits_2_with_one_line(project: Path, overrides: list[str], path: str, words: str) -> None:
    done = run_mlops(project, "quality", *overrides)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"mlops: config error at {path}")
    assert words in line
