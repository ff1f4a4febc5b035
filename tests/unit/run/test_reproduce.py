from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.errors import EXIT_NOT_REPRODUCED
from engine.run.reproduce import verdict


def run_folder(root: Path, name: str, model_file: str, sha: str, scores: list[float]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": 0.8}}))
    pd.DataFrame({"customer_id": [1, 2], "y_true": [0, 1], "y_score": scores}).to_parquet(
        folder / "predictions.parquet")
    (folder / "run.json").write_text(json.dumps({"id": f"{name}-0000", "model": {"path": f"model/{model_file}",
                                                                                   "sha256": sha}}))
    return folder


@pytest.mark.parametrize("scores, status", [([0.1, 0.9], 0), ([0.1, 0.8], EXIT_NOT_REPRODUCED)])
def test_a_run_saved_as_a_pickle_is_judged_by_its_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              scores: list[float], status: int) -> None:
    old = run_folder(tmp_path, "old", "model.joblib", "a" * 64, [0.1, 0.9])
    new = run_folder(tmp_path, "new", "model.skops", "b" * 64, scores)
    assert verdict(old, new, json.loads((old / "run.json").read_text())) == status
    out = capsys.readouterr().out
    assert "note: the model was saved as model.joblib and now as model.skops; its sha256 cannot match" in out
    assert ("identical  model" in out) == (status == 0)


def test_a_skops_model_is_compared_by_its_sha256(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = run_folder(tmp_path, "old", "model.skops", "a" * 64, [0.1, 0.9])
    new = run_folder(tmp_path, "new", "model.skops", "b" * 64, [0.1, 0.9])
    assert verdict(old, new, json.loads((old / "run.json").read_text())) == EXIT_NOT_REPRODUCED
    assert "DIFFERENT  model: sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb" in capsys.readouterr().out
