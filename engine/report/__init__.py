"""The report (``mlops report RUN|SWEEP_DIR``): one self-contained ``report.html``.

A run's report is written into its run directory, a sweep's into its sweep folder.
Everything comes from the files a run leaves behind (``run.json``, the resolved
config, ``quality.json``, ``metrics.json``, ``requirements.json``,
``predictions.parquet``; a sweep's ``summary.json`` and ``leaderboard.csv``), so a
report can be written again at any time, for any run, also one that failed: a file
that is missing leaves its section out, with a note saying why, never a crash.

The page needs nothing but itself: the stylesheet is inline, plots are PNGs made with
matplotlib's Agg renderer and embedded as ``data:`` URIs, there is no script, and a
Content-Security-Policy forbids every fetch. Every string that comes from a config or
the data is HTML-escaped.

The package: ``html`` (escaping, how values read, tables, cards, the page and its
stylesheet), ``plot`` (matplotlib figures embedded as PNGs), ``run`` (what a run
directory holds and the run report's sections) and ``sweep`` (a sweep folder's
leaderboard and parameter plots, then its best run's report).
"""

from __future__ import annotations

from engine.report.html import REPORT_FILE
from engine.report.run import is_run_dir, render_run, write_run_report
from engine.report.sweep import is_sweep_dir, render_sweep, write_sweep_report

__all__ = ["REPORT_FILE", "is_run_dir", "is_sweep_dir", "render_run", "render_sweep", "write_run_report",
           "write_sweep_report"]
