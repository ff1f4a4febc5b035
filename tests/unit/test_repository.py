"""What a fresh clone gets: every config the defaults name is tracked by git."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF, REPO


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_every_config_file_is_tracked() -> None:
    tracked = set(subprocess.run(["git", "ls-files", "conf"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split())
    on_disk = {str(p.relative_to(REPO)) for p in CONF.rglob("*.yaml") if p.parent.name != "local"}
    assert on_disk <= tracked, f"untracked configs: {sorted(on_disk - tracked)}"
    for entry in OmegaConf.load(CONF / "config.yaml").defaults:
        if isinstance(entry, str) or "optional local" in str(entry):
            continue
        ((group, option),) = entry.items()
        if option is not None:
            assert f"conf/{group}/{option}.yaml" in tracked, (group, option)
