"""The training environment against the running one: may this process load the model?

A registered version records the Python and package versions its run was trained with
(``environment`` in the registry, from the run's provenance). Before a model is loaded
(``engine.load_model``, ``mlops serve``, ``mlops predict``) the running versions are
compared with them:

- another patch version (1.9.1 against 1.9.0) is fine;
- another minor version of a package whose numerics decide the scores (scikit-learn,
  numpy, scipy) is a warning: the model loads, its scores may differ slightly;
- another major version of a package the model file depends on (those three, pandas,
  skops) is refused with one line, unless the caller allows a mismatch
  (``--allow-version-mismatch``).
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from engine.errors import EngineError

log = logging.getLogger(__name__)

#: A minor version apart: a warning.
NUMERIC = ("scikit-learn", "numpy", "scipy")
#: A major version apart: refused.
REFUSED_ON_MAJOR = (*NUMERIC, "pandas", "skops")


class EnvironmentMismatch(EngineError):
    """The running versions are too far from the training ones to trust the model."""


def running(names: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """The installed version of each distribution (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def compare(recorded: Mapping[str, Any] | None, label: str, allow_mismatch: bool = False) -> list[str]:
    """Check the running versions against ``recorded`` (``{"python", "packages"}``).

    Returns:
        The warnings (also logged): minor versions apart, or majors allowed by
        ``allow_mismatch``.

    Raises:
        EnvironmentMismatch: A major version apart (or a package missing), not allowed.
    """
    if not recorded or not isinstance(recorded.get("packages"), dict):
        return []
    packages: Mapping[str, Any] = recorded["packages"]
    now = running([name for name in REFUSED_ON_MAJOR if name in packages])
    refused, warned = [], []
    for name, version in now.items():
        trained = str(packages[name])
        if version is None:
            refused.append(f"{name} {trained} (not installed)")
            continue
        was, is_ = _parts(trained), _parts(version)
        if was[:1] != is_[:1]:
            refused.append(f"{name} {trained} (running {version})")
        elif was[:2] != is_[:2] and name in NUMERIC:
            warned.append(f"{name} {trained} (running {version})")
    python = str(recorded.get("python") or "")
    if python and _parts(python)[:2] != _parts(platform.python_version())[:2]:
        warned.append(f"Python {python} (running {platform.python_version()})")
    if refused and not allow_mismatch:
        raise EnvironmentMismatch(
            f"environment error: refusing to load {label}: trained with {', '.join(refused)}, another major version; "
            "install the training versions (mlops registry export writes them to requirements.txt) or pass "
            "--allow-version-mismatch")
    messages = []
    if refused:
        messages.append(f"{label} was trained with {', '.join(refused)}, another major version; loaded because "
                        "a mismatch was allowed: its scores may differ")
    if warned:
        messages.append(f"{label} was trained with {', '.join(warned)}: its scores may differ slightly")
    for message in messages:
        log.warning(message)
    return messages


def _parts(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string, as far as it has them."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])
