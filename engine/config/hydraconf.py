"""What a shared config may ask of Hydra: the allowlist for ``hydra.*``.

An experiment file is code that other people run, and Hydra acts on its ``hydra.*``
keys before the engine sees the job: it instantiates ``hydra.callbacks`` (any
``_target_``), configures logging from ``hydra.job_logging`` (``logging.config``
imports any class, calls any ``()`` factory and resolves any ``ext://`` name), sets
``hydra.job.env_set`` in the job's environment (``GIT_EXTERNAL_DIFF`` is a shell
command that ``git diff`` runs), and creates the run directory wherever
``hydra.run.dir`` points. :func:`check` refuses all of that in the composed config,
before Hydra does any of it:

- ``hydra.callbacks``: engine callbacks, and the classes a project allowlists through
  the ``mlops_engine.callbacks`` entry point (as estimators are, through
  ``mlops_engine.targets``);
- ``hydra.launcher`` and ``hydra.sweeper``: classes of installed Hydra plugins;
- ``hydra.job.env_set`` and ``env_copy``: no variable that changes how git, Python,
  the shell or the dynamic loader behave, nor the engine's and Hydra's own;
- ``hydra.job_logging`` and ``hydra_logging``: the standard library's handlers and
  formatters, no ``()`` factories, ``ext://`` only for ``sys.stdout`` and ``sys.stderr``,
  log files inside the run directory;
- ``hydra.run.dir``, ``hydra.sweep.dir`` with its ``subdir``, ``hydra.output_subdir``
  and a launcher's folders: under the outputs root (``outputs/`` of the project, or
  ``$MLOPS_OUTPUT_ROOT``);
- a launcher's ``setup`` (shell commands run before each job on a cluster): only from
  the command line;
- sweeps over ``hydra.*`` keys: refused; sweeps over config groups: every option the
  sweep names is composed and checked in turn (:func:`check_sweep`);
- the job config's own ``_target_`` s (the estimator allowlist) and the run ``name``,
  so a refused one leaves no run folder behind;
- where a run writes besides its folder (the feature store, the metadata store, the
  MLflow mirror, generated demo data, an Optuna storage): inside the project, unless
  typed on the command line or read from the environment.

``mlops run`` applies it to every config Hydra composes in the process (:func:`guarded`),
so also to each job of a sweep whose launcher composes jobs in that process; our
sweepers' config loader (:mod:`engine.config.composecache`) applies it in launcher workers too;
``mlops check`` applies it to each config it checks.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from engine.errors import ConfigError

#: The callbacks of the engine (and Hydra's harmless job-return logger).
ENGINE_CALLBACKS = frozenset({
    "engine.callbacks.SweepSummary",
    "engine.callbacks.RegisterBest",
    "hydra.experimental.callbacks.LogJobReturnCallback",
})

#: Environment variables a config may not set or copy into a job: they change what git
#: runs (GIT_EXTERNAL_DIFF, GIT_SSH_COMMAND, ...; HOME and XDG_CONFIG_HOME choose the
#: gitconfig), what Python imports or runs (PYTHONPATH, PYTHONSTARTUP, ...), what the
#: dynamic loader loads (LD_PRELOAD), what a shell sources, or where the engine, Hydra
#: and MLflow write (MLOPS_TRACKING_URI, MLOPS_REGISTRY, ...).
REFUSED_ENV = re.compile(
    r"(GIT_.*|PYTHON.*|LD_.*|DYLD_.*|PATH|HOME|XDG_.*|SHELL|SHELLOPTS|BASHOPTS|BASH_ENV|ENV|BASH_FUNC_.*|PS4|IFS"
    r"|PERL5?OPT|PERL5?LIB|RUBYOPT|RUBYLIB|NODE_OPTIONS|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|PAGER|EDITOR|VISUAL"
    r"|LESSOPEN|LESSCLOSE|SSH_.*|TMPDIR|GCONV_PATH|GLIBC_TUNABLES|MALLOC_.*|OPENSSL_.*|SSL_CERT_.*"
    r"|MLOPS_.*|HYDRA_.*|MLFLOW_.*)",
    re.IGNORECASE,
)

#: What ``logging.config.dictConfig`` may import from a config: ``class`` of handlers and
#: formatters, and ``()`` of formatters (hydra-colorlog's).
LOGGING_CLASSES = frozenset({
    "logging.StreamHandler", "logging.FileHandler", "logging.NullHandler",
    "logging.handlers.RotatingFileHandler", "logging.handlers.TimedRotatingFileHandler",
    "logging.handlers.WatchedFileHandler", "logging.Formatter", "colorlog.ColoredFormatter",
})
LOGGING_EXT = frozenset({"ext://sys.stdout", "ext://sys.stderr"})

#: Launcher keys that name a folder the launcher writes into.
_FOLDER_KEY = re.compile(r".*(_folder|_dir|_path|folder|dir)$")


def output_root(project: Path) -> Path:
    """Where runs may write: ``$MLOPS_OUTPUT_ROOT``, else ``outputs/`` of the project."""
    configured = os.environ.get("MLOPS_OUTPUT_ROOT")
    return Path(project, configured or "outputs").resolve()


def clean_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) without the variables :data:`REFUSED_ENV`
    names but PATH and HOME, for the engine's own subprocesses (git)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k in ("PATH", "HOME") or not REFUSED_ENV.fullmatch(k)}


@lru_cache(maxsize=1)
def allowed_callbacks() -> frozenset[str]:
    """The engine's callbacks plus what installed packages add (``mlops_engine.callbacks``)."""
    from engine.config.targets import listed_by

    return ENGINE_CALLBACKS | listed_by("mlops_engine.callbacks")


def _plugins(kind: str) -> list[str]:
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper

    base = {"launcher": Launcher, "sweeper": Sweeper}[kind]
    return sorted(f"{cls.__module__}.{cls.__name__}" for cls in Plugins.instance().discover(base))


def check(cfg: DictConfig, project: Path | None = None, multirun: bool | None = None) -> None:
    """Refuse what the ``hydra`` node of a composed config may not do.

    Args:
        cfg: A config composed with its ``hydra`` node (as Hydra composes it, or
            ``compose(..., return_hydra_config=True)``).
        project: The project folder (the outputs root is found from it); default the
            current directory.
        multirun: Whether the config is run as a sweep (its jobs go to ``hydra.sweep``)
            or not (``hydra.run``); None checks both, unless ``hydra.mode`` says.

    Raises:
        ConfigError: The first thing refused, as one line naming the key.
    """
    project = Path.cwd() if project is None else project
    hydra = _resolved(cfg, project)
    command_line = [str(o) for o in hydra.get("overrides", {}).get("task", []) or []] + \
        [str(o) for o in hydra.get("overrides", {}).get("hydra", []) or []]
    _check_name(cfg)
    _check_job_targets(cfg, hydra)
    _check_callbacks(hydra.get("callbacks") or {})
    _check_env(hydra.get("job") or {})
    for kind in ("launcher", "sweeper"):
        _check_plugin(kind, hydra.get(kind) or {})
    for key in ("job_logging", "hydra_logging"):
        _check_logging(f"hydra.{key}", hydra.get(key) or {}, hydra, project)
    _check_dirs(hydra, project, multirun)
    _check_launcher_options(hydra.get("launcher") or {}, project, command_line)
    _check_sweep_keys(hydra)
    _check_writes(cfg, hydra, project)


def check_sweep(cfg: DictConfig, compose: Callable[[list[str]], DictConfig], project: Path | None = None) -> None:
    """Check each config-group option a sweep names, composed on its own.

    A sweep over ``experiment`` or ``model`` composes each job from other files, whose
    ``hydra.*`` keys the primary config does not show, and a launcher may compose them
    in worker processes. Each option is composed once here, with the config's other
    overrides, and :func:`check` ed.

    Args:
        cfg: The primary config of a sweep, with its ``hydra`` node.
        compose: Composes a single-run config from a list of overrides.
        project: The project folder.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    task = [str(o) for o in cfg.hydra.overrides.task]
    params = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False).get("params") or {} \
        if "sweeper" in cfg.hydra else {}
    choices = set(cfg.hydra.runtime.choices) if "runtime" in cfg.hydra else set()
    try:
        overrides = parser.parse_overrides(task) + parser.parse_overrides(
            [f"{k}={v}" for k, v in params.items() if isinstance(v, str)])
    except Exception:  # Hydra reports an unparseable override itself  # noqa: BLE001
        return
    fixed = [o.input_line for o in overrides if not o.is_sweep_override() and o.input_line in task]
    for override in overrides:
        group = override.get_key_element().lstrip("+~")
        if not override.is_sweep_override() or group not in choices:
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # glob() and ranges over groups: composed by the sweeper itself  # noqa: BLE001
            continue
        for value in values:
            check(compose([*fixed, f"{override.get_key_element()}={value}"]), project, multirun=True)


@contextmanager
def guarded() -> Iterator[None]:
    """Check every config Hydra's loader composes in this process, before Hydra acts on it.

    Hydra has no hook between composing a config and acting on it (logging, callbacks,
    the run directory), and both the primary config and each job's config of an
    in-process launcher come from ``ConfigLoaderImpl.load_configuration``: for the
    duration, that method checks what it returns (and a sweep's options, for the
    primary config of a multirun).
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    original = ConfigLoaderImpl.load_configuration

    def load_configuration(self: ConfigLoaderImpl, config_name: str | None, overrides: list[str], run_mode: Any,
                           *args: Any, **kwargs: Any) -> DictConfig:
        from hydra.types import RunMode

        try:
            cfg = original(self, config_name, overrides, run_mode, *args, **kwargs)
        except KeyError as exc:  # Hydra copies env_copy into env_set with os.environ[name]
            frames = traceback.extract_tb(exc.__traceback__)
            if not any(frame.name == "_load_configuration_impl" for frame in frames[-2:]):
                raise
            name = str(exc.args[0])
            problem = _refused_env(name) if REFUSED_ENV.fullmatch(name) else \
                f"names {name!r}, which is not set in this environment; expected the name of a variable that is set"
            raise ConfigError("hydra.job.env_copy", problem) from exc
        if kwargs.get("validate_sweep_overrides") is False:
            return cfg  # Hydra's get_mode(): reads hydra.mode only, and swallows any error
        if getattr(self, "_mlops_sweep_job", False):
            return cfg  # a job of a sweep: load_sweep_config, below, checks it
        check(cfg, multirun=run_mode == RunMode.MULTIRUN)
        if run_mode == RunMode.MULTIRUN:
            check_sweep(cfg, lambda chosen: original(self, config_name, [*cfg.hydra.overrides.hydra, *chosen],
                                                     RunMode.RUN))
        return cfg

    original_sweep = ConfigLoaderImpl.load_sweep_config

    def load_sweep_config(self: ConfigLoaderImpl, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        self._mlops_sweep_job = True  # type: ignore[attr-defined]
        try:
            cfg = original_sweep(self, master_config, sweep_overrides)
        finally:
            del self._mlops_sweep_job  # type: ignore[attr-defined]
        if not getattr(self, "checks_hydra", False):  # our sweepers' loader checks its jobs itself
            check(cfg, multirun=True)
        return cfg

    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    ConfigLoaderImpl.load_sweep_config = load_sweep_config  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]
        ConfigLoaderImpl.load_sweep_config = original_sweep  # type: ignore[method-assign]


# ------------------------------------------------------------------------- the checks

#: The parts of the ``hydra`` node that :func:`check` reads.
_CHECKED = ("callbacks", "job", "launcher", "sweeper", "job_logging", "hydra_logging", "run", "sweep",
            "output_subdir", "overrides")


def _resolved(cfg: DictConfig, project: Path) -> dict[str, Any]:
    """The parts of the ``hydra`` node that are checked, as plain data.

    The run directory is known only when a job starts, and the job's number only when a
    launcher hands it out: while resolving, stand-ins take their places, and the config
    is left as it was.
    """
    hydra = cfg.hydra
    stand_ins = [(node, key, value) for node, key, value in (
        (hydra.get("runtime"), "output_dir", str(project / "outputs" / "run")),
        (hydra.get("job"), "num", 0), (hydra.get("job"), "id", "0"))
        if node is not None and _missing(node, key)]
    try:
        with read_write(hydra), open_dict(hydra):
            for node, key, value in stand_ins:
                node[key] = value
            try:
                resolved = {key: OmegaConf.to_container(hydra[key], resolve=True) if OmegaConf.is_config(hydra[key])
                            else hydra[key] for key in _CHECKED if key in hydra}
                resolved["output_dir"] = OmegaConf.select(hydra, "runtime.output_dir", default=None)
                return resolved
            finally:
                for node, key, _ in stand_ins:
                    node[key] = "???"
    except OmegaConfBaseException as exc:
        raise ConfigError(str(getattr(exc, "full_key", "") or "hydra"), str(exc).splitlines()[0]) from exc


def _missing(node: DictConfig, key: str) -> bool:
    try:
        return OmegaConf.is_missing(node, key)
    except (OmegaConfBaseException, KeyError):  # no such key: nothing to stand in for
        return False


@lru_cache(maxsize=1)
def _name_rule() -> tuple[re.Pattern[str], str]:
    text = resources.files("engine.config.schemas").joinpath("config.json").read_text(encoding="utf-8")
    rule = json.loads(text)["properties"]["name"]
    return re.compile(rule["pattern"]), rule["x-expected"]


def _check_name(cfg: DictConfig) -> None:
    """The run name is the last part of the run directory: checked before that exists."""
    name = OmegaConf.select(cfg, "name", default=None, throw_on_missing=False)
    pattern, expected = _name_rule()
    if isinstance(name, str) and not pattern.search(name):
        raise ConfigError("name", f"must be {expected}, got {name!r}")


def _check_job_targets(cfg: DictConfig, hydra: Mapping[str, Any]) -> None:
    """The job config's ``_target_`` s (estimators), before Hydra writes the run folder."""
    from engine.config.origin import ConfigOrigin
    from engine.config.targets import check_targets

    overrides = (hydra.get("overrides") or {}).get("task") or []
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    where = ConfigOrigin(choices=dict(choices) if choices is not None else {}, overrides=[str(o) for o in overrides])
    check_targets({path: {"_target_": value} for path, value in _config_targets(cfg, "")}, where)


def _config_targets(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, value) of every ``_target_`` of a job config, read where it is, not copied."""
    if isinstance(node, DictConfig | ListConfig) and (node._is_none() or node._is_missing()):
        return
    if isinstance(node, DictConfig):
        for key in node.keys():
            if path == "" and key == "hydra":
                continue
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                try:
                    yield path, str(node[key])
                except OmegaConfBaseException:  # left to validation, which names the key
                    continue
            else:
                yield from _config_targets(node._get_node(key), child)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _config_targets(node._get_node(i), f"{path}.{i}")


def _check_callbacks(callbacks: Mapping[str, Any]) -> None:
    for name, spec in callbacks.items():
        path = f"hydra.callbacks.{name}"
        target = spec.get("_target_") if isinstance(spec, Mapping) else None
        if target not in allowed_callbacks():
            raise ConfigError(f"{path}._target_", f"callback {target!r} is not on the allowlist; expected one of: "
                              f"{', '.join(sorted(allowed_callbacks()))} (a project adds its own through the "
                              "mlops_engine.callbacks entry point)")
        for key, nested in _targets(spec, path):
            if key != f"{path}._target_":
                raise ConfigError(key, f"a callback's arguments may not instantiate anything, got _target_ {nested!r}")


def _check_env(job: Mapping[str, Any]) -> None:
    # Hydra has copied env_copy into env_set by now: name the key where it was written.
    named = [(f"hydra.job.env_copy.{i}", str(key)) for i, key in enumerate(job.get("env_copy") or [])]
    named += [(f"hydra.job.env_set.{key}", str(key)) for key in (job.get("env_set") or {})]
    for path, key in named:
        if REFUSED_ENV.fullmatch(key):
            raise ConfigError(path, _refused_env(key))


def _refused_env(name: str) -> str:
    return (f"may not set {name}: it changes how git, Python, the shell or the dynamic loader behave, or where the "
            "engine writes; expected another variable")


def _check_plugin(kind: str, spec: Mapping[str, Any]) -> None:
    target = spec.get("_target_")
    installed = _plugins(kind)
    if target not in installed:
        raise ConfigError(f"hydra.{kind}._target_", f"{target!r} is not an installed Hydra {kind} plugin; expected one "
                          f"of: {', '.join(installed)} (choose one with hydra/{kind}=NAME)")


def _check_logging(path: str, spec: Mapping[str, Any], hydra: Mapping[str, Any], project: Path) -> None:
    for key, value in _walk(spec, path):
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "()" or (leaf == "class" and value not in LOGGING_CLASSES):
            raise ConfigError(key, f"logging may use only the standard handlers and formatters; expected one of: "
                              f"{', '.join(sorted(LOGGING_CLASSES))}, got {value!r}")
        if isinstance(value, str) and value.startswith("ext://") and value not in LOGGING_EXT:
            raise ConfigError(key, f"expected one of: {', '.join(sorted(LOGGING_EXT))}, got {value!r}")
        if leaf == "filename":
            _inside(key, value, Path(project, str(hydra["output_dir"])), project, "the run directory")


def _check_dirs(hydra: Mapping[str, Any], project: Path, multirun: bool | None) -> None:
    root = output_root(project)
    run, sweep = hydra.get("run") or {}, hydra.get("sweep") or {}
    if multirun is None:  # mlops check: whichever way the config is run
        multirun = str(hydra.get("mode")) == "MULTIRUN" or None
    if multirun is not True:
        _inside("hydra.run.dir", run.get("dir"), root, project, "the outputs root")
    if multirun is not False:
        _inside("hydra.sweep.dir", sweep.get("dir"), root, project, "the outputs root")
        _inside("hydra.sweep.subdir", Path(str(sweep.get("dir")), str(sweep.get("subdir"))), root, project,
                "the outputs root")
    subdir = hydra.get("output_subdir")
    if subdir is not None:
        job_dir = Path(project, str(sweep.get("dir")), str(sweep.get("subdir"))) if multirun else \
            Path(project, str(run.get("dir")))
        _inside("hydra.output_subdir", job_dir / str(subdir), job_dir, project, "the run directory")


def _check_launcher_options(launcher: Mapping[str, Any], project: Path, command_line: Sequence[str]) -> None:
    root = output_root(project)
    for key, value in launcher.items():
        path = f"hydra.launcher.{key}"
        if key == "setup" and value and not any(o.lstrip("+~").startswith(path) for o in command_line):
            raise ConfigError(path, "shell commands run before every job; set them on the command line "
                              f"({path}=[...]) for this machine, not in a shared config file")
        if isinstance(value, str) and _FOLDER_KEY.fullmatch(str(key)):
            _inside(path, value.split("%", 1)[0] or ".", root, project, "the outputs root")


#: Job-config keys naming where a run writes besides its run folder (a file path or a
#: database URL): the feature store, the metadata store, the MLflow mirror, the demo data.
_WRITTEN = ("features.store.path", "tracking.uri", "tracking.mlflow.uri")


def _check_writes(cfg: DictConfig, hydra: Mapping[str, Any], project: Path) -> None:
    """Files a run writes outside its run folder stay in the project (or the outputs root),
    unless the user chose the place: on the command line (``features.store.path=...``, a
    store shared by several projects) or in an environment variable the config reads
    (``${oc.env:MLOPS_TRACKING_URI,...}``).

    Network stores (``postgresql://``, ``http://``) are not paths and are not checked here.
    """
    typed = [o.lstrip("+~").split("=", 1)[0] for o in
             [*((hydra.get("overrides") or {}).get("task") or []), *((hydra.get("overrides") or {}).get("hydra") or [])]]
    places = [(key, OmegaConf.select(cfg, key, default=None, throw_on_missing=False)) for key in _WRITTEN]
    if OmegaConf.select(cfg, "data.generate", default=None, throw_on_missing=False):
        places.append(("data.dir", OmegaConf.select(cfg, "data.dir", default=None, throw_on_missing=False)))
    places.append(("hydra.sweeper.storage", (hydra.get("sweeper") or {}).get("storage")))
    root = output_root(project)
    for key, value in places:
        path = _local_path(value)
        if path is None or any(key == t or key.startswith(t + ".") for t in typed) or _from_env(cfg, key):
            continue
        resolved = Path(project, path).resolve()
        if not (resolved.is_relative_to(project.resolve()) or resolved.is_relative_to(root)):
            raise ConfigError(key, f"must name a place inside the project folder ({project.resolve()}) or the "
                              f"outputs root, got {value!r}")


def _from_env(cfg: DictConfig, key: str) -> bool:
    """The value is ``${oc.env:NAME,...}`` and NAME is set: the user's environment chose it."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None, throw_on_missing=False) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node.keys():
        return False
    raw = node._get_node(leaf)._value()
    found = re.match(r"^\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)[,}]", raw) if isinstance(raw, str) else None
    return bool(found and found.group(1) in os.environ)


def _local_path(value: Any) -> str | None:
    """The file a path or a ``sqlite:///`` / ``file:`` URL names; None for other URLs and null."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("sqlite:///"):
        return value.removeprefix("sqlite:///").split("?", 1)[0] or None
    if value.startswith("file://"):
        return value.removeprefix("file://") or None
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        return None
    return value


def _check_sweep_keys(hydra: Mapping[str, Any]) -> None:
    params = (hydra.get("sweeper") or {}).get("params") or {}
    task = [str(o) for o in (hydra.get("overrides") or {}).get("task") or []]
    swept = [f"hydra.sweeper.params.{k}" for k in params if str(k).lstrip("+~").startswith("hydra.")]
    swept += [f"override {o}" for o in task if o.lstrip("+~").startswith("hydra.") and _is_sweep(o)]
    if swept:
        raise ConfigError(swept[0], "a sweep may not vary Hydra's own settings (hydra.*); set them once, "
                          "outside the sweep")


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return bool(OverridesParser.create().parse_override(override).is_sweep_override())
    except Exception:  # Hydra reports an unparseable override itself  # noqa: BLE001
        return False


def _inside(path: str, value: Any, root: Path, project: Path, what: str) -> None:
    if value is None:
        return
    resolved, root = Path(project, str(value)).resolve(), root.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ConfigError(path, f"must be a folder inside {what} ({root}), got {str(value)!r}")


def _walk(node: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}.{i}")
    else:
        yield path, node


def _targets(node: Any, path: str) -> Iterable[tuple[str, Any]]:
    return ((key, value) for key, value in _walk(node, path) if key.rsplit(".", 1)[-1] == "_target_")
