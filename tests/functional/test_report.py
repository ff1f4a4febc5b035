"""mlops report: the real command on a real run and sweep, the page opened in headless Chromium.

The browser tests need Debian's Chromium at /usr/bin/chromium (``.ci/run`` installs
it) and the ``playwright`` package from the ``test`` extra; Playwright's own browser
download is never used. Each test saves a full-page screenshot under
``outputs/test-artifacts/`` in the repository (git-ignored; set
``MLOPS_TEST_ARTIFACTS`` to put them elsewhere), so a person can look at the report
the test saw.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_dirs, run_mlops

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MLOPS_TEST_ARTIFACTS", REPO / "outputs" / "test-artifacts"))
#: The flags this machine's closed network needs: no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RUN_SECTIONS = ["Hypothesis and configuration", "Data quality", "Features and importances", "Metrics by stakeholder",
                "Threshold and value", "ROC, precision-recall and confusion matrix", "Requirement verdicts",
                "Provenance"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        # headless=True; Playwright gives the browser a fresh, empty profile of its own
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_report(browser: Any, path: Path, screenshot: str) -> dict[str, Any]:
    """Load a report from disk as a reader would, and say what the browser saw.

    Returns:
        ``requests`` (every URL the page asked for), ``errors`` (console errors and
        uncaught page errors), ``images`` (natural width and height of each decoded
        <img>), ``sections`` (the h2 headings) and the page's ``text``.
    """
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        response = page.goto(path.resolve().as_uri(), wait_until="load")
        assert response is None or response.ok
        images = page.evaluate(
            "() => Promise.all([...document.images].map(img => img.decode().then(() => [img.naturalWidth, "
            "img.naturalHeight], () => [0, 0])))")
        sections = page.locator("h2").all_inner_texts()
        text = page.locator("body").inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        print(f"screenshot: {ARTIFACTS / screenshot}")
    finally:
        page.close()
    return {"requests": requests, "errors": errors, "images": images, "sections": sections, "text": text}


def assert_clean(seen: dict[str, Any], path: Path, min_images: int) -> None:
    assert seen["requests"] == [path.resolve().as_uri()], "the page fetched more than itself"
    assert seen["errors"] == []
    assert len(seen["images"]) >= min_images
    assert all(width > 0 and height > 0 for width, height in seen["images"]), seen["images"]


@pytest.mark.slow
def test_the_report_of_a_run_opens_cleanly_in_chromium(project: Path, browser: Any) -> None:
    assert run_mlops(project, "run").returncode == 0
    started = time.perf_counter()
    done = run_mlops(project, "report", "latest")
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    (run_dir,) = run_dirs(project)
    path = Path(done.stdout.strip())
    assert path == run_dir / "report.html" and path.is_file()
    print(f"mlops report latest took {took:.2f}s (the command, imports included)")
    seen = open_report(browser, path, "report.png")
    assert_clean(seen, path, min_images=5)  # importances, ROC, precision-recall, confusion matrix, value curve
    assert seen["sections"] == RUN_SECTIONS
    assert "SUCCEEDED" in seen["text"]  # the status badge (upper-cased by the stylesheet)
    assert "simple estimate (design): 1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month" in seen["text"]
    assert "Top features:" in seen["text"]


@pytest.mark.slow
def test_the_report_of_a_run_that_failed_its_requirements_shows_why(project: Path, browser: Any) -> None:
    done = run_mlops(project, "run", "business.requirements.min_roc_auc=0.99")
    assert done.returncode == 4
    done = run_mlops(project, "report", "latest")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    seen = open_report(browser, path, "report-failed-requirements.png")
    assert_clean(seen, path, min_images=5)
    assert "FAILED REQUIREMENTS" in seen["text"]
    assert "This run failed a hard business requirement" in seen["text"]
    assert "min_roc_auc" in seen["text"] and "misses >= 0.99" in seen["text"]


@pytest.mark.slow
def test_the_report_of_a_sweep_opens_cleanly_in_chromium(project: Path, browser: Any) -> None:
    done = run_mlops(project, "run", "-m", "model=logistic,random_forest", "split.test_size=0.25,0.3")
    assert done.returncode == 0, done.stderr
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    done = run_mlops(project, "report", str(sweep))
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.resolve() == (sweep / "report.html").resolve()
    seen = open_report(browser, path, "report-sweep.png")
    assert_clean(seen, path, min_images=2 + 5)  # a plot per swept parameter, then the best run's
    assert seen["sections"][:3] == ["Hypothesis", "Leaderboard", "roc_auc against each swept parameter"]
    assert "4/4 SUCCEEDED" in seen["text"]
    assert "roc_auc against model:" in seen["text"] and "roc_auc against split.test_size:" in seen["text"]


# ------------------------------------------------------------------ bad input


def test_an_unknown_run_is_one_line_and_exit_2(project: Path) -> None:
    done = run_mlops(project, "report", "nosuchrun")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mlops: usage error: no run matches 'nosuchrun'; expected a run id, a unique id prefix, a run directory "
        "or 'latest' (see mlops runs)"]


def test_a_folder_that_is_neither_a_run_nor_a_sweep_is_one_line_and_exit_2(project: Path) -> None:
    done = run_mlops(project, "report", "conf")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mlops: usage error: conf is neither a run directory (with run.json) nor a sweep folder "
        "(with summary.json or leaderboard.csv)"]
    assert "Traceback" not in done.stderr


def test_report_without_an_argument_is_a_usage_error(project: Path) -> None:
    done = run_mlops(project, "report")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "mlops report --help" in done.stderr
    helped = run_mlops(project, "report", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: mlops report RUN|SWEEP_DIR")


def test_latest_before_any_run_is_a_usage_error(project: Path) -> None:
    done = run_mlops(project, "report", "latest")
    assert done.returncode == 2 and "no training run in the store yet" in done.stderr
    assert "Traceback" not in done.stderr
