"""``mlops check``: composed configs validated without reading data or writing runs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_mlops


def test_the_default_config_and_every_option_are_valid(project: Path) -> None:
    done = run_mlops(project, "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "config valid: the defaults"
    every = run_mlops(project, "check", "--all")
    assert every.returncode == 0, every.stderr
    options = sum(len(list((project / "conf" / g).glob("*.yaml")))
                  for g in ("data", "quality", "features", "model", "split", "business", "promotion", "monitor",
                            "experiment"))
    assert f"checked {options} configs" in every.stdout and f"{options} valid, 0 invalid" in every.stdout
    assert not (project / "outputs").exists() and not (project / "data").exists()  # no run, no data


def test_a_bad_override_is_one_line_and_exit_2(project: Path) -> None:
    done = run_mlops(project, "check", "model=random_forest", "model.n_estimators=-5")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at model.n_estimators (override model.n_estimators=-5): ")
    unknown = run_mlops(project, "check", "model=lgbm")
    assert unknown.returncode == 2
    assert "unknown option 'lgbm'; expected one of: gradient_boosting, logistic, random_forest" in unknown.stderr


def test_all_names_every_broken_option_file(project: Path) -> None:
    (project / "conf" / "model" / "broken_forest.yaml").write_text(
        "# a forest nobody tried\n_target_: sklearn.ensemble.RandomForestClassifier\nn_estimators: 0\n")
    (project / "conf" / "split" / "bad.yaml").write_text(
        "# too big a test set\nstrategy: holdout\ntest_size: 1.5\nstratify: true\nseed: ${seed}\n")
    done = run_mlops(project, "check", "--all")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("mlops: config error at model.n_estimators (conf/model/broken_forest.yaml)")
    assert lines[0].endswith("[with model=broken_forest]")
    assert lines[1].startswith("mlops: config error at split.test_size (conf/split/bad.yaml)")
    assert "2 invalid" in done.stdout
