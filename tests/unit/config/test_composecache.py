"""The sweep's config loader: the same composed configs as Hydra's, each file parsed once."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra._internal.config_repository import ConfigRepository
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from engine.config import composecache
from engine.config.composecache import parse_once
from tests.conftest import CONF, without_local

JOBS = [
    ["model.C=0.5"],
    ["model=random_forest", "model.n_estimators=7"],
    ["quality=strict", "+business.note=x"],
    ["model.C=0.25", "split.test_size=0.3"],
]


@pytest.fixture
def loaders(tmp_path: Path):
    """Hydra's loader and ours over a copy of conf/, with the master config of a sweep."""
    shutil.copytree(CONF, tmp_path / "conf", ignore=without_local)
    with initialize_config_dir(config_dir=str(tmp_path / "conf"), version_base="1.3"):
        hydras = GlobalHydra.instance().config_loader()
        master = hydras.load_configuration("config", [], RunMode.MULTIRUN)
        yield hydras, parse_once(hydras), master, tmp_path / "conf"


def composed(loader, master, overrides: list[str]) -> str:
    return OmegaConf.to_yaml(loader.load_sweep_config(master, overrides))


def test_every_job_composes_as_with_hydras_loader(loaders) -> None:
    hydras, ours, master, conf = loaders
    for _ in range(2):  # the second round is served from the cache
        for overrides in JOBS:
            assert composed(ours, master, overrides) == composed(hydras, master, overrides), overrides
    cached = {key[2] for key in composecache._LOADED if key[1] == str(conf)}
    assert {"config", "model/logistic", "model/random_forest", "quality/strict"} <= cached
    assert type(hydras.repository) is ConfigRepository, "Hydra's own loader was changed"


def test_a_job_cannot_change_what_the_next_job_reads(loaders) -> None:
    hydras, ours, master, _ = loaders
    first = ours.load_sweep_config(master, ["model.C=0.5"])
    first.model.C = 123.0  # a job's config is its own copy
    with open_dict(first):
        del first["quality"]
    assert composed(ours, master, ["model.C=0.5"]) == composed(hydras, master, ["model.C=0.5"])


def test_a_config_file_edited_during_the_sweep_reaches_later_jobs(loaders) -> None:
    hydras, ours, master, conf = loaders
    assert ours.load_sweep_config(master, []).model.C == 1.0
    path = conf / "model" / "logistic.yaml"
    before = path.stat()
    # The same size and, put back, the same mtime: only the bytes tell the edit apart.
    path.write_text(path.read_text().replace("C: 1.0", "C: 0.5"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert ours.load_sweep_config(master, []).model.C == 0.5
    assert composed(ours, master, []) == composed(hydras, master, [])


def test_pickled_to_a_worker_the_loader_travels_without_the_cache(loaders) -> None:
    _, ours, master, _ = loaders
    ours.load_sweep_config(master, ["model.C=0.5"])
    payload = pickle.dumps(ours)
    assert b"sklearn.linear_model" not in payload  # no cached config inside
    assert pickle.loads(payload).load_sweep_config(master, ["model.C=0.5"]).model.C == 0.5


def test_a_loader_that_is_not_hydras_is_left_alone() -> None:
    other = object()
    assert parse_once(other) is other  # type: ignore[arg-type]
