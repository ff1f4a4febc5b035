"""What the plain commands share: their argument parser and the project's stores."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.store.tracking import RunStore


class HelpShown(Exception):
    """``-h``/``--help`` was given and the help printed: the command is done (exit 0)."""


class _Help(argparse.Action):
    """Print the command's usage text and stop, wherever ``--help`` appears: before any
    required argument is checked, so ``mlops show --help`` needs no run."""

    def __init__(self, option_strings: list[str], dest: str, text: str = "", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.text = text

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(self.text if self.text.endswith("\n") else self.text + "\n", end="")
        raise HelpShown


def command_parser(prog: str, usage: str, tracking_uri: bool = True) -> argparse.ArgumentParser:
    """An argument parser whose errors are one ``usage error`` line (exit 2) and whose
    ``-h``/``--help`` prints ``usage`` (exit 0).

    Args:
        prog: The command as typed, e.g. ``mlops show``.
        usage: The help text; a bare synopsis is printed after ``usage:``.
        tracking_uri: Whether the command reads the metadata store (``--tracking-uri``).
    """
    text = usage if usage.startswith("usage:") else f"usage: {usage}\n"
    parser = argparse.ArgumentParser(prog=prog, usage=text.removeprefix("usage: ").split("\n")[0], add_help=False)

    def refuse(message: str) -> NoReturn:
        raise UsageError(f"usage error: {message} (see {prog} --help)")

    parser.error = refuse  # type: ignore[method-assign]
    parser.add_argument("-h", "--help", action=_Help, text=text)
    if tracking_uri:
        parser.add_argument("--tracking-uri", default=None)
    return parser


def tracking_store(uri: str | None) -> RunStore:
    from engine.store import tracking

    return tracking.open_store(uri or str(project_setting("tracking.uri", tracking.DEFAULT_URI)), Path.cwd())


def project_setting(key: str, default: object) -> object:
    """A setting of the project's composed config (conf/ in this folder), for the plain
    commands that look at stores: they find what ``mlops run`` wrote, env variables
    included. Outside a project, or when conf/ does not compose, the default."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    composed = _project_config(str(Path.cwd() / "conf"))
    if composed is None:
        return default
    try:  # interpolations (${oc.env:...}) resolve here, at each read
        value = OmegaConf.select(composed, key, default=default)
    except (OmegaConfBaseException, ValueError):
        return default
    return default if value is None else value


@functools.lru_cache(maxsize=4)
def _project_config(conf: str) -> Any:
    """The project's composed config, composed once per process and folder (``mlops serve``
    reads two settings); None outside a project or when it does not compose."""
    if not (Path(conf) / "config.yaml").is_file():
        return None
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            return compose(config_name="config")
    except (HydraException, OmegaConfBaseException, ValueError):
        return None
