"""The run report: what a run directory holds (:class:`RunFiles`) and the report's sections.

Each section is drawn from the files it needs and left out when they are missing; the
sweep report reuses the header and the sections for its best run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.config.business import DESCRIPTIONS, STAKEHOLDERS
from engine.errors import UsageError
from engine.report.html import (
    REPORT_FILE,
    Markup,
    badge,
    codes,
    escape,
    fmt,
    fmt_duration,
    fmt_metric,
    fmt_money,
    fmt_when,
    headline_cards,
    kv_table,
    page,
    score_bar,
    short_hash,
    short_target,
    table,
    write_page,
)
from engine.report.plot import AMBER, BLUE, GRAY, GREEN, RED, Image, embed, plot
from engine.stages import business

log = logging.getLogger("engine.report")

#: Features shown in the importance chart (the table lists them all).
TOP_IN_CHART = 20
#: Features named in the report's one-line summary.
TOP_NAMED = 5
_STAKEHOLDER_TITLES = {"data_scientist": "Data scientist", "subject_matter_expert": "Subject-matter expert",
                       "business": "Business"}


def is_run_dir(path: Path) -> bool:
    """A run directory: it has ``run.json``."""
    return (path / "run.json").is_file()


def write_run_report(run_dir: Path) -> Path:
    """Write ``report.html`` into a run directory and return its path.

    Raises:
        UsageError: ``run_dir`` is not a run directory, or the report cannot be written.
    """
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise UsageError(f"usage error: {run_dir} is not a run directory; expected a folder with run.json")
    return write_page(run_dir / REPORT_FILE, render_run(run_dir))


def render_run(run_dir: Path) -> str:
    """The HTML of a run's report."""
    run = RunFiles.load(Path(run_dir))
    title = f"{run.name} · run {run.short_id}"
    body = run_header(run, level=1) + run_body(run, level=2, prefix="")
    return page(title, body)


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
        record = read_json(run_dir / "run.json", missing) or {}
        config_text = _read_text(run_dir / "config.resolved.yaml", missing)
        config = None
        if config_text is not None:
            try:
                loaded = yaml.safe_load(config_text)
                config = loaded if isinstance(loaded, dict) else None
            except yaml.YAMLError as exc:
                missing.append(("config.resolved.yaml", f"unreadable: {_first_line(exc)}"))
        run = cls(run_dir, record, config, config_text, read_json(run_dir / "quality.json", missing),
                  read_json(run_dir / "metrics.json", missing), None, None, missing)
        requirements = run_dir / "requirements.json"
        if requirements.exists():
            run.requirements = read_json(requirements, missing)
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


def read_json(path: Path, missing: list[tuple[str, str]]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or ``None`` with the reason appended to ``missing``."""
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


def hydra_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides Hydra saved in a job folder (``[]`` when there are none)."""
    try:
        loaded = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in loaded] if isinstance(loaded, list) else []


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# ------------------------------------------------------------------ the sections


def run_header(run: RunFiles, level: int) -> str:
    """The run's name, status, times and headline figures, and its error if it has one."""
    record = run.record
    metrics = (run.metrics or {}).get("metrics") or record.get("metrics") or {}
    threshold = (run.metrics or {}).get("threshold") or {}
    model = run.section("model").get("_target_") or (record.get("model") or {}).get("target")
    h = f"h{level}"
    took = " · " + escape(fmt_duration(record.get("duration_s"))) if record.get("duration_s") is not None else ""
    parts = [f'<header class="top"><div class="title"><{h}>{escape(run.name)} '
             f'<span class="muted">· run {escape(run.short_id)}</span></{h}>{badge(run.status)}</div>',
             f'<p class="muted small">{escape(fmt_when(record.get("started_at")))}{took}'
             f' · <code>{escape(record.get("run_dir") or run.run_dir)}</code></p></header>']
    parts.append(_error_box(record))
    cards: list[tuple[str, str]] = [("model", short_target(model) if model else "–")]
    for name in ("roc_auc", "f1", "recall"):
        if isinstance(metrics.get(name), int | float):
            label = name.replace("_", " ").upper() if name == "roc_auc" else name
            cards.append((label, fmt_metric(name, metrics[name])))
    if isinstance(metrics.get("net_value_per_month"), int | float):
        cards.append(("net value a month", fmt_metric("net_value_per_month", metrics["net_value_per_month"])))
    chosen = threshold.get("chosen", metrics.get("threshold"))
    if isinstance(chosen, int | float):
        cards.append(("threshold", f"{chosen:.3g}"))
    parts.append(headline_cards(cards))
    return "".join(parts)


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
    parts = [f'<div class="alert" role="alert"><strong>{escape(what)}</strong>']
    if message:
        parts.append(f'<p>{f"<code>{escape(kind)}</code>: " if kind else ""}{escape(message)}</p>')
    if trace:
        parts.append(f"<details><summary>traceback</summary><pre>{escape(trace)}</pre></details>")
    return "".join(parts) + "</div>"


@dataclass(frozen=True)
class _Section:
    slug: str
    title: str
    render: Callable[[RunFiles, int], str | None]


def run_body(run: RunFiles, level: int, prefix: str) -> str:
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
            content = f'<p class="alert">This section could not be rendered: {escape(_first_line(exc))}</p>'
        if content is not None:
            rendered.append((section, content))
    h = f"h{level}"
    toc = "".join(f'<li><a href="#{prefix}{s.slug}">{escape(s.title)}</a></li>' for s, _ in rendered)
    parts = [f'<nav class="toc"><ol>{toc}</ol></nav>' if toc else ""]
    if run.missing:
        notes = "".join(f"<li><code>{escape(name)}</code>: {escape(why)}{escape(_consequence(name))}</li>"
                        for name, why in run.missing)
        parts.append(f'<div class="note"><strong>Not in this report</strong><ul>{notes}</ul></div>')
    parts += [f'<section id="{prefix}{s.slug}"><{h}>{escape(s.title)}</{h}>{content}</section>'
              for s, content in rendered]
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
    parts = [f'<blockquote class="hypothesis">{escape(hypothesis)}</blockquote>' if hypothesis else
             '<p class="muted">No hypothesis recorded (set <code>hypothesis:</code> in an experiment).</p>']
    model = run.section("model")
    params = [(k, v) for k, v in model.items() if k != "_target_"]
    overrides = (run.record.get("provenance") or {}).get("overrides")
    if overrides is None:
        overrides = hydra_overrides(run.run_dir)
    split_cfg = run.section("split")
    split_stage = (run.record.get("stages") or {}).get("split") or {}
    facts = [("model", Markup(f"<code>{escape(model.get('_target_', '–'))}</code>")),
             ("name", cfg.get("name")), ("as_of (cut-off)", cfg.get("as_of")), ("seed", cfg.get("seed")),
             ("split", ", ".join(f"{k}={fmt(v)}" for k, v in split_cfg.items()) or None)]
    if split_stage:
        facts.append(("rows", f"{fmt(split_stage.get('train_rows'))} train, "
                              f"{fmt(split_stage.get('test_rows'))} hold-out"))
    facts.append(("overrides", Markup(" ".join(f"<code>{escape(o)}</code>" for o in overrides)) if overrides
                  else Markup('<span class="muted">none (the defaults of conf/)</span>')))
    parts.append('<div class="grid2"><div>' + f"<{h}>Run</{h}>" + kv_table(facts) + "</div><div>"
                 + f"<{h}>Model parameters</{h}>"
                 + (kv_table([(k, v) for k, v in params]) if params else '<p class="muted">none</p>')
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
            rows.append([Markup(f"<strong>{escape(name)}</strong>"), source.get("type"),
                         Markup(f"<code>{escape(where)}</code>"), source.get("key"), source.get("timestamp"),
                         (recorded.get(name) or {}).get("rows")])
        parts.append(f"<{h}>Data sources</{h}>" + table(["source", "type", "location", "key", "event time", "rows"],
                                                        rows, numeric={5}))
    features = run.section("features")
    used = _features_used(run)
    if features or used:
        target = features.get("target") or {}
        facts = [("entity", (features.get("entity") or {}).get("key") if isinstance(features.get("entity"), Mapping)
                  else features.get("entity")),
                 ("population", Markup(f"<code>{escape(features.get('population'))}</code>")
                  if features.get("population") else None),
                 ("target", Markup(f"<code>{escape(target.get('name'))}</code> = "
                                   f"<code>{escape(target.get('expr'))}</code>") if target else None),
                 ("features used", Markup(f"{len(used)}: " + ", ".join(f"<code>{escape(f)}</code>" for f in used))
                  if used else None)]
        parts.append(f"<{h}>Features</{h}>" + kv_table([(k, v) for k, v in facts if v is not None]))
    if run.config_text:
        parts.append(f"<details><summary>The full resolved configuration (config.resolved.yaml)</summary>"
                     f"<pre>{escape(run.config_text)}</pre></details>")
    return "".join(parts)


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
    line = f'Checked as of <code>{escape(quality.get("as_of"))}</code>: gate {badge(gate)}'
    if quality.get("failed_errors"):
        line += " · rules of severity error failed: " + codes(quality["failed_errors"])
    if quality.get("failed_warnings"):
        line += " · warnings: " + codes(quality["failed_warnings"])
    parts = [f"<p>{line}</p>"]
    rules = [r for r in quality.get("rules") or [] if isinstance(r, Mapping)]
    scores = quality.get("scores") or {}
    if scores:
        rows = []
        for dimension, score in scores.items():
            score = score if isinstance(score, Mapping) else {"score": score}
            value = score.get("score")
            failed = [r["rule"] for r in rules if r.get("dimension") == dimension and not r.get("passed")]
            rows.append([Markup(f"<strong>{escape(dimension)}</strong>"),
                         f"{fmt(score.get('passed'))} / {fmt(score.get('rules'))}" if "rules" in score else "–",
                         Markup(score_bar(value)),
                         Markup(codes(failed) if failed else '<span class="muted">–</span>')])
        parts.append(f"<{h}>Scores by dimension</{h}>" + table(
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
        failing = (f"{fmt(unexpected)} / {fmt(denominator)} {rule.get('denominator_kind') or ''}".strip()
                   if unexpected is not None else "–")
        severity = str(rule.get("severity") or "")
        rows.append([Markup(f"<strong>{escape(rule.get('rule'))}</strong><br><span class='muted'>"
                            f"{escape(rule.get('description') or '')}</span>"),
                     rule.get("dimension"), rule.get("check"),
                     Markup(badge(severity, "bad" if severity == "error" and not rule.get("passed") else
                                  ("warn" if not rule.get("passed") else "neutral"))),
                     rule.get("observed"), rule.get("threshold"), failing,
                     Markup(f'<span class="small">{escape(shown)}{" …" if len(examples) > 5 else ""}</span>')
                     if shown else "–"])
    return table(["rule", "dimension", "check", "severity", "observed", "required", "failing", "examples"], rows)


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
        parts.append(f"<p>Top features: {', '.join(f'<strong>{escape(f)}</strong>' for f in ranked[:TOP_NAMED])} "
                     f'<span class="muted">(importances from {escape(kind or "the model")})</span></p>')
        parts.append(embed(_importance_plot(values, ranked[:TOP_IN_CHART], str(kind or "importance")),
                           f"Feature importance ({kind or 'as reported'}); the largest "
                           f"{min(len(ranked), TOP_IN_CHART)} of {len(ranked)}."))
    else:
        parts.append(f'<p class="muted">The run recorded no feature importances '
                     f'({"metrics.json has none" if run.metrics else "metrics.json is missing"}).</p>')
    order = ranked + [f for f in used if f not in values]
    rows = [[i + 1, Markup(f"<code>{escape(f)}</code>"), values.get(f),
             Markup(f"<code>{escape(definitions[f])}</code>") if f in definitions else "–"]
            for i, f in enumerate(order)]
    parts.append(table(["rank", "feature", "importance", "definition"], rows, numeric={0, 2}))
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
        rows = [[Markup(f"<strong>{escape(name)}</strong><br><span class='muted small'>"
                        f"{escape(DESCRIPTIONS.get(name, ''))}</span>"), Markup(escape(fmt_metric(name, value)))]
                for name, value in values.items()]
        cards.append(f'<div class="stakeholder"><{h}>{escape(_STAKEHOLDER_TITLES.get(group, group))}</{h}>'
                     + table(["metric", "value"], rows, numeric={1}) + "</div>")
    threshold = metrics.get("threshold") or {}
    chosen = threshold.get("chosen")
    note = (f'<p class="muted">At the decision threshold {escape(fmt(chosen))} '
            f'({escape(threshold.get("policy") or "")}), '
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
        parts.append(f'<p>Threshold used: <strong>{escape(fmt(chosen))}</strong> ({escape(policy or "?")}); '
                     f'default {escape(fmt(threshold.get("default")))}, best net value at '
                     f'{escape(fmt(threshold.get("best")))}'
                     + (f' (chosen on {escape(threshold["best_chosen_on"])})'
                        if threshold.get("best_chosen_on") else "")
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
        parts.append('<div class="estimates">' + "".join(f"<p>{escape(line)}</p>" for line in lines) + "</div>")
    columns = [("at_default_threshold", f"at {fmt(threshold.get('default', business.DEFAULT_THRESHOLD))} (default)"),
               ("at_best_threshold", f"at {fmt(threshold.get('best'))} (best)")]
    at = {key: money.get(key) for key, _ in columns if isinstance(money.get(key), Mapping)}
    if chosen is not None and policy != "best net value" and isinstance(metrics.get("metrics"), Mapping):
        columns.append(("chosen", f"at {fmt(chosen)} (chosen)"))
        at["chosen"] = metrics["metrics"]
    if at:
        names = ("precision", "recall", "share_churners_caught", "churners_caught_per_month",
                 "customers_contacted_per_month", "contacted_at_risk_share", "needless_offers_per_month",
                 "customers_retained_per_month", "revenue_saved_per_month", "false_positive_cost_per_month",
                 "net_value_per_month")
        rows = [[Markup(f"<strong>{escape(n)}</strong>")] + [Markup(escape(fmt_metric(n, at[k].get(n))))
                                                        for k, _ in columns if k in at]
                for n in names if any(n in at[k] for k, _ in columns if k in at)]
        parts.append(f"<{h}>Value a month at 0.5 and at the best threshold</{h}>"
                     + table(["", *[label for k, label in columns if k in at]], rows,
                             numeric=set(range(1, len(at) + 1)), highlight_last_row=True))
    curve = _value_curve(run)
    if curve is not None:
        parts.append(embed(_value_plot(curve, threshold),
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
        figures.append(embed(_roc_plot(fpr, tpr, roc_auc_score(y_true, y_score), y_true, y_score, points),
                             "ROC curve on the hold-out set; markers: the operating points at 0.5 and at the "
                             "threshold used."))
        figures.append(embed(_pr_plot(precision, recall, average_precision_score(y_true, y_score),
                                      float(y_true.mean()), y_true, y_score, points),
                             "Precision against recall; dotted: the churn rate (a random ranking)."))
    else:
        figures.append('<p class="muted">The hold-out set has one class only: no ROC or precision-recall curve.</p>')
    target = str((run.section("features").get("target") or {}).get("name") or "positive")
    at = f" ({chosen:.3g})" if isinstance(chosen, int | float) else ""
    figures.append(embed(_confusion_plot(y_true, y_pred, target),
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
    return (f'<div class="counts"><h4>At the threshold used{escape(at)}</h4>'
            + table(["", "customers", ""], [[Markup(f"<strong>{escape(a)}</strong>"), b, c] for a, b, c in rows],
                    numeric={1}) + "</div>")


def _requirements_section(run: RunFiles, level: int) -> str | None:
    verdicts = [v for v in (run.requirements or {}).get("verdicts") or [] if isinstance(v, Mapping)]
    if run.requirements is None:
        return None
    if not verdicts:
        return '<p class="muted">No business requirement was declared.</p>'
    counts = {k: sum(v.get("verdict") == k for v in verdicts) for k in ("passed", "warned", "failed")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    rows = [[Markup(f"<strong>{escape(v.get('requirement'))}</strong>"), v.get("kind"), v.get("required"),
             v.get("observed"), Markup(badge(str(v.get("verdict")))), "hard" if v.get("hard") else "soft",
             v.get("detail")] for v in verdicts]
    return f"<p>{escape(summary)}.</p>" + table(
        ["requirement", "kind", "required", "observed", "verdict", "", "detail"], rows)


def _provenance_section(run: RunFiles, level: int) -> str | None:
    record = run.record
    if not record:
        return None
    h = f"h{level}"
    prov = record.get("provenance") or {}
    model = record.get("model") or {}
    facts: list[tuple[str, Any]] = [
        ("run id", Markup(f"<code>{escape(record.get('id'))}</code>")), ("status", Markup(badge(run.status))),
        ("started", fmt_when(record.get("started_at"))), ("ended", fmt_when(record.get("ended_at"))),
        ("duration", fmt_duration(record.get("duration_s"))),
        ("command", Markup(f"<code>{escape(' '.join(map(str, prov.get('command') or [])))}</code>")
         if prov.get("command") else None),
        ("project", Markup(f"<code>{escape(prov.get('project_dir'))}</code>") if prov.get("project_dir") else None),
        ("project code", _git_line(prov.get("git"))),
        ("engine code", _git_line((prov.get("engine") or {}).get("git")) if prov.get("engine") else None),
        ("python", " · ".join(str(x) for x in (prov.get("python"), prov.get("implementation"), prov.get("platform"))
                              if x) or None),
        ("model file", Markup(f"<code>{escape(model.get('path'))}</code> "
                              f"sha256 <code>{escape(model.get('sha256'))}</code>") if model.get("sha256") else None),
        ("seed", (record.get("determinism") or {}).get("seed", record.get("seed"))),
        ("threads", (record.get("determinism") or {}).get("threads")),
    ]
    parts = ['<div class="grid2"><div>' + kv_table([(k, v) for k, v in facts if v not in (None, "")]) + "</div>"]
    packages = prov.get("packages") or {}
    parts.append("<div>" + (f"<{h}>Package versions</{h}>" + table(
        ["package", "version"], [[Markup(f"<code>{escape(k)}</code>"), v] for k, v in packages.items()])
        if packages else "") + "</div></div>")
    data = record.get("data") or {}
    if data:
        rows = [[Markup(f"<strong>{escape(name)}</strong>"), d.get("type"),
                 Markup(f"<code>{escape(d.get('location'))}</code>"), d.get("rows"),
                 Markup(f'<code title="{escape(d.get("fingerprint"))}">'
                        f'{escape(short_hash(d.get("fingerprint")))}</code>')]
                for name, d in data.items() if isinstance(d, Mapping)]
        parts.append(f"<{h}>Data fingerprints</{h}>" + table(["source", "type", "location", "rows", "fingerprint"],
                                                             rows, numeric={3}))
    tables = (record.get("features") or {}).get("tables") or []
    if tables:
        rows = [[t.get("group") or t.get("table"), t.get("status"), t.get("rows"),
                 Markup(f"<code>{escape(short_hash(t.get('key')))}</code>")] for t in tables if isinstance(t, Mapping)]
        parts.append(f"<{h}>Feature-store tables</{h}>" + table(["table", "status", "rows", "key"], rows, numeric={2}))
    stages = record.get("stages") or {}
    if stages:
        longest = max((s.get("duration_s") or 0 for s in stages.values() if isinstance(s, Mapping)), default=0) or 1
        rows = [[Markup(f"<strong>{escape(name)}</strong>"), Markup(badge(str(s.get("status")))),
                 fmt_duration(s.get("duration_s")),
                 Markup(score_bar((s.get("duration_s") or 0) / longest, label=False))]
                for name, s in stages.items() if isinstance(s, Mapping)]
        parts.append(f"<{h}>Stages</{h}>" + table(["stage", "status", "duration", ""], rows, numeric={2}))
    return "".join(parts)


def _git_line(git: Any) -> Any:
    if not isinstance(git, Mapping):
        return Markup('<span class="muted">not a git work tree</span>')
    dirty = git.get("dirty")
    text = f"<code>{escape(git.get('commit'))}</code>"
    if dirty:
        text += f' {badge("dirty", "warn")} diff sha256 <code>{escape(short_hash(git.get("diff_sha256")))}</code>'
    else:
        text += " clean"
    return Markup(text)


# ------------------------------------------------------------------ plots


def _importance_plot(values: Mapping[str, float], shown: Sequence[str], kind: str) -> Image:
    names = list(reversed(shown))

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        weights = [values[n] for n in names]
        colors = [BLUE if w >= 0 else RED for w in weights]
        ax.barh(names, weights, color=colors, height=0.65)
        ax.set_xlabel(f"importance ({kind})")
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="y", length=0)
        for i, w in enumerate(weights):
            ax.annotate(f"{w:.3g}", (w, i), xytext=(3 if w >= 0 else -3, 0), textcoords="offset points",
                        va="center", ha="left" if w >= 0 else "right", fontsize=7, color="#374151")
        ax.margins(x=0.12)

    left = 0.3 + 0.07 * max((len(n) for n in names), default=4)  # room for the longest feature name
    return plot(draw, size=(7.6, 0.27 * len(names) + 0.8), margins=(left, 0.5, 0.2, 0.15))


def _operating_point(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(false-positive rate, recall, precision) when customers at or above ``threshold`` are flagged."""
    flagged = y_score >= threshold
    positives, negatives = max(int(y_true.sum()), 1), max(int((1 - y_true).sum()), 1)
    tp = int((flagged & (y_true == 1)).sum())
    fp = int((flagged & (y_true == 0)).sum())
    return fp / negatives, tp / positives, tp / (tp + fp) if tp + fp else 1.0


def _point_label(label: str, threshold: float) -> str:
    return f"threshold {threshold:.3g}" + (" (used)" if label == "chosen" else "")


_POINT_STYLE = {"0.5": {"color": GRAY, "marker": "s"}, "chosen": {"color": AMBER, "marker": "o"}}


def _mark_points(ax: Any, points: Mapping[str, float], y_true: np.ndarray, y_score: np.ndarray,
                 where: Callable[[float, float, float], tuple[float, float]]) -> None:
    """Mark each threshold's operating point; ``where`` picks the plot's two coordinates
    from (false-positive rate, recall, precision)."""
    for label, threshold in points.items():
        x, y = where(*_operating_point(y_true, y_score, threshold))
        ax.plot([x], [y], linestyle="none", markersize=7, markeredgecolor="white",
                label=_point_label(label, threshold), **_POINT_STYLE[label])


def _roc_plot(fpr: np.ndarray, tpr: np.ndarray, auc: float, y_true: np.ndarray, y_score: np.ndarray,
              points: Mapping[str, float]) -> Image:
    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.plot([0, 1], [0, 1], linestyle="--", color="#9ca3af", linewidth=1, label="random")
        ax.plot(fpr, tpr, color=BLUE, linewidth=1.8, label=f"model (AUC {auc:.3f})")
        _mark_points(ax, points, y_true, y_score, lambda fpr, recall, precision: (fpr, recall))
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel="false-positive rate (stayers flagged)",
               ylabel="recall (churners flagged)", title="ROC curve")
        ax.legend(loc="lower right")

    return plot(draw)


def _pr_plot(precision: np.ndarray, recall: np.ndarray, ap: float, base_rate: float, y_true: np.ndarray,
             y_score: np.ndarray, points: Mapping[str, float]) -> Image:
    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.axhline(base_rate, linestyle=":", color="#9ca3af", linewidth=1, label=f"churn rate {base_rate:.1%}")
        ax.plot(recall, precision, color=BLUE, linewidth=1.8, drawstyle="steps-post",
                label=f"model (AP {ap:.3f})")
        _mark_points(ax, points, y_true, y_score, lambda fpr, recall, precision: (recall, precision))
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), xlabel="recall (churners flagged)",
               ylabel="precision (flagged who churn)", title="Precision-recall curve")
        ax.legend(loc="upper right")

    return plot(draw)


def _confusion_plot(y_true: np.ndarray, y_pred: np.ndarray, target: str) -> Image:
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

    return plot(draw, size=(4.4, 3.6), margins=(0.55, 0.45, 0.1, 0.35))


def _value_plot(curve: _ValueCurve, threshold: Mapping[str, Any]) -> Image:
    from matplotlib.ticker import FuncFormatter

    # Offering to scores >= t is constant for t in (x[i-1], x[i]]: a step drawn "pre".
    x = np.concatenate([[min(0.0, curve.thresholds[0])], curve.thresholds, [max(1.0, curve.thresholds[-1])]]) \
        if len(curve.thresholds) else np.array([0.0, 1.0])
    y = np.concatenate([[curve.net[0]], curve.net, [curve.nobody]]) if len(curve.net) else np.full(2, curve.nobody)

    def draw(figure: Any) -> None:
        ax = figure.subplots()
        ax.axhline(0, color="#9ca3af", linewidth=0.8)
        ax.plot(x, y, color=BLUE, linewidth=1.6, drawstyle="steps-pre", label="net value a month")
        ax.fill_between(x, y, 0, where=y > 0, step="pre", color=GREEN, alpha=0.12, linewidth=0)
        ax.fill_between(x, y, 0, where=y < 0, step="pre", color=RED, alpha=0.08, linewidth=0)
        marks = [("default", threshold.get("default", business.DEFAULT_THRESHOLD), GRAY, "--"),
                 ("used", threshold.get("chosen"), AMBER, "-")]
        for label, t, color, style in marks:
            if not isinstance(t, int | float):
                continue
            at = curve.at(float(t))
            ax.axvline(t, color=color, linestyle=style, linewidth=1.2)
            ax.plot([t], [at], marker="o", color=color, markersize=6, markeredgecolor="white",
                    label=f"threshold {t:.3g} ({label}): {fmt_money(at)}", linestyle="none")
        ax.set(xlim=(0, 1), xlabel="decision threshold (offer when score ≥ threshold)",
               ylabel="net value a month", title="Net value against the threshold")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_money(v, short=True)))
        ax.legend(loc="lower right")  # not "best": it tests every data point, seconds on a long curve

    return plot(draw, size=(7.6, 3.6), margins=(0.8, 0.55, 0.2, 0.35))
