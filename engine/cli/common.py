"""What the plain commands share: their argument parser and the project's stores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.store.tracking import RunStore


def command_parser(prog: str, usage: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, usage=usage, add_help=False)

    def refuse(message: str) -> NoReturn:
        raise UsageError(f"usage error: {message} (see {prog} --help)")

    parser.error = refuse  # type: ignore[method-assign]
    parser.add_argument("--tracking-uri", default=None)
    return parser


def tracking_store(uri: str | None) -> RunStore:
    from engine.store import tracking
    return tracking.open_store(uri or str(project_setting("tracking.uri", tracking.DEFAULT_URI)), Path.cwd())


def project_setting(key: str, default: object) -> object:
    """A setting of the project's composed config (conf/ in this folder), for the plain
    commands that look at stores: they find what ``mlops run`` wrote, env variables
    included. Outside a project, or when conf/ does not compose, the default."""
    conf = Path.cwd() / "conf"
    if not (conf / "config.yaml").is_file():
        return default
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            value = OmegaConf.select(compose(config_name="config"), key, default=default)
    except (HydraException, OmegaConfBaseException, ValueError):
        return default
    return default if value is None else value
