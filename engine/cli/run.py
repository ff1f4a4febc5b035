"""``mlops run``, ``mlops quality`` and ``mlops reproduce``: the commands that execute jobs."""

from __future__ import annotations

from pathlib import Path

from engine.cli.app import hydra_app, lazy_task
from engine.cli.common import command_parser, tracking_store


def run_command(args: list[str]) -> int:
    """``mlops run [hydra args]``: compose ``conf/`` and execute the run(s)."""
    return hydra_app(lazy_task("task"), args, "mlops run")


def quality_command(args: list[str]) -> int:
    """``mlops quality [hydra args]``: ingest and check the data only (exit 3 if the gate fails)."""
    defaults = []
    if not any(a.startswith("hydra.run.dir=") for a in args):
        defaults.append("hydra.run.dir=outputs/quality/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}-${name}")
    if not any(a.startswith("hydra.sweep.dir=") for a in args):
        defaults.append("hydra.sweep.dir=outputs/quality/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}-${name}")
    # Hydra's parser takes the overrides as one positional list: ours go next to the user's
    # (`-m a=1,2` and `a=1,2 -m` both), never on the far side of a flag, which would split
    # the list ("unrecognized arguments").
    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return hydra_app(lazy_task("quality_task"), [*args[:first], *defaults, *args[first:]], "mlops quality")


REPRODUCE_USAGE = """\
usage: mlops reproduce RUN [--force] [--tracking-uri URI]

  RUN      latest (the newest succeeded training run), a run id, a unique id prefix, or a
           run directory
  --force  re-execute even when the code or the data differ from the run's record

Checks the code (git commit, package versions) and the data fingerprints first, then runs
the recorded config again and verifies that metrics, predictions and the model file are
identical (exit 5 when they differ).
"""


def reproduce_command(args: list[str]) -> int:
    """``mlops reproduce RUN [--force]``: re-execute a run and verify identical results."""
    from engine.run import reproduce
    from engine.store import runs

    parser = command_parser("mlops reproduce", REPRODUCE_USAGE)
    parser.add_argument("run")
    parser.add_argument("--force", action="store_true")
    options = parser.parse_args(args)
    path = Path(options.run)
    if not path.is_dir():
        store = tracking_store(options.tracking_uri)
        path = Path(runs.resolve(store, options.run, runs.all_runs(store), succeeded=True)["run_dir"])
    return reproduce.reproduce(path, Path.cwd(), options.force,
                               lambda hydra_args: hydra_app(lazy_task("reproduce_task"), hydra_args, "mlops reproduce"))
