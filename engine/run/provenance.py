"""Where a run came from: code version, environment and command line."""

from __future__ import annotations

import copy
import hashlib
import platform
import subprocess
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from engine.config.hydraconf import clean_env

#: Every git call: no fsmonitor hook, no pager. With ``--no-ext-diff --no-textconv`` on
#: ``git diff`` and the environment of :func:`engine.config.hydraconf.clean_env` (no ``GIT_*``,
#: ``LD_*``, ...), a config that sets ``hydra.job.env_set`` cannot make git run a command.
GIT_SAFE = ("-c", "core.fsmonitor=false", "--no-pager")

CORE_PACKAGES = ("mlops-engine", "hydra-core", "omegaconf", "pandas", "numpy", "scipy", "scikit-learn",
                 "joblib", "jsonschema", "pyarrow", "threadpoolctl", "skops")


def git_state(root: Path) -> dict[str, Any] | None:
    """Commit, dirty flag and a hash of the uncommitted diff; None outside a git work tree."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *GIT_SAFE, *args], cwd=root, capture_output=True, timeout=20, check=False,
                                  env=clean_env())
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no") or ""
    diff = git("diff", "--no-ext-diff", "--no-textconv", "HEAD", "--binary") or ""
    # -z: names as they are (git quotes unusual ones otherwise)
    untracked = sorted(filter(None, (git("ls-files", "-z", "--others", "--exclude-standard", "--", "*.py")
                                     or "").split("\0")))
    return {
        "commit": commit.strip(),
        "dirty": bool(status.strip()),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
        # Python files git does not track yet (a new estimator module, say): the diff
        # misses them, and the run cache must not take a run made before they changed.
        "untracked_py": _files_sha256(root, untracked) if untracked else None,
    }


def _files_sha256(root: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        try:
            digest.update((root / name).read_bytes())
        except OSError:
            digest.update(b"unreadable")
        digest.update(b"\0")
    return digest.hexdigest()


@cache
def packages() -> dict[str, str | None]:
    """Installed versions of the packages that decide a run's result, the estimator
    plugins of ``mlops_engine.targets`` included (once per process: the packages a
    process has imported do not change under it)."""
    found: dict[str, str | None] = {}
    for name in CORE_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    # The distributions that add estimators to the allowlist decide results too.
    for entry in entry_points(group="mlops_engine.targets"):
        if entry.dist is not None:
            found.setdefault(entry.dist.name, entry.dist.version)
    return found


@cache
def engine_source() -> dict[str, Any]:
    """Where the engine's own code came from: its folder and, for a source checkout
    (an editable install), that checkout's commit, so a project outside the engine's
    repository still records which engine code ran."""
    import engine

    # Once per process: the engine code a process runs is the code it imported.
    folder = Path(engine.__file__).resolve().parent
    return {"path": str(folder), "git": git_state(folder)}


def collect(root: Path, overrides: list[str]) -> dict[str, Any]:
    """Everything the run record says about its origin."""
    return {
        "git": git_state(root),
        "engine": copy.deepcopy(engine_source()),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": dict(packages()),
        "command": list(sys.argv),
        "overrides": list(overrides),
        "project_dir": str(root),
    }
