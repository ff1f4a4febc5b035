"""The runtime environment: version checks on load, and ``mlops registry export`` bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import edit_registered_version, registry_entry, run_mlops
from tests.functional.serving import Server, feature_rows, records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bundle") / "churn-bundle"
    done = run_mlops(trained, "registry", "export", "churn@champion", str(target), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "exported churn/1" in done.stdout
    return target


def test_the_bundle_holds_the_model_its_card_and_pinned_requirements(bundle: Path, trained: Path) -> None:
    registry = registry_entry(trained)["versions"][0]
    assert sorted(p.name for p in bundle.iterdir()) == ["Dockerfile", "input_domain.json", "model.skops",
                                                        "model.skops.sha256", "model_card.json", "model_card.md",
                                                        "requirements.txt", "wheels"]
    assert (bundle / "model.skops").read_bytes() == (trained / "outputs" / "registry" / "churn" / "1" /
                                                     "model.skops").read_bytes()
    assert (bundle / "model.skops.sha256").read_text().split()[0] == registry["model_sha256"]
    card = json.loads((bundle / "model_card.json").read_text())
    assert card["model"]["sha256"] == registry["model_sha256"] and card["model"]["aliases"] == ["champion"]
    assert card["model"]["threshold"] == registry["threshold"]
    assert set(card["metrics"]["by_stakeholder"]) == {"data_scientist", "subject_matter_expert", "business"}
    assert card["input_schema"]["key"]["name"] == "customer_id" and "tenure_days" in card["input_schema"]["columns"]
    assert card["lineage"]["run_id"] == registry["run_id"] and card["lineage"]["config_sha256"]
    recorded = json.loads((Path(registry["run_dir"]) / "run.json").read_text())["data"]
    assert set(card["lineage"]["data_fingerprints"]) == set(recorded) and "contacts" in recorded
    requirements = (bundle / "requirements.txt").read_text().splitlines()
    packages = card["environment"]["packages"]
    for name in ("scikit-learn", "numpy", "scipy", "pandas", "skops"):
        assert f"{name}=={packages[name]}" in requirements
    assert any(line.startswith("fastapi==") for line in requirements)
    assert any(line.startswith("httptools==") for line in requirements)
    assert any(line.startswith("uvloop==") and line.endswith('; sys_platform != "win32"') for line in requirements)
    (wheel,) = (bundle / "wheels").glob("mlops_engine-*.whl")
    assert f"./wheels/{wheel.name}" in requirements
    dockerfile = (bundle / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert '"mlops", "serve", "--bundle", "/bundle"' in dockerfile
    assert "## Metrics by stakeholder" in (bundle / "model_card.md").read_text()


def test_export_refuses_a_folder_that_is_not_empty(trained: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = run_mlops(trained, "registry", "export", "churn@champion", str(tmp_path / "full"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "is not an empty folder" in done.stderr and (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_serve_from_a_bundle_scores_like_the_registry(bundle: Path, trained: Path, tmp_path: Path) -> None:
    row = records(feature_rows(trained, 1))
    with Server(tmp_path, "--bundle", str(bundle), "--no-log") as running:
        described = httpx.get(f"{running.url}/model", timeout=30).json()
        answer = httpx.post(f"{running.url}/predict", json=row, timeout=30)
    with Server(trained, "churn/1", "--no-log") as registered:
        expected = httpx.post(f"{registered.url}/predict", json=row, timeout=30).json()
    assert described["name"] == "churn" and described["version"] == 1 and described["alias"] is None
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["score"] == expected["predictions"][0]["score"]


def test_a_tampered_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    model = copy / "model.skops"
    model.write_bytes(model.read_bytes()[:-3] + b"abc")
    done = run_mlops(tmp_path, "serve", "--bundle", str(copy), "--port", "0")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "does not match the sha256 in model_card.json" in done.stderr


def test_another_major_version_is_refused_unless_allowed(trained: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained, project, symlinks=True)
    version = registry_entry(project)["versions"][0]
    version["environment"]["packages"]["numpy"] = "1.26.4"
    edit_registered_version(project, version)
    feature_rows(project, 3).to_csv(project / "rows.csv", index=False)
    args = ("predict", "churn@champion", "--input", "rows.csv", "--output", "s.parquet", "--no-log")
    refused = run_mlops(project, *args)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "refusing to load churn/1: trained with numpy 1.26.4" in refused.stderr
    allowed = run_mlops(project, *args, "--allow-version-mismatch")
    assert allowed.returncode == 0, allowed.stderr
    assert "trained with numpy 1.26.4" in allowed.stderr and "a mismatch was allowed" in allowed.stderr
    probe = ("import engine, sys\n"
             "try:\n    engine.load_model('churn@champion')\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
             "engine.load_model('churn@champion', allow_version_mismatch=True); print('loaded')")
    out = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["EnvironmentMismatch", "loaded"], out.stderr


@pytest.mark.skipif(os.environ.get("MLOPS_SKIP_BUNDLE_VENV") == "1", reason="MLOPS_SKIP_BUNDLE_VENV=1")
def test_a_fresh_virtual_environment_from_the_bundle_alone_serves_it(bundle: Path, trained: Path,
                                                                     tmp_path: Path) -> None:
    """What the Dockerfile runs: pip install -r requirements.txt, then mlops serve --bundle."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-r", "requirements.txt"],
                               cwd=bundle, capture_output=True, text=True, timeout=1500)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    with Server(tmp_path, "--bundle", str(bundle), "--no-log", env=env, mlops=str(venv / "bin" / "mlops")) as running:
        answer = httpx.post(f"{running.url}/predict", json=records(feature_rows(trained, 1)), timeout=30)
    assert answer.status_code == 200, answer.text
    assert 0 <= answer.json()["predictions"][0]["score"] <= 1
