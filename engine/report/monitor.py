"""A monitor run's ``report.html``: the rules, a drift table per feature, reference against
current plots of the drifted columns (and the scores), and the trend over earlier runs.

Drawn from ``monitor.json`` and the reference profile's histograms; the current data's
histograms are binned on the reference's edges, as the methods saw them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.report.html import Markup, badge, escape, fmt, kv_table, page, table, write_page
from engine.report.plot import embed, plot
from engine.stages import monitor as monitoring

#: Columns drawn, the drifted ones first.
MAX_PLOTS = 12


def write_monitor_report(target: Path, body: Mapping[str, Any], reference: Mapping[str, Any],
                         current: monitoring.Current) -> Path:
    """Write the report of one monitor run to ``target``."""
    model = body["model"]
    verdict = "passed" if body["passed"] else "failed"
    parts = [f"<h1>Monitor: {escape(model['ref'])} {badge(verdict)}</h1>",
             kv_table([("model", f"{model['name']}/{model['version']}" if model.get("version") else model["ref"]),
                       ("training run", model["run_id"][:8]), ("current data", body["current"].get("source")),
                       ("reference rows", body["reference"]["rows"]), ("correction", body["correction"]),
                       ("failed (error)", body["failed_errors"]), ("failed (warn)", body["failed_warnings"]),
                       ("drifted columns", body["drifted_columns"])])]
    parts.append("<h2>Rules</h2>")
    parts.append(table(["rule", "dimension", "severity", "verdict", "detail"],
                       [[r["rule"], r["dimension"], r["severity"],
                         Markup(badge(r["verdict"], None if r["verdict"] != "failed" or r["severity"] == "error"
                                      else "warn")), r["detail"]] for r in body["rules"]]))
    chunked = [(r, c) for r in body["rules"] for c in r.get("chunks") or []]
    if chunked:
        parts.append("<h2>Performance per chunk</h2>")
        parts.append(table(["rule", "metric", "chunk", "rows", "value", "± 3 sampling errors",
                            "band (mean ± sigma std)", "verdict", "detail"],
                           [[r["rule"], r.get("metric", ""), c["chunk"], c["rows"], c["value"],
                             f"± {fmt(3 * c['sampling_error'])}" if c.get("sampling_error") is not None else "",
                             " .. ".join(fmt(x) for x in c["band"]) if c.get("band") else "",
                             Markup(badge(c["verdict"], None if c["verdict"] != "failed" or r["severity"] == "error"
                                          else "warn")), c["detail"]] for r, c in chunked], numeric={3, 4}))
    columns = _columns(body)
    if columns:
        parts.append("<h2>Drift per feature</h2>")
        parts.append(table(["column", "type", "method", "statistic", "p-value", "threshold", "drifted",
                            "missing (ref → cur)"],
                           [[c["column"], c["type"], c["method"], c["statistic"], c.get("p_value"), c["threshold"],
                             Markup(badge("drifted" if c["drifted"] else "insufficient data" if c["drifted"] is None
                                          else "stable", "bad" if c["drifted"] else "ok" if c["drifted"] is False
                                          else "neutral")),
                             f"{fmt(c['missing_share']['reference'])} → {fmt(c['missing_share']['current'])}"]
                            for c in columns], numeric={3, 4, 5}))
        shown = sorted(columns, key=lambda c: (not c["drifted"], c["column"]))[:MAX_PLOTS]
        figures = [embed(_histogram(reference["columns"][c["column"]], current, c["column"]),
                       f"{c['column']}: reference against current ({c['method']} {fmt(c['statistic'])})")
                   for c in shown]
        parts.append("<h2>Reference against current</h2>" + "".join(figures))
    if current.scores is not None and len(current.scores) and reference.get("scores", {}).get("rows"):
        scores = {**reference["scores"], "type": "numeric"}
        parts.append("<h2>Scores</h2>" + embed(_numeric_plot(scores, monitoring.bin_current(scores, current.scores)),
                                                "scores: hold-out against current"))
    trend = [*body.get("trend", []), {"started_at": "this run", "drifted_columns": len(body["drifted_columns"]),
                                      "failed_errors": len(body["failed_errors"])}]
    parts.append("<h2>Trend over earlier monitor runs</h2>")
    parts.append(table(["run", "started", "drifted columns", "failed rules (error)"],
                       [[str(t.get("run_id", ""))[:8], t["started_at"], t.get("drifted_columns"),
                         t.get("failed_errors")] for t in trend], numeric={2, 3}))
    if len(trend) > 1:
        counts = [float(t.get("drifted_columns") or 0) for t in trend]
        parts.append(embed(plot(lambda fig: _trend(fig, counts), size=(5.2, 2.6)), "drifted columns per monitor run"))
    return write_page(target, page(f"monitor {model['ref']}", "".join(parts)))


def _columns(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each column once: the row of the rule that tests every column, else the first seen."""
    seen: dict[str, dict[str, Any]] = {}
    for rule in body["rules"]:
        for column in rule.get("columns") or []:
            if "column" in column:  # a performance rule's entry holds key metrics instead
                seen.setdefault(column["column"], column)
    return list(seen.values())


def _histogram(entry: Mapping[str, Any], current: monitoring.Current, column: str) -> Any:
    pair = current.pair(column, entry)
    if pair.kind == "categorical":
        return _categorical_plot(pair)
    return _numeric_plot(entry, pair)


def _categorical_plot(pair: monitoring.Pair) -> Any:
    order = np.argsort(-(pair.reference + pair.current))[:15]
    labels = [pair.labels[i] for i in order]
    r = pair.reference[order] / max(pair.reference_rows, 1)
    c = pair.current[order] / max(pair.current_rows, 1)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        x = np.arange(len(labels))
        ax.bar(x - 0.2, r, 0.4, label="reference")
        ax.bar(x + 0.2, c, 0.4, label="current")
        ax.set_xticks(x, labels, rotation=30, ha="right")
        ax.set_ylabel("share")
        ax.legend()

    return plot(draw, margins=(0.7, 0.9, 0.15, 0.2))


def _numeric_plot(entry: Mapping[str, Any], pair: monitoring.Pair) -> Any:
    reference, current = monitoring._groups(pair)  # the deciles of the reference
    r = reference / max(reference.sum(), 1)
    c = current / max(current.sum(), 1)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        x = np.arange(len(r))
        ax.bar(x - 0.2, r, 0.4, label="reference")
        ax.bar(x + 0.2, c, 0.4, label="current")
        ax.set_xticks(x, [f"d{i + 1}" for i in x])
        ax.set_xlabel("reference decile")
        ax.set_ylabel("share")
        ax.legend()

    return plot(draw)


def _trend(fig: Any, counts: list[float]) -> None:
    ax = fig.add_subplot()
    ax.plot(range(1, len(counts) + 1), counts, marker="o")
    ax.set_xlabel("monitor run")
    ax.set_ylabel("drifted columns")
