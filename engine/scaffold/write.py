"""The ``conf/`` tree of a new project, written from a profile: YAML text with comments.

Every file explains its keys as the repository's own ``conf/`` does. The values come
from what was observed (types, ranges, missing shares, the target's classes); the
business numbers are placeholders, marked as such, that can never fail a run.

Everything is built as text first (:func:`project_files`), so nothing is written when
something is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import UsageError
from engine.scaffold.profile import Loaded, Profile

#: The key a keyless source gets: each row's number, from 1 (``key: null``).
ROW_NUMBER = "row_number"
#: The models of a new project: option name -> (estimator, what it is for).
MODELS = ("logistic", "random_forest", "hist_gradient_boosting")
#: The margin added on each side of an observed range, as a share of the range.
MARGIN = 0.1
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Words YAML 1.1 (PyYAML, which OmegaConf uses) reads as booleans or null.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "~"}
_EXPR_KEYWORDS = {"and", "or", "not", "is", "null", "true", "false"}


@dataclass(frozen=True)
class Project:
    """What ``mlops init`` was asked for, besides the data.

    Args:
        root: The project folder.
        name: The project's name: the run name, the config option names, the model name.
        key: The column that identifies a row, or None (the row number).
        timestamp: The event-time column, or None.
        today: The date the files are written (the cut-off when there is no timestamp).
    """

    root: Path
    name: str
    key: str | None = None
    timestamp: str | None = None
    today: date = date.today()


def slug(text: str, fallback: str = "data") -> str:
    """``text`` as an identifier: ASCII letters, digits and ``_`` (``Churn Label`` -> ``churn_label``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()
    if not out:
        return fallback
    return f"_{out}" if out[0].isdigit() else out


def source_name(loaded: Loaded) -> str:
    """The source's name in ``data.sources``: the file's stem or the table's name."""
    if loaded.type == "sql":
        table = re.search(r"\bfrom\s+[\"`\[]?([A-Za-z_][A-Za-z0-9_]*)", loaded.query or "", re.IGNORECASE)
        return slug(table.group(1)) if table else "data"
    stem = Path(loaded.location.rstrip("/")).name.split(".")[0]
    return slug(stem)


# --------------------------------------------------------------------------- YAML text


def key(text: str) -> str:
    """A mapping key that OmegaConf reads back as ``text`` (keys are never interpolated)."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def scalar(value: Any) -> str:
    """One YAML scalar that OmegaConf reads back as ``value`` (``${`` is never interpolated)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, pd.Timestamp):
        return json.dumps(value.isoformat())
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text.replace("${", "\\${"), ensure_ascii=False)


def flow(mapping: Mapping[str, Any]) -> str:
    """A one-line YAML mapping: ``{a: 1, b: [x, y]}``."""
    parts = []
    for name, value in mapping.items():
        parts.append(f"{key(name)}: {flow_value(value)}")
    return "{" + ", ".join(parts) + "}"


def flow_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return flow(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow_value(v) for v in value) + "]"
    return scalar(value)


def _commented(lines: Iterable[tuple[str, str]], column: int = 26) -> str:
    """``(text, comment)`` lines with the comments lined up, as conf/ writes them."""
    out = []
    for text, comment in lines:
        if comment:
            pad = max(column - len(text), 1)
            out.append(f"{text}{' ' * pad}# {comment}")
        else:
            out.append(text)
    return "\n".join(out) + "\n"


def _pad(text: str, column: int) -> str:
    """``text`` and spaces up to ``column`` (at least one), where a comment starts."""
    return text + " " * max(1, column - len(text))


def _number(count: int) -> str:
    return f"{count:,}"


def _share(part: int, whole: int) -> str:
    share = 100 * part / whole if whole else 0.0
    return f"{share:.2g}%" if share < 1 else f"{share:.1f}%"


# ------------------------------------------------------------------------ the project


def project_files(project: Project, loaded: Loaded, profile: Profile) -> dict[str, str]:
    """Every file of the new ``conf/`` tree: path relative to the project -> its text."""
    name = project.name
    source = source_name(loaded)
    as_of, newest = _cut_off(project, loaded)
    target_name = _target_name(profile)
    return {
        "conf/config.yaml": _config(project, loaded, profile, as_of, newest),
        f"conf/data/{name}.yaml": _data(project, loaded, profile, source),
        f"conf/quality/{name}.yaml": _quality(project, profile, source, as_of, newest),
        "conf/quality/none.yaml": _NO_RULES,
        f"conf/features/{name}.yaml": _features(project, profile, source, target_name),
        "conf/model/logistic.yaml": _LOGISTIC,
        "conf/model/random_forest.yaml": _RANDOM_FOREST,
        "conf/model/hist_gradient_boosting.yaml": _HIST_GRADIENT_BOOSTING,
        "conf/split/holdout.yaml": _HOLDOUT,
        f"conf/business/{name}.yaml": _business(project, profile),
        f"conf/experiment/{name}.yaml": _experiment(project, profile),
        "conf/promotion/default.yaml": _PROMOTION,
        "conf/local/.gitkeep": "",
    }


_PROMOTION = """\
# The champion gate: what a candidate must show against the model in production before
# `mlops validate --against NAME@champion --promote` moves the alias to it. Both models
# are scored on the same evaluation rows; every change is an improvement (candidate minus
# champion; for log_loss and brier, champion minus candidate). Add net_value_per_month
# once conf/business/ holds your real numbers.
description: No worse than the champion on ranking and calibration; requirements met

metrics:                      # metric -> the smallest change allowed
  roc_auc: {min_change: -0.002}               # no worse by more than 0.002
  log_loss: {min_relative_change: -0.05}      # no more than 5% worse than the champion's

decide_on: estimate           # estimate: the observed difference must meet each rule;
                              # lower_bound: the bootstrap interval's lower end must

requirements_must_pass: true  # the candidate's business requirements (requirements.json)

latency:
  p99_ms: 100                 # p99 of single-row predict_proba on the candidate, in ms
  rows: 200                   # single rows timed at most (null: no latency check)
  max_seconds: 3              # ... and none after this long: a slow model shows it early

evaluation:
  as_of: null                 # null: the candidate's hold-out; a date: every row at that cut-off

bootstrap:
  resamples: 1000             # paired resamples of the evaluation rows
  confidence: 0.95            # the difference intervals' coverage
  seed: ${seed}               # the same resamples every time for the same seed
"""


def _cut_off(project: Project, loaded: Loaded) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """``as_of``: the day after the newest event, or today without a timestamp."""
    if project.timestamp is None:
        return pd.Timestamp(project.today), None
    values = pd.to_datetime(loaded.frame[project.timestamp], errors="coerce")
    newest = values.max()
    if getattr(newest, "tzinfo", None) is not None:
        newest = newest.tz_convert("UTC").tz_localize(None)
    return newest.normalize() + pd.Timedelta(days=1), newest


def _target_name(profile: Profile) -> str:
    """The label's name in the feature table: the target column's own name when it is an
    identifier, else its slug, never the name of another column (a feature)."""
    column = profile.target.column
    if _IDENTIFIER.fullmatch(column) and column.lower() not in _EXPR_KEYWORDS:
        return column
    name = slug(column, "target")
    others = {c.name for c in profile.columns} - {column}
    while name in others:
        name += "_target"
    return name


def column_ref(name: str) -> str:
    """A column as an expression names it: plain, or in backticks."""
    if _IDENTIFIER.fullmatch(name) and name not in _EXPR_KEYWORDS and not name.startswith("__"):
        return name
    if "`" in name or name.startswith("__"):
        raise UsageError(f"usage error: column {name!r} cannot be named in an expression (it holds a backtick "
                         "or starts with '__'); rename it in the data")
    return f"`{name}`"


def _literal(value: Any) -> str:
    """A value as an expression writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise UsageError(f"usage error: the target value {text!r} holds both kinds of quote; an expression cannot "
                     "write it")


# ------------------------------------------------------------------------- config.yaml


def _config(project: Project, loaded: Loaded, profile: Profile, as_of: pd.Timestamp,
            newest: pd.Timestamp | None) -> str:
    name = project.name
    cut_off = (f"the day after the newest {project.timestamp} ({newest:%Y-%m-%d %H:%M})" if newest is not None
               else "the day `mlops init` ran: nothing in this table depends on it")
    pad = _pad
    return f"""\
# {name}: one composed config per run, written by `mlops init` from {loaded.location}
# ({_number(profile.rows)} rows x {len(profile.columns)} columns) on {project.today:%Y-%m-%d}.
#
{pad("#   mlops run", 53)}# these defaults: logistic regression
{pad("#   mlops run model=random_forest split.test_size=0.3", 53)}# any option, any key
{pad(f"#   mlops run experiment={name}", 53)}# the three models compared (a sweep)
{pad("#   mlops run --cfg job --resolve", 53)}# print the composed config
defaults:
  - _self_                 # first: the groups below, experiments and local override this file
{pad(f"  - data: {name}", 27)}# where the data comes from, with its column types
{pad(f"  - quality: {name}", 27)}# rules proposed from the data (quality=none: no rules)
{pad(f"  - features: {name}", 27)}# the feature table and the target
  - model: logistic        # model=random_forest | hist_gradient_boosting
  - split: holdout         # how rows are held out for evaluation
{pad(f"  - business: {name}", 27)}# what a model is worth: PLACEHOLDER numbers to replace
  - promotion: default     # the champion gate of mlops validate --against NAME@champion
  - experiment: null       # experiment={name}: compare the models
  - optional local: default  # conf/local/default.yaml: machine-specific, git-ignored

{pad(f"name: {scalar(name)}", 26)}# run name: the last part of the run directory
seed: 0                   # one seed for everything random (split and model)
as_of: "{as_of:%Y-%m-%d}"       # the cut-off: {cut_off}
threads: 1                # BLAS/OpenMP threads while fitting and predicting; pinned so
                          # that two runs give bit-identical models
cache: false              # true: reuse an earlier succeeded run with the same config, data
                          # and code instead of retraining
report: true              # write report.html (plots, metrics by stakeholder) into the run dir

tracking:                 # the metadata store that indexes every run (mlops runs)
  uri: ${{oc.env:MLOPS_TRACKING_URI,sqlite:///outputs/mlops.db}}   # relative to the project folder
  mlflow:                 # optional mirror of every run into MLflow (pip install 'mlops-engine[mlflow]')
    uri: ${{oc.env:MLFLOW_TRACKING_URI,null}}   # e.g. sqlite:///mlflow.db or http://127.0.0.1:5000

preprocess:               # inside the saved Pipeline, so the model takes raw feature rows
  numeric_impute: median  # mean | median | most_frequent
  scale: true             # standardise numeric features (helps linear models)
  categorical_impute: most_frequent   # most_frequent | constant (a 'missing' category)
  min_frequency: null     # categories rarer than this share one 'infrequent' column

hydra:
  run:
    # One folder per run; microseconds keep two runs started in one second apart.
    dir: outputs/runs/${{now:%Y-%m-%d}}/${{now:%H-%M-%S-%f}}-${{name}}
  sweep:
    dir: outputs/sweeps/${{now:%Y-%m-%d}}/${{now:%H-%M-%S-%f}}-${{name}}
    subdir: ${{hydra.job.num}}
  job:
    name: run             # the run's log file: <run dir>/run.log
    chdir: false          # stay in the project folder; the run dir is an output only
  help:
    app_name: mlops
  callbacks:
    sweep_summary:        # a progress line per finished job; leaderboard.csv/.md and
      _target_: engine.callbacks.SweepSummary   # summary.json in the sweep's folder
    register_best:        # with `select` and `register` set (experiment files), the best
      _target_: engine.callbacks.RegisterBest   # succeeded run of a sweep is registered
  job_logging:
    formatters:
      simple:
        format: "[%(asctime)s][%(levelname)s] %(message)s"
        datefmt: "%H:%M:%S"
"""


# ------------------------------------------------------------------------------- data/


def _location(project: Project, loaded: Loaded) -> str:
    """The path or URL as the project reads it: relative inside the project, else absolute."""
    if loaded.type == "sql":
        url = loaded.location
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + _path_for(project, Path(url.removeprefix("sqlite:///")))
        return url
    return _path_for(project, Path(loaded.location))


def _path_for(project: Project, path: Path) -> str:
    absolute = path.resolve()
    root = project.root.resolve()
    if absolute.is_relative_to(root):
        return os.path.relpath(absolute, root)
    return str(absolute)


_TYPE_WORDS = {"int": "int", "float": "float", "bool": "bool", "category": "category", "string": "string",
               "datetime": "datetime"}


def _data(project: Project, loaded: Loaded, profile: Profile, source: str) -> str:
    location = _location(project, loaded)
    lines: list[tuple[str, str]] = [
        (f"  {source}:", f"read by `mlops init`: {_number(profile.rows)} rows x {len(profile.columns)} columns"),
        (f"    type: {loaded.type}", {"csv": "csv | parquet | sql", "parquet": "a Parquet file or folder",
                                      "sql": "read with pandas.read_sql; SQLite needs nothing extra"}[loaded.type]),
    ]
    if loaded.type == "sql":
        lines.append((f"    url: {scalar(location)}", "relative sqlite:/// paths are relative to the project folder"))
        lines.append((f"    query: {scalar(loaded.query)}", ""))
    else:
        lines.append((f"    path: {scalar(location)}", "relative paths are relative to the project folder"))
    if project.key:
        lines.append((f"    key: {scalar(project.key)}", "what identifies a row (unique, never missing)"))
    else:
        lines.append(("    key: null", f"no column identifies a row: the engine numbers them ({ROW_NUMBER}, from 1)"))
    if project.timestamp:
        lines.append((f"    timestamp: {scalar(project.timestamp)}", "the event time: freshness is measured on it"))
    else:
        lines.append(("    timestamp: null", "the event-time column, if the rows are events"))
    if loaded.encoding:
        lines.append((f"    encoding: {loaded.encoding}", "the file is not UTF-8"))
    if loaded.load_args:
        lines.append(("    load_args:", "passed through to the pandas reader"))
        if "sep" in loaded.load_args:
            lines.append((f"      sep: {scalar(loaded.load_args['sep'])}", "the file's separator"))
        if "na_values" in loaded.load_args:
            lines.append(("      na_values:", "text read as missing in these numeric columns"))
            for column, tokens in loaded.load_args["na_values"].items():
                count = profile.column(column).missing
                lines.append((f"        {key(column)}: {flow_value(tokens)}",
                              f"{_number(count)} missing with these"))
    lines.append(("    columns:", "the schema: each value must parse as its type when the data is read"))
    for column in profile.columns:
        declared = column.type if not column.missing else {"type": column.type, "nullable": True}
        note = "" if not column.missing else (
            f"missing in {_number(column.missing)} rows ({_share(column.missing, column.rows)})")
        lines.append((f"      {key(column.name)}: {flow_value(declared)}", note))
    header = f"""\
# Where the data of {project.name} comes from: {loaded.location}, as `mlops init` read it.
# Each source is read with pandas; `columns` declares every column's type
# (int, float, bool, category, string, datetime; {{type: float, nullable: true}} allows
# missing values), so a file that changes shape stops the run with one clear line.
description: {scalar(f'{project.name}: {Path(loaded.location).name if loaded.type != "sql" else loaded.location}')}

sources:                  # name -> how to read it
"""
    return header + _commented(lines)


# ----------------------------------------------------------------------------- quality/


class _Names:
    """Rule names, unique and valid (letters, digits, ``_``)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = "_".join(slug(p, "column") for p in parts)
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def _quality(project: Project, profile: Profile, source: str, as_of: pd.Timestamp,
             newest: pd.Timestamp | None) -> str:
    names = _Names()
    out = [f"""\
# Data-quality rules for {project.name}, proposed by `mlops init` from what it observed in
# {_number(profile.rows)} rows: each passes on that data, and its comment says what was seen.
# Tighten them to what the data MUST be. Each rule is a check from engine/config/quality.py plus its keys:
#   dimension: accuracy | completeness | consistency | timeliness
#   severity:  error (a failure stops the run before features: the quality gate) | warn (recorded, shown)
#   mostly:    share of rows that must pass, in [0, 1] (row-level checks; default 1.0)
#   filter:    an expression; only rows where it holds are checked
# One rule from the command line: mlops run quality.rules.<name>.severity=error
description: Data quality of {scalar(project.name)}, as observed by mlops init
rules:
  # --- completeness: is anything missing?
"""]
    half = max(1, profile.rows // 2)
    rule = names(source, "rows")
    out.append(f"  # observed {_number(profile.rows)} rows; fewer than half of that is a truncated extract\n")
    out.append(f"  {rule}: {flow({'dimension': 'completeness', 'check': 'row_count', 'source': source, 'min': half, 'severity': 'error'})}\n")  # noqa: E501
    for column in profile.columns:
        if column.role == "empty":
            out.append(f"  # {column.name}: missing in every row; no rule (it is left out of the features)\n")
            continue
        base = {"dimension": "completeness", "source": source, "column": column.name}
        if not column.missing:
            out.append(f"  # {column.name}: a value in every row\n")
            rule = names(column.name, "present")
            spec = {**base, "check": "not_null", "severity": "error" if column.role in ("target", "key") else "warn"}
        else:
            share = column.missing / column.rows
            bound = min(1.0, math.ceil(share * 1000) / 1000)
            out.append(f"  # {column.name}: missing in {_number(column.missing)} of {_number(column.rows)} rows "
                       f"({_share(column.missing, column.rows)})\n")
            rule = names(column.name, "missing")
            spec = {**base, "check": "missing_share", "max": bound, "severity": "warn"}
        out.append(f"  {rule}: {flow(_ordered(spec))}\n")

    out.append("\n  # --- accuracy: does the data describe reality?\n")
    for column in profile.columns:
        if column.role not in ("feature", "target"):
            continue
        base = {"dimension": "accuracy", "source": source, "column": column.name}
        if column.type in ("int", "float") and column.low is not None and column.role == "feature":
            low, high = _margin(column.low, column.high, column.type == "int")
            out.append(f"  # {column.name}: from {_num(column.low)} to {_num(column.high)}; allowed: "
                       f"{int(MARGIN * 100)}% of that range more on each side\n")
            rule = names(column.name, "range")
            out.append(f"  {rule}: {flow(_ordered({**base, 'check': 'between', 'min': low, 'max': high, 'severity': 'warn'}))}\n")  # noqa: E501
        elif column.counts is not None and column.type in ("category", "int", "float", "bool") and (
                column.type == "category" or column.role == "target"):
            values = list(column.counts)
            seen = ", ".join(f"{_show(v)} {_number(n)}" for v, n in list(column.counts.items())[:6])
            more = f", ... ({len(values)} values)" if len(values) > 6 else ""
            out.append(f"  # {column.name}: {seen}{more}\n")
            rule = names(column.name, "values")
            severity = "error" if column.role == "target" else "warn"
            out.append(f"  {rule}: {flow(_ordered({**base, 'check': 'in_set', 'values': values, 'severity': severity}))}\n")  # noqa: E501

    out.append("\n  # --- consistency: do the rows agree with each other?\n")
    if project.key:
        out.append(f"  # {project.key}: {_number(profile.rows)} distinct values, one per row\n")
        rule = names(project.key, "unique")
        out.append(f"  {rule}: {flow({'dimension': 'consistency', 'check': 'unique', 'source': source, 'columns': [project.key], 'severity': 'error'})}\n")  # noqa: E501
    else:
        out.append(f"  # no --key: rows are identified by their number ({ROW_NUMBER}), unique by construction.\n"
                   "  # Rules that compare columns fit here, e.g.\n"
                   "  # paid_le_billed: {dimension: consistency, check: compare, source: "
                   f"{source}, left: paid, op: '<=', right: billed}}\n")

    out.append("\n  # --- timeliness: is the data there when needed?\n")
    if newest is not None and project.timestamp:
        age = as_of - newest
        days = max(1, math.ceil(age / pd.Timedelta(days=1)))
        out.append(f"  # {project.timestamp}: newest {newest:%Y-%m-%d %H:%M}, {_duration(age)} before as_of "
                   f"({as_of:%Y-%m-%d})\n")
        rule = names(project.timestamp, "fresh")
        out.append(f"  {rule}: {flow({'dimension': 'timeliness', 'check': 'freshness', 'source': source, 'column': project.timestamp, 'max_age': f'{days}d', 'severity': 'warn'})}\n")  # noqa: E501
    else:
        out.append("  # no --timestamp: no event time to be fresh. With one, e.g.\n"
                   f"  # {source}_fresh: {{dimension: timeliness, check: freshness, source: {source}, "
                   "column: updated_at, max_age: 1d}\n")
    return "".join(out)


def _ordered(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's keys in the order conf/ writes them."""
    order = ("dimension", "check", "source", "column", "columns", "min", "max", "values", "max_age", "severity")
    return {k: spec[k] for k in order if k in spec}


def _margin(low: float, high: float, integer: bool) -> tuple[float | int, float | int]:
    """[low, high] widened by :data:`MARGIN` of its width on each side, rounded outward
    to a readable step; never below 0 for data that is never negative."""
    width = high - low or abs(high) or 1.0
    margin = MARGIN * width
    step = 10.0 ** math.floor(math.log10(margin))
    lower = math.floor((low - margin) / step) * step
    upper = math.ceil((high + margin) / step) * step
    if low >= 0:
        lower = max(0.0, lower)
    if integer:
        return int(math.floor(lower)), int(math.ceil(upper))
    digits = max(0, -math.floor(math.log10(step)))
    rounded = round(lower, digits), round(upper, digits)
    # Rounding to the step's digits must not cut into what was observed.
    return (rounded[0] if rounded[0] <= low else low), (rounded[1] if rounded[1] >= high else high)


def _num(value: float | int) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else scalar(value)


def _duration(age: pd.Timedelta) -> str:
    hours = age / pd.Timedelta(hours=1)
    return f"{hours:.0f}h" if hours < 48 else f"{hours / 24:.0f}d"


# ---------------------------------------------------------------------------- features/


def _features(project: Project, profile: Profile, source: str, target_name: str) -> str:
    target = profile.target
    positive_rows = _positives(profile)
    entity_key = project.key or ROW_NUMBER
    left_out = [c for c in profile.columns if c.role in ("identifier", "constant", "empty", "date", "timestamp")]
    features = [c for c in profile.columns if c.role == "feature"]
    exclude_lines = ""
    if left_out:
        exclude_lines = "    exclude:              # left out of the model, and why:\n" + "".join(
            f"{_pad(f'      - {scalar(c.name)}', 26)}# "
            f"{c.why or 'the event time (data.sources.' + source + '.timestamp)'}\n"
            for c in left_out)
    else:
        exclude_lines = "    exclude: []           # columns to leave out of the model\n"
    population = "null"
    population_note = (f"# Who is scored: every row (the target `{target.column}` has a value in each).\n")
    if target.missing:
        population = scalar(f"{column_ref(target.column)} is not null")
        population_note = (f"# Who is scored: the rows whose target is known. `{target.column}` is missing in "
                           f"{_number(target.missing)} rows\n# ({_share(target.missing, profile.rows)}): they are "
                           "left out here, never trained as the negative class.\n")
    dates = [c for c in profile.columns if c.role in ("date", "timestamp")]
    example = (f"  # {slug(dates[0].name)}_days: days(as_of - {column_ref(dates[0].name)})   # a date as a number"
               if dates else "  # ratio: a / b         # x / 0 gives a missing value")
    expr = f"{column_ref(target.column)} == {_literal(target.positive)}"
    return f"""\
# The feature table of {project.name}: one row per row of `{source}`.
# Expressions are parsed by the engine, never eval-ed: columns (`in backticks` when a name
# is not an identifier), numbers, text, durations (30d), + - * / %, comparisons,
# and/or/not, `x is null`, and abs, log, log1p, sqrt, clip, where, fillna, days.
description: Features of {scalar(project.name)}, as written by mlops init

# Feature tables are kept in a content-addressed store and reused by every run with the
# same definitions and data. null: compute them on every run.
store:
  path: outputs/feature_store   # relative to the project folder

entity:
{_pad(f"  key: {scalar(entity_key)}", 26)}# {'the key column of data.sources.' + source if project.key else 'each row of ' + source + ' by its number (data.sources.' + source + '.key is null)'}
{_pad(f"  source: {source}", 26)}# the spine: one row per row of this source
  label_time: null        # a datetime column: each row's own cut-off (capped at as_of)

{population_note}population: {population}

attributes:               # columns joined onto the spine, each a feature under its own name
{_pad(f"  {source}_columns:", 26)}# a selector: {len(features)} columns of {source} as they are
    from: {source}
    columns: all          # every column but the key, the target's and those excluded below
{exclude_lines}
derived: {{}}               # expressions over the columns above, e.g.
{example}

# The features the model uses: selector, group and feature names; null uses them all.
#   mlops run 'features.use=[{scalar(features[0].name) if features else 'a_column'}]'
use: null

# The label: 1 when {target.column} is {_show(target.positive)} ({_number(positive_rows)} rows,
# {_share(positive_rows, profile.rows - target.missing)} of those with a value), 0 when it is {_show(target.negative)}.
target:
  name: {scalar(target_name)}
  expr: {scalar(expr)}
"""


def _positives(profile: Profile) -> int:
    counts = profile.column(profile.target.column).counts or {}
    return int(counts.get(profile.target.positive, 0))


# ------------------------------------------------------------------------- business/


def _business(project: Project, profile: Profile) -> str:
    positives = _positives(profile)
    rate = positives / max(profile.rows - profile.target.missing, 1)
    scored = 1000
    per_month = round(scored * rate)
    return f"""\
# What a model of {project.name} is worth, and what it must meet to be used.
#
# !!! PLACEHOLDERS. Every number below was written by `mlops init` as an example, not
# !!! taken from your business: net_value and the other money figures of a run mean
# !!! nothing until you replace them with your own.
#
# The engine values a model as a campaign on the rows it flags (score >= threshold):
# each month it scores `customers` rows, of which `churners_per_month` are positives
# (the target's 1). A flagged positive is kept with probability `retention_effect` and
# then pays `discounted_price` a month; a flagged negative costs `false_positive_cost`.
description: PLACEHOLDER economics for {scalar(project.name)}; replace every number
customers: {scored}           # PLACEHOLDER: rows scored each month
price: 1.0                # PLACEHOLDER: $ a month one row is worth
{_pad(f"churners_per_month: {per_month}", 26)}# PLACEHOLDER: positives among them a month (here the data's rate, {rate:.1%})
retention_effect: 0.25    # PLACEHOLDER: share of flagged positives the action turns around
discounted_price: 0.5     # PLACEHOLDER: $ a month such a row is worth after the action
false_positive_cost: null # PLACEHOLDER: $ a month a needless action costs; null = price - discounted_price
expected_share_caught: null   # design-time guess of the share of positives a model finds (for
                          # the simple estimate printed before the model's own value); null: none

# The decision threshold: a row is flagged when the model's score is at or above it.
# 0.5 until the numbers above are real; then `best` picks the most valuable threshold.
threshold: 0.5
threshold_folds: null     # with threshold: best, k >= 2 chooses it on out-of-fold training scores

# The requirements a model must meet. A failed one ends the run as failed_requirements
# (exit 4); null switches it off, and all are off until you choose them, so a run never
# fails on a placeholder. E.g. mlops run business.requirements.min_roc_auc=0.7
requirements:
  max_train_seconds: null         # fitting the model
  max_predict_ms_per_1000: null   # scoring 1,000 rows
  min_roc_auc: null               # min_<metric> / max_<metric>: any metric of metrics.json
  transparency: null              # native (the model's own importances) | any | null
  protected_columns: null         # [column, ...]: no feature may be computed from these
  personal_data: null             # [column, ...]: no feature-table column may be computed from these
  max_run_seconds: null           # wall time of the whole run

soft_requirements: []     # requirements that only warn (names from the list above)
"""


# ------------------------------------------------------------------------ experiment/


def _experiment(project: Project, profile: Profile) -> str:
    name = project.name
    return f"""\
# @package _global_
# mlops run experiment={name}   (a sweep: one run per model, the best registered as {name})
defaults:
  - override /hydra/sweeper: mlops_grid   # Hydra's grid sweeper plus max_failures
hypothesis: >-            # what the sweep is meant to show (recorded with every run)
  We expect a tree ensemble to rank {_hypothesis_target(profile)} better than logistic regression.
select:                   # the metric that names the best run
  metric: roc_auc         # a hold-out metric: roc_auc, recall, precision, log_loss, ...
  mode: max               # max: higher is better; min for losses
{_pad(f"register: {scalar(name)}", 26)}# register the best run as {name}/N, aliased challenger
hydra:
  mode: MULTIRUN          # `mlops run experiment={name}` sweeps without -m
  sweeper:
    max_failures: null    # stop launching after this many failed jobs (1: fail fast); null: all
    params:               # the grid: one job per model option of conf/model/
      model: {','.join(MODELS)}
"""


def _hypothesis_target(profile: Profile) -> str:
    target = profile.target
    return f"{target.column} = {target.positive}".replace("#", "").replace("\n", " ")


# ----------------------------------------------------------------- fixed files

_NO_RULES = """\
# No data-quality rules: every run passes the gate.   mlops run quality=none
description: No rules
rules: {}
"""

_LOGISTIC = """\
# Logistic regression: fast, transparent (coefficients), the baseline.
# Any key below is a constructor argument of the _target_, checked by scikit-learn.
_target_: sklearn.linear_model.LogisticRegression
C: 1.0                    # inverse regularisation strength
class_weight: null        # balanced: weigh both classes equally when positives are rare
max_iter: 1000            # enough iterations to converge on scaled features
random_state: ${seed}
"""

_RANDOM_FOREST = """\
# Random forest: non-linear, robust, feature importances.
_target_: sklearn.ensemble.RandomForestClassifier
n_estimators: 200         # trees
max_depth: null           # null: grow until the leaves are small
min_samples_leaf: 5       # rows a leaf needs: smooths the scores
class_weight: null        # balanced: weigh both classes equally when positives are rare
n_jobs: 1                 # one process: bit-identical models; raise for speed
random_state: ${seed}
"""

_HIST_GRADIENT_BOOSTING = """\
# Histogram gradient boosting: usually the most accurate on tabular data, fast on many rows.
# It gets the same dense, one-hot encoded input as the other models.
_target_: sklearn.ensemble.HistGradientBoostingClassifier
max_iter: 200             # boosting rounds (trees)
learning_rate: 0.1
max_leaf_nodes: 31        # leaves per tree
early_stopping: false     # true: stop when a held-back 10% of the training rows stops improving
random_state: ${seed}
"""

_HOLDOUT = """\
# Hold out a share of the rows for evaluation; the model never sees them in training.
strategy: holdout
test_size: 0.25           # share held out, in (0, 1)
stratify: true            # keep the positive rate equal in both parts
seed: ${seed}
"""
