"""engine.config.hydraconf: what a shared config may ask of Hydra."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import OmegaConf

from engine.config import hydraconf
from engine.errors import ConfigError
from engine.run import provenance
from tests.conftest import CONF


def composed(*overrides: str):  # noqa: ANN201
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_the_project_config_and_its_experiments_pass(tmp_path: Path) -> None:
    hydraconf.check(composed(), tmp_path)
    for experiment in ("compare_models", "tune_forest"):
        hydraconf.check(composed(f"experiment={experiment}"), tmp_path)


def test_checking_leaves_the_config_as_it_was(tmp_path: Path) -> None:
    cfg = composed()
    before = OmegaConf.to_yaml(cfg)
    hydraconf.check(cfg, tmp_path)
    assert OmegaConf.to_yaml(cfg) == before
    assert OmegaConf.is_missing(cfg.hydra.runtime, "output_dir") and OmegaConf.is_missing(cfg.hydra.job, "num")


@pytest.mark.parametrize(("override", "path"), [
    ("+hydra.callbacks.x._target_=joblib.load", "hydra.callbacks.x._target_"),
    ("+hydra.job.env_set.GIT_SSH_COMMAND=touch", "hydra.job.env_set.GIT_SSH_COMMAND"),
    ("+hydra.job.env_set.PYTHONSTARTUP=x.py", "hydra.job.env_set.PYTHONSTARTUP"),
    ("+hydra.job.env_set.ld_preload=x.so", "hydra.job.env_set.ld_preload"),  # names are compared case-blind
    ("hydra.sweeper._target_=os.system", "hydra.sweeper._target_"),
    ("hydra.run.dir=/tmp/elsewhere", "hydra.run.dir"),
    ("hydra.sweep.dir=/tmp/elsewhere", "hydra.sweep.dir"),
    ("hydra.output_subdir=../../../../..", "hydra.output_subdir"),
    ("hydra.job_logging.handlers.console.stream=ext://os.environ", "hydra.job_logging.handlers.console.stream"),
    ("name=a/../../b", "name"),
    ("model._target_=subprocess.Popen", "model._target_"),
])
def test_each_refusal_names_its_key(tmp_path: Path, override: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hydraconf.check(composed(override), tmp_path)
    assert caught.value.path == path


def test_harmless_settings_pass(tmp_path: Path) -> None:
    hydraconf.check(composed("+hydra.job.env_set.OMP_NUM_THREADS=1", "hydra.run.dir=outputs/mine/x",
                             "hydra.job.chdir=true"), tmp_path)


def test_the_outputs_root_can_be_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_OUTPUT_ROOT", str(tmp_path / "scratch"))
    hydraconf.check(composed(f"hydra.run.dir={tmp_path}/scratch/run", f"hydra.sweep.dir={tmp_path}/scratch/s"),
                    tmp_path)
    with pytest.raises(ConfigError, match="hydra.sweep.dir"):  # outputs/ is no longer the root
        hydraconf.check(composed(f"hydra.run.dir={tmp_path}/scratch/run"), tmp_path)


def test_a_sweep_checks_each_option_it_names(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    os.symlink(CONF / "config.yaml", tmp_path / "conf" / "config.yaml")
    for group in ("data", "quality", "features", "model", "split", "business", "promotion", "monitor", "local"):
        os.symlink(CONF / group, tmp_path / "conf" / group)
    (tmp_path / "conf" / "experiment").mkdir()
    (tmp_path / "conf" / "experiment" / "fine.yaml").write_text("# @package _global_\nseed: 3\n")
    (tmp_path / "conf" / "experiment" / "evil.yaml").write_text(
        "# @package _global_\nhydra:\n  callbacks:\n    x:\n      _target_: os.system\n")
    with initialize_config_dir(config_dir=str(tmp_path / "conf"), version_base="1.3"):
        def one(overrides: list[str]):  # noqa: ANN202
            return compose(config_name="config", overrides=overrides, return_hydra_config=True)

        hydraconf.check_sweep(one(["experiment=fine"]), one, tmp_path)  # nothing swept
        sweep = one([])
        sweep.hydra.overrides.task = ["experiment=fine,evil"]
        with pytest.raises(ConfigError, match="hydra.callbacks.x._target_"):
            hydraconf.check_sweep(sweep, one, tmp_path)


def test_guarded_restores_hydras_loader() -> None:
    original = ConfigLoaderImpl.load_configuration, ConfigLoaderImpl.load_sweep_config
    with pytest.raises(RuntimeError), hydraconf.guarded():
        assert ConfigLoaderImpl.load_configuration is not original[0]
        raise RuntimeError
    assert (ConfigLoaderImpl.load_configuration, ConfigLoaderImpl.load_sweep_config) == original


def test_clean_env_drops_what_changes_git_and_the_loader() -> None:
    env = hydraconf.clean_env({"PATH": "/bin", "HOME": "/root", "GIT_EXTERNAL_DIFF": "x", "LD_PRELOAD": "y",
                               "PYTHONPATH": "z", "LANG": "C"})
    assert env == {"PATH": "/bin", "HOME": "/root", "LANG": "C"}


def test_git_state_never_runs_an_external_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (tmp_path / "a.txt").write_text("one\n")
    for args in (["init", "-q"], ["add", "a.txt"], ["commit", "-q", "-m", "a"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "a.txt").write_text("two\n")
    marker = tmp_path / "pwned"
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", f"sh -c 'touch {marker}'")
    # a textconv driver and an external diff in the repository's own config as well
    subprocess.run(["git", "config", "diff.external", f"sh -c 'touch {marker}'"], cwd=tmp_path, check=True)
    state = provenance.git_state(tmp_path)
    assert state is not None and state["dirty"] and state["diff_sha256"]
    assert not marker.exists()


def test_a_place_outside_the_project_is_the_users_choice_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path.parent / "shared-store"
    hydraconf.check(composed(f"features.store.path={outside}"), tmp_path)  # typed: a store shared by projects
    monkeypatch.setenv("MLOPS_TRACKING_URI", f"sqlite:///{outside}/mlops.db")
    hydraconf.check(composed(), tmp_path)  # the environment chose it
    cfg = composed()
    cfg.features.store.path = str(outside)  # as a config file would set it
    with pytest.raises(ConfigError, match="features.store.path: must name a place inside the project"):
        hydraconf.check(cfg, tmp_path)


def test_a_single_run_does_not_need_a_sweep_folder_in_the_outputs(tmp_path: Path) -> None:
    """mlops reproduce composes a run folder's config.resolved.yaml: Hydra's default sweep dir."""
    cfg = composed("hydra.sweep.dir=multirun/x")
    hydraconf.check(cfg, tmp_path, multirun=False)
    with pytest.raises(ConfigError, match="hydra.sweep.dir"):
        hydraconf.check(cfg, tmp_path, multirun=True)
