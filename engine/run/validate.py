"""``mlops validate``: the champion gate, a candidate against the model in production.

Both models score **the same evaluation rows**: the candidate's hold-out (rebuilt from
its recorded config, through the feature store) or, with ``promotion.evaluation.as_of``,
every row of the population at a later cut-off. Every metric is computed for both, each
model at its own decision threshold, with a paired bootstrap interval for each
difference: one set of resampled rows, scored by both models, so the interval is of the
difference itself. The policy (``conf/promotion/``) decides; ``validation.json`` and a
Markdown summary for the pull request go into the candidate's run directory.

The bootstrap is vectorised: a resample is a row of drawn indices, and every metric is a
sum over the drawn rows, ROC AUC included (counted per distinct score; ties count one
half, as ``roc_auc_score`` counts them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from engine.config import plan as plans
from engine.config.business import Economics
from engine.config.promotion import LOWER_IS_BETTER, METRICS, PromotionSpec
from engine.errors import DataError, UsageError
from engine.files import write_json, write_text
from engine.stages import business, data, domain, features, model, split
from engine.store import registry
from engine.store.featurestore import FeatureStore
from engine.store.tracking import flatten

log = logging.getLogger("engine.validate")

VALIDATION_JSON = "validation.json"
VALIDATION_MD = "validation.md"
#: Resamples drawn at once: memory stays at a few MB a row of the evaluation set.
CHUNK = 32


@dataclass(frozen=True)
class Rows:
    """The evaluation rows: every column a model may read, and the labels."""

    frame: pd.DataFrame
    y: np.ndarray
    description: str


# ------------------------------------------------------------------ the evaluation rows


def evaluation_rows(run_dir: Path, root: Path, as_of: str | None) -> Rows:
    """The candidate's hold-out, from the feature table it was trained on, or every row at ``as_of``.

    The hold-out comes from the table the run recorded (run.json ``features.tables``) when
    its feature store still holds it, checked against its manifest: the very rows the
    candidate was evaluated on, without reading the sources again. Otherwise (a store
    that was cleaned, a run without one), and for ``as_of``, the table is built from the
    data as the run's config says.

    Raises:
        UsageError: The run has no recorded config.
        DataError: The data cannot be read or split as the run was.
    """
    try:
        resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    except OSError as exc:
        raise UsageError(f"usage error: {run_dir} has no config.resolved.yaml; expected a training run") from exc
    plan = plans.compile(resolved)
    recorded = None if as_of else _recorded_table(run_dir, plan)
    if recorded is not None:
        frame, target = recorded
    else:
        tables = data.load(plan.data, root)
        cut_off = pd.Timestamp(as_of) if as_of else plan.settings.as_of
        store = FeatureStore(root / plan.features.store) if plan.features.store else None
        table = features.build(plan.features, tables, cut_off, store)
        frame, target = table.frame, table.target
    if as_of:
        where = f"every row of the population at as_of {as_of}"
    else:
        frame = frame.loc[split.holdout(frame[target], plan.split).test]
        where = f"the candidate's hold-out (test_size {plan.split.test_size}, seed {plan.split.seed})"
    y = frame[target].to_numpy().astype(int)
    if len(np.unique(y)) < 2:
        raise DataError(f"data error: the evaluation rows ({where}) hold one class only; expected both 0 and 1")
    return Rows(frame, y, f"{len(frame)} rows, {int(y.sum())} positive: {where}")


def _recorded_table(run_dir: Path, plan: plans.Plan) -> tuple[pd.DataFrame, str] | None:
    """The feature table the run trained on, from the store it recorded, with its target's
    name; None when the run recorded none or the store no longer holds it intact."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    recorded = record.get("features") if isinstance(record, dict) else None
    if not isinstance(recorded, dict) or not recorded.get("store"):
        return None
    keys = [t.get("key") for t in recorded.get("tables") or [] if isinstance(t, dict) and t.get("table") == "features"]
    if len(keys) != 1 or not isinstance(keys[0], str):
        return None
    frame = FeatureStore(Path(recorded["store"])).get(keys[0])  # size and checksum checked, else None
    target = plan.features.target
    if frame is None or target not in frame.columns:
        return None
    return frame, target


def input_columns(fitted: Any) -> list[str]:
    """The columns a fitted model reads (``feature_names_in_``, also through the
    threshold wrapper and the frozen estimator inside it)."""
    for candidate in (fitted, getattr(fitted, "estimator_", None), getattr(fitted, "estimator", None)):
        inner = getattr(candidate, "estimator", None)
        for obj in (candidate, inner):
            names = getattr(obj, "feature_names_in_", None)
            if names is not None:
                return [str(n) for n in names]
    raise UsageError("usage error: the model does not record the columns it was fitted on")


def score(fitted: Any, rows: Rows, label: str) -> np.ndarray:
    """Score the evaluation rows with a model, refusing rows that lack its inputs."""
    columns = input_columns(fitted)
    missing = [c for c in columns if c not in rows.frame.columns]
    if missing:
        raise DataError(f"data error: the {label}'s input columns are not in the evaluation data: "
                        f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} (its features differ from "
                        "the candidate's config; evaluate on a config that builds them)")
    return model.predict_proba(fitted, rows.frame[columns], threads=1)


#: Request types of a column (engine.stages.domain.type_of) that a model takes alike.
_SAME_KIND = {"integer": "number", "number": "number", "boolean": "boolean", "string": "string"}


def _check_types(domain_bytes: bytes | None, rows: Rows, label: str) -> None:
    """Refuse evaluation rows whose columns are of another kind than the model was trained on.

    A champion registered with its training domain (``input_domain.json``) names each
    input's type; a number where it saw text (or text where it saw numbers) would be
    scored wrongly or not at all. Integers and floats are one kind. A champion registered
    without a domain is checked by column names only (:func:`score`).

    Raises:
        DataError: The first column of another kind, with both types.
    """
    if domain_bytes is None:
        return
    trained = domain.read(domain_bytes, "the champion's input_domain.json")["columns"]
    for name, spec in trained.items():
        if name not in rows.frame.columns:
            continue  # score() names every missing column at once
        now = domain.type_of(rows.frame[name])
        if _SAME_KIND.get(now) != _SAME_KIND.get(spec["type"]):
            raise DataError(f"data error: the {label}'s input column {name!r} was {spec['type']} in its training "
                            f"data and is {now} in the evaluation data (its features differ from the candidate's "
                            "config; evaluate on a config that builds them as it was trained)")


def candidate_model(run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The candidate run's model, read only after its sha256 matches ``run.json``."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"usage error: {run_dir} has no readable run.json") from exc
    if record.get("status") != "succeeded" or record.get("kind", "run") != "run" or not record.get("model"):
        raise UsageError(f"usage error: run {str(record.get('id'))[:8]} is not a succeeded training run with a model "
                         f"(status {record.get('status')}); expected one to validate")
    path = run_dir / record["model"]["path"]
    payload = path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != record["model"]["sha256"]:
        raise registry.ModelIntegrityError(f"registry error: refusing to load {path}: its sha256 is not the one "
                                           "run.json recorded (the file was changed)")
    return registry.read_model(payload, path), record


# ------------------------------------------------------------------ metrics, point and bootstrap


def point_metrics(economics: Economics, y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Every metric of :data:`METRICS` for one model's scores at its threshold."""
    every_row = np.arange(len(y))[None, :]
    return {name: (None if np.isnan(v[0]) else float(v[0]))
            for name, v in resampled_metrics(economics, y, s, threshold, every_row).items()}


@dataclass(frozen=True)
class _Cells:
    """One model's scores on the evaluation rows, prepared once for every resample.

    Each row falls in a *cell*: a positive in the cell of its score, a negative in the
    gap between two consecutive positive scores (or on one of them: a tie), each cell
    split by the decision at the threshold. Log loss and Brier are per-row values.
    """

    cell: np.ndarray
    gaps: int
    cells: int
    log_loss: np.ndarray
    brier: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, s: np.ndarray, threshold: float) -> _Cells:
        pos = y == 1
        scores_of_positives = np.unique(s[pos])
        m = len(scores_of_positives)
        below = np.searchsorted(scores_of_positives, s, side="left")  # positive scores strictly below
        tie = (below < m) & (scores_of_positives[np.minimum(below, max(m - 1, 0))] == s) if m else \
            np.zeros(len(s), bool)
        gaps = 2 * m + 1  # negative cells: the gap below positive score k is slot 2k, a tie with it 2k+1
        cell = np.where(pos, gaps + below, 2 * below + tie) * 2 + (s >= threshold)
        clipped = np.clip(s, 1e-15, 1 - 1e-15)
        return cls(cell, gaps, 2 * (gaps + m), -np.where(pos, np.log(clipped), np.log1p(-clipped)), (s - pos) ** 2)


def resampled_metrics(economics: Economics, y: np.ndarray, s: np.ndarray, threshold: float,
                      draws: np.ndarray, cells: _Cells | None = None) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRICS` on each row of ``draws`` (the indices of the
    evaluation rows a resample drew; ``arange`` once for the observed rows).

    No resample is materialised: one ``bincount`` counts, for every resample at once,
    the rows drawn in each :class:`_Cells` cell; the confusion counts and ROC AUC (the
    Mann-Whitney sum: the negatives below each positive score, ties counting one half,
    as ``roc_auc_score`` counts them) come from those few cells, log loss and Brier
    from one gather each of per-row values.
    """
    cells = cells or _Cells.of(y, s, threshold)
    resamples, rows, gaps = draws.shape[0], draws.shape[1], cells.gaps
    code = (cells.cell[draws] + (np.arange(resamples) * cells.cells)[:, None]).ravel()
    counts = np.bincount(code, minlength=resamples * cells.cells).reshape(resamples, cells.cells // 2, 2)
    drawn = counts.sum(axis=2)
    negatives, positives = drawn[:, :gaps], drawn[:, gaps:]
    n, p = negatives.sum(axis=1).astype(float), positives.sum(axis=1).astype(float)
    fp, tp = counts[:, :gaps, 1].sum(axis=1).astype(float), counts[:, gaps:, 1].sum(axis=1).astype(float)
    fn, tn = p - tp, n - fp
    strictly_below = np.cumsum(negatives, axis=1)[:, 0:gaps - 1:2]  # slots 0..2k, for each positive score k
    pairs = (positives * (2 * strictly_below + negatives[:, 1::2])).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(p > 0, tp / p, 0.0)
        far = np.where(n > 0, fp / n, 0.0)
        out = {
            "roc_auc": np.where((p > 0) & (n > 0), pairs / (2.0 * p * n), np.nan),
            "accuracy": (tp + tn) / rows,
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": recall,
            "f1": np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
            "log_loss": cells.log_loss[draws].sum(axis=1) / rows,  # a 1-D gather each: gathering
            "brier": cells.brier[draws].sum(axis=1) / rows,        # a (rows, 2) array is 10x slower
        }
    value = business.value_of_rates(economics, recall, far)
    for name in ("net_value_per_month", "revenue_saved_per_month", "churners_caught_per_month"):
        out[name] = value[name]
    return out


def improvement(metric: str, candidate: Any, champion: Any) -> Any:
    """Candidate minus champion, or champion minus candidate where lower is better."""
    return champion - candidate if metric in LOWER_IS_BETTER else candidate - champion


def paired_bootstrap(economics: Economics, y: np.ndarray, scores: Mapping[str, np.ndarray],
                     thresholds: Mapping[str, float], spec: PromotionSpec) -> dict[str, tuple[float, float]]:
    """The interval of each metric's improvement over ``spec.resamples`` paired resamples.

    Returns:
        metric -> (low, high) at ``spec.confidence``; empty with no resamples.
    """
    if spec.resamples == 0:
        return {}
    rng = np.random.default_rng(spec.seed)
    rows = len(y)
    prepared = {who: _Cells.of(y, scores[who], thresholds[who]) for who in ("candidate", "champion")}
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    # The two models' counts of each resample are independent numpy work that releases the
    # GIL (gathers, bincount, sums): the champion's run on a second thread. The draws stay
    # in this thread, in order, so the resamples are those of the seed whatever the timing.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-bootstrap") as other:
        for start in range(0, spec.resamples, CHUNK):
            size = min(CHUNK, spec.resamples - start)
            draws = rng.integers(0, rows, size=(size, rows))
            champion = other.submit(resampled_metrics, economics, y, scores["champion"], thresholds["champion"],
                                    draws, prepared["champion"])
            candidate = resampled_metrics(economics, y, scores["candidate"], thresholds["candidate"], draws,
                                          prepared["candidate"])
            both = {"candidate": candidate, "champion": champion.result()}
            for m in METRICS:
                diffs[m].append(improvement(m, both["candidate"][m], both["champion"][m]))
    tail = (1 - spec.confidence) / 2 * 100
    out = {}
    for m, parts in diffs.items():
        values = np.concatenate(parts)
        values = values[~np.isnan(values)]
        out[m] = (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))) if len(values) else (
            float("nan"), float("nan"))
    return out


def single_row_p99_ms(fitted: Any, rows: Rows, count: int, max_seconds: float) -> tuple[float, int]:
    """p99 of ``predict_proba`` on one row at a time, in ms (the serving case).

    At most ``count`` rows, and no more once ``max_seconds`` have passed (a slow model
    is slow after a few rows already): returns the p99 and how many rows were timed.
    """
    columns = input_columns(fitted)
    frame = model.as_model_input(rows.frame[columns])
    fitted.predict_proba(frame.iloc[[0]])  # first call: lazy imports and caches, not latency
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    for i in range(count):
        one = frame.iloc[[i % len(frame)]]
        started = time.perf_counter()
        fitted.predict_proba(one)
        times.append((time.perf_counter() - started) * 1000)
        if started > deadline:
            break
    return float(np.percentile(times, 99)), len(times)


# ------------------------------------------------------------------ the gate


def gate(candidate_dir: Path, root: Path, against: str, registry_root: Path, spec: PromotionSpec,
         economics: Economics, tracking_uri: str | None = None) -> dict[str, Any]:
    """Apply the policy; return the verdict (also written as validation.json / .md).

    Raises:
        UsageError: An unknown model or alias name (not a missing alias: no champion
            yet passes and says so).
        DataError: The champion cannot read the evaluation rows.
    """
    timings: dict[str, float] = {}  # seconds by part, in validation.json: what the gate costs
    started = time.perf_counter()
    fitted, record = candidate_model(candidate_dir)
    champion = _champion(against, registry_root, tracking_uri)
    timings["load_models"] = _lap(started)
    verdict: dict[str, Any] = {
        "candidate": {"run_id": record["id"], "run_dir": str(candidate_dir), "model_sha256": record["model"]["sha256"],
                      "threshold": record["model"]["threshold"]},
        "against": against, "policy": dict(spec.declared), "rules": [], "metrics": {},
    }
    failures: list[str] = []
    started = time.perf_counter()
    rows = evaluation_rows(candidate_dir, root, spec.evaluation_as_of) if champion or spec.latency_p99_ms else None
    timings["evaluation_rows"] = _lap(started)
    if champion is None:
        verdict["champion"] = None
        verdict["note"] = f"no champion at {against} yet: the candidate passes the gate by default"
    else:
        entry, version, champion_model = champion
        verdict["champion"] = {"name": entry["name"], "version": version["version"], "run_id": version["run_id"],
                               "model_sha256": version["model_sha256"], "threshold": version["threshold"]}
        assert rows is not None
        verdict["evaluation"] = rows.description
        started = time.perf_counter()
        _check_types(registry.Registry(registry_root, tracking_uri).input_domain(version), rows, f"champion {against}")
        scores = {"candidate": score(fitted, rows, "candidate"), "champion": score(champion_model, rows, "champion")}
        timings["scoring"] = _lap(started)
        started = time.perf_counter()
        thresholds = {"candidate": float(record["model"]["threshold"]), "champion": float(version["threshold"])}
        points = {who: point_metrics(economics, rows.y, scores[who], thresholds[who]) for who in scores}
        intervals = paired_bootstrap(economics, rows.y, scores, thresholds, spec)
        for m in METRICS:
            cand, champ = points["candidate"][m], points["champion"][m]
            diff = None if cand is None or champ is None else improvement(m, cand, champ)
            verdict["metrics"][m] = {"champion": champ, "candidate": cand, "improvement": diff,
                                     "interval": list(intervals[m]) if m in intervals else None}
        for rule in spec.rules:
            outcome = _apply(rule, verdict["metrics"][rule.metric], spec.decide_on)
            verdict["rules"].append(outcome)
            if not outcome["passed"]:
                failures.append(outcome["line"])
        timings["metrics"] = _lap(started)  # point metrics, the paired bootstrap, the rules
        verdict["config_diff"] = _config_diff(Path(version["run_dir"]), candidate_dir)
        verdict["fingerprints"] = {"champion": _fingerprints(Path(version["run_dir"])),
                                   "candidate": _fingerprints(candidate_dir)}
    if spec.requirements_must_pass:
        failed = sorted(k for k, v in (record.get("requirements") or {}).items() if v != "passed")
        verdict["requirements"] = {"failed": failed}
        failures += [f"requirement {name} did not pass (requirements.json)" for name in failed]
    if spec.latency_p99_ms is not None and rows is not None:
        started = time.perf_counter()
        p99, timed = single_row_p99_ms(fitted, rows, spec.latency_rows, spec.latency_max_seconds)
        timings["latency"] = _lap(started)
        verdict["latency"] = {"p99_ms": round(p99, 3), "budget_ms": spec.latency_p99_ms, "rows": timed}
        if p99 > spec.latency_p99_ms:
            failures.append(f"latency: p99 single-row {p99:.2f} ms > budget {spec.latency_p99_ms:g} ms "
                            f"(over by {p99 - spec.latency_p99_ms:.2f} ms)")
    verdict["failures"] = failures
    verdict["passed"] = not failures
    verdict["seconds"] = timings
    started = time.perf_counter()
    write_text(candidate_dir / VALIDATION_MD, markdown(verdict))
    timings["report"] = _lap(started)
    write_json(candidate_dir / VALIDATION_JSON, verdict)
    return verdict


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def _champion(against: str, registry_root: Path,
              tracking_uri: str | None) -> tuple[dict[str, Any], dict[str, Any], Any] | None:
    store = registry.Registry(registry_root, tracking_uri)
    name, _, alias = against.partition("@")
    if not alias:
        raise UsageError(f"usage error: --against takes NAME@ALIAS, got {against!r}")
    registry.check_name(name)
    if name not in store.names() or alias not in store.read(name)["aliases"]:
        return None  # nothing in production yet
    entry, version = store.resolve(against)
    return entry, version, registry.load_model(against, registry_root, tracking_uri)


def _apply(rule: Any, values: Mapping[str, Any], decide_on: str) -> dict[str, Any]:
    diff, interval, champion = values["improvement"], values["interval"], values["champion"]
    judged = interval[0] if decide_on == "lower_bound" and interval else diff
    checks: list[tuple[str, float, float]] = []
    if rule.min_change is not None:
        checks.append(("change", judged, rule.min_change))
    if rule.min_relative_change is not None:
        relative = judged / abs(champion) if judged is not None and champion else (0.0 if judged == 0 else judged)
        checks.append(("relative change", relative, rule.min_relative_change))
    passed = judged is not None and all(value is not None and value >= bound for _, value, bound in checks)
    worst = min(checks, key=lambda c: (c[1] if c[1] is not None else -np.inf) - c[2])
    margin = None if worst[1] is None else worst[1] - worst[2]
    line = (f"{rule.metric}: {worst[0]} {_num(worst[1])} < {_num(worst[2])} (short by {_num(-margin)})"
            if not passed and margin is not None else f"{rule.metric}: undefined on the evaluation rows")
    return {"metric": rule.metric, "rule": rule.describe(), "judged": decide_on, "value": judged,
            "margin": margin, "passed": passed, "line": line}


def _config_diff(champion_dir: Path, candidate_dir: Path) -> list[dict[str, Any]]:
    def flat(run_dir: Path) -> dict[str, Any]:
        try:
            return flatten(yaml.safe_load((run_dir / "config.resolved.yaml").read_text()) or {})
        except OSError:
            return {}

    before, after = flat(champion_dir), flat(candidate_dir)
    absent = "(absent)"
    return [{"key": k, "champion": before.get(k, absent), "candidate": after.get(k, absent)}
            for k in sorted(set(before) | set(after)) if before.get(k, absent) != after.get(k, absent)]


def _fingerprints(run_dir: Path) -> dict[str, str]:
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {name: str(d.get("fingerprint")) for name, d in (record.get("data") or {}).items()}


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)


# ------------------------------------------------------------------ the pull request's summary


def markdown(verdict: Mapping[str, Any]) -> str:
    """``validation.md``: made to be pasted into a pull request (or a CI job summary)."""
    status = "PASSED" if verdict["passed"] else "FAILED"
    cand = verdict["candidate"]
    lines = [f"## mlops validate: {status}", "",
             f"Candidate run `{cand['run_id'][:8]}` (model sha256 `{cand['model_sha256'][:12]}`, threshold "
             f"{_num(cand['threshold'])}) against `{verdict['against']}`"]
    champion = verdict.get("champion")
    if champion is None:
        lines += ["", f"{verdict.get('note')}."]
    else:
        lines[-1] += (f" = {champion['name']}/{champion['version']} (run `{champion['run_id'][:8]}`, threshold "
                      f"{_num(champion['threshold'])}).")
        lines += ["", f"Evaluation rows: {verdict['evaluation']}. Differences are improvements (candidate minus "
                  "champion; for log_loss and brier, champion minus candidate), with a paired bootstrap interval.",
                  "", "| metric | champion | candidate | difference [interval] | rule | verdict |",
                  "|---|---|---|---|---|---|"]
        ruled = {r["metric"]: r for r in verdict["rules"]}
        for name, m in verdict["metrics"].items():
            interval = f" [{_num(m['interval'][0])}, {_num(m['interval'][1])}]" if m.get("interval") else ""
            rule = ruled.get(name)
            lines.append(f"| {name} | {_num(m['champion'])} | {_num(m['candidate'])} | "
                         f"{_num(m['improvement'])}{interval} | {rule['rule'] if rule else ''} | "
                         f"{('pass' if rule['passed'] else '**FAIL**') if rule else ''} |")
    if "requirements" in verdict:
        failed = verdict["requirements"]["failed"]
        lines += ["", "Requirements: " + ("all passed" if not failed else "**failed**: " + ", ".join(failed))]
    if "latency" in verdict:
        lat = verdict["latency"]
        lines += ["", f"Latency: p99 single-row {lat['p99_ms']} ms over {lat['rows']} rows "
                  f"(budget {lat['budget_ms']} ms)"]
    if verdict.get("config_diff") is not None:
        lines += ["", "### Config: champion -> candidate", ""]
        if verdict["config_diff"]:
            lines += ["| key | champion | candidate |", "|---|---|---|"]
            lines += [f"| `{d['key']}` | {_cell(d['champion'])} | {_cell(d['candidate'])} |"
                      for d in verdict["config_diff"]]
        else:
            lines.append("(identical)")
    if verdict.get("fingerprints"):
        lines += ["", "### Data fingerprints", "", "| source | champion | candidate |", "|---|---|---|"]
        fps = verdict["fingerprints"]
        for source in sorted(set(fps["champion"]) | set(fps["candidate"])):
            lines.append(f"| {source} | `{fps['champion'].get(source, '-')[-12:]}` | "
                         f"`{fps['candidate'].get(source, '-')[-12:]}` |")
    if verdict["failures"]:
        lines += ["", "### Failed", ""] + [f"- {line}" for line in verdict["failures"]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text.replace("|", "\\|")[:80]


def promote(candidate_dir: Path, against: str, registry_root: Path, echo: Callable[[str], None],
            tracking_uri: str | None = None) -> dict[str, Any]:
    """Register the candidate's model and move the alias to it (after a pass).

    A candidate already registered under ``name`` (a sweep's best run, registered as the
    challenger) is not registered twice: the alias moves to that version.
    """
    store = registry.Registry(registry_root, tracking_uri)
    name, _, alias = against.partition("@")
    record = json.loads((candidate_dir / "run.json").read_text())
    try:
        known = [v for v in store.read(name)["versions"] if v["run_id"] == record.get("id")
                 and v["model_sha256"] == (record.get("model") or {}).get("sha256")]
    except UsageError:
        known = []
    version = known[-1] if known else store.register(name, candidate_dir)
    move = store.promote(name, int(version["version"]), alias)
    before = f" (was v{move['previous']})" if move["previous"] else ""
    echo(f"promoted: {name}@{alias} -> v{move['version']}{before}")
    return move
