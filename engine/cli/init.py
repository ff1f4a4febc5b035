"""``mlops init DIR --data PATH_OR_URL --target COLUMN``: a new project from a user's table."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

from engine.cli.common import command_parser
from engine.errors import UsageError

USAGE = """\
usage: mlops init DIR --data PATH_OR_URL --target COLUMN [--positive VALUE] [--key COLUMN]
                  [--name NAME] [--timestamp COLUMN] [--query SQL] [--force]

Read a table, profile it in one pass, and write a complete, commented conf/ tree into DIR:
data/ (the source and its column types), features/ (every column but the target, as one
selector; identifiers, constants, empty columns and dates left out, each with why),
quality/ (rules that pass on this data, each saying what was observed), model/
(logistic, random_forest, hist_gradient_boosting), split/, business/ (placeholder
numbers that never fail a run) and experiment/NAME (the three models compared).
Then: cd DIR && mlops run

  DIR                 the project folder (created if needed)
  --data PATH_OR_URL  a CSV file, a Parquet file or folder, or a database URL
                      (sqlite:///shop.db, or any SQLAlchemy URL) with --query
  --query SQL         the SQL to read, or a table's name (with a database URL)
  --target COLUMN     the column to predict: two classes
  --positive VALUE    the positive class; needed only when the two values are not
                      1/0, true/false, yes/no or y/n
  --key COLUMN        the column that identifies a row (unique); default: the row number
  --timestamp COLUMN  the event-time column: a freshness rule, and as_of after its newest
  --name NAME         the project's name (runs, config options, registered model);
                      default: DIR's name
  --force             overwrite the files of an existing conf/

exit statuses: 0 written, 2 bad arguments or unreadable data (one line on stderr)
"""


def init_command(args: list[str]) -> int:
    """``mlops init``: write a new project's ``conf/`` tree from its data.

    Returns:
        0 when the files are written.

    Raises:
        UsageError: A bad argument: missing, an unknown column, a target that is not
            binary, an existing conf/ without ``--force``.
        DataError: The data cannot be read.
    """
    if not args:
        raise UsageError("usage error: init needs DIR, --data and --target (see mlops init --help)")
    options = _parse(args)
    root = Path(options.dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"usage error: DIR {options.dir!r} is a file; expected a folder")
    if (root / "conf").exists() and not options.force:
        raise UsageError(f"usage error: {root / 'conf'} already exists; --force overwrites its files")
    name = options.name or _name_of(root)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise UsageError(f"usage error: --name {name!r} must start with a letter and hold only letters, digits, "
                         "'_' and '-' (it names runs, config options and the registered model)")

    from engine.scaffold import profile as profiling
    from engine.scaffold import write

    loaded = profiling.read(options.data, options.query)
    observed, loaded = profiling.profile(loaded, options.target, options.positive, options.key, options.timestamp)
    project = write.Project(root=root, name=name, key=options.key, timestamp=options.timestamp, today=date.today())
    files = write.project_files(project, loaded, observed)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("outputs/\nconf/local/default.yaml\n", encoding="utf-8")
    _summary(root, name, observed, len(files))
    return 0


def _parse(args: list[str]) -> argparse.Namespace:
    parser = command_parser("mlops init", USAGE, tracking_uri=False)
    parser.add_argument("dir")
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--positive")
    parser.add_argument("--key")
    parser.add_argument("--name")
    parser.add_argument("--timestamp")
    parser.add_argument("--query")
    parser.add_argument("--force", action="store_true")
    return parser.parse_args(args)


def _name_of(root: Path) -> str:
    """DIR's name as a project name: ``My Project`` -> ``my_project``."""
    from engine.scaffold.write import slug

    name = slug(root.resolve().name, "project")
    return name if name[0].isalpha() else f"p{name}"


def _summary(root: Path, name: str, observed: object, written: int) -> None:
    from engine.scaffold.profile import Profile

    assert isinstance(observed, Profile)
    features = [c.name for c in observed.columns if c.role == "feature"]
    left_out = [f"{c.name} ({c.role})" for c in observed.columns
                if c.role in ("identifier", "constant", "empty", "date")]
    target = observed.target
    print(f"wrote {written} files into {root / 'conf'}: {len(features)} features from {len(observed.columns)} columns "
          f"of {observed.rows:,} rows; target {target.column} = {target.positive!r} is the positive class")
    if left_out:
        print(f"left out: {', '.join(left_out)}")
    if target.missing:
        print(f"the target is missing in {target.missing:,} rows: features.population leaves them out")
    print(f"business/{name}.yaml holds PLACEHOLDER numbers: replace them before reading net value as money")
    print(f"next: cd {root} && mlops run      (and mlops run experiment={name} to compare the models)",
          file=sys.stdout)
