"""A store other than the default one, named by ``--tracking-uri``: every command that reads
the registry reads it from there (its rows are in the store since the registry moved
into it), and none falls back to ``outputs/mlops.db``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_mlops
from tests.functional.serving import feature_rows, records

ELSEWHERE = "sqlite:///team/mlops.db"


@pytest.mark.slow
def test_predict_validate_and_monitor_read_the_registry_of_the_store_they_are_given(project: Path) -> None:
    os.environ.pop("MLOPS_TRACKING_URI", None)
    trained = run_mlops(project, "run", f"tracking.uri={ELSEWHERE}")
    assert trained.returncode == 0, trained.stderr
    assert (project / "team" / "mlops.db").is_file() and not (project / "outputs" / "mlops.db").exists()
    for args in (("registry", "register", "latest", "--name", "churn"),
                 ("registry", "promote", "churn/1", "--alias", "champion")):
        done = run_mlops(project, *args, "--tracking-uri", ELSEWHERE)
        assert done.returncode == 0, done.stderr
    # the default store has no registry: nothing is found there
    assert run_mlops(project, "registry", "show", "churn@champion").returncode == 2

    rows = project / "rows.json"
    rows.write_text(json.dumps(records(feature_rows(project, 20))))
    scored = run_mlops(project, "predict", "churn@champion", "--input", str(rows), "--output", "scores.parquet",
                       "--tracking-uri", ELSEWHERE)
    assert scored.returncode == 0, scored.stderr

    candidate = run_mlops(project, "run", f"tracking.uri={ELSEWHERE}", "model=random_forest")
    assert candidate.returncode == 0, candidate.stderr
    run_dir = sorted((project / "outputs" / "runs").glob("*/*"))[-1]
    checked = run_mlops(project, "validate", "--candidate", str(run_dir), "--against", "churn@champion",
                        "--tracking-uri", ELSEWHERE)
    assert checked.returncode in (0, 4), checked.stderr
    verdict = json.loads((run_dir / "validation.json").read_text())
    assert verdict["champion"] is not None and verdict["champion"]["version"] == 1, verdict.get("note")

    monitored = run_mlops(project, "monitor", "churn@champion", "--current", "features", "--tracking-uri", ELSEWHERE)
    assert monitored.returncode in (0, 6), monitored.stderr
    assert "monitor: churn@champion" in monitored.stdout
