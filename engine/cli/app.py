"""Hydra's command line for ``mlops run``, ``quality``, ``features materialize`` and
``reproduce``: compose ``conf/``, guard what ``hydra.*`` may do, and map Hydra's errors
to one line and exit status 2."""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

from engine.errors import ConfigError, EngineError, UsageError

CONFIG_DIR_FLAGS = ("-cp", "--config-path", "-cd", "--config-dir")

OUTSIDE_A_PROJECT = """\
usage: {prog} [OVERRIDE ...] [-m|--multirun] [--cfg job|hydra|all] [--info] [-cd DIR]

Composes conf/config.yaml of the project in the current folder with the overrides
(key=value, group=option, +key=value, ~key) and runs it; -m runs a sweep. Run
`{prog} --help` inside a project folder (one with a conf/ folder) to see its config
groups, their options and Hydra's flags, or pass --config-dir DIR.
"""


def lazy_task(name: str) -> Callable[[Any], Any]:
    """The task function ``name`` of :mod:`engine.run.job`, imported when a job starts.

    A sweep whose launcher runs the jobs in other processes (joblib, submitit, Ray)
    never imports scikit-learn and pandas in the launching process, and its workers start
    sooner; the task is pickled to them by reference.
    """
    return functools.partial(_call_task, name)


def _call_task(name: str, cfg: Any) -> Any:
    from engine.run import job

    return getattr(job, name)(cfg)


def hydra_app(task: Callable[..., object], args: list[str], prog: str) -> int:
    """Run ``task`` as a Hydra app over ``conf/`` with Hydra's own command line.

    Errors before the task starts (bad arguments, overrides, options, config folders,
    an unwritable run directory) are the user's: one line and exit 2. Inside the task,
    only :class:`EngineError` is; anything else is a bug and keeps its traceback.
    """
    import hydra
    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from engine.config import hydraconf

    parser = get_args_parser()
    parser.prog = prog

    def refuse(message: str) -> NoReturn:
        raise UsageError(f"usage error: {message} (see {prog} --help)")

    parser.error = refuse  # type: ignore[method-assign]
    parser.parse_args(args)

    conf = Path.cwd() / "conf"
    outside = not conf.is_dir() and not any(a.split("=")[0] in CONFIG_DIR_FLAGS for a in args)
    if outside and any(a in ("-h", "--help", "--hydra-help") for a in args):
        # Hydra's help lists the project's config groups, so it needs a project.
        print(OUTSIDE_A_PROJECT.format(prog=prog), end="")
        return 0
    if outside:
        raise UsageError(
            f"usage error: no conf/ folder in {Path.cwd()}; run mlops from a project folder "
            "or pass --config-dir DIR"
        )
    started = False

    def job(cfg: object) -> object:
        nonlocal started
        started = True
        try:
            return task(cfg)
        except Exception as exc:
            # Raised inside a job, maybe in a launcher's worker (where `started` is not
            # this process's): the attribute travels back with the pickled exception.
            exc.mlops_in_job = True  # type: ignore[attr-defined]
            raise

    # Let Hydra raise instead of printing and exiting 1, so errors map to our statuses.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    app = hydra.main(config_path=str(conf), config_name="config", version_base="1.3")(job)
    saved_argv = sys.argv
    sys.argv = [prog, *args]
    try:
        with _without_hydra_job_banner(), hydraconf.guarded():
            app()
    except EngineError:
        raise
    except MissingConfigException as exc:
        raise missing_option(exc, args) from exc
    except OverrideParseException as exc:
        raise ConfigError("command line", one_line(exc)) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        if isinstance(exc.__cause__, EngineError):  # a plugin (our sweeper) refused its config
            raise exc.__cause__ from exc
        raise composition_error(exc, args) from exc
    except OSError as exc:
        if started or getattr(exc, "mlops_in_job", False):
            raise
        raise UsageError(f"usage error: cannot write the run directory: {exc}") from exc
    except ValueError as exc:
        if started or getattr(exc, "mlops_in_job", False):
            raise
        raise UsageError(f"usage error: {one_line(exc)}") from exc
    finally:
        sys.argv = saved_argv
    return 0


class _FilteredStream(io.TextIOBase):
    """Drop Hydra's "Error executing job with overrides" line: our one error line follows."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides:"):
            return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()


@contextmanager
def _without_hydra_job_banner() -> Iterator[None]:
    saved = sys.stderr
    sys.stderr = _FilteredStream(saved)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stderr = saved


def missing_option(exc: Exception, args: list[str]) -> ConfigError:
    missing = str(getattr(exc, "missing_cfg_file", "") or "")
    options = list(getattr(exc, "options", None) or [])
    group, _, option = missing.rpartition("/")
    if group and options:
        override = next((a for a in args if a.split("=")[0].lstrip("+~") == group), None)
        source = f"override {override}" if override else None
        return ConfigError(group, f"unknown option {option!r}; expected one of: {', '.join(options)}", source)
    return ConfigError("", one_line(exc))


def composition_error(exc: Exception, args: list[str]) -> ConfigError:
    text = f"{exc} {exc.__cause__ or ''}"
    if text.startswith("Could not override '") and "is not in struct" in text:
        key = text.split("'")[1]
        override = next((a for a in args if a.split("=")[0] == key), f"{key}=...")
        group = key.split(".")[0]
        hint = (f"the selected {group} config has no such key; choose an option that has it "
                f"(e.g. {group}=...), or add it with +{override}") if "." in key else f"add it with +{override}"
        return ConfigError(key, f"unknown key; {hint}", f"override {override}")
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    key = getattr(cause, "full_key", None) or "command line"
    return ConfigError(str(key), one_line(exc))


def one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = exc.__cause__
    if isinstance(cause, Exception) and not lines[-1:] == [str(cause).strip()]:
        lines += [line.strip() for line in str(cause).splitlines()[:1] if line.strip()]
    return "; ".join(lines) or type(exc).__name__
