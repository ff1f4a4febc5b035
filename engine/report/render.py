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
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine import __version__
from engine.config.business import DESCRIPTIONS, STAKEHOLDERS
from engine.errors import UsageError
from engine.files import write_text
from engine.stages import business

log = logging.getLogger("engine.report")

REPORT_FILE = "report.html"
#: Features shown in the importance chart (the table lists them all).
TOP_IN_CHART = 20
#: Features named in the report's one-line summary.
TOP_NAMED = 5

_BLUE, _AMBER, _RED, _GREEN, _GRAY = "#2563eb", "#d97706", "#dc2626", "#16a34a", "#6b7280"
_MONEY = ("net_value_per_month", "revenue_saved_per_month", "false_positive_cost_per_month")
_STAKEHOLDER_TITLES = {"data_scientist": "Data scientist", "subject_matter_expert": "Subject-matter expert",
                       "business": "Business"}
_STATUS_CLASS = {"succeeded": "ok", "running": "warn", "interrupted": "warn"}


# ------------------------------------------------------------------ public API


def is_run_dir(path: Path) -> bool:
    """A run directory: it has ``run.json``."""
    return (path / "run.json").is_file()


def is_sweep_dir(path: Path) -> bool:
    """A sweep folder: it has the summary :mod:`engine.callbacks` writes."""
    return (path / "summary.json").is_file() or (path / "leaderboard.csv").is_file()


def write_run_report(run_dir: Path) -> Path:
    """Write ``report.html`` into a run directory and return its path.

    Raises:
        UsageError: ``run_dir`` is not a run directory, or the report cannot be written.
    """
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise UsageError(f"usage error: {run_dir} is not a run directory; expected a folder with run.json")
    return _write(run_dir / REPORT_FILE, render_run(run_dir))


def write_sweep_report(sweep_dir: Path) -> Path:
    """Write ``report.html`` into a sweep folder and return its path.

    Raises:
        UsageError: ``sweep_dir`` is not a sweep folder, or the report cannot be written.
    """
    sweep_dir = Path(sweep_dir)
    if not is_sweep_dir(sweep_dir):
        raise UsageError(f"usage error: {sweep_dir} is not a sweep folder; expected summary.json or "
                         "leaderboard.csv in it")
    return _write(sweep_dir / REPORT_FILE, render_sweep(sweep_dir))


def render_run(run_dir: Path) -> str:
    """The HTML of a run's report."""
    run = RunFiles.load(Path(run_dir))
    title = f"{run.name} · run {run.short_id}"
    body = _run_header(run, level=1) + _run_body(run, level=2, prefix="")
    return _page(title, body)


def render_sweep(sweep_dir: Path) -> str:
    """The HTML of a sweep's report."""
    sweep = SweepFiles.load(Path(sweep_dir))
    return _page(f"sweep {sweep.name}", _sweep_body(sweep))


def _write(target: Path, text: str) -> Path:
    try:
        write_text(target, text)
    except OSError as exc:
        raise UsageError(f"usage error: cannot write {target}: {exc}") from exc
    return target


# ------------------------------------------------------------------ reading a run directory


@dataclass
class RunFiles:
    """What a run directory holds; ``None`` for each file that is missing or unreadable."""

    run_dir: Path
    record: dict[str, Any]
    config: dict[str, Any] | None
    config_text: str | None
    quality: dict[str, Any] | None
    metrics: dict[str, Any] | None
    requirements: dict[str, Any] | None
    predictions: Any  # a DataFrame with y_true, y_score, y_pred, or None
    missing: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: Path) -> RunFiles:
        missing: list[tuple[str, str]] = []
        record = _read_json(run_dir / "run.json", missing) or {}
        config_text = _read_text(run_dir / "config.resolved.yaml", missing)
        config = None
        if config_text is not None:
            try:
                loaded = yaml.safe_load(config_text)
                config = loaded if isinstance(loaded, dict) else None
            except yaml.YAMLError as exc:
                missing.append(("config.resolved.yaml", f"unreadable: {_first_line(exc)}"))
        run = cls(run_dir, record, config, config_text, _read_json(run_dir / "quality.json", missing),
                  _read_json(run_dir / "metrics.json", missing), None, None, missing)
        requirements = run_dir / "requirements.json"
        if requirements.exists():
            run.requirements = _read_json(requirements, missing)
        run.predictions = _read_predictions(run_dir / "predictions.parquet", missing)
        return run

    @property
    def name(self) -> str:
        return str(self.record.get("name") or (self.config or {}).get("name") or self.run_dir.name)

    @property
    def short_id(self) -> str:
        return str(self.record.get("id") or "?")[:8]

    @property
    def status(self) -> str:
        return str(self.record.get("status") or "unknown")

    def section(self, key: str) -> Any:
        """A top-level group of the resolved config (``{}`` when absent)."""
        value = (self.config or {}).get(key)
        return value if value is not None else {}


def _read_text(path: Path, missing: list[tuple[str, str]]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        missing.append((path.name, "not written"))
    except (OSError, UnicodeDecodeError) as exc:
        missing.append((path.name, f"unreadable: {_first_line(exc)}"))
    return None


def _read_json(path: Path, missing: list[tuple[str, str]]) -> dict[str, Any] | None:
    text = _read_text(path, missing)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        missing.append((path.name, f"unreadable: {_first_line(exc)}"))
        return None
    if not isinstance(data, dict):
        missing.append((path.name, "unreadable: not a JSON object"))
        return None
    return data


def _read_predictions(path: Path, missing: list[tuple[str, str]]) -> Any:
    if not path.exists():
        missing.append((path.name, "not written"))
        return None
    import pandas as pd

    try:
        frame = pd.read_parquet(path, columns=["y_true", "y_score", "y_pred"])
    except (OSError, ValueError, KeyError, ImportError) as exc:
        missing.append((path.name, f"unreadable: {_first_line(exc)}"))
        return None
    return frame


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# ------------------------------------------------------------------ the run report


def _run_header(run: RunFiles, level: int) -> str:
    record = run.record
    metrics = (run.metrics or {}).get("metrics") or record.get("metrics") or {}
    threshold = (run.metrics or {}).get("threshold") or {}
    model = run.section("model").get("_target_") or (record.get("model") or {}).get("target")
    h = f"h{level}"
    parts = [f'<header class="top"><div class="title"><{h}>{_e(run.name)} '
             f'<span class="muted">· run {_e(run.short_id)}</span></{h}>{_badge(run.status)}</div>',
             f'<p class="muted small">{_e(_when(record.get("started_at")))}'
             f'{" · " + _e(_duration(record.get("duration_s"))) if record.get("duration_s") is not None else ""}'
             f' · <code>{_e(record.get("run_dir") or run.run_dir)}</code></p></header>']
    parts.append(_error_box(record))
    cards: list[tuple[str, str]] = [("model", _short_target(model) if model else "–")]
    for name in ("roc_auc", "f1", "recall"):
        if isinstance(metrics.get(name), int | float):
            cards.append((name.replace("_", " ").upper() if name == "roc_auc" else name, _metric(name, metrics[name])))
    if isinstance(metrics.get("net_value_per_month"), int | float):
        cards.append(("net value a month", _metric("net_value_per_month", metrics["net_value_per_month"])))
    chosen = threshold.get("chosen", metrics.get("threshold"))
    if isinstance(chosen, int | float):
        cards.append(("threshold", f"{chosen:.3g}"))
    parts.append(_cards(cards))
    return "".join(parts)


def _cards(cards: Sequence[tuple[str, str]]) -> str:
    """Headline figures; a long text value gets a wider card."""
    return '<div class="cards">' + "".join(
        f'<div class="card{" wide" if len(value) > 14 else ""}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div></div>' for label, value in cards) + "</div>"


def _error_box(record: Mapping[str, Any]) -> str:
    error = record.get("error")
    status = str(record.get("status") or "")
    if not error and status in ("succeeded", ""):
        return ""
    if isinstance(error, Mapping):
        kind, message, trace = error.get("type"), error.get("message"), error.get("traceback")
    else:
        kind, message, trace = None, error, None
    what = {"failed_quality": "The quality gate stopped this run.",
            "failed_requirements": "This run failed a hard business requirement; it can never be registered.",
            "interrupted": "This run was interrupted.", "running": "This run has not finished yet.",
            "failed": "This run failed."}.get(status, f"This run ended {status}.")
    parts = [f'<div class="alert" role="alert"><strong>{_e(what)}</strong>']
    if message:
        parts.append(f'<p>{f"<code>{_e(kind)}</code>: " if kind else ""}{_e(message)}</p>')
    if trace:
        parts.append(f"<details><summary>traceback</summary><pre>{_e(trace)}</pre></details>")
    return "".join(parts) + "</div>"


@dataclass(frozen=True)
class _Section:
    slug: str
    title: str
    render: Callable[[RunFiles, int], str | None]


def _run_body(run: RunFiles, level: int, prefix: str) -> str:
    """Every section the run has data for, behind a table of contents."""
    sections = (
        _Section("config", "Hypothesis and configuration", _config_section),
        _Section("quality", "Data quality", _quality_section),
        _Section("features", "Features and importances", _features_section),
        _Section("metrics", "Metrics by stakeholder", _metrics_section),
        _Section("value", "Threshold and value", _value_section),
        _Section("curves", "ROC, precision-recall and confusion matrix", _curves_section),
        _Section("requirements", "Requirement verdicts", _requirements_section),
        _Section("provenance", "Provenance", _provenance_section),
    )
    rendered: list[tuple[_Section, str]] = []
    for section in sections:
        try:
            content = section.render(run, level + 1)
        except Exception as exc:  # noqa: BLE001 - a report shows what it can; one bad section never hides the rest
            log.warning("report: section %s of %s could not be rendered: %s", section.slug, run.run_dir, exc)
            content = f'<p class="alert">This section could not be rendered: {_e(_first_line(exc))}</p>'
        if content is not None:
            rendered.append((section, content))
    h = f"h{level}"
    toc = "".join(f'<li><a href="#{prefix}{s.slug}">{_e(s.title)}</a></li>' for s, _ in rendered)
    parts = [f'<nav class="toc"><ol>{toc}</ol></nav>' if toc else ""]
    if run.missing:
        notes = "".join(f"<li><code>{_e(name)}</code>: {_e(why)}{_e(_consequence(name))}</li>"
                        for name, why in run.missing)
        parts.append(f'<div class="note"><strong>Not in this report</strong><ul>{notes}</ul></div>')
    parts += [f'<section id="{prefix}{s.slug}"><{h}>{_e(s.title)}</{h}>{content}</section>' for s, content in rendered]
    return "".join(parts)


def _consequence(name: str) -> str:
    return {
        "config.resolved.yaml": " (no configuration summary or value curve; the run stopped before validating)",
        "quality.json": " (no data-quality section; the run stopped before the quality stage)",
        "metrics.json": " (no metrics, importances or value; the run stopped before the evaluate stage)",
        "predictions.parquet": " (no curves or confusion matrix; the run stopped before the evaluate stage)",
    }.get(name, "")


def _config_section(run: RunFiles, level: int) -> str | None:
    if run.config is None:
        return None
    cfg = run.config
    h = f"h{level}"
    hypothesis = cfg.get("hypothesis")
    parts = [f'<blockquote class="hypothesis">{_e(hypothesis)}</blockquote>' if hypothesis else
             '<p class="muted">No hypothesis recorded (set <code>hypothesis:</code> in an experiment).</p>']
    model = run.section("model")
    params = [(k, v) for k, v in model.items() if k != "_target_"]
    overrides = (run.record.get("provenance") or {}).get("overrides")
    if overrides is None:
        overrides = _hydra_overrides(run.run_dir)
    split_cfg = run.section("split")
    split_stage = (run.record.get("stages") or {}).get("split") or {}
    facts = [("model", Markup(f"<code>{_e(model.get('_target_', '–'))}</code>")),
             ("name", cfg.get("name")), ("as_of (cut-off)", cfg.get("as_of")), ("seed", cfg.get("seed")),
             ("split", ", ".join(f"{k}={_fmt(v)}" for k, v in split_cfg.items()) or None)]
    if split_stage:
        facts.append(("rows", f"{_fmt(split_stage.get('train_rows'))} train, "
                              f"{_fmt(split_stage.get('test_rows'))} hold-out"))
    facts.append(("overrides", Markup(" ".join(f"<code>{_e(o)}</code>" for o in overrides)) if overrides
                  else Markup('<span class="muted">none (the defaults of conf/)</span>')))
    parts.append('<div class="grid2"><div>' + f"<{h}>Run</{h}>" + _kv_table(facts) + "</div><div>"
                 + f"<{h}>Model parameters</{h}>"
                 + (_kv_table([(k, v) for k, v in params]) if params else '<p class="muted">none</p>')
                 + "</div></div>")
    sources = (run.section("data").get("sources") or {})
    recorded = run.record.get("data") or {}
    if sources:
        rows = []
        for name, source in sources.items():
            source = source or {}
            where = source.get("path") or source.get("url") or ""
            if source.get("query"):
                where = f"{where} · {source['query']}"
            rows.append([Markup(f"<strong>{_e(name)}</strong>"), source.get("type"),
                         Markup(f"<code>{_e(where)}</code>"), source.get("key"), source.get("timestamp"),
                         (recorded.get(name) or {}).get("rows")])
        parts.append(f"<{h}>Data sources</{h}>" + _table(["source", "type", "location", "key", "event time", "rows"],
                                                          rows, numeric={5}))
    features = run.section("features")
    used = _features_used(run)
    if features or used:
        target = features.get("target") or {}
        facts = [("entity", (features.get("entity") or {}).get("key") if isinstance(features.get("entity"), Mapping)
                  else features.get("entity")),
                 ("population", Markup(f"<code>{_e(features.get('population'))}</code>") if features.get("population")
                  else None),
                 ("target", Markup(f"<code>{_e(target.get('name'))}</code> = <code>{_e(target.get('expr'))}</code>")
                  if target else None),
                 ("features used", Markup(f"{len(used)}: " + ", ".join(f"<code>{_e(f)}</code>" for f in used))
                  if used else None)]
        parts.append(f"<{h}>Features</{h}>" + _kv_table([(k, v) for k, v in facts if v is not None]))
    if run.config_text:
        parts.append(f"<details><summary>The full resolved configuration (config.resolved.yaml)</summary>"
                     f"<pre>{_e(run.config_text)}</pre></details>")
    return "".join(parts)


def _hydra_overrides(run_dir: Path) -> list[str]:
    try:
        loaded = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in loaded] if isinstance(loaded, list) else []


def _features_used(run: RunFiles) -> list[str]:
    stage = (run.record.get("stages") or {}).get("features") or {}
    if isinstance(stage.get("features"), list):
        return [str(f) for f in stage["features"]]
    values = ((run.metrics or {}).get("importances") or {}).get("values") or {}
    return [str(f) for f in values]


def _quality_section(run: RunFiles, level: int) -> str | None:
    quality = run.quality
    if quality is None:
        return None
    h = f"h{level}"
    gate = str(quality.get("gate") or "?")
    line = f'Checked as of <code>{_e(quality.get("as_of"))}</code>: gate {_badge(gate)}'
    if quality.get("failed_errors"):
        line += " · rules of severity error failed: " + _codes(quality["failed_errors"])
    if quality.get("failed_warnings"):
        line += " · warnings: " + _codes(quality["failed_warnings"])
    parts = [f"<p>{line}</p>"]
    rules = [r for r in quality.get("rules") or [] if isinstance(r, Mapping)]
    scores = quality.get("scores") or {}
    if scores:
        rows = []
        for dimension, score in scores.items():
            score = score if isinstance(score, Mapping) else {"score": score}
            value = score.get("score")
            failed = [r["rule"] for r in rules if r.get("dimension") == dimension and not r.get("passed")]
            rows.append([Markup(f"<strong>{_e(dimension)}</strong>"),
                         f"{_fmt(score.get('passed'))} / {_fmt(score.get('rules'))}" if "rules" in score else "–",
                         Markup(_score_bar(value)),
                         Markup(_codes(failed) if failed else '<span class="muted">–</span>')])
        parts.append(f"<{h}>Scores by dimension</{h}>" + _table(
            ["dimension", "rules passed", "score", "failed rules"], rows))
    failed_rules = [r for r in rules if not r.get("passed")]
    if failed_rules:
        parts.append(f"<{h}>Failed rules</{h}>" + _rules_table(failed_rules))
    passed = [r for r in rules if r.get("passed")]
    if passed:
        parts.append(f"<details><summary>{len(passed)} rule(s) passed</summary>{_rules_table(passed)}</details>")
    return "".join(parts)


def _rules_table(rules: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for rule in rules:
        examples = rule.get("examples") or []
        shown = ", ".join(_example(x) for x in examples[:5])
        unexpected = rule.get("unexpected")
        denominator = rule.get("denominator")
        failing = (f"{_fmt(unexpected)} / {_fmt(denominator)} {rule.get('denominator_kind') or ''}".strip()
                   if unexpected is not None else "–")
        severity = str(rule.get("severity") or "")
        rows.append([Markup(f"<strong>{_e(rule.get('rule'))}</strong><br><span class='muted'>"
                            f"{_e(rule.get('description') or '')}</span>"),
                     rule.get("dimension"), rule.get("check"),
                     Markup(_badge(severity, "bad" if severity == "error" and not rule.get("passed") else
                                   ("warn" if not rule.get("passed") else "neutral"))),
                     rule.get("observed"), rule.get("threshold"), failing,
                     Markup(f'<span class="small">{_e(shown)}{" …" if len(examples) > 5 else ""}</span>')
                     if shown else "–"])
    return _table(["rule", "dimension", "check", "severity", "observed", "required", "failing", "examples"], rows)


def _example(example: Any) -> str:
    """A failing example as ``key: value`` (ids as they are, no thousands separators)."""
    if not isinstance(example, Mapping):
        return str(example)
    value = example.get("value")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if example.get("key") is None else f"{example['key']}: {text}"


def _features_section(run: RunFiles, level: int) -> str | None:
    importances = (run.metrics or {}).get("importances") or {}
    values = {str(k): float(v) for k, v in (importances.get("values") or {}).items()
              if isinstance(v, int | float) and math.isfinite(v)}
    used = _features_used(run)
    if not values and not used:
        return None
    kind = importances.get("kind")
    definitions = _feature_definitions(run.section("features"))
    ranked = sorted(values, key=lambda f: -abs(values[f]))
    parts = []
    if ranked:
        parts.append(f"<p>Top features: {', '.join(f'<strong>{_e(f)}</strong>' for f in ranked[:TOP_NAMED])} "
                     f'<span class="muted">(importances from {_e(kind or "the model")})</span></p>')
        parts.append(_figure(_importance_plot(values, ranked[:TOP_IN_CHART], str(kind or "importance")),
                             f"Feature importance ({kind or 'as reported'}); the largest "
                             f"{min(len(ranked), TOP_IN_CHART)} of {len(ranked)}."))
    else:
        parts.append(f'<p class="muted">The run recorded no feature importances '
                     f'({"metrics.json has none" if run.metrics else "metrics.json is missing"}).</p>')
    order = ranked + [f for f in used if f not in values]
    rows = [[i + 1, Markup(f"<code>{_e(f)}</code>"), values.get(f),
             Markup(f"<code>{_e(definitions[f])}</code>") if f in definitions else "–"] for i, f in enumerate(order)]
    parts.append(_table(["rank", "feature", "importance", "definition"], rows, numeric={0, 2}))
    return "".join(parts)


def _feature_definitions(features: Mapping[str, Any]) -> dict[str, str]:
    """Feature name -> one line saying how it is computed, from ``conf/features/``."""
    out: dict[str, str] = {}
    for name, source in (features.get("attributes") or {}).items():
        out[str(name)] = str(source)
    for group in (features.get("groups") or {}).values():
        if not isinstance(group, Mapping):
            continue
        for name, agg in (group.get("aggregations") or {}).items():
            if not isinstance(agg, Mapping):
                continue
            column = f"({agg['column']})" if agg.get("column") else ""
            window = f" over {agg['window']}" if agg.get("window") else ""
            out[str(name)] = f"{agg.get('agg')}{column} of {group.get('source')}{window}"
    for name, expr in (features.get("derived") or {}).items():
        out[str(name)] = str(expr)
    return out


def _metrics_section(run: RunFiles, level: int) -> str | None:
    metrics = run.metrics or {}
    groups = metrics.get("stakeholders")
    if not isinstance(groups, Mapping):
        flat = metrics.get("metrics") or {}
        if not flat:
            return None
        groups = {group: {n: flat.get(n) for n in names if n in flat} for group, names in STAKEHOLDERS.items()}
    h = f"h{level}"
    cards = []
    for group, values in groups.items():
        if not isinstance(values, Mapping):
            continue
        rows = [[Markup(f"<strong>{_e(name)}</strong><br><span class='muted small'>"
                        f"{_e(DESCRIPTIONS.get(name, ''))}</span>"), Markup(_e(_metric(name, value)))]
                for name, value in values.items()]
        cards.append(f'<div class="stakeholder"><{h}>{_e(_STAKEHOLDER_TITLES.get(group, group))}</{h}>'
                     + _table(["metric", "value"], rows, numeric={1}) + "</div>")
    threshold = metrics.get("threshold") or {}
    chosen = threshold.get("chosen")
    note = (f'<p class="muted">At the decision threshold {_e(_fmt(chosen))} ({_e(threshold.get("policy") or "")}), '
            f"on the hold-out set, scaled to a month of the configured population.</p>"
            if isinstance(chosen, int | float) else "")
    return note + '<div class="grid3">' + "".join(cards) + "</div>"


def _value_section(run: RunFiles, level: int) -> str | None:
    metrics = run.metrics or {}
    threshold = metrics.get("threshold") or {}
    money = metrics.get("business") or {}
    if not threshold and not money:
        return None
    h = f"h{level}"
    parts = []
    chosen, policy = threshold.get("chosen"), threshold.get("policy")
    if chosen is not None:
        parts.append(f'<p>Threshold used: <strong>{_e(_fmt(chosen))}</strong> ({_e(policy or "?")}); '
                     f'default {_e(_fmt(threshold.get("default")))}, best net value at '
                     f'{_e(_fmt(threshold.get("best")))}'
                     + (f' (chosen on {_e(threshold["best_chosen_on"])})' if threshold.get("best_chosen_on") else "")
                     + ". A customer whose score is at or above the threshold gets the offer.</p>")
    lines = []
    for key, label in (("design_estimate", "simple estimate (design)"),
                       ("model_estimate", "simple estimate (this model)")):
        estimate = money.get(key)
        if isinstance(estimate, Mapping):
            try:
                lines.append(business.estimate_line(estimate, label))
            except (KeyError, TypeError, ValueError):
                continue
    if lines:
        parts.append('<div class="estimates">' + "".join(f"<p>{_e(line)}</p>" for line in lines) + "</div>")
    columns = [("at_default_threshold", f"at {_fmt(threshold.get('default', business.DEFAULT_THRESHOLD))} (default)"),
               ("at_best_threshold", f"at {_fmt(threshold.get('best'))} (best)")]
    at = {key: money.get(key) for key, _ in columns if isinstance(money.get(key), Mapping)}
    if chosen is not None and policy != "best net value" and isinstance(metrics.get("metrics"), Mapping):
        columns.append(("chosen", f"at {_fmt(chosen)} (chosen)"))
        at["chosen"] = metrics["metrics"]
    if at:
        names = ("precision", "recall", "share_churners_caught", "churners_caught_per_month",
                 "customers_contacted_per_month", "contacted_at_risk_share", "needless_offers_per_month",
                 "customers_retained_per_month", "revenue_saved_per_month", "false_positive_cost_per_month",
                 "net_value_per_month")
        rows = [[Markup(f"<strong>{_e(n)}</strong>")] + [Markup(_e(_metric(n, at[k].get(n))))
                                                        for k, _ in columns if k in at]
                for n in names if any(n in at[k] for k, _ in columns if k in at)]
        parts.append(f"<{h}>Value a month at 0.5 and at the best threshold</{h}>"
                     + _table(["", *[label for k, label in columns if k in at]], rows,
                              numeric=set(range(1, len(at) + 1)), highlight_last_row=True))
    curve = _value_curve(run)
    if curve is not None:
        parts.append(_figure(_value_plot(curve, threshold),
                             "Net value a month against the decision threshold, on the hold-out set scaled to the "
                             "population; dashed: 0.5, solid: the threshold used."))
    return "".join(parts)


@dataclass(frozen=True)
class _ValueCurve:
    """Net value a month by threshold: ``net[i]`` when offering to scores >= ``thresholds[i]``
    (ascending hold-out scores); ``nobody`` above the highest score."""

    thresholds: np.ndarray
    net: np.ndarray
    nobody: float

    def at(self, threshold: float) -> float:
        i = int(np.searchsorted(self.thresholds, threshold, side="left"))  # the lowest score >= threshold
        return self.nobody if i == len(self.thresholds) else float(self.net[i])


def _value_curve(run: RunFiles) -> _ValueCurve | None:
    if run.predictions is None or not len(run.predictions):
        return None
    business_cfg = run.section("business") or ((run.metrics or {}).get("business") or {}).get("inputs") or {}
    try:
        economics = business.Economics.from_config(business_cfg)
    except (TypeError, ValueError):
        return None
    curve = business.value_curve(economics, run.predictions["y_true"].to_numpy(),
                                 run.predictions["y_score"].to_numpy())
    finite = np.isfinite(curve["threshold"])
    order = np.argsort(curve["threshold"][finite])
    nobody = curve["net_value"][~finite]
    return _ValueCurve(curve["threshold"][finite][order], curve["net_value"][finite][order],
                       float(nobody[0]) if len(nobody) else 0.0)


def _curves_section(run: RunFiles, level: int) -> str | None:
    frame = run.predictions
    if frame is None or not len(frame):
        return None
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y_true = frame["y_true"].to_numpy().astype(int)
    y_score = frame["y_score"].to_numpy().astype(float)
    y_pred = frame["y_pred"].to_numpy().astype(int)
    threshold = (run.metrics or {}).get("threshold") or {}
    chosen = threshold.get("chosen")
    figures = []
    if len(np.unique(y_true)) == 2:
        fpr, tpr, roc_thresholds = roc_curve(y_true, y_score)
        precision, recall, pr_thresholds = precision_recall_curve(y_true, y_score)
        points = {label: t for label, t in (("0.5", business.DEFAULT_THRESHOLD), ("chosen", chosen))
                  if isinstance(t, int | float)}
        figures.append(_figure(_roc_plot(fpr, tpr, roc_auc_score(y_true, y_score), y_true, y_score, points),
                               "ROC curve on the hold-out set; markers: the operating points at 0.5 and at the "
                               "threshold used."))
        figures.append(_figure(_pr_plot(precision, recall, average_precision_score(y_true, y_score),
                                        float(y_true.mean()), y_true, y_score, points),
                               "Precision against recall; dotted: the churn rate (a random ranking)."))
    else:
        figures.append('<p class="muted">The hold-out set has one class only: no ROC or precision-recall curve.</p>')
    target = str((run.section("features").get("target") or {}).get("name") or "positive")
    at = f" ({chosen:.3g})" if isinstance(chosen, int | float) else ""
    figures.append(_figure(_confusion_plot(y_true, y_pred, target),
                           f"Confusion matrix of the {len(y_true):,} hold-out customers at the threshold used{at}."))
    figures.append(_counts_table(y_true, y_pred, target, at))
    return '<div class="grid2">' + "".join(figures) + "</div>"


def _counts_table(y_true: np.ndarray, y_pred: np.ndarray, target: str, at: str) -> str:
    """The confusion matrix read out: what flagging meant on the hold-out set."""
    tp = int(((y_pred == 1) & (y_true == 1)).sum())
    fp = int(((y_pred == 1) & (y_true == 0)).sum())
    fn = int(((y_pred == 0) & (y_true == 1)).sum())
    tn = int(((y_pred == 0) & (y_true == 0)).sum())

    def share(part: int, whole: int) -> str:
        return f"{part / whole:.1%}" if whole else "–"

    rows = [
        ("hold-out customers", f"{len(y_true):,}", f"{tp + fn:,} {target} ({share(tp + fn, len(y_true))})"),
        ("flagged", f"{tp + fp:,}", f"{share(tp + fp, len(y_true))} of all"),
        (f"{target}, flagged (true positives)", f"{tp:,}", f"recall {share(tp, tp + fn)}"),
        (f"{target}, missed (false negatives)", f"{fn:,}", f"{share(fn, tp + fn)} of the {target}"),
        (f"not {target}, flagged (false positives)", f"{fp:,}", f"precision {share(tp, tp + fp)}"),
        (f"not {target}, left alone (true negatives)", f"{tn:,}", f"false-alarm rate {share(fp, fp + tn)}"),
    ]
    return (f'<div class="counts"><h4>At the threshold used{_e(at)}</h4>'
            + _table(["", "customers", ""], [[Markup(f"<strong>{_e(a)}</strong>"), b, c] for a, b, c in rows],
                     numeric={1}) + "</div>")


def _requirements_section(run: RunFiles, level: int) -> str | None:
    verdicts = [v for v in (run.requirements or {}).get("verdicts") or [] if isinstance(v, Mapping)]
    if run.requirements is None:
        return None
    if not verdicts:
        return '<p class="muted">No business requirement was declared.</p>'
    counts = {k: sum(v.get("verdict") == k for v in verdicts) for k in ("passed", "warned", "failed")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    rows = [[Markup(f"<strong>{_e(v.get('requirement'))}</strong>"), v.get("kind"), v.get("required"),
             v.get("observed"), Markup(_badge(str(v.get("verdict")))), "hard" if v.get("hard") else "soft",
             v.get("detail")] for v in verdicts]
    return f"<p>{_e(summary)}.</p>" + _table(
        ["requirement", "kind", "required", "observed", "verdict", "", "detail"], rows)


def _provenance_section(run: RunFiles, level: int) -> str | None:
    record = run.record
    if not record:
        return None
    h = f"h{level}"
    prov = record.get("provenance") or {}
    model = record.get("model") or {}
    facts: list[tuple[str, Any]] = [
        ("run id", Markup(f"<code>{_e(record.get('id'))}</code>")), ("status", Markup(_badge(run.status))),
        ("started", _when(record.get("started_at"))), ("ended", _when(record.get("ended_at"))),
        ("duration", _duration(record.get("duration_s"))),
        ("command", Markup(f"<code>{_e(' '.join(map(str, prov.get('command') or [])))}</code>")
         if prov.get("command") else None),
        ("project", Markup(f"<code>{_e(prov.get('project_dir'))}</code>") if prov.get("project_dir") else None),
        ("project code", _git_line(prov.get("git"))),
        ("engine code", _git_line((prov.get("engine") or {}).get("git")) if prov.get("engine") else None),
        ("python", " · ".join(str(x) for x in (prov.get("python"), prov.get("implementation"), prov.get("platform"))
                              if x) or None),
        ("model file", Markup(f"<code>{_e(model.get('path'))}</code> sha256 <code>{_e(model.get('sha256'))}</code>")
         if model.get("sha256") else None),
        ("seed", (record.get("determinism") or {}).get("seed", record.get("seed"))),
        ("threads", (record.get("determinism") or {}).get("threads")),
    ]
    parts = ['<div class="grid2"><div>' + _kv_table([(k, v) for k, v in facts if v not in (None, "")]) + "</div>"]
    packages = prov.get("packages") or {}
    parts.append("<div>" + (f"<{h}>Package versions</{h}>" + _table(
        ["package", "version"], [[Markup(f"<code>{_e(k)}</code>"), v] for k, v in packages.items()])
        if packages else "") + "</div></div>")
    data = record.get("data") or {}
    if data:
        rows = [[Markup(f"<strong>{_e(name)}</strong>"), d.get("type"), Markup(f"<code>{_e(d.get('location'))}</code>"),
                 d.get("rows"), Markup(f'<code title="{_e(d.get("fingerprint"))}">'
                                       f'{_e(_short_hash(d.get("fingerprint")))}</code>')]
                for name, d in data.items() if isinstance(d, Mapping)]
        parts.append(f"<{h}>Data fingerprints</{h}>" + _table(["source", "type", "location", "rows", "fingerprint"],
                                                              rows, numeric={3}))
    tables = (record.get("features") or {}).get("tables") or []
    if tables:
        rows = [[t.get("group") or t.get("table"), t.get("status"), t.get("rows"),
                 Markup(f"<code>{_e(_short_hash(t.get('key')))}</code>")] for t in tables if isinstance(t, Mapping)]
        parts.append(f"<{h}>Feature-store tables</{h}>" + _table(["table", "status", "rows", "key"], rows, numeric={2}))
    stages = record.get("stages") or {}
    if stages:
        longest = max((s.get("duration_s") or 0 for s in stages.values() if isinstance(s, Mapping)), default=0) or 1
        rows = [[Markup(f"<strong>{_e(name)}</strong>"), Markup(_badge(str(s.get("status")))),
                 _duration(s.get("duration_s")), Markup(_score_bar((s.get("duration_s") or 0) / longest, label=False))]
                for name, s in stages.items() if isinstance(s, Mapping)]
        parts.append(f"<{h}>Stages</{h}>" + _table(["stage", "status", "duration", ""], rows, numeric={2}))
    return "".join(parts)


def _git_line(git: Any) -> Any:
    if not isinstance(git, Mapping):
        return Markup('<span class="muted">not a git work tree</span>')
    dirty = git.get("dirty")
    text = f"<code>{_e(git.get('commit'))}</code>"
    if dirty:
        text += f' {_badge("dirty", "warn")} diff sha256 <code>{_e(_short_hash(git.get("diff_sha256")))}</code>'
    else:
        text += " clean"
    return Markup(text)


# ------------------------------------------------------------------ the sweep report


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
        summary = _read_json(sweep_dir / "summary.json", missing) or {}
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
        record = _read_json(path, [])
        if record is None:
            continue
        rows.append({"job": path.parent.name, "run": str(record.get("id", ""))[:8], "status": record.get("status"),
                     **{k: v for k, v in (record.get("metrics") or {}).items()},
                     "overrides": " ".join(_hydra_overrides(path.parent))})
    columns = ["job", "run", "status", metric, *sorted({k for r in rows for k in r} - {
        "job", "run", "status", "overrides", metric}), "overrides"]
    return rows, columns


def _job_overrides(sweep: SweepFiles, row: Mapping[str, Any]) -> dict[str, str]:
    """A job's overrides as key -> value (from its .hydra/overrides.yaml, else the leaderboard)."""
    job = str(row.get("job") or "")
    listed = _hydra_overrides(sweep.sweep_dir / job) if job else []
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


def _sweep_body(sweep: SweepFiles) -> str:
    summary, metric, mode = sweep.summary, sweep.metric, sweep.mode
    failed = [f for f in summary.get("failed") or [] if isinstance(f, Mapping)]
    if not summary.get("failed"):
        failed = [{"job": r.get("job"), "run": r.get("run"), "status": r.get("status"), "error": None}
                  for r in sweep.rows if r.get("status") not in ("succeeded", None)]
    jobs = summary.get("jobs", len(sweep.rows))
    best = summary.get("best") if isinstance(summary.get("best"), Mapping) else None
    status = "succeeded" if jobs and not failed else ("failed" if not best else "partly failed")
    badge = _badge(f"{jobs - len(failed) if isinstance(jobs, int) else '?'}/{jobs} succeeded",
                   "ok" if status == "succeeded" else ("bad" if status == "failed" else "warn"))
    best_dir = sweep.sweep_dir / str(best["job"]) if best and best.get("job") is not None else None
    best_run = RunFiles.load(best_dir) if best_dir is not None and is_run_dir(best_dir) else None
    if best_run is None:  # a job's config still says what the sweep was for
        first = next((p.parent for p in sorted(sweep.sweep_dir.glob("*/run.json"))), None)
        context = RunFiles.load(first) if first is not None else None
    else:
        context = best_run
    hypothesis = (context.config or {}).get("hypothesis") if context else None
    parts = [f'<header class="top"><div class="title"><h1>Sweep {_e(sweep.name)}</h1>{badge}</div>'
             f'<p class="muted small"><code>{_e(sweep.sweep_dir)}</code></p></header>']
    cards = [("jobs", _fmt(jobs)), ("failed", _fmt(len(failed))), ("selected by", f"{metric} ({mode})"),
             ("wall time", _duration(summary.get("wall_time_s")))]
    if best:
        cards.append((f"best {metric}", _metric(metric, _number(best.get(metric)))))
        cards.append(("best job", f"{best.get('job')} (run {best.get('run')})"))
    parts.append(_cards(cards))
    toc = [("sweep-hypothesis", "Hypothesis"), ("leaderboard", "Leaderboard"),
           ("parameters", f"{metric} against each swept parameter")]
    if failed:
        toc.append(("failed", "Failed jobs"))
    if best_run is not None:
        toc.append(("best", f"The best run: job {best.get('job') if best else '?'}"))
    parts.append('<nav class="toc"><ol>' + "".join(f'<li><a href="#{slug}">{_e(t)}</a></li>' for slug, t in toc)
                 + "</ol></nav>")
    parts.append('<section id="sweep-hypothesis"><h2>Hypothesis</h2>' + (
        f'<blockquote class="hypothesis">{_e(hypothesis)}</blockquote>' if hypothesis else
        '<p class="muted">No hypothesis recorded (set <code>hypothesis:</code> in the experiment).</p>') + "</section>")
    parts.append(f'<section id="leaderboard"><h2>Leaderboard</h2>{_leaderboard(sweep, best)}</section>')
    parts.append(f'<section id="parameters"><h2>{_e(metric)} against each swept parameter</h2>'
                 f"{_parameter_plots(sweep)}</section>")
    if failed:
        rows = [[f.get("job"), f.get("run"), Markup(_badge(str(f.get("status")))),
                 Markup(f"<code>{_e(f.get('error') or '')}</code>") if f.get("error") else "–"] for f in failed]
        parts.append('<section id="failed"><h2>Failed jobs</h2>'
                     + _table(["job", "run", "status", "error"], rows) + "</section>")
    if best_run is not None:
        parts.append('<section id="best" class="best">'
                     + _run_header(best_run, level=2).replace('class="top"', 'class="top sub"', 1)
                     + _run_body(best_run, level=3, prefix="best-") + "</section>")
    elif best:
        parts.append(f'<p class="note">The best job\'s folder ({_e(best_dir)}) is missing: no run section.</p>')
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
                cells.append(Markup(f'<a href="{_e(value)}/{REPORT_FILE}">{_e(value)}</a>'))
            elif column in ("job", "run"):
                cells.append(str(value or "–"))
            elif column == "status":
                cells.append(Markup(_badge(str(value))))
            elif column in swept:
                cells.append(Markup(f'<code class="nw">{_e(value)}</code>') if value is not None else "–")
            elif _number(value) is not None:
                shown = _metric(column, _number(value))
                cells.append(Markup(f"<strong>{_e(shown)}</strong>") if column == metric else shown)
            else:
                cells.append(value if value not in ("", None) else "–")
        rows.append(cells)
    best_job = str(best.get("job")) if best else None
    marked = {i for i, r in enumerate(sweep.rows) if best_job is not None and str(r.get("job")) == best_job}
    intro = (f"<p>Best first by <strong>{_e(metric)}</strong> ({_e(sweep.mode)}); the best job is highlighted. "
             + (f"Every job also ran with {' '.join(f'<code>{_e(k)}={_e(v)}</code>' for k, v in common.items())}."
                if common else "") + "</p>")
    return intro + _table(columns, rows, numeric=numeric, marked_rows=marked)


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
        return f'<p class="muted">No job has {_e(metric)}: nothing to plot.</p>'
    figures = []
    for key in swept:
        jobs = [_Job(o[key], v, ok) for o, v, ok in points if o.get(key) is not None]
        numeric = all(_number(j.x) is not None for j in jobs) and len({_number(j.x) for j in jobs}) > 1
        image = (_numeric_param_plot if numeric else _categorical_param_plot)(key, jobs, metric)
        kind = "the line joins the mean per value" if numeric else "the bar marks the mean per option"
        failed = " crosses: jobs that failed a gate," if any(not j.ok for j in jobs) else ""
        figures.append(_figure(image, f"{metric} against {key}: each point a job,{failed} {kind}."))
    return '<div class="grid2">' + "".join(figures) + "</div>"


# ------------------------------------------------------------------ plots


_RC = {"font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelsize": 9,
       "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.35,
       "grid.linewidth": 0.6, "axes.edgecolor": "#9ca3af", "axes.labelcolor": "#374151",
       "xtick.color": "#4b5563", "ytick.color": "#4b5563", "legend.frameon": False, "legend.fontsize": 8}


@dataclass(frozen=True)
class _Image:
    png: bytes
    width: int
    height: int
    dpi: int


#: Pixels per inch of the PNGs; a figure inch is shown as 100 CSS pixels, so the
#: images stay sharp on high-density screens.
_DPI = 160


def _plot(draw: Callable[[Any], None], size: tuple[float, float] = (5.2, 3.4),
          margins: tuple[float, float, float, float] = (0.7, 0.55, 0.15, 0.35)) -> _Image:
    """Draw on a new figure and return it as PNG bytes.

    Figures come from :class:`matplotlib.figure.Figure`, not pyplot (matplotlib's advice
    for servers): pyplot keeps every figure it opens until ``plt.close``, this one is
    freed with its last reference, so a long sweep that writes many reports holds no
    figures, and the backend pyplot would pick never matters. Saving a bare Figure to
    PNG renders with Agg. The style is applied with ``rc_context``, which is global to
    the process: one report is drawn at a time per process (Hydra's parallel launchers
    run jobs in processes).

    Args:
        margins: left, bottom, right, top in inches. Fixed margins instead of the
            constrained layout engine, which measures every label twice and doubled the
            time a report took.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=size, dpi=_DPI)
        left, bottom, right, top = margins
        figure.subplots_adjust(left=left / size[0], bottom=bottom / size[1], right=1 - right / size[0],
                               top=1 - top / size[1])
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    figure.clear()
    png = buffer.getvalue()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return _Image(png, width, height, _DPI)


def _figure(image: _Image, caption: str) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    width, height = round(image.width * 100 / image.dpi), round(image.height * 100 / image.dpi)
    return (f'<figure><img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>')


def _importance_plot(values: Mapping[str, float], shown: Sequence[str], kind: str) -> _Image:
    names = list(reversed(shown))

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        weights = [values[n] for n in names]
        colors = [_BLUE if w >= 0 else _RED for w in weights]
        ax.barh(names, weights, color=colors, height=0.65)
        ax.set_xlabel(f"importance ({kind})")
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="y", length=0)
        for i, w in enumerate(weights):
            ax.annotate(f"{w:.3g}", (w, i), xytext=(3 if w >= 0 else -3, 0), textcoords="offset points",
                        va="center", ha="left" if w >= 0 else "right", fontsize=7, color="#374151")
        ax.margins(x=0.12)

    left = 0.3 + 0.07 * max((len(n) for n in names), default=4)  # room for the longest feature name
    return _plot(draw, size=(7.6, 0.27 * len(names) + 0.8), margins=(left, 0.5, 0.2, 0.15))


def _operating_point(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(false-positive rate, recall, precision) when customers at or above ``threshold`` are flagged."""
    flagged = y_score >= threshold
    positives, negatives = max(int(y_true.sum()), 1), max(int((1 - y_true).sum()), 1)
    tp = int((flagged & (y_true == 1)).sum())
    fp = int((flagged & (y_true == 0)).sum())
    return fp / negatives, tp / positives, tp / (tp + fp) if tp + fp else 1.0


def _point_label(label: str, threshold: float) -> str:
    return f"threshold {threshold:.3g}" + (" (used)" if label == "chosen" else "")


_POINT_STYLE = {"0.5": {"color": _GRAY, "marker": "s"}, "chosen": {"color": _AMBER, "marker": "o"}}


def _mark_points(ax: Any, points: Mapping[str, float], y_true: np.ndarray, y_score: np.ndarray,
                 where: Callable[[float, float, float], tuple[float, float]]) -> None:
    """Mark each threshold's operating point; ``where`` picks the plot's two coordinates
    from (false-positive rate, recall, precision)."""
    for label, threshold in points.items():
        x, y = where(*_operating_point(y_true, y_score, threshold))
        ax.plot([x], [y], linestyle="none", markersize=7, markeredgecolor="white",
                label=_point_label(label, threshold), **_POINT_STYLE[label])


def _roc_plot(fpr: np.ndarray, tpr: np.ndarray, auc: float, y_true: np.ndarray, y_score: np.ndarray,
              points: Mapping[str, float]) -> _Image:
    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.plot([0, 1], [0, 1], linestyle="--", color="#9ca3af", linewidth=1, label="random")
        ax.plot(fpr, tpr, color=_BLUE, linewidth=1.8, label=f"model (AUC {auc:.3f})")
        _mark_points(ax, points, y_true, y_score, lambda fpr, recall, precision: (fpr, recall))
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel="false-positive rate (stayers flagged)",
               ylabel="recall (churners flagged)", title="ROC curve")
        ax.legend(loc="lower right")

    return _plot(draw)


def _pr_plot(precision: np.ndarray, recall: np.ndarray, ap: float, base_rate: float, y_true: np.ndarray,
             y_score: np.ndarray, points: Mapping[str, float]) -> _Image:
    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.axhline(base_rate, linestyle=":", color="#9ca3af", linewidth=1, label=f"churn rate {base_rate:.1%}")
        ax.plot(recall, precision, color=_BLUE, linewidth=1.8, drawstyle="steps-post",
                label=f"model (AP {ap:.3f})")
        _mark_points(ax, points, y_true, y_score, lambda fpr, recall, precision: (recall, precision))
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel="recall (churners flagged)",
               ylabel="precision (flagged who churn)", title="Precision-recall curve")
        ax.legend(loc="upper right")

    return _plot(draw)


def _confusion_plot(y_true: np.ndarray, y_pred: np.ndarray, target: str) -> _Image:
    matrix = np.array([[int(((y_true == t) & (y_pred == p)).sum()) for p in (0, 1)] for t in (0, 1)])
    total = max(int(matrix.sum()), 1)

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)  # each row: share of its true class
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        names = [f"not {target}", target]
        cells = (("true negatives", "false positives"), ("false negatives", "true positives"))
        for t in (0, 1):
            for p in (0, 1):
                dark = share[t, p] > 0.55
                ax.text(p, t - 0.12, f"{matrix[t, p]:,}", ha="center", va="center", fontsize=13, fontweight="bold",
                        color="white" if dark else "#111827")
                ax.text(p, t + 0.18, f"{cells[t][p]}\n{matrix[t, p] / total:.1%} of all, {share[t, p]:.0%} of row",
                        ha="center", va="center", fontsize=7, color="white" if dark else "#374151")
        ax.set_xticks([0, 1], [f"flagged {n}" for n in names])
        ax.set_yticks([0, 1], [f"really {n}" for n in names], rotation=90, va="center")
        ax.tick_params(length=0)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title("Confusion matrix")

    return _plot(draw, size=(4.4, 3.6), margins=(0.55, 0.45, 0.1, 0.35))


def _value_plot(curve: _ValueCurve, threshold: Mapping[str, Any]) -> _Image:
    from matplotlib.ticker import FuncFormatter

    # Offering to scores >= t is constant for t in (x[i-1], x[i]]: a step drawn "pre".
    x = np.concatenate([[min(0.0, curve.thresholds[0])], curve.thresholds, [max(1.0, curve.thresholds[-1])]]) \
        if len(curve.thresholds) else np.array([0.0, 1.0])
    y = np.concatenate([[curve.net[0]], curve.net, [curve.nobody]]) if len(curve.net) else np.full(2, curve.nobody)

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.axhline(0, color="#9ca3af", linewidth=0.8)
        ax.plot(x, y, color=_BLUE, linewidth=1.6, drawstyle="steps-pre", label="net value a month")
        ax.fill_between(x, y, 0, where=y > 0, step="pre", color=_GREEN, alpha=0.12, linewidth=0)
        ax.fill_between(x, y, 0, where=y < 0, step="pre", color=_RED, alpha=0.08, linewidth=0)
        marks = [("default", threshold.get("default", business.DEFAULT_THRESHOLD), _GRAY, "--"),
                 ("used", threshold.get("chosen"), _AMBER, "-")]
        for label, t, color, style in marks:
            if not isinstance(t, int | float):
                continue
            at = curve.at(float(t))
            ax.axvline(t, color=color, linestyle=style, linewidth=1.2)
            ax.plot([t], [at], marker="o", color=color, markersize=6, markeredgecolor="white",
                    label=f"threshold {t:.3g} ({label}): {_money(at)}", linestyle="none")
        ax.set(xlim=(0, 1), xlabel="decision threshold (offer when score ≥ threshold)",
               ylabel="net value a month", title="Net value against the threshold")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _money(v, short=True)))
        ax.legend(loc="lower right")  # not "best": it tests every data point, seconds on a long curve

    return _plot(draw, size=(7.6, 3.6), margins=(0.8, 0.55, 0.2, 0.35))


@dataclass(frozen=True)
class _Job:
    """One sweep job on a parameter plot: the parameter's value, the metric, succeeded or not."""

    x: str
    y: float
    ok: bool


def _draw_jobs(ax: Any, xs: Sequence[float], jobs: Sequence[_Job], first: bool) -> None:
    for ok, style in ((True, {"marker": "o", "color": _AMBER, "edgecolors": "white", "linewidths": 0.5}),
                      (False, {"marker": "X", "color": _RED, "linewidths": 0})):
        chosen = [(x, j.y) for x, j in zip(xs, jobs, strict=True) if j.ok == ok]
        if chosen:
            ax.scatter([c[0] for c in chosen], [c[1] for c in chosen], s=30, zorder=3,
                       label=("job" if ok else "job that failed a gate") if first else None, **style)


def _numeric_param_plot(key: str, jobs: Sequence[_Job], metric: str) -> _Image:
    def draw(figure: Any) -> None:
        ax = figure.subplots()
        xs = np.array([float(j.x) for j in jobs])
        ys = np.array([j.y for j in jobs])
        levels = np.unique(xs)
        ax.plot(levels, [ys[xs == v].mean() for v in levels], color=_BLUE, linewidth=1.6, marker="o",
                markersize=3, label="mean")
        _draw_jobs(ax, list(xs), jobs, first=True)
        if len(levels) > 2 and levels.min() > 0 and levels.max() / levels.min() >= 50:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key}")
        ax.margins(x=0.08, y=0.15)
        ax.legend(loc="best")

    return _plot(draw)


def _categorical_param_plot(key: str, jobs: Sequence[_Job], metric: str) -> _Image:
    options = list(dict.fromkeys(j.x for j in jobs))
    tilted = max(map(len, options)) > 12

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        for i, option in enumerate(options):
            group = [j for j in jobs if j.x == option]
            # a fixed spread, not random jitter: the same sweep draws the same picture
            spread = np.linspace(-0.12, 0.12, len(group)) if len(group) > 1 else np.zeros(1)
            ax.hlines(np.mean([j.y for j in group]), i - 0.3, i + 0.3, color=_BLUE, linewidth=2.2, label="mean")
            _draw_jobs(ax, list(i + spread), group, first=True)  # labels deduplicated below
        ax.set_xticks(range(len(options)), options, rotation=20 if tilted else 0, ha="right" if tilted else "center")
        ax.set_xlim(-0.6, len(options) - 0.4)
        ax.margins(y=0.15)
        ax.grid(axis="x", visible=False)
        ax.set(xlabel=key, ylabel=metric, title=f"{metric} against {key}")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), loc="best")

    return _plot(draw, margins=(0.7, 0.95 if tilted else 0.55, 0.15, 0.35))


# ------------------------------------------------------------------ HTML helpers


class Markup(str):
    """HTML this module built itself: placed as is, never escaped again."""


def _e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value) if value else "(none)"
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def _money(value: float, short: bool = False) -> str:
    sign = "−" if value < 0 else ""
    value = abs(value)
    if short and value >= 1_000_000:
        return f"{sign}${value / 1e6:.1f}M"
    if short and value >= 1_000:
        return f"{sign}${value / 1e3:.0f}k"
    return f"{sign}${value:,.0f}"


def _metric(name: str, value: Any) -> str:
    """A metric as its stakeholder reads it: money in $, shares in %, counts whole."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _fmt(value)
    if not math.isfinite(value):
        return str(value)
    if name in _MONEY:
        return _money(float(value))
    if name.startswith("share_") or name.endswith("_share"):
        return f"{value:.1%}"
    if name.endswith("_per_month"):
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}"


def _badge(status: str, kind: str | None = None) -> str:
    if kind is None:
        kind = _STATUS_CLASS.get(status) or ("ok" if status in ("passed", "succeeded") else
                                             "warn" if status in ("warned", "warn", "skipped") else
                                             "bad" if status.startswith("failed") or status == "error" else "neutral")
    return f'<span class="badge {kind}">{_e(status.replace("_", " "))}</span>'


def _codes(names: Iterable[Any]) -> str:
    return ", ".join(f"<code>{_e(n)}</code>" for n in names)


def _score_bar(value: Any, label: bool = True) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    share = min(max(float(value), 0.0), 1.0)
    color = "" if not label else (" good" if share >= 0.999 else (" mid" if share >= 0.5 else " low"))
    text = f' <span class="num">{share:.0%}</span>' if label else ""
    return f'<span class="bar{color}"><span style="width:{share * 100:.1f}%"></span></span>{text}'


def _cell(value: Any) -> str:
    return value if isinstance(value, Markup) else _e(_fmt(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int] | None = None,
           marked_rows: set[int] | None = None, highlight_last_row: bool = False) -> str:
    numeric = numeric or set()
    marked = set(marked_rows or set())
    if highlight_last_row and rows:
        marked.add(len(rows) - 1)
    # long snake_case headers may break after an underscore instead of widening the table
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{_e(h).replace("_", "_<wbr>")}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        f'<tr{" class=marked" if r in marked else ""}>'
        + "".join(f'<td{" class=num" if i in numeric else ""}>{_cell(v)}</td>' for i, v in enumerate(row)) + "</tr>"
        for r, row in enumerate(rows))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _short_target(target: str) -> str:
    return str(target).rsplit(".", 1)[-1]


def _short_hash(value: Any) -> str:
    text = str(value or "")
    algo, sep, digest = text.partition(":")
    return f"{algo}:{digest[:12]}…" if sep and len(digest) > 12 else (text[:12] + "…" if len(text) > 12 else text)


def _when(value: Any) -> str:
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


_CSS = """
:root{--ink:#111827;--soft:#374151;--muted:#6b7280;--line:#e5e7eb;--bg:#f4f6f9;--card:#fff;--blue:#2563eb;
--green:#15803d;--red:#b91c1c;--amber:#b45309}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 28px 56px}
h1{font-size:26px;line-height:1.2;margin:0}
h2{font-size:18px;margin:0 0 14px;padding-bottom:8px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:20px 0 8px}
h4{font-size:14px;margin:16px 0 6px}
section>h3:first-child,section>h2+h3{margin-top:4px}
a{color:var(--blue)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
code{background:#f3f4f6;border-radius:4px;padding:1px 4px;word-break:break-word}
code.nw{white-space:nowrap;word-break:normal}
pre{background:#f3f4f6;border-radius:6px;padding:12px;overflow:auto;max-height:480px;white-space:pre}
.muted{color:var(--muted)} .small{font-size:12px}
header.top{margin-bottom:14px}
header.top .title{display:flex;align-items:center;gap:14px;flex-wrap:wrap}
header.top p{margin:6px 0 0}
header.sub h2{border:0;margin:0;padding:0;font-size:22px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:11px;font-weight:700;
letter-spacing:.04em;text-transform:uppercase;white-space:nowrap;vertical-align:middle}
.badge.ok{background:#dcfce7;color:#166534}.badge.bad{background:#fee2e2;color:#991b1b}
.badge.warn{background:#fef3c7;color:#92400e}.badge.neutral{background:#e5e7eb;color:#374151}
header .badge{font-size:13px;padding:4px 14px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:12px;margin:16px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:20px;font-weight:650;margin-top:2px;overflow-wrap:anywhere}
.card.wide{grid-column:span 2}
.alert{background:#fef2f2;border:1px solid #fecaca;border-left:6px solid var(--red);border-radius:8px;
padding:12px 16px;margin:14px 0;color:#7f1d1d}
.alert p{margin:6px 0 0}.alert pre{background:#fff;color:var(--ink)}
.note{background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:10px 16px;margin:14px 0;color:#78350f}
.note ul{margin:6px 0 0;padding-left:20px}
nav.toc{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 16px;margin:14px 0}
nav.toc ol{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:6px 20px;counter-reset:toc}
nav.toc li{counter-increment:toc}nav.toc li::before{content:counter(toc) ". ";color:var(--muted)}
nav.toc a{text-decoration:none}nav.toc a:hover{text-decoration:underline}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 22px;margin:16px 0;
box-shadow:0 1px 2px rgba(17,24,39,.04)}
section.best{background:transparent;border:2px solid #c7d2fe;box-shadow:none}
section section{box-shadow:none}
blockquote.hypothesis{margin:0 0 16px;padding:12px 16px;background:#eff6ff;border-left:4px solid var(--blue);
border-radius:6px;font-size:15px;color:#1e3a8a}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:11px;font-weight:700;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;
background:#f9fafb;vertical-align:bottom}
th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f9fafb}
tr.marked td{background:#eef2ff;font-weight:600}
table.kv th{width:34%;color:var(--muted);font-weight:500;background:none;text-transform:none;letter-spacing:0;
font-size:13px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px 28px;align-items:start}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:18px;align-items:start}
.stakeholder h3,.stakeholder h4{margin-top:0}
figure{margin:8px 0 0}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:var(--muted);font-size:12px;margin-top:4px;text-align:center}
.estimates{background:#f0fdf4;border:1px solid #bbf7d0;border-radius:8px;padding:8px 14px;margin:10px 0}
.estimates p{margin:4px 0;font-variant-numeric:tabular-nums}
.bar{display:inline-block;width:120px;height:8px;border-radius:4px;background:#e5e7eb;vertical-align:middle;
overflow:hidden}
.bar>span{display:block;height:100%;background:#93c5fd}
.bar.good>span{background:#22c55e}.bar.mid>span{background:#f59e0b}.bar.low>span{background:#ef4444}
details{margin:12px 0}summary{cursor:pointer;color:var(--blue)}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:28px}
@media print{body{background:#fff}section{break-inside:avoid;box-shadow:none}nav.toc{display:none}}
"""


def _page(title: str, body: str) -> str:
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # Nothing but this file: no scripts, no fetches; the page's own styles and data: images only.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>{body}<footer>Written by mlops-engine {_e(__version__)} (<code>mlops report</code>) "
        f"on {_e(made)}.</footer></main></body></html>\n"
    )
