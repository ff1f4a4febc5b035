"""``mlops diff REF [REF2]``: the composed config at a git ref against the working tree.

The ``conf/`` tree at the ref is read from git (``git archive``, nothing checked out)
into a temporary folder and composed as ``mlops run`` composes it, so the comparison
covers the whole tree: every key, and the option chosen in each config group.
Interpolations are compared as written (``${seed}``), not resolved.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, UsageError

#: Shown instead of a value for a key that one side does not have.
ABSENT = "(absent)"


def composed(conf: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The composed config of a ``conf/`` folder, flat: ``defaults.<group>`` holds the
    chosen option of each group, every other key its value as written.

    Raises:
        ConfigError: The folder does not compose.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf.resolve()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides or [], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError("", f"{conf} does not compose: {str(exc).splitlines()[0]}") from exc
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    tree = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(tree, dict)
    flat = {f"defaults.{group}": choice for group, choice in sorted(choices.items())
            if not group.startswith("hydra/") and group != "hydra"}
    flat.update(_flatten(tree))
    return flat


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@contextmanager
def conf_at(ref: str, project: Path) -> Iterator[Path]:
    """A temporary copy of the project's ``conf/`` as it is at ``ref``, removed on exit.

    Raises:
        UsageError: Not a git repository, an unknown ref, or no conf/ at that ref.
    """
    if ref.startswith("-"):  # never an option to git
        raise UsageError(f"usage error: unknown git ref {ref!r}; expected a branch, tag or commit of this repository")
    prefix = _git(project, "rev-parse", "--show-prefix").strip()
    commit = _git(project, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", what=f"git ref {ref!r}").strip()
    archive = subprocess.run(["git", "-c", "core.fsmonitor=false", "archive", "--format=tar", commit,
                              f"{prefix}conf"], cwd=project, capture_output=True)
    if archive.returncode != 0:
        raise UsageError(f"usage error: {ref} ({commit[:10]}) has no {prefix}conf/ folder")
    with tempfile.TemporaryDirectory(prefix="mlops-diff-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")  # nothing outside tmp, no links out, no devices
        yield Path(tmp) / prefix / "conf"


def _git(project: Path, *args: str, what: str | None = None) -> str:
    try:
        done = subprocess.run(["git", "-c", "core.fsmonitor=false", *args], cwd=project, capture_output=True,
                              text=True)
    except FileNotFoundError as exc:
        raise UsageError("usage error: mlops diff needs git, which is not installed") from exc
    if done.returncode != 0:
        if what:
            raise UsageError(f"usage error: unknown {what}; expected a branch, tag or commit of this repository")
        raise UsageError(f"usage error: {project} is not inside a git repository "
                         f"({(done.stderr.strip().splitlines() or ['git failed'])[-1]})")
    return done.stdout


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, before, after) for every key whose value differs, in key order."""
    keys = sorted(set(before) | set(after))
    return [(k, before.get(k, ABSENT), after.get(k, ABSENT)) for k in keys
            if before.get(k, ABSENT) != after.get(k, ABSENT)]
