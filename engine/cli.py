"""The ``mlops`` command.

``mlops run`` is a Hydra app: every Hydra feature (overrides, ``+key=``, ``~key``,
``-m`` sweeps, ``--cfg job``, ``--info``, ``--config-dir``, launchers, sweepers) works
unchanged, and it reads ``conf/`` from the current directory, so a user's project is
a folder with a ``conf/`` tree.

Errors a user can cause become one line on stderr and a documented exit status (see
:mod:`engine.errors`); anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from engine import __version__

if TYPE_CHECKING:
    from engine.tracking import RunStore
from engine.errors import EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, ConfigError, EngineError, UsageError
from engine.scaffold.command import init_command

USAGE = """\
usage: mlops <command> [args]

commands:
  init       DIR --data PATH_OR_URL --target COLUMN: a new project's commented conf/ from its data
  run        compose conf/ with Hydra overrides and run the experiment
             (mlops run --help shows Hydra's options; mlops run -m ... sweeps)
  check      compose conf/ with overrides and validate it, reading no data; --all: every
             option of every config group (a CI check for shared configs)
  quality    ingest the data and check the quality rules only, same overrides as run
  features   the feature store: list, show NAME, materialize, gc [--dry-run]
  runs       the runs in the metadata store: --where, --sort, --limit, --format; reindex
  show RUN   one run (id, id prefix, run directory or latest)
  compare    RUN RUN...: config differences, metric deltas, data fingerprints and code
  reproduce  RUN [--force]: re-execute a run, check code and data first, verify identical results
  registry   register RUN --name N | list | show N[@ALIAS|/V] | promote N/V --alias A | history N
  report     RUN|SWEEP_DIR: write a self-contained report.html (plots, metrics by stakeholder,
             value, requirements, provenance) into the run directory or sweep folder

exit statuses: 0 done, 1 engine bug, 2 bad input (config, data, arguments),
               3 quality gate failed, 4 requirements gate failed,
               5 reproduce: results differ, 130 interrupted
"""

CONFIG_DIR_FLAGS = ("-cp", "--config-path", "-cd", "--config-dir")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mlops`` console script; exits with the command's status."""
    sys.exit(dispatch(list(sys.argv[1:] if argv is None else argv)))


def dispatch(argv: list[str]) -> int:
    """Run one ``mlops`` command and return its exit status."""
    commands: dict[str, Callable[[list[str]], int]] = {
        "run": run_command, "quality": quality_command, "features": features_command, "runs": runs_command,
        "show": show_command, "compare": compare_command, "reproduce": reproduce_command,
        "registry": registry_command, "report": report_command, "check": check_command, "init": init_command}
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if not argv:
        print(f"mlops: usage error: a command is required; expected one of: {', '.join(commands)} "
              "(see mlops --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if argv[0] == "--version":
        print(f"mlops-engine {__version__}")
        return 0
    return _guarded(lambda: _command(commands, argv))


def _command(commands: dict[str, Callable[[list[str]], int]], argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    if name not in commands:
        raise UsageError(f"usage error: unknown command {name!r}; expected one of: {', '.join(commands)}")
    return commands[name](args)


def _guarded(call: Callable[[], int]) -> int:
    try:
        return call()
    except EngineError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("mlops: interrupted; the run is recorded as interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (mlops runs | head): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        traceback.print_exc()
        print(
            "mlops: internal error: this is a bug in mlops-engine, not in your config; "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG


def run_command(args: list[str]) -> int:
    """``mlops run [hydra args]``: compose ``conf/`` and execute the run(s)."""
    return _hydra_app(_task("task"), args, "mlops run")


def _task(name: str) -> Callable[[Any], Any]:
    """The task function ``name`` of :mod:`engine.run`, imported when a job starts.

    A sweep whose launcher runs the jobs in other processes (joblib, submitit, Ray)
    never imports scikit-learn and pandas in the launching process, and its workers start
    sooner; the task is pickled to them by reference.
    """
    return functools.partial(_call_task, name)


def _call_task(name: str, cfg: Any) -> Any:
    from engine import run

    return getattr(run, name)(cfg)


CHECK_USAGE = """\
usage: mlops check [OVERRIDE ...]         compose conf/ with the overrides and validate it
       mlops check --all [OVERRIDE ...]   the same for every option of every config group,
                                         each chosen in turn on top of the overrides

Validation is what `mlops run` does before reading any data: the schemas of every group,
the _target_ allowlist, feature expressions and lineage, quality rules, business inputs
and requirements, and the estimator's parameters. Exit 0 when every config is valid; 2
with one line per invalid config on stderr.
"""

#: The config groups ``mlops check --all`` walks: every option is composed in turn.
CHECKED_GROUPS = ("data", "quality", "features", "model", "split", "business", "experiment")


def check_command(args: list[str]) -> int:
    """``mlops check [--all] [overrides]``: validate composed configs without running them."""
    if args[:1] in (["-h"], ["--help"]):
        print(CHECK_USAGE, end="")
        return 0
    conf = Path.cwd() / "conf"
    if not (conf / "config.yaml").is_file():
        raise UsageError(f"usage error: no conf/config.yaml in {Path.cwd()}; run mlops check from a project folder")
    every = "--all" in args
    overrides = [a for a in args if a != "--all"]
    flags = [a for a in overrides if a.startswith("-")]
    if flags:
        raise UsageError(f"usage error: unknown option {flags[0]!r} (see mlops check --help)")
    configs = [overrides]
    if every:
        configs = [[*overrides, f"{group}={path.stem}"] for group in CHECKED_GROUPS
                   for path in sorted((conf / group).glob("*.yaml"))]
    problems = []
    for chosen in configs:
        try:
            _check(conf, chosen)
        except ConfigError as exc:
            problems.append((chosen, exc))
    label = " ".join(overrides) or "the defaults"
    if not every and not problems:
        print(f"config valid: {label}")
    elif every:
        print(f"checked {len(configs)} configs ({label}, then each option of {', '.join(CHECKED_GROUPS)}): "
              f"{len(configs) - len(problems)} valid, {len(problems)} invalid")
    for chosen, exc in problems:
        where = f" [with {chosen[-1]}]" if every else ""
        print(f"mlops: {exc}{where}", file=sys.stderr)
    return EXIT_BAD_INPUT if problems else 0


def _check(conf: Path, overrides: list[str]) -> None:
    """Compose ``conf/`` with ``overrides`` as ``mlops run`` would and compile its plan."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from engine import hydraconf, plan
    from engine.validation import ConfigOrigin, resolve

    def composed(chosen: list[str]) -> Any:
        return compose(config_name="config", overrides=chosen, return_hydra_config=True)

    try:
        # hydra.* as mlops run would act on it, and each option a sweep names
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"), hydraconf.guarded():
            cfg = composed(overrides)
            hydraconf.check_sweep(cfg, composed, conf.parent)
    except MissingConfigException as exc:
        raise _missing_option(exc, overrides) from exc
    except OverrideParseException as exc:
        raise ConfigError("command line", _one_line(exc)) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise _composition_error(exc, overrides) from exc
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    plan.compile(resolve(cfg), ConfigOrigin(choices=choices, overrides=overrides, conf_dir="conf"))


def quality_command(args: list[str]) -> int:
    """``mlops quality [hydra args]``: ingest and check the data only (exit 3 if the gate fails)."""
    defaults = []
    if not any(a.startswith("hydra.run.dir=") for a in args):
        defaults.append("hydra.run.dir=outputs/quality/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}-${name}")
    if not any(a.startswith("hydra.sweep.dir=") for a in args):
        defaults.append("hydra.sweep.dir=outputs/quality/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}-${name}")
    return _hydra_app(_task("quality_task"), defaults + args, "mlops quality")


FEATURES_USAGE = """\
usage: mlops features <list|show NAME|materialize [overrides]|gc [--dry-run]> [--store PATH]

  list          every table in the feature store
  show NAME     a feature group's definitions over time, who used them, and its tables
  materialize   build the features of the composed config (Hydra overrides), no training
  gc            remove tables no run under outputs/ references (--dry-run: only list them)
"""


def features_command(args: list[str]) -> int:
    """``mlops features ...``: look after the feature store."""
    if args[:1] == ["materialize"]:
        defaults = [f"{flag}=outputs/features/${{now:%Y-%m-%d}}/${{now:%H-%M-%S-%f}}-${{name}}"
                    for flag in ("hydra.run.dir", "hydra.sweep.dir") if not any(a.startswith(flag) for a in args)]
        return _hydra_app(_task("features_task"), defaults + args[1:], "mlops features materialize")
    if not args:
        raise UsageError("usage error: features needs an action; expected one of: list, show, materialize, gc "
                         "(see mlops features --help)")
    if args[0] in ("-h", "--help"):
        print(FEATURES_USAGE, end="")
        return 0
    parser = argparse.ArgumentParser(prog="mlops features", add_help=False)
    parser.add_argument("action", choices=["list", "show", "gc"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--store", default=None, help="default: features.store.path of the project's config")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--keep-recent", type=float, default=60.0,
                        help="minutes: younger tables are kept (a run may be about to reference them)")

    def refuse(message: str) -> NoReturn:
        raise UsageError(f"usage error: {message} (see mlops features --help)")

    parser.error = refuse  # type: ignore[method-assign]
    options = parser.parse_args(args)
    from engine import featurestore_cli

    store = Path(options.store or str(_project_setting("features.store.path", "outputs/feature_store")))
    if options.action == "show":
        if not options.name:
            refuse("show needs a feature group or table name")
        return featurestore_cli.show(store, options.name)
    if options.name:
        refuse(f"unexpected argument {options.name!r}")
    if options.action == "list":
        return featurestore_cli.list_tables(store)
    return featurestore_cli.gc(store, Path("outputs"), dry_run=options.dry_run, keep_recent_min=options.keep_recent)


def _tracking_store(uri: str | None) -> RunStore:
    from engine import tracking

    return tracking.open_store(uri or str(_project_setting("tracking.uri", tracking.DEFAULT_URI)), Path.cwd())


def _project_setting(key: str, default: object) -> object:
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


def _parser(prog: str, usage: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, usage=usage, add_help=False)

    def refuse(message: str) -> NoReturn:
        raise UsageError(f"usage error: {message} (see {prog} --help)")

    parser.error = refuse  # type: ignore[method-assign]
    parser.add_argument("--tracking-uri", default=None)
    return parser


RUNS_USAGE = """\
usage: mlops runs [--where FILTER] [--sort FIELD] [--asc|--desc] [--limit N]
                  [--columns F1,F2,...] [--format table|csv|json] [--tracking-uri URI]
       mlops runs reindex [--outputs DIR] [--tracking-uri URI]
       mlops runs sync-mlflow --uri URI [--outputs DIR] [--all]

  --where    metrics.roc_auc > 0.8 and params.model._target_ ~ Forest
             (= != < <= > >= ~ !~, in (a, b), and, or, not, parentheses)
  --sort     a field: metrics.<name> (best first), params.<key>, tags.<name>, started_at, ...
  reindex    rebuild the store from the run directories under outputs/
  sync-mlflow  mirror runs not yet in MLflow (--all: every run) to the MLflow at URI
"""


def runs_command(args: list[str]) -> int:
    """``mlops runs``: a table of runs from the metadata store; ``mlops runs reindex``."""
    from engine import runs

    if args[:1] in (["-h"], ["--help"]):
        print(RUNS_USAGE, end="")
        return 0
    if args[:1] == ["sync-mlflow"]:
        from engine.mlflow_mirror import record_mirror

        parser = _parser("mlops runs sync-mlflow", "mlops runs sync-mlflow --uri URI [--outputs DIR] [--all]")
        parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
        parser.add_argument("--outputs", default="outputs")
        parser.add_argument("--all", action="store_true", help="also runs already mirrored")
        options = parser.parse_args(args[1:])
        if not options.uri:
            raise UsageError("usage error: sync-mlflow needs --uri URI (or MLFLOW_TRACKING_URI)")
        from engine.errors import DataError
        from engine.tracking import index_run_dirs

        done = failed = 0
        for run_dir in index_run_dirs(Path(options.outputs)):
            try:
                record = runs.load_run_dir(run_dir)[0]
            except DataError as exc:  # a damaged run.json: skipped and named, as reindex does
                print(f"mlops: skipped: {exc}", file=sys.stderr)
                failed += 1
                continue
            if record.get("status") == "running" or (not options.all and (record.get("mlflow") or {}).get("synced")):
                continue
            outcome = record_mirror(run_dir, options.uri)
            done += outcome["synced"]
            failed += not outcome["synced"]
            if not outcome["synced"]:
                print(f"not mirrored: {run_dir}: {outcome['error']}", file=sys.stderr)
        print(f"mirrored {done} run(s) to {options.uri}" + (f"; {failed} failed" if failed else ""))
        return 0 if not failed else EXIT_BAD_INPUT
    if args[:1] == ["reindex"]:
        parser = _parser("mlops runs reindex", RUNS_USAGE)
        parser.add_argument("--outputs", default="outputs")
        options = parser.parse_args(args[1:])
        from engine.tracking import DEFAULT_URI

        uri = options.tracking_uri or str(_project_setting("tracking.uri", DEFAULT_URI))
        if not uri.startswith("sqlite:///"):
            raise UsageError(f"usage error: reindex rebuilds SQLite stores only, got {uri}")
        path = Path(uri.removeprefix("sqlite:///"))
        count = runs.reindex(path if path.is_absolute() else Path.cwd() / path, Path(options.outputs))
        print(f"indexed {count} run(s) from {options.outputs}/ into {uri}")
        return 0
    parser = _parser("mlops runs", RUNS_USAGE)
    parser.add_argument("--where")
    parser.add_argument("--sort")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--asc", dest="descending", action="store_false", default=None)
    order.add_argument("--desc", dest="descending", action="store_true")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--columns")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    options = parser.parse_args(args)
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"usage error: --limit must be 1 or more, got {options.limit}")
    store = _tracking_store(options.tracking_uri)
    metric = (options.sort or "").removeprefix("metrics.")
    if options.limit and not options.where and (options.sort or "").startswith("metrics."):
        # A leaderboard: the store finds the top N itself instead of loading every run.
        top = store.search((metric, options.descending is not False, options.limit))
        # None found: maybe no run has that metric, which select() names with the known fields
        rows = runs.select(top or runs.all_runs(store), None, options.sort, options.descending, options.limit)
    else:
        rows = runs.select(runs.all_runs(store), options.where, options.sort, options.descending, options.limit)
    columns = options.columns.split(",") if options.columns else list(runs.DEFAULT_COLUMNS)
    print(runs.render(rows, columns, options.format))
    if options.format == "table":
        print(f"{len(rows)} run(s)")
    return 0


def show_command(args: list[str]) -> int:
    """``mlops show RUN``: one run, by id, id prefix, run directory or ``latest``."""
    from engine import runs

    parser = _parser("mlops show", "mlops show RUN [--tracking-uri URI]")
    parser.add_argument("run")
    options = parser.parse_args(args)
    store = _tracking_store(options.tracking_uri)
    runs.show(runs.resolve(store, options.run, runs.all_runs(store)))
    return 0


def compare_command(args: list[str]) -> int:
    """``mlops compare RUN RUN...``: config differences, metric deltas, data and code."""
    from engine import runs

    parser = _parser("mlops compare", "mlops compare RUN RUN... [--all] [--tracking-uri URI]")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--only-changed", action="store_true", default=True, help="the default")
    parser.add_argument("--all", action="store_true", help="show every config key, not only the changed ones")
    options = parser.parse_args(args)
    if len(options.runs) < 2:
        raise UsageError("usage error: compare needs at least two runs (see mlops compare --help)")
    store = _tracking_store(options.tracking_uri)
    rows = runs.all_runs(store)
    runs.compare([runs.resolve(store, ref, rows) for ref in options.runs], only_changed=not options.all)
    return 0


def reproduce_command(args: list[str]) -> int:
    """``mlops reproduce RUN [--force]``: re-execute a run and verify identical results."""
    from engine import reproduce, runs

    parser = _parser("mlops reproduce", "mlops reproduce RUN [--force] [--tracking-uri URI]")
    parser.add_argument("run")
    parser.add_argument("--force", action="store_true")
    options = parser.parse_args(args)
    path = Path(options.run)
    if not path.is_dir():
        store = _tracking_store(options.tracking_uri)
        path = Path(runs.resolve(store, options.run, runs.all_runs(store), succeeded=True)["run_dir"])
    return reproduce.reproduce(path, Path.cwd(), options.force,
                               lambda hydra_args: _hydra_app(_task("task"), hydra_args, "mlops reproduce"))


REPORT_USAGE = """\
usage: mlops report RUN|SWEEP_DIR [--tracking-uri URI]

  RUN        latest, a run id, a unique id prefix, or a run directory
  SWEEP_DIR  a sweep folder (outputs/sweeps/<date>/<time>-<name>, with summary.json)

Writes report.html into the run directory or the sweep folder and prints its path.
One self-contained file: plots embedded as PNG, no script, nothing fetched.
"""


def report_command(args: list[str]) -> int:
    """``mlops report RUN|SWEEP_DIR``: write report.html for a run or a sweep."""
    from engine import report, runs

    if args[:1] in (["-h"], ["--help"]):
        print(REPORT_USAGE, end="")
        return 0
    parser = _parser("mlops report", REPORT_USAGE)
    parser.add_argument("target")
    options = parser.parse_args(args)
    path = Path(options.target)
    if path.is_dir():
        if report.is_sweep_dir(path):
            print(report.write_sweep_report(path))
            return 0
        if report.is_run_dir(path):
            print(report.write_run_report(path))
            return 0
        raise UsageError(f"usage error: {options.target} is neither a run directory (with run.json) nor a sweep "
                         "folder (with summary.json or leaderboard.csv)")
    store = _tracking_store(options.tracking_uri)
    row = runs.resolve(store, options.target, runs.all_runs(store))
    run_dir = Path(row["run_dir"] or "")
    if not row["run_dir"] or not report.is_run_dir(run_dir):
        raise UsageError(f"usage error: run {row['id'][:8]} has no run directory at {row['run_dir']} "
                         "(moved or deleted?); pass the run directory instead")
    print(report.write_run_report(run_dir))
    return 0


REGISTRY_USAGE = """\
usage: mlops registry register RUN --name NAME
       mlops registry list
       mlops registry show NAME[@ALIAS|/VERSION]
       mlops registry promote NAME/VERSION --alias ALIAS
       mlops registry history NAME
       (every form takes --registry PATH; default outputs/registry or $MLOPS_REGISTRY)
"""


def registry_command(args: list[str]) -> int:
    """``mlops registry ...``: numbered model versions with aliases."""
    from engine import registry, runs

    if not args:
        raise UsageError("usage error: registry needs an action; expected one of: register, list, show, promote, "
                         "history (see mlops registry --help)")
    if args[0] in ("-h", "--help"):
        print(REGISTRY_USAGE, end="")
        return 0
    parser = _parser("mlops registry", REGISTRY_USAGE)
    parser.add_argument("action", choices=["register", "list", "show", "promote", "history"])
    parser.add_argument("ref", nargs="?")
    parser.add_argument("--name")
    parser.add_argument("--alias")
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(registry.DEFAULT_PATH)))
    options = parser.parse_args(args)
    store = registry.Registry(Path(options.registry))
    needs_ref = {"register": "RUN", "show": "NAME[@ALIAS|/VERSION]", "promote": "NAME/VERSION", "history": "NAME"}
    if options.action in needs_ref and not options.ref:
        raise UsageError(f"usage error: registry {options.action} needs {needs_ref[options.action]}")
    if options.action == "register":
        if not options.name:
            raise UsageError("usage error: registry register needs --name NAME")
        path = Path(options.ref)
        if not path.is_dir():
            tracking_store = _tracking_store(options.tracking_uri)
            path = Path(runs.resolve(tracking_store, options.ref, runs.all_runs(tracking_store),
                                     succeeded=True)["run_dir"])
        version = store.register(options.name, path)
        print(f"registered {options.name}/{version['version']} from run {version['run_id'][:8]} "
              f"(model sha256 {version['model_sha256'][:12]})")
        same = [v["version"] for v in store.read(options.name)["versions"]
                if v["model_sha256"] == version["model_sha256"] and v["version"] != version["version"]]
        if same:
            print(f"mlops: note: {options.name}/{version['version']} is the same model file as version(s) "
                  f"{', '.join(map(str, same))} (a reused run, or the same run registered again)", file=sys.stderr)
    elif options.action == "list":
        names = store.names()
        for name in names:
            entry = store.read(name)
            aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(entry["aliases"].items()))
            print(f"{name:<20} {len(entry['versions'])} version(s)  {aliases}")
        print(f"{len(names)} model(s) in {store.root}")
    elif options.action == "show":
        entry, version = store.resolve(options.ref)
        holders = [a for a, v in entry["aliases"].items() if v == version["version"]]
        print(f"{entry['name']}/{version['version']}" + (f"  ({', '.join(holders)})" if holders else ""))
        for key in ("run_id", "run_dir", "model", "model_sha256", "model_target", "threshold", "config_sha256",
                    "registered_at"):
            print(f"  {key}: {version.get(key)}")
        for name, value in sorted((version.get("metrics") or {}).items()):
            print(f"  metrics.{name}: {value}")
    elif options.action == "promote":
        if not options.alias:
            raise UsageError("usage error: registry promote needs --alias ALIAS")
        name, _, number = options.ref.partition("/")
        if not number.isdigit():
            raise UsageError(f"usage error: promote takes NAME/VERSION, got {options.ref!r}")
        move = store.promote(name, int(number), options.alias)
        before = f" (was v{move['previous']})" if move["previous"] else ""
        print(f"{name}@{options.alias} -> v{move['version']}{before}")
    else:
        entry = store.read(options.ref)
        for move in entry["alias_history"]:
            before = f"v{move['previous']}" if move["previous"] else "-"
            print(f"{move['at']}  {options.ref}@{move['alias']}: {before} -> v{move['version']}")
        print(f"{len(entry['alias_history'])} alias change(s)")
    return 0


def _hydra_app(task: Callable[..., object], args: list[str], prog: str) -> int:
    """Run ``task`` as a Hydra app over ``conf/`` with Hydra's own command line.

    Errors before the task starts (bad arguments, overrides, options, config folders,
    an unwritable run directory) are the user's: one line and exit 2. Inside the task,
    only :class:`EngineError` is; anything else is a bug and keeps its traceback.
    """
    import hydra
    from hydra._internal.utils import get_args_parser

    from engine import hydraconf
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    parser = get_args_parser()
    parser.prog = prog

    def refuse(message: str) -> NoReturn:
        raise UsageError(f"usage error: {message} (see {prog} --help)")

    parser.error = refuse  # type: ignore[method-assign]
    parser.parse_args(args)

    conf = Path.cwd() / "conf"
    if not conf.is_dir() and not any(a.split("=")[0] in CONFIG_DIR_FLAGS for a in args):
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
        raise _missing_option(exc, args) from exc
    except OverrideParseException as exc:
        raise ConfigError("command line", _one_line(exc)) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        if isinstance(exc.__cause__, EngineError):  # a plugin (our sweeper) refused its config
            raise exc.__cause__ from exc
        raise _composition_error(exc, args) from exc
    except OSError as exc:
        if started or getattr(exc, "mlops_in_job", False):
            raise
        raise UsageError(f"usage error: cannot write the run directory: {exc}") from exc
    except ValueError as exc:
        if started or getattr(exc, "mlops_in_job", False):
            raise
        raise UsageError(f"usage error: {_one_line(exc)}") from exc
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


def _missing_option(exc: Exception, args: list[str]) -> ConfigError:
    missing = str(getattr(exc, "missing_cfg_file", "") or "")
    options = list(getattr(exc, "options", None) or [])
    group, _, option = missing.rpartition("/")
    if group and options:
        override = next((a for a in args if a.split("=")[0].lstrip("+~") == group), None)
        source = f"override {override}" if override else None
        return ConfigError(group, f"unknown option {option!r}; expected one of: {', '.join(options)}", source)
    return ConfigError("", _one_line(exc))


def _composition_error(exc: Exception, args: list[str]) -> ConfigError:
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
    return ConfigError(str(key), _one_line(exc))


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = exc.__cause__
    if isinstance(cause, Exception) and not lines[-1:] == [str(cause).strip()]:
        lines += [line.strip() for line in str(cause).splitlines()[:1] if line.strip()]
    return "; ".join(lines) or type(exc).__name__
