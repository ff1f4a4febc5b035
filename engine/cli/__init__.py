"""The ``mlops`` command.

``mlops run`` is a Hydra app: every Hydra feature (overrides, ``+key=``, ``~key``,
``-m`` sweeps, ``--cfg job``, ``--info``, ``--config-dir``, launchers, sweepers) works
unchanged, and it reads ``conf/`` from the current directory, so a user's project is
a folder with a ``conf/`` tree.

Errors a user can cause become one line on stderr and a documented exit status (see
:mod:`engine.errors`); anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from engine import __version__
from engine.cli.common import HelpShown
from engine.errors import EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, EngineError, UsageError

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
             | export N[@ALIAS|/V] DIR (a bundle: model, card, pinned requirements.txt, Dockerfile)
  validate   [OVERRIDE ...] --against NAME@ALIAS [--candidate RUN] [--promote]: the champion
             gate: both models on the same rows, conf/promotion/ decides (exit 4: worse)
  diff       REF [REF2]: the composed config at a git ref against the working tree
  report     RUN|SWEEP_DIR: write a self-contained report.html (plots, metrics by stakeholder,
             value, requirements, provenance) into the run directory or sweep folder
  serve      MODEL [--host H] [--port P]: the model as an HTTP service (/predict, /health, /ready,
             /model, /metrics, /docs) that checks its inputs, follows its alias, logs predictions
  predict    MODEL --input FILE|feature-store --output SCORES.parquet: batch scoring with serve's checks
  monitor    MODEL [--since 7d | --current features --as-of DATE] [--labels FILE]: drift, live quality
             and performance by conf/monitor/, against the profile frozen at training (exit 6: failed)
  db         upgrade [URI] | current [URI] | copy SRC_URI DST_URI: the metadata store's schema
             (Alembic), and moving a store (SQLite <-> PostgreSQL), verified

exit statuses: 0 done, 1 engine bug, 2 bad input (config, data, arguments),
               3 quality gate failed, 4 requirements gate failed (validate: the
               promotion policy failed),
               5 reproduce: results differ, 6 monitor: a rule of severity error
               failed, 130 interrupted
"""


#: command -> the module of engine.cli that has it, imported when the command runs, so
#: ``mlops runs`` never loads scikit-learn and a sweep's launching process stays light.
COMMANDS = {"run": "run", "quality": "run", "features": "features", "runs": "runs", "show": "runs",
            "compare": "runs", "reproduce": "run", "registry": "registry", "report": "report", "check": "check",
            "validate": "validate", "diff": "validate", "serve": "serve", "predict": "serve", "init": "init",
            "monitor": "monitor", "db": "db"}


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mlops`` console script; exits with the command's status."""
    sys.exit(dispatch(list(sys.argv[1:] if argv is None else argv)))


def dispatch(argv: list[str]) -> int:
    """Run one ``mlops`` command and return its exit status."""
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if not argv:
        print(f"mlops: usage error: a command is required; expected one of: {', '.join(COMMANDS)} "
              "(see mlops --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if argv[0] == "--version":
        print(f"mlops-engine {__version__}")
        return 0
    return _guarded(lambda: _command(argv))


def command(name: str) -> Callable[[list[str]], int]:
    """The function behind ``mlops NAME``."""
    return getattr(importlib.import_module(f"engine.cli.{COMMANDS[name]}"), f"{name}_command")


def _command(argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        raise UsageError(f"usage error: unknown command {name!r}; expected one of: {', '.join(COMMANDS)}")
    try:
        return command(name)(args)
    except HelpShown:
        return 0


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
