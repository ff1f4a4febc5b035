"""The sweep report, from the folder a sweep leaves (``summary.json``, ``leaderboard.csv``, a folder per job).

The leaderboard, the metric against each swept parameter, the failed jobs, then the
best run's report (the header and sections of :mod:`engine.report.run`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UsageError
from engine.report.html import (
    REPORT_FILE,
    Markup,
    badge,
    escape,
    fmt,
    fmt_duration,
    fmt_metric,
    headline_cards,
    page,
    table,
    write_page,
)
from engine.report.plot import AMBER, BLUE, RED, Image, embed, plot
from engine.report.run import RunFiles, hydra_overrides, is_run_dir, read_json, run_body, run_header


def is_sweep_dir(path: Path) -> bool:
    """A sweep folder: it has the summary :mod:`engine.callbacks` writes."""
    return (path / "summary.json").is_file() or (path / "leaderboard.csv").is_file()


def write_sweep_report(sweep_dir: Path) -> Path:
    """Write ``report.html`` into a sweep folder and return its path.

    Raises:
        UsageError: ``sweep_dir`` is not a sweep folder, or the report cannot be written.
    """
    sweep_dir = Path(sweep_dir)
    if not is_sweep_dir(sweep_dir):
        raise UsageError(f"usage error: {sweep_dir} is not a sweep folder; expected summary.json or "
                         "leaderboard.csv in it")
    return write_page(sweep_dir / REPORT_FILE, render_sweep(sweep_dir))


def render_sweep(sweep_dir: Path) -> str:
    """The HTML of a sweep's report."""
    sweep = SweepFiles.load(Path(sweep_dir))
    return page(f"sweep {sweep.name}", _sweep_body(sweep))


# ------------------------------------------------------------------ reading a sweep folder


@dataclass
class SweepFiles:
    """What a sweep folder holds."""

    sweep_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    columns: list[str]

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepFiles:
        missing: list[tuple[str, str]] = []
        summary = read_json(sweep_dir / "summary.json", missing) or {}
        rows: list[dict[str, Any]] = []
        columns: list[str] = []
        try:
            with open(sweep_dir / "leaderboard.csv", newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                columns = list(reader.fieldnames or [])
                rows = [dict(r) for r in reader]
        except (OSError, csv.Error):
            rows, columns = _rows_from_jobs(sweep_dir, str(summary.get("metric") or "roc_auc"))
        return cls(sweep_dir, summary, rows, columns)

    @property
    def name(self) -> str:
        return self.sweep_dir.name

    @property
    def metric(self) -> str:
        return str(self.summary.get("metric") or "roc_auc")

    @property
    def mode(self) -> str:
        return str(self.summary.get("mode") or "max")


def _rows_from_jobs(sweep_dir: Path, metric: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The leaderboard's rows from the job folders, when leaderboard.csv is missing."""
    rows = []
    jobs = sorted(sweep_dir.glob("*/run.json"), key=lambda p: (not p.parent.name.isdigit(), p.parent.name.zfill(9)))
    for path in jobs:
        record = read_json(path, [])
        if record is None:
            continue
        rows.append({"job": path.parent.name, "run": str(record.get("id", ""))[:8], "status": record.get("status"),
                     **{k: v for k, v in (record.get("metrics") or {}).items()},
                     "overrides": " ".join(hydra_overrides(path.parent))})
    columns = ["job", "run", "status", metric, *sorted({k for r in rows for k in r} - {
        "job", "run", "status", "overrides", metric}), "overrides"]
    return rows, columns


def _job_overrides(sweep: SweepFiles, row: Mapping[str, Any]) -> dict[str, str]:
    """A job's overrides as key -> value (from its .hydra/overrides.yaml, else the leaderboard)."""
    job = str(row.get("job") or "")
    listed = hydra_overrides(sweep.sweep_dir / job) if job else []
    if not listed:
        listed = str(row.get("overrides") or "").split()
    out = {}
    for item in listed:
        key, sep, value = item.partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ------------------------------------------------------------------ the report


def _sweep_body(sweep: SweepFiles) -> str:
    summary, metric, mode = sweep.summary, sweep.metric, sweep.mode
    failed = [f for f in summary.get("failed") or [] if isinstance(f, Mapping)]
    if not summary.get("failed"):
        failed = [{"job": r.get("job"), "run": r.get("run"), "status": r.get("status"), "error": None}
                  for r in sweep.rows if r.get("status") not in ("succeeded", None)]
    jobs = summary.get("jobs", len(sweep.rows))
    best = summary.get("best") if isinstance(summary.get("best"), Mapping) else None
    status = "succeeded" if jobs and not failed else ("failed" if not best else "partly failed")
    status_badge = badge(f"{jobs - len(failed) if isinstance(jobs, int) else '?'}/{jobs} succeeded",
                   "ok" if status == "succeeded" else ("bad" if status == "failed" else "warn"))
    best_dir = sweep.sweep_dir / str(best["job"]) if best and best.get("job") is not None else None
    best_run = RunFiles.load(best_dir) if best_dir is not None and is_run_dir(best_dir) else None
    if best_run is None:  # a job's config still says what the sweep was for
        first = next((p.parent for p in sorted(sweep.sweep_dir.glob("*/run.json"))), None)
        context = RunFiles.load(first) if first is not None else None
    else:
        context = best_run
    hypothesis = (context.config or {}).get("hypothesis") if context else None
    parts = [f'<header class="top"><div class="title"><h1>Sweep {escape(sweep.name)}</h1>{status_badge}</div>'
             f'<p class="muted small"><code>{escape(sweep.sweep_dir)}</code></p></header>']
    cards = [("jobs", fmt(jobs)), ("failed", fmt(len(failed))), ("selected by", f"{metric} ({mode})"),
             ("wall time", fmt_duration(summary.get("wall_time_s")))]
    if best:
        cards.append((f"best {metric}", fmt_metric(metric, _number(best.get(metric)))))
        cards.append(("best job", f"{best.get('job')} (run {best.get('run')})"))
    parts.append(headline_cards(cards))
    toc = [("sweep-hypothesis", "Hypothesis"), ("leaderboard", "Leaderboard"),
           ("parameters", f"{metric} against each swept parameter")]
    if failed:
        toc.append(("failed", "Failed jobs"))
    if best_run is not None:
        toc.append(("best", f"The best run: job {best.get('job') if best else '?'}"))
    parts.append('<nav class="toc"><ol>' + "".join(f'<li><a href="#{slug}">{escape(t)}</a></li>' for slug, t in toc)
                 + "</ol></nav>")
    parts.append('<section id="sweep-hypothesis"><h2>Hypothesis</h2>' + (
        f'<blockquote class="hypothesis">{escape(hypothesis)}</blockquote>' if hypothesis else
        '<p class="muted">No hypothesis recorded (set <code>hypothesis:</code> in the experiment).</p>') + "</section>")
    parts.append(f'<section id="leaderboard"><h2>Leaderboard</h2>{_leaderboard(sweep, best)}</section>')
    parts.append(f'<section id="parameters"><h2>{escape(metric)} against each swept parameter</h2>'
                 f"{_parameter_plots(sweep)}</section>")
    if failed:
        rows = [[f.get("job"), f.get("run"), Markup(badge(str(f.get("status")))),
                 Markup(f"<code>{escape(f.get('error') or '')}</code>") if f.get("error") else "–"] for f in failed]
        parts.append('<section id="failed"><h2>Failed jobs</h2>'
                     + table(["job", "run", "status", "error"], rows) + "</section>")
    if best_run is not None:
        parts.append('<section id="best" class="best">'
                     + run_header(best_run, level=2).replace('class="top"', 'class="top sub"', 1)
                     + run_body(best_run, level=3, prefix="best-") + "</section>")
    elif best:
        parts.append(f'<p class="note">The best job\'s folder ({escape(best_dir)}) is missing: no run section.</p>')
    return "".join(parts)


def _swept(sweep: SweepFiles) -> tuple[list[dict[str, str]], list[str], dict[str, str]]:
    """Each row's overrides, the keys that vary between jobs, and the overrides every job shares."""
    overrides = [_job_overrides(sweep, row) for row in sweep.rows]
    keys = list(dict.fromkeys(k for o in overrides for k in o))
    swept = [k for k in keys if len({o.get(k) for o in overrides}) > 1]
    common = {k: overrides[0][k] for k in keys if k not in swept and overrides and k in overrides[0]}
    return overrides, swept, common


def _leaderboard(sweep: SweepFiles, best: Mapping[str, Any] | None) -> str:
    if not sweep.rows:
        return '<p class="muted">No job has finished yet.</p>'
    metric = sweep.metric
    overrides, swept, common = _swept(sweep)
    others = [c for c in sweep.columns if c not in ("job", "run", "status", metric, "overrides")]
    columns = ["job", "run", "status", *swept, metric, *others]
    numeric = set(range(3 + len(swept), len(columns)))
    rows = []
    for row, job_overrides in zip(sweep.rows, overrides, strict=True):
        cells: list[Any] = []
        for column in columns:
            value = job_overrides.get(column) if column in swept else row.get(column)
            if column == "job" and (sweep.sweep_dir / str(value) / REPORT_FILE).exists():
                cells.append(Markup(f'<a href="{escape(value)}/{REPORT_FILE}">{escape(value)}</a>'))
            elif column in ("job", "run"):
                cells.append(str(value or "–"))
            elif column == "status":
                cells.append(Markup(badge(str(value))))
            elif column in swept:
                cells.append(Markup(f'<code class="nw">{escape(value)}</code>') if value is not None else "–")
            elif _number(value) is not None:
                shown = fmt_metric(column, _number(value))
                cells.append(Markup(f"<strong>{escape(shown)}</strong>") if column == metric else shown)
            else:
                cells.append(value if value not in ("", None) else "–")
        rows.append(cells)
    best_job = str(best.get("job")) if best else None
    marked = {i for i, r in enumerate(sweep.rows) if best_job is not None and str(r.get("job")) == best_job}
    shared = " ".join(f"<code>{escape(k)}={escape(v)}</code>" for k, v in common.items())
    intro = (f"<p>Best first by <strong>{escape(metric)}</strong> ({escape(sweep.mode)}); the best job is highlighted. "
             + (f"Every job also ran with {shared}." if common else "") + "</p>")
    return intro + table(columns, rows, numeric=numeric, marked_rows=marked)


def _parameter_plots(sweep: SweepFiles) -> str:
    metric = sweep.metric
    all_overrides, swept, _ = _swept(sweep)
    # Jobs that failed a gate still measured the metric: they are drawn, marked as failed.
    points = [(overrides, _number(row.get(metric)), row.get("status") == "succeeded")
              for row, overrides in zip(sweep.rows, all_overrides, strict=True)
              if _number(row.get(metric)) is not None]
    if not swept:
        return '<p class="muted">No parameter varies between the jobs.</p>'
    if not points:
        return f'<p class="muted">No job has {escape(metric)}: nothing to plot.</p>'
    figures = []
    for key in swept:
        jobs = [_Job(o[key], v, ok) for o, v, ok in points if o.get(key) is not None]
        numeric = all(_number(j.x) is not None for j in jobs) and len({_number(j.x) for j in jobs}) > 1
        image = (_numeric_param_plot if numeric else _categorical_param_plot)(key, jobs, metric)
        kind = "the line joins the mean per value" if numeric else "the bar marks the mean per option"
        failed = " crosses: jobs that failed a gate," if any(not j.ok for j in jobs) else ""
        figures.append(embed(image, f"{metric} against {key}: each point a job,{failed} {kind}."))
    return '<div class="grid2">' + "".join(figures) + "</div>"


# ------------------------------------------------------------------ plots


@dataclass(frozen=True)
class _Job:
    """One sweep job on a parameter plot: the parameter's value, the metric, succeeded or not."""

    x: str
    y: float
    ok: bool


def _draw_jobs(ax: Any, xs: Sequence[float], jobs: Sequence[_Job], first: bool) -> None:
    for ok, style in ((True, {"marker": "o", "color": AMBER, "edgecolors": "white", "linewidths": 0.5}),
                      (False, {"marker": "X", "color": RED, "linewidths": 0})):
        chosen = [(x, j.y) for x, j in zip(xs, jobs, strict=True) if j.ok == ok]
        if chosen:
            ax.scatter([c[0] for c in chosen], [c[1] for c in chosen], s=30, zorder=3,
                       label=("job" if ok else "job that failed a gate") if first else None, **style)


def _numeric_param_plot(key: str, jobs: Sequence[_Job], metric: str) -> Image:
    def draw(figure: Any) -> None:
        ax = figure.subplots()
        xs = np.array([float(j.x) for j in jobs])
        ys = np.array([j.y for j in jobs])
        levels = np.unique(xs)
        ax.plot(levels, [ys[xs == v].mean() for v in levels], color=BLUE, linewidth=1.6, marker="o",
                markersize=3, label="mean")
        _draw_jobs(ax, list(xs), jobs, first=True)
        if len(levels) > 2 and levels.min() > 0 and levels.max() / levels.min() >= 50:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key}")
        ax.margins(x=0.08, y=0.15)
        ax.legend(loc="best")

    return plot(draw)


def _categorical_param_plot(key: str, jobs: Sequence[_Job], metric: str) -> Image:
    options = list(dict.fromkeys(j.x for j in jobs))
    tilted = max(map(len, options)) > 12

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        for i, option in enumerate(options):
            group = [j for j in jobs if j.x == option]
            # a fixed spread, not random jitter: the same sweep draws the same picture
            spread = np.linspace(-0.12, 0.12, len(group)) if len(group) > 1 else np.zeros(1)
            ax.hlines(np.mean([j.y for j in group]), i - 0.3, i + 0.3, color=BLUE, linewidth=2.2, label="mean")
            _draw_jobs(ax, list(i + spread), group, first=True)  # labels deduplicated below
        ax.set_xticks(range(len(options)), options, rotation=20 if tilted else 0, ha="right" if tilted else "center")
        ax.set_xlim(-0.6, len(options) - 0.4)
        ax.margins(y=0.15)
        ax.grid(axis="x", visible=False)
        ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key}")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), loc="best")

    return plot(draw, margins=(0.7, 0.95 if tilted else 0.55, 0.15, 0.35))
