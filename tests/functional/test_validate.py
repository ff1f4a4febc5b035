"""``mlops validate`` and ``mlops diff`` through the real command, as a CI job runs them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import MLOPS, project_registry, read_json, registry_entry, run_dirs, run_mlops

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "ci" / "github-actions.yml"
#: The weak model every champion test starts from: one categorical feature.
WEAK = "features.use=[segment]"


def git(project: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(project: Path) -> Path:
    """The project as a git repository whose main branch is also `origin/main`."""
    # a one-feature model may rank worse than the project's floor: the gate is what is tested
    local = project / "conf" / "local" / "default.yaml"
    # and the machine running the tests is shared: the latency budget is tested on its own
    local.write_text(local.read_text() + "business:\n  requirements:\n    min_roc_auc: 0.3\n"
                     "promotion:\n  latency:\n    p99_ms: 60000\n")
    (project / ".gitignore").write_text("/outputs/\n/data/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", ".")
    git(project, "commit", "-qm", "project")
    git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    return project


def workflow_steps() -> list[str]:
    """The `run:` lines of the CI example that call mlops (the install is done here already)."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["validate"]["steps"]
    lines = [step["run"] for step in steps if "run" in step and step["run"].lstrip().startswith("mlops")]
    assert [line.split()[1] for line in lines] == ["check", "diff", "validate"]
    return lines


def run_workflow(project: Path, summary: Path) -> list[subprocess.CompletedProcess[str]]:
    """Each step as the runner runs it (bash -e), in order; stops at the first that fails."""
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_BASE_REF": "main",
           "PATH": f"{Path(MLOPS).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("HYDRA_FULL_ERROR", None)
    done = []
    for line in workflow_steps():
        step = subprocess.run(["bash", "-e", "-c", line], cwd=project, capture_output=True, text=True, env=env,
                              timeout=600)
        done.append(step)
        if step.returncode != 0:
            break
    return done


@pytest.mark.slow
def test_the_ci_example_passes_a_better_change_and_fails_a_worse_one(repo: Path) -> None:
    # production today: a weak model, promoted through the gate (no champion yet: it passes)
    first = run_mlops(repo, "validate", WEAK, "--against", "churn@champion", "--promote")
    assert first.returncode == 0, first.stderr
    assert "no champion at churn@champion yet" in first.stdout and "promoted: churn@champion -> v1" in first.stdout

    # a pull request that uses every feature: better, the job passes
    summary = repo / "summary.md"
    better = run_workflow(repo, summary)
    assert [s.returncode for s in better] == [0, 0, 0], better[-1].stderr
    text = summary.read_text()
    assert "## mlops validate: PASSED" in text and "| roc_auc |" in text and "features.use" in text
    candidate = run_dirs(repo)[-1]
    verdict = read_json(candidate / "validation.json")
    assert verdict["passed"] and verdict["metrics"]["roc_auc"]["improvement"] > 0
    assert (candidate / "validation.md").read_text() in text
    assert {"load_models", "evaluation_rows", "scoring", "metrics", "report"} <= set(verdict["seconds"])
    # the hold-out comes from the feature table the candidate recorded; with the store
    # emptied, it is rebuilt from the data, and it is the same rows
    for table in (repo / "outputs" / "feature_store" / "tables").glob("*.parquet"):
        table.unlink()
    again = run_mlops(repo, "validate", "--candidate", str(candidate), "--against", "churn@champion")
    assert again.returncode == 0, again.stderr
    rebuilt = read_json(candidate / "validation.json")
    assert (rebuilt["evaluation"], rebuilt["metrics"]) == (verdict["evaluation"], verdict["metrics"])
    # merged: the post-merge job promotes it
    merged = run_mlops(repo, "validate", "--candidate", str(candidate), "--against", "churn@champion", "--promote")
    assert merged.returncode == 0, merged.stderr
    assert "promoted: churn@champion -> v2 (was v1)" in merged.stdout

    # a pull request back to one feature: worse, the job fails with exit 4 and says why
    features = repo / "conf" / "features" / "churn.yaml"
    features.write_text(features.read_text().replace("\nuse: null", "\nuse: [segment]"))
    worse_summary = repo / "worse.md"
    worse = run_workflow(repo, worse_summary)
    assert [s.returncode for s in worse] == [0, 0, 4], worse[-1].stderr
    failed = worse[-1].stderr.strip().splitlines()
    assert any(line.startswith("mlops: validation failed: roc_auc: change ") for line in failed), failed
    assert "Traceback" not in worse[-1].stderr
    text = worse_summary.read_text()
    assert "## mlops validate: FAILED" in text and "**FAIL**" in text
    assert "features.use: None -> ['segment']" in text  # the diff step's output
    registry = registry_entry(repo)
    assert registry["aliases"]["champion"] == 2  # a failed gate moves nothing


@pytest.mark.slow
def test_a_champion_whose_inputs_the_evaluation_rows_lack_is_refused(repo: Path) -> None:
    slow = run_mlops(repo, "validate", "promotion.latency.p99_ms=0.001", "--against", "churn@champion", "--promote")
    assert slow.returncode == 4  # the budget applies with no champion yet, and nothing is promoted
    assert slow.stderr.startswith("mlops: validation failed: latency: p99 single-row ")
    assert project_registry(repo).names() == []
    wide = run_mlops(repo, "validate", "+features.derived.orders_twice=n_orders * 2", "--against",
                     "churn@champion", "--promote")
    assert wide.returncode == 0, wide.stderr
    done = run_mlops(repo, "validate", "--against", "churn@champion")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "mlops: data error: the champion's input columns are not in the evaluation data: orders_twice")


def test_diff_shows_a_changed_hyper_parameter_and_a_group_choice(repo: Path) -> None:
    logistic = repo / "conf" / "model" / "logistic.yaml"
    logistic.write_text(logistic.read_text().replace("C: 1.0", "C: 0.5"))
    done = run_mlops(repo, "diff", "HEAD")
    assert done.returncode == 0, done.stderr
    assert "model.C: 1.0 -> 0.5" in done.stdout.splitlines()
    assert done.stdout.strip().endswith("1 key(s) differ between HEAD and the working tree")
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("- model: logistic", "- model: random_forest"))
    git(repo, "commit", "-qam", "forest")
    between = run_mlops(repo, "diff", "HEAD~1", "HEAD")
    assert between.returncode == 0, between.stderr
    assert "defaults.model: 'logistic' -> 'random_forest'" in between.stdout
    assert "model.n_estimators: (absent) -> 200" in between.stdout


def test_diff_of_an_unknown_ref_is_one_line(repo: Path) -> None:
    done = run_mlops(repo, "diff", "no-such-branch")
    assert done.returncode == 2
    assert done.stderr == ("mlops: usage error: unknown git ref 'no-such-branch'; expected a branch, tag or commit "
                           "of this repository\n")


def test_a_policy_naming_an_unknown_metric_lists_the_known_ones(project: Path) -> None:
    done = run_mlops(project, "check", "+promotion.metrics.auc.min_change=0")
    assert done.returncode == 2
    assert done.stderr.startswith("mlops: config error at promotion.metrics.auc (conf/promotion/default.yaml): "
                                  "unknown metric; expected one of: roc_auc, accuracy")
