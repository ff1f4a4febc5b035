from __future__ import annotations

import pickle

import pytest

from engine import errors


@pytest.mark.parametrize("error", [
    errors.ConfigError("model.n_estimators", "must be an int, got -5", "conf/model/random_forest.yaml"),
    errors.ConfigError("", "bad"),
    errors.DataError("data error at x: y"),
    errors.UsageError("usage error: z"),
    errors.QualityGateError("quality gate failed: a"),
    errors.RequirementsGateError("requirements failed: b"),
])
def test_every_error_survives_the_trip_from_a_sweep_worker(error: errors.EngineError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.exit_status == error.exit_status and back.run_status == error.run_status


def test_statuses() -> None:
    assert errors.ConfigError("a", "b").exit_status == 2
    assert errors.QualityGateError("x").exit_status == 3 and errors.QualityGateError("x").run_status == "failed_quality"
    assert isinstance(errors.ConfigError("a", "b"), ValueError)
