"""``mlops report RUN|SWEEP_DIR``: a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from engine.cli.common import command_parser, tracking_store
from engine.errors import UsageError

REPORT_USAGE = """\
usage: mlops report RUN|SWEEP_DIR [--tracking-uri URI]

  RUN        latest, a run id, a unique id prefix, or a run directory
  SWEEP_DIR  a sweep folder (outputs/sweeps/<date>/<time>-<name>, with summary.json)

Writes report.html into the run directory or the sweep folder and prints its path.
One self-contained file: plots embedded as PNG, no script, nothing fetched.
"""


def report_command(args: list[str]) -> int:
    """``mlops report RUN|SWEEP_DIR``: write report.html for a run or a sweep."""
    from engine.report import is_run_dir, is_sweep_dir, write_run_report, write_sweep_report
    from engine.store import runs

    if args[:1] in (["-h"], ["--help"]):
        print(REPORT_USAGE, end="")
        return 0
    parser = command_parser("mlops report", REPORT_USAGE)
    parser.add_argument("target")
    options = parser.parse_args(args)
    path = Path(options.target)
    if path.is_dir():
        if is_sweep_dir(path):
            print(write_sweep_report(path))
            return 0
        if is_run_dir(path):
            print(write_run_report(path))
            return 0
        raise UsageError(f"usage error: {options.target} is neither a run directory (with run.json) nor a sweep "
                         "folder (with summary.json or leaderboard.csv)")
    store = tracking_store(options.tracking_uri)
    row = runs.resolve(store, options.target, runs.all_runs(store))
    run_dir = Path(row["run_dir"] or "")
    if not row["run_dir"] or not is_run_dir(run_dir):
        raise UsageError(f"usage error: run {row['id'][:8]} has no run directory at {row['run_dir']} "
                         "(moved or deleted?); pass the run directory instead")
    print(write_run_report(run_dir))
    return 0
