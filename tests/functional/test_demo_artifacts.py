"""The demo's artifacts are byte-identical to the ones recorded in demo_artifacts/.

Recorded with the command in ``demo_artifacts/recorded.json``: a refactoring that
changes no behaviour leaves ``metrics.json``, ``predictions.parquet`` and the model's
sha256 as they were. Re-recorded at 1e7080d, on purpose, because the demo data changed
(support contacts and a realistic churn signal, issue 14); first recorded at 84adef2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import read_json, run_mlops

RECORDED = Path(__file__).parent / "demo_artifacts"
MODELS = ("logistic", "random_forest", "gradient_boosting")


@pytest.mark.slow
def test_the_demo_gives_the_recorded_metrics_predictions_and_model(project: Path) -> None:
    # One sweep, one process: the jobs give the same bytes as three separate runs.
    done = run_mlops(project, "run", "-m", f"model={','.join(MODELS)}")
    assert done.returncode == 0, done.stderr
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    versions = json.loads((RECORDED / "recorded.json").read_text())["versions"]
    for number, name in enumerate(MODELS):
        job, expected = sweep / str(number), RECORDED / name
        assert read_json(job / "run.json")["model"]["sha256"] == (expected / "model.sha256").read_text().strip(), name
        assert (job / "metrics.json").read_bytes() == (expected / "metrics.json").read_bytes(), name
        assert (job / "predictions.parquet").read_bytes() == (expected / "predictions.parquet").read_bytes(), (
            f"{name}: predictions.parquet differs (recorded with {versions})")
