"""The training environment against the running one."""

from __future__ import annotations

import platform

import pytest

from engine.store import environment
from engine.store.environment import EnvironmentMismatch

RUNNING = {"scikit-learn": "1.9.1", "numpy": "2.4.6", "scipy": "1.17.1", "pandas": "3.1.1", "skops": "0.16.0"}


@pytest.fixture(autouse=True)
def running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "running", lambda names: {n: RUNNING.get(n) for n in names})


def recorded(**packages: str) -> dict[str, object]:
    return {"python": platform.python_version(), "packages": {**RUNNING, **packages}}


def test_the_same_or_another_patch_version_is_fine() -> None:
    assert environment.compare(recorded(), "churn/1") == []
    assert environment.compare(recorded(**{"scikit-learn": "1.9.0", "numpy": "2.4.1"}), "churn/1") == []


def test_another_minor_version_of_a_numeric_package_warns(caplog: pytest.LogCaptureFixture) -> None:
    messages = environment.compare(recorded(**{"scikit-learn": "1.8.2"}), "churn/1")
    assert messages == ["churn/1 was trained with scikit-learn 1.8.2 (running 1.9.1): its scores may differ slightly"]
    assert messages[0] in caplog.text
    assert environment.compare(recorded(pandas="3.0.0"), "churn/1") == []  # pandas: only its major counts


@pytest.mark.parametrize(("packages", "words"), [
    ({"numpy": "1.26.4"}, "numpy 1.26.4 (running 2.4.6)"),
    ({"skops": "1.0.0"}, "skops 1.0.0 (running 0.16.0)"),
    ({"pandas": "2.2.3"}, "pandas 2.2.3 (running 3.1.1)"),
])
def test_another_major_version_is_refused_in_one_line_unless_allowed(packages: dict[str, str], words: str) -> None:
    with pytest.raises(EnvironmentMismatch) as caught:
        environment.compare(recorded(**packages), "churn/2")
    message = str(caught.value)
    assert "\n" not in message and words in message and "--allow-version-mismatch" in message
    assert caught.value.exit_status == 2
    allowed = environment.compare(recorded(**packages), "churn/2", allow_mismatch=True)
    assert len(allowed) == 1 and "a mismatch was allowed" in allowed[0]


def test_a_package_missing_here_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "running", lambda names: {n: None if n == "scipy" else RUNNING[n] for n in names})
    with pytest.raises(EnvironmentMismatch, match="scipy 1.17.1 \\(not installed\\)"):
        environment.compare(recorded(), "churn/1")


def test_a_version_registered_without_its_environment_is_not_checked() -> None:
    assert environment.compare(None, "churn/1") == [] and environment.compare({}, "churn/1") == []
