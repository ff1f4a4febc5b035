"""Monitoring: the reference profile frozen at training, and the rules of ``conf/monitor/`` on current data.

A training run saves ``model/reference_profile.json`` beside the model (:func:`profile`):
for each input column of the model, its type and missing share, and either a quantile
histogram (numbers: the reference's values at 1,000 evenly spaced probabilities, with
the exact count of reference values in each bin between two of them) or the counts of
its categories; and the same histogram of the model's scores on the hold-out, with the
share of positive decisions. Monitoring never reads the training data again.

Every drift method works on two histograms over the same bins: the reference's, from
the profile, and the current data's, binned onto the reference's edges with one
``searchsorted`` per column (:func:`bin_current`). So the cost of a column is one pass
over the current values, whatever the reference's size. On the bins:

* KS: the largest gap between the two empirical CDFs at the reference's bin edges
  (exact when the values sit on the edges, as integers and categories-as-numbers do;
  within one bin's reference mass, 0.1%, otherwise), with ``ks_2samp``'s asymptotic
  p-value.
* Wasserstein: the area between the two CDFs, each side's mass in a bin placed at its
  mean in the bin (exact for integers; values beyond the reference's range count at
  their own place), divided by the reference's standard deviation.
* PSI and Jensen-Shannon (numbers): over ten groups of fine bins of 10% reference mass
  each, i.e. the reference's deciles; categories: over the union of the categories.
* chi-squared: the 2 x k table of category counts, as ``chi2_contingency``.

Rule types are executed by one function each (:data:`CHECKS`), each returning a
:class:`RuleResult` with what was observed, the threshold and the columns at fault.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from engine.config import monitor as decl
from engine.config.business import Economics
from engine.files import atomic_path
from engine.stages import business

PROFILE_FILE = "reference_profile.json"
#: The format of the file; a reader refuses a newer one instead of misreading it.
FORMAT = 1
#: Probabilities at which a numeric column's reference quantiles are kept.
QUANTILES = 1000
#: Categories kept per column (the most frequent); the rest are counted as one.
MAX_CATEGORIES = 1000
OTHER = "__other__"
#: PSI's and Jensen-Shannon's groups of reference mass (deciles).
GROUPS = 10
#: Shares below this are taken as this in PSI (an empty bin would make it infinite).
PSI_FLOOR = 1e-4


# ------------------------------------------------------------------ the reference profile


def column_type(series: pd.Series) -> str:
    """``numeric`` for numbers (not booleans), ``categorical`` for everything else (the
    Pipeline one-hot encodes it)."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    return "numeric"


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    """The quantile histogram of some numbers (missing and infinite values left out).

    Returns:
        ``edges``: every distinct value when there are at most :data:`QUANTILES` + 1 of
        them (counts, flags, small integers: the histogram is then exact), else the
        distinct values at :data:`QUANTILES` + 1 evenly spaced probabilities, the
        minimum and maximum included; ``counts``: values ``v`` with
        ``edges[i-1] < v <= edges[i]`` in bin ``i``, and one more bin for values above
        the last edge (empty for the reference); ``sums``: the sum of the values in
        each bin (where in its bin the mass lies, for Wasserstein); ``rows``,
        ``mean``, ``std``.
    """
    values = values[np.isfinite(values)]
    if not len(values):
        return {"rows": 0, "edges": [], "counts": [0], "sums": [0.0], "mean": None, "std": None}
    distinct = np.unique(values)
    if len(distinct) <= QUANTILES + 1:
        edges = distinct
    else:
        # i / QUANTILES, not linspace: 0.1 must be the float 0.1 for the deciles to be exact
        edges = np.unique(np.quantile(values, np.arange(QUANTILES + 1) / QUANTILES, method="inverted_cdf"))
    index = np.searchsorted(edges, values, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    sums = np.bincount(index, weights=values, minlength=len(edges) + 1)
    return {"rows": int(len(values)), "edges": [_plain(e) for e in edges], "counts": counts.tolist(),
            "sums": [float(x) for x in sums], "mean": float(values.mean()), "std": float(values.std())}


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    """The counts of each category (as text, as the Pipeline sees it), most frequent first."""
    counts = values.dropna().astype(str).value_counts()
    kept = counts.iloc[:MAX_CATEGORIES]
    other = int(counts.iloc[MAX_CATEGORIES:].sum())
    return {"rows": int(counts.sum()), "categories": {str(k): int(v) for k, v in kept.items()},
            "other": other}


def profile(X: pd.DataFrame, scores: np.ndarray, threshold: float, labels: np.ndarray | None = None,
            economics: Economics | None = None, chunks: decl.Chunks | None = None) -> dict[str, Any]:
    """The reference profile of a model: its training inputs and its hold-out scores.

    Args:
        X: The training features, the Pipeline's columns in its order.
        scores: The model's scores on the hold-out rows.
        threshold: The decision threshold saved with the model.
        labels: The hold-out's labels: its realised metrics (ROC AUC, precision, recall,
            F1, accuracy, and the net value a month with ``economics``) are what
            performance rules compare with.
        economics: The business economics the run valued the model with.
        chunks: How the hold-out is cut into chunks for the ±sigma alerts (None: the
            default, ten chunks).
    """
    columns: dict[str, Any] = {}
    for name in X.columns:
        series = X[name]
        kind = column_type(series)
        entry: dict[str, Any] = {"type": kind, "missing_share": round(float(series.isna().mean()), 6)
                                 if len(series) else 0.0}
        if kind == "numeric":
            entry.update(numeric_profile(pd.to_numeric(series, errors="coerce").to_numpy(dtype=float,
                                                                                          na_value=np.nan)))
        else:
            entry.update(categorical_profile(series))
        columns[str(name)] = entry
    scores = np.asarray(scores, dtype=float)
    decisions = (scores >= threshold).astype(int)
    score_entry: dict[str, Any] = {**numeric_profile(scores), "threshold": float(threshold),
                                   "positive_share": float(decisions.mean()) if len(scores) else None}
    labelled = labels is not None and len(np.unique(labels)) == 2
    y = np.asarray(labels).astype(int) if labelled else None
    if y is not None:
        score_entry["calibration"] = calibration(scores, y)
    probabilities = calibrated(score_entry, scores)
    for metric, value in estimated_metrics(scores, decisions, economics, probabilities).items():
        score_entry[f"estimated_{metric}"] = value
    if y is not None:
        score_entry.update(realised_metrics(y, scores, decisions, economics))
        score_entry["sampling_error"] = sampling_error_components(y, scores, decisions, economics)
    if len(scores):
        score_entry["chunks"] = reference_chunks(scores, decisions, y, economics, chunks or decl.Chunks(),
                                                 probabilities)
    return {"format": FORMAT, "rows": len(X), "columns": columns, "scores": score_entry}


def save(reference: Mapping[str, Any], directory: Path) -> str:
    """Write ``reference_profile.json`` into ``directory`` atomically; return its sha256."""
    payload = (json.dumps(reference, separators=(",", ":")) + "\n").encode()
    with atomic_path(directory / PROFILE_FILE) as tmp:
        tmp.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def read(payload: bytes, where: str) -> dict[str, Any]:
    """Parse a ``reference_profile.json`` (already verified against its sha256).

    Raises:
        ValueError: Not JSON, or not a profile of a format this engine reads.
    """
    try:
        reference = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(reference, dict) or reference.get("format") != FORMAT or \
            not isinstance(reference.get("columns"), dict):
        raise ValueError(f"{where}: expected a reference profile of format {FORMAT} with 'columns'")
    return reference


# ------------------------------------------------------------------ current data on the reference's bins


@dataclass(frozen=True)
class Pair:
    """One column's reference and current histograms over the same bins.

    Args:
        kind: ``numeric`` or ``categorical``.
        reference: Counts per bin (numbers: the profile's bins; categories: the union
            of both sides' categories, reference first).
        current: The current data's counts over the same bins.
        edges: The reference's bin edges (numbers).
        labels: The categories (categories).
        reference_std: The reference's standard deviation (numbers).
        reference_sums: The sum of the reference's values in each bin (numbers).
        current_sums: The sum of the current values in each bin (numbers).
    """

    kind: str
    reference: np.ndarray
    current: np.ndarray
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    labels: tuple[str, ...] = ()
    reference_std: float = 0.0
    reference_sums: np.ndarray = field(default_factory=lambda: np.empty(0))
    current_sums: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def reference_rows(self) -> int:
        return int(self.reference.sum())

    @property
    def current_rows(self) -> int:
        return int(self.current.sum())


def bin_current(entry: Mapping[str, Any], values: pd.Series | np.ndarray) -> Pair:
    """Bin current values onto a profile entry's bins (one pass over the values).

    Args:
        entry: A column's entry of the reference profile (or the scores').
        values: The current values of that column; missing ones are left out.
    """
    if entry.get("type", "numeric") == "numeric":
        numbers = np.asarray(pd.to_numeric(pd.Series(values) if not isinstance(values, pd.Series) else values,
                                           errors="coerce"), dtype=float) \
            if not (isinstance(values, np.ndarray) and values.dtype.kind == "f") else values
        numbers = numbers[np.isfinite(numbers)]
        edges = np.asarray(entry["edges"], dtype=float)
        reference = np.asarray(entry["counts"], dtype=np.int64)
        if not len(edges):
            return Pair("numeric", reference, np.array([len(numbers)]), edges)
        index = np.searchsorted(edges, numbers, side="left")
        current = np.bincount(index, minlength=len(edges) + 1)
        sums = np.bincount(index, weights=numbers, minlength=len(edges) + 1)
        return Pair("numeric", reference, current, edges, reference_std=float(entry.get("std") or 0.0),
                    reference_sums=np.asarray(entry.get("sums") or np.zeros(len(reference)), dtype=float),
                    current_sums=sums)
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    counts = series.dropna().astype(str).value_counts()
    known = dict(entry["categories"])
    labels = list(known)
    if entry.get("other"):
        labels.append(OTHER)
        known[OTHER] = entry["other"]
    labels += [c for c in counts.index if c not in known]
    reference = np.array([known.get(c, 0) for c in labels], dtype=np.int64)
    current = np.array([int(counts.get(c, 0)) for c in labels], dtype=np.int64)
    return Pair("categorical", reference, current, labels=tuple(labels))


# ------------------------------------------------------------------ the methods

#: method name -> function of a :class:`Pair` returning (statistic, p-value or None).
IMPLEMENTATIONS: dict[str, Callable[[Pair], tuple[float, float | None]]] = {}


def implements(name: str) -> Callable[[Callable[[Pair], tuple[float, float | None]]],
                                      Callable[[Pair], tuple[float, float | None]]]:
    """Register the execution of the drift method declared as ``name`` in :mod:`engine.config.monitor`."""

    def add(func: Callable[[Pair], tuple[float, float | None]]) -> Callable[[Pair], tuple[float, float | None]]:
        assert name in decl.METHODS, name
        IMPLEMENTATIONS[name] = func
        return func

    return add


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def _groups(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Numbers: the fine bins merged into :data:`GROUPS` groups of reference mass
    (deciles); categories: the categories."""
    if pair.kind == "categorical":
        return pair.reference, pair.current
    n = pair.reference_rows
    before = np.cumsum(pair.reference) - pair.reference
    group = np.minimum(before * GROUPS // max(n, 1), GROUPS - 1)
    return (np.bincount(group, weights=pair.reference, minlength=GROUPS),
            np.bincount(group, weights=pair.current, minlength=GROUPS))


@implements("psi")
def psi(pair: Pair) -> tuple[float, float | None]:
    """Population stability index: sum of (current - reference) x ln(current / reference) shares."""
    reference, current = _groups(pair)
    r = np.maximum(_shares(reference), PSI_FLOOR)
    c = np.maximum(_shares(current), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r))), None


@implements("jensenshannon")
def jensen_shannon(pair: Pair) -> tuple[float, float | None]:
    """Jensen-Shannon distance (natural log), as scipy.spatial.distance.jensenshannon."""
    reference, current = _groups(pair)
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(math.sqrt(max(float(left.sum() + right.sum()) / 2, 0.0))), None


@implements("ks")
def ks(pair: Pair) -> tuple[float, float | None]:
    """Two-sample Kolmogorov-Smirnov: the largest gap between the CDFs at the reference's
    edges, with scipy's asymptotic p-value (``ks_2samp(method="asymp")``)."""
    n, m = pair.reference_rows, pair.current_rows
    gap = np.abs(np.cumsum(pair.reference) / n - np.cumsum(pair.current) / m)
    d = float(gap.max())
    en = round(n * m / (n + m))
    return d, float(np.clip(stats.kstwo.sf(d, en), 0, 1))


@implements("wasserstein")
def wasserstein(pair: Pair) -> tuple[float, float | None]:
    """Wasserstein-1 distance divided by the reference's standard deviation.

    Each side's mass in a bin is placed at that side's mean in the bin (the profile
    keeps the reference's sums per bin; the current's are summed while binning), so
    values beyond the reference's range count at their own place, and a bin holding one
    distinct value (integers) is exact.
    """
    n, m = pair.reference_rows, pair.current_rows
    with np.errstate(invalid="ignore", divide="ignore"):
        at_r = np.where(pair.reference > 0, pair.reference_sums / np.maximum(pair.reference, 1), 0.0)
        at_c = np.where(pair.current > 0, pair.current_sums / np.maximum(pair.current, 1), 0.0)
    points = np.concatenate([at_r[pair.reference > 0], at_c[pair.current > 0]])
    weights = np.concatenate([pair.reference[pair.reference > 0] / n, -pair.current[pair.current > 0] / m])
    order = np.argsort(points, kind="stable")
    gap = np.abs(np.cumsum(weights[order]))[:-1]
    distance = float(np.sum(gap * np.diff(points[order])))
    if pair.reference_std > 0:
        return distance / pair.reference_std, None
    return (0.0 if distance < 1e-12 else math.inf), None


@implements("chi2")
def chi2(pair: Pair) -> tuple[float, float | None]:
    """The chi-squared test of the 2 x k table of category counts, as scipy's
    ``chi2_contingency`` (with Yates' correction at one degree of freedom)."""
    observed = np.vstack([pair.reference, pair.current]).astype(float)
    observed = observed[:, observed.sum(axis=0) > 0]
    if observed.shape[1] < 2:
        return 0.0, 1.0
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    dof = observed.shape[1] - 1
    if dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, float(stats.chi2.sf(statistic, dof))


def adjust(p_values: Sequence[float], correction: str) -> list[float]:
    """P-values corrected for testing many columns: Bonferroni, or Benjamini-Hochberg (``fdr``)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if correction == "none" or m <= 1:
        return p.tolist()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out.tolist()


# ------------------------------------------------------------------ CBPE


#: NannyML's check of whether calibrating helps: splits, the share of rows each judges on, bins.
CALIBRATION_SPLITS, CALIBRATION_TEST_SHARE, CALIBRATION_BINS = 10, 0.1, 10


def calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The isotonic map from the hold-out's scores to the share of positives (NannyML's
    calibration of CBPE), and whether CBPE uses it.

    ``x`` holds the score thresholds and ``y`` the probabilities there; a score between two
    is interpolated linearly, one outside their range clipped (scikit-learn's
    ``IsotonicRegression(out_of_bounds="clip")`` predicts the same). ``used`` is decided as
    NannyML decides it (``needs_calibration``): in 10 stratified splits, a map fitted on 90%
    of the rows maps the other 10%; pooled over the splits, the expected calibration error
    (``ece``, 10 bins of equal count) of the mapped scores must be below the raw scores'.
    Scores that are calibrated already keep their own values (a map fitted on a few
    thousand rows adds steps of its own), and so do scores that rank the hold-out perfectly
    (ROC AUC above 0.999) or too few rows to judge the map on.
    """
    from sklearn.isotonic import IsotonicRegression

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    out: dict[str, Any] = {"x": [float(v) for v in fitted.X_thresholds_],
                           "y": [float(v) for v in fitted.y_thresholds_]}
    judged = _calibration_error(scores, labels)
    if judged is None:
        return {**out, "used": False, "ece": None, "why": "too few rows of each class to judge the map"}
    if judged == "separates":
        return {**out, "used": False, "ece": None, "why": "the scores rank the hold-out perfectly"}
    raw, mapped = judged
    return {**out, "used": mapped < raw, "ece": {"raw": raw, "calibrated": mapped},
            "why": "cross-validated: the map lowers the calibration error" if mapped < raw
            else "cross-validated: the map does not lower the calibration error"}


def _calibration_error(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float] | str | None:
    """The pooled out-of-split expected calibration error of the raw and the mapped scores
    (see :func:`calibration`); ``"separates"`` for perfectly ranked scores; None when a
    class has too few rows to split."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    smallest = int(min(labels.sum(), len(labels) - labels.sum()))
    if smallest < 2 or len(labels) < 2 * CALIBRATION_BINS:
        return None
    if roc_auc_score(labels, scores) > 0.999:
        return "separates"
    splits = StratifiedShuffleSplit(n_splits=CALIBRATION_SPLITS, test_size=CALIBRATION_TEST_SHARE, random_state=42)
    truth, raw, mapped = [], [], []
    for train, test in splits.split(scores, labels):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores[train], labels[train])
        truth.append(labels[test])
        raw.append(scores[test])
        mapped.append(iso.predict(scores[test]))
    y = np.concatenate(truth)
    return _ece(y, np.concatenate(raw)), _ece(y, np.concatenate(mapped))


def _ece(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Expected calibration error over :data:`CALIBRATION_BINS` bins of equal count (the
    last takes the remainder), as NannyML computes it: rows sorted by numpy's default
    sort, so that tied probabilities (a mapped score is a step function) fall into the
    bins as they do in NannyML's ``needs_calibration``."""
    order = np.argsort(probabilities)
    p, y = np.clip(probabilities[order], 0.0, 1.0), labels[order].astype(float)
    width = len(p) // CALIBRATION_BINS
    edges = list(range(0, len(p) + 1, width))
    edges[-1] = len(p)
    return float(sum((right - left) / len(p) * abs(p[left:right].mean() - y[left:right].mean())
                     for left, right in zip(edges[:-1], edges[1:], strict=True)))


def calibrated(score_entry: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """The probability of the positive class of each score: through the profile's
    calibration map when it is used (:func:`calibration`), else the score itself (a map
    that does not help, a hold-out without labels, or an older profile without a map).
    A profile written before the map's use was judged (no ``used``) uses its map."""
    scores = np.asarray(scores, dtype=float)
    mapping = score_entry.get("calibration")
    if not mapping or not mapping.get("x") or mapping.get("used") is False:
        return np.clip(scores, 0.0, 1.0)
    return np.interp(scores, np.asarray(mapping["x"], dtype=float), np.asarray(mapping["y"], dtype=float))


def estimated_roc_auc(scores: np.ndarray, probabilities: np.ndarray | None = None) -> float | None:
    """The ROC AUC expected from calibrated scores alone (CBPE): each row is a positive
    with its probability ``p`` (the calibrated score; the score itself when None), so a
    pair (i, j) counts as ranked right with weight ``p_i (1 - p_j)`` when ``s_i > s_j``
    (half at a tie of the scores)."""
    s = np.asarray(scores, dtype=float)
    if len(s) < 2:
        return None
    order = np.argsort(s, kind="stable")
    s = s[order]
    p = s if probabilities is None else np.asarray(probabilities, dtype=float)[order]
    w = 1 - p
    # negatives' weight strictly below each score, and half of the weight tied with it
    uniq, start = np.unique(s, return_index=True)
    cum = np.concatenate([[0.0], np.cumsum(w)])
    group = np.searchsorted(uniq, s)
    below = cum[start[group]]
    end = np.append(start[1:], len(s))
    tied = cum[end[group]] - cum[start[group]] - w
    numerator = float(np.sum(p * (below + tied / 2)))
    denominator = float(p.sum() * w.sum() - np.sum(p * w))
    return numerator / denominator if denominator > 0 else None


def expected_confusion(probabilities: np.ndarray, decisions: np.ndarray) -> tuple[float, float, float, float]:
    """CBPE's expected confusion matrix: each row a positive with its calibrated score's
    probability ``p``, so TP = the sum of ``p`` over the rows decided positive, FP the sum
    of ``1 - p`` over them; FN and TN the same over the rows decided negative.

    Returns:
        (tp, fp, fn, tn), expected counts (floats).
    """
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    positive = np.asarray(decisions).astype(bool)
    tp, fn = float(p[positive].sum()), float(p[~positive].sum())
    fp, tn = float(positive.sum()) - tp, float((~positive).sum()) - fn
    return tp, fp, fn, tn


def confusion_metrics(tp: float, fp: float, fn: float, tn: float,
                      economics: Economics | None = None) -> dict[str, float | None]:
    """Precision, recall, F1, accuracy and, with the economics, the net value a month of a
    confusion matrix (counts or CBPE's expected counts), scaled to the population as the
    hold-out's is (:func:`engine.stages.business.value_at`)."""
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out: dict[str, float | None] = {
        "precision": precision, "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "accuracy": (tp + tn) / total if total else None}
    if economics is not None:
        out["net_value_per_month"] = business.value_at(economics, tp, fp, fn, tn)["net_value_per_month"]
    return out


def estimated_metrics(scores: np.ndarray, decisions: np.ndarray, economics: Economics | None = None,
                      probabilities: np.ndarray | None = None) -> dict[str, float | None]:
    """Every metric CBPE estimates from scores alone (the net value with the economics).

    Args:
        scores: The model's scores (their order ranks the rows).
        decisions: 1 where the model says positive (the score at or above its threshold).
        economics: Values the expected confusion matrix; None: no net value.
        probabilities: The calibrated scores (:func:`calibrated`); None: the scores.
    """
    scores = np.asarray(scores, dtype=float)
    if not len(scores):
        return {}
    p = np.clip(scores, 0.0, 1.0) if probabilities is None else probabilities
    return {"roc_auc": estimated_roc_auc(scores, p),
            **confusion_metrics(*expected_confusion(p, decisions), economics)}


def realised_metrics(labels: np.ndarray, scores: np.ndarray, decisions: np.ndarray,
                     economics: Economics | None = None) -> dict[str, float | None]:
    """The same metrics on labelled rows (ROC AUC None with one class)."""
    y = np.asarray(labels).astype(int)
    d = np.asarray(decisions).astype(bool)
    positive = y == 1
    tp, fp = int(np.count_nonzero(d & positive)), int(np.count_nonzero(d & ~positive))
    fn = int(np.count_nonzero(~d & positive))
    roc_auc = None
    if len(np.unique(y)) == 2:
        from sklearn.metrics import roc_auc_score

        roc_auc = float(roc_auc_score(y, scores))
    return {"roc_auc": roc_auc, **confusion_metrics(tp, fp, fn, len(y) - tp - fp - fn, economics)}


# ------------------------------------------------------------------ sampling error (NannyML's)


#: The fewest observations a sampling error's components are measured on.
MIN_SAMPLING_OBSERVATIONS = 30


def sampling_error_components(labels: np.ndarray, scores: np.ndarray, decisions: np.ndarray,
                              economics: Economics | None = None) -> dict[str, dict[str, float]]:
    """Per metric, what the standard error of its value on ``n`` rows is made of, measured
    on the labelled hold-out (NannyML's sampling error): the standard error on ``n`` rows
    is ``std / sqrt(n * fraction)`` (:func:`sampling_error`).

    As NannyML's ``sampling_error/binary_classification.py`` for accuracy (the share of
    rows decided right), precision (of the positive decisions right) and recall (of the
    positives found). Two differ from NannyML's, which miss a part of the variance or add
    to it (``bench``-free check: ``tests/unit/stages/test_monitor_cbpe.py`` draws chunks):
    ROC AUC takes DeLong's variance, both classes' placements (NannyML's, the positives'
    alone, came out 10-15% low), and F1 the ratio's linearisation ``2 TP / (2 TP + FP +
    FN)`` (NannyML's correcting factor, about 20% high). The net value a month is linear
    in recall and the false-alarm rate (:func:`engine.stages.business.value_of_rates`),
    so its error adds theirs by the variance sum law. A metric measured on fewer than
    :data:`MIN_SAMPLING_OBSERVATIONS` observations (positive decisions, positives, each
    class) has none: a spread of a handful of rows would claim a certainty it lacks.
    """
    y = np.asarray(labels).astype(int)
    d = np.asarray(decisions).astype(bool)
    s = np.asarray(scores, dtype=float)
    n = len(y)
    out: dict[str, dict[str, float]] = {}
    enough = MIN_SAMPLING_OBSERVATIONS
    if n < enough:
        return out
    positive = y == 1
    tp, fp, fn = d & positive, d & ~positive, ~d & positive
    both = positive.sum() >= enough and (~positive).sum() >= enough
    out["accuracy"] = {"std": float(np.std(d == positive)), "fraction": 1.0}
    if d.sum() >= enough:
        out["precision"] = {"std": float(np.std(tp[d])), "fraction": float(d.mean())}
    if positive.sum() >= enough:
        out["recall"] = {"std": float(np.std(tp[positive])), "fraction": float(positive.mean())}
    if (tp | fp | fn).sum() >= enough:
        top, bottom = 2.0 * tp, 2.0 * tp + fp + fn  # per row: F1 = mean(top) / mean(bottom)
        f1 = top.mean() / bottom.mean()
        out["f1"] = {"std": float(np.std(top - f1 * bottom) / bottom.mean()), "fraction": 1.0}
    if both:
        out["roc_auc"] = _auroc_components(y, s)
    if economics is not None and both:
        base = business.value_of_rates(economics, np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
        value = base["net_value_per_month"]
        per_recall, per_false_alarm = float(value[1] - value[0]), float(value[2] - value[0])
        recall_std = float(np.std(tp[positive]))
        alarm_std = float(np.std(fp[~positive]))
        # var = (a s_r)^2 / (n f_pos) + (b s_f)^2 / (n f_neg): one std over n rows
        std = float(np.sqrt((per_recall * recall_std) ** 2 / positive.mean()
                            + (per_false_alarm * alarm_std) ** 2 / (~positive).mean()))
        out["net_value_per_month"] = {"std": std, "fraction": 1.0}
    return out


def _auroc_components(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """DeLong's variance of the ROC AUC as one standard deviation over rows: each
    positive's share of negatives scored below it (a tie counts half), each negative's
    share of positives scored above it; the AUC's variance on ``n`` rows is
    ``var(positives') / (n p) + var(negatives') / (n (1 - p))``."""
    positive, negative = np.sort(scores[y == 1]), np.sort(scores[y == 0])
    below = (np.searchsorted(negative, positive, side="left")
             + np.searchsorted(negative, positive, side="right")) / 2 / len(negative)
    above = (len(positive) - (np.searchsorted(positive, negative, side="left")
                              + np.searchsorted(positive, negative, side="right")) / 2) / len(positive)
    share = len(positive) / len(y)
    return {"std": float(np.sqrt(np.var(below) / share + np.var(above) / (1 - share))), "fraction": 1.0}


def sampling_error(components: Mapping[str, Any] | None, rows: int) -> float | None:
    """The standard error of a metric's value on ``rows`` rows (None: no components)."""
    if not components or rows <= 0 or not components.get("fraction"):
        return None
    return float(components["std"] / np.sqrt(rows * components["fraction"]))


# ------------------------------------------------------------------ chunks (NannyML's ±sigma alerts)


def split_rows(rows: int, count: int | None = None, size: int | None = None) -> list[np.ndarray]:
    """Row positions cut into ``count`` chunks of equal size (±1), or into chunks of
    ``size`` rows whose last, incomplete one joins the chunk before it (no row left out)."""
    if count is not None:
        return [c for c in np.array_split(np.arange(rows), max(1, min(count, rows))) if len(c)]
    assert size is not None and size >= 1
    full = max(rows // size, 1)
    bounds = [i * size for i in range(full)] + [rows]
    return [np.arange(bounds[i], bounds[i + 1]) for i in range(full)]


def _band_stats(values: list[float | None]) -> dict[str, Any]:
    """Mean and standard deviation of chunk values (NannyML's: ``np.std``, ddof 0), over the
    chunks where the metric is defined."""
    defined = np.asarray([v for v in values if v is not None], dtype=float)
    return {"values": [_plain(v) for v in values],
            "mean": float(defined.mean()) if len(defined) else None,
            "std": float(defined.std()) if len(defined) >= 2 else None}


def reference_chunks(scores: np.ndarray, decisions: np.ndarray, labels: np.ndarray | None,
                     economics: Economics | None, chunks: decl.Chunks,
                     probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """The hold-out cut into chunks in its row order, each chunk's realised metrics (with
    labels) and CBPE estimates, and their mean and standard deviation: the bands of the
    ±sigma alerts."""
    parts = split_rows(len(scores), chunks.reference_count, chunks.reference_size)
    realised: dict[str, list[float | None]] = {}
    estimated: dict[str, list[float | None]] = {}
    for rows in parts:
        p = probabilities[rows] if probabilities is not None else None
        for metric, value in estimated_metrics(scores[rows], decisions[rows], economics, p).items():
            estimated.setdefault(metric, []).append(value)
        if labels is not None:
            for metric, value in realised_metrics(labels[rows], scores[rows], decisions[rows], economics).items():
                realised.setdefault(metric, []).append(value)
    return {"count": len(parts), "size": int(round(len(scores) / len(parts))), "rows": [len(r) for r in parts],
            "realised": {m: _band_stats(v) for m, v in realised.items()},
            "estimated": {m: _band_stats(v) for m, v in estimated.items()}}


def current_chunks(chunks: decl.Chunks, reference: Mapping[str, Any], current: Current) -> list[tuple[str, np.ndarray]]:
    """The current rows cut into chunks, when there are at least two: by the calendar month
    of each row's time (``current.times``), or by ``size`` rows (null: the reference
    chunks' size). Fewer than two: none (the window is judged as one)."""
    rows = len(current.frame) if current.scores is None else len(current.scores)
    if chunks.by == "month":
        if current.times is None or rows == 0:
            return []
        months = pd.Series(pd.to_datetime(current.times)).dt.strftime("%Y-%m").to_numpy()
        out = [(str(m), np.flatnonzero(months == m)) for m in sorted(set(months.tolist()))]
        return out if len(out) >= 2 else []
    size = chunks.size or int((reference.get("scores", {}).get("chunks") or {}).get("size") or 0)
    if size < 1 or rows < 2 * size:
        return []
    return [(f"rows {r[0]}-{r[-1]}", r) for r in split_rows(rows, size=size)]


# ------------------------------------------------------------------ rules on current data


@dataclass
class Current:
    """The current data a monitor run checks.

    Args:
        frame: The model's input columns, one row per scored row.
        scores: The model's scores of those rows.
        decisions: 1 where the model says positive.
        outside: True where a row is outside the training domain (None: unknown).
        labels: The realised labels, where they have arrived (None: none yet).
        labelled: Which rows ``labels`` belong to (None: every row).
        key_metrics: Computes every stakeholder's metric, the net value included, from
            (labels, scores) at the model's threshold (the run layer's, with the
            business economics); None: the metrics of scikit-learn only.
        quality: The quality report of the current sources (``--current features``).
        source: Where the rows came from, for the report.
        economics: The business economics, for the net value CBPE estimates.
        times: When each row was scored (the prediction log), for chunks by month.
        keys: Each row's key (the features' entity), for ``--labels``.
        cutoffs: Each row's cut-off, for ``--labels`` (None: the rows have none).
    """

    frame: pd.DataFrame
    scores: np.ndarray | None = None
    decisions: np.ndarray | None = None
    outside: np.ndarray | None = None
    labels: np.ndarray | None = None
    labelled: np.ndarray | None = None
    key_metrics: Callable[[np.ndarray, np.ndarray], Mapping[str, Any]] | None = None
    quality: Any = None
    source: str = ""
    economics: Economics | None = None
    times: np.ndarray | None = None
    keys: pd.Series | None = None
    cutoffs: pd.Series | None = None
    _pairs: dict[str, Pair] = field(default_factory=dict)

    def pair(self, column: str, entry: Mapping[str, Any]) -> Pair:
        """The column's histograms, binned once however many rules read it."""
        if column not in self._pairs:
            self._pairs[column] = bin_current(entry, self.frame[column])
        return self._pairs[column]


@dataclass
class RuleResult:
    """One rule's outcome, for monitor.json and the report.

    ``verdict``: ``passed``, ``failed``, ``insufficient data`` (fewer current rows than
    ``min_rows``) or ``not applicable`` (what it needs is not there: labels, sources).
    """

    rule: decl.MonitorRule
    verdict: str
    observed: Any = None
    threshold: Any = None
    detail: str = ""
    columns: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.verdict == "failed"

    def to_json(self) -> dict[str, Any]:
        r = self.rule
        return {"rule": r.name, "dimension": r.dimension, "check": r.check, "severity": r.severity,
                "verdict": self.verdict, "observed": _plain(self.observed), "threshold": _plain(self.threshold),
                "detail": self.detail, "description": r.description, "columns": self.columns,
                **({"metric": r.metric} if isinstance(r, decl.Performance | decl.EstimatedPerformance) else {}),
                "chunks": self.chunks}


@dataclass
class MonitorReport:
    """Every rule's result, and what failed."""

    results: list[RuleResult]
    current_rows: int
    reference_rows: int

    @property
    def failed_errors(self) -> list[str]:
        return [r.rule.name for r in self.results if r.failed and r.rule.severity == "error"]

    @property
    def failed_warnings(self) -> list[str]:
        return [r.rule.name for r in self.results if r.failed and r.rule.severity == "warn"]

    @property
    def drifted_columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for result in self.results:
            for column in result.columns:
                if column.get("drifted") and "column" in column:
                    seen[column["column"]] = None
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        return {"passed": not self.failed_errors, "failed_errors": self.failed_errors,
                "failed_warnings": self.failed_warnings, "drifted_columns": self.drifted_columns,
                "current_rows": self.current_rows, "reference_rows": self.reference_rows,
                "rules": [r.to_json() for r in self.results]}

    def table(self) -> str:
        """One line per rule, for the terminal."""
        lines = []
        for r in self.results:
            mark = {"passed": "ok  ", "failed": "FAIL" if r.rule.severity == "error" else "warn"}.get(r.verdict, "--  ")
            lines.append(f"{mark} {r.rule.name:<20} {r.rule.dimension:<11} {r.verdict:<17} {r.detail}")
        return "\n".join(lines)


CHECKS: dict[str, Callable[[Any, decl.MonitorSpec, Mapping[str, Any], Current], RuleResult]] = {}


def executes(check: str) -> Callable[[Callable[..., RuleResult]], Callable[..., RuleResult]]:
    """Register the execution of a rule type of :mod:`engine.config.monitor`."""

    def add(func: Callable[..., RuleResult]) -> Callable[..., RuleResult]:
        assert check in decl.RULE_TYPES, check
        CHECKS[check] = func
        return func

    return add


def run(spec: decl.MonitorSpec, reference: Mapping[str, Any], current: Current) -> MonitorReport:
    """Apply every rule of ``spec`` to the current data, against the reference profile."""
    results = []
    for rule in spec.rules.values():
        minimum = rule.min_rows if rule.min_rows is not None else spec.min_rows
        if len(current.frame) < minimum and rule.check not in ("quality",):
            results.append(RuleResult(rule, "insufficient data", observed=len(current.frame), threshold=minimum,
                                      detail=f"{len(current.frame)} current row(s), fewer than min_rows {minimum}"))
            continue
        results.append(CHECKS[rule.check](rule, spec, reference, current))
    return MonitorReport(results, len(current.frame), int(reference.get("rows") or 0))


def compare_columns(spec: decl.MonitorSpec, reference: Mapping[str, Any], current: Current,
                    columns: Sequence[str], rule: decl.Drift | None = None,
                    min_rows: int | None = None) -> list[dict[str, Any]]:
    """Each column's test against the reference, the p-values corrected across the columns.

    Returns:
        Per column: ``column``, ``type``, ``method``, ``statistic``, ``p_value``
        (corrected; None for distances), ``threshold``, ``drifted`` (None: insufficient
        data), ``reference_rows``, ``current_rows``, ``missing_share`` (both sides).
    """
    minimum = min_rows if min_rows is not None else spec.min_rows
    rows: list[dict[str, Any]] = []
    for column in columns:
        entry = reference["columns"][column]
        test = spec.test(column, entry["type"], int(entry.get("rows") or 0), rule)
        pair = current.pair(column, entry)
        row: dict[str, Any] = {"column": column, "type": entry["type"], "method": test.method,
                               "threshold": test.threshold, "reference_rows": pair.reference_rows,
                               "current_rows": pair.current_rows,
                               "missing_share": {"reference": entry.get("missing_share"),
                                                 "current": round(float(current.frame[column].isna().mean()), 6)}}
        if pair.current_rows < minimum or pair.reference_rows == 0:
            row.update(statistic=None, p_value=None, drifted=None)
        else:
            statistic, p = IMPLEMENTATIONS[test.method](pair)
            row.update(statistic=statistic, p_value=p)
        rows.append(row)
    tested = [r for r in rows if r["p_value"] is not None]
    for row, p in zip(tested, adjust([r["p_value"] for r in tested], spec.correction), strict=True):
        row["p_value_raw"], row["p_value"] = row["p_value"], p
    for row in rows:
        if row["statistic"] is None:
            continue
        row["drifted"] = bool(row["p_value"] < row["threshold"]) if row["p_value"] is not None \
            else bool(row["statistic"] >= row["threshold"])
        row["statistic"] = _plain(row["statistic"])
    return rows


@executes("drift")
def _drift(rule: decl.Drift, spec: decl.MonitorSpec, reference: Mapping[str, Any], current: Current) -> RuleResult:
    names = list(rule.columns) if rule.columns else [c for c in reference["columns"] if c in current.frame.columns]
    missing = [c for c in names if c not in reference["columns"] or c not in current.frame.columns]
    if missing:
        return RuleResult(rule, "not applicable", detail=f"column(s) not in the model's input: {', '.join(missing)}")
    rows = compare_columns(spec, reference, current, names, rule, rule.min_rows)
    judged = [r for r in rows if r["drifted"] is not None]
    if not judged:
        return RuleResult(rule, "insufficient data", detail="too few current values in every column", columns=rows)
    drifted = [r["column"] for r in judged if r["drifted"]]
    share = len(drifted) / len(judged)
    failed = share >= rule.share if rule.share is not None else bool(drifted)
    limit = f"share >= {rule.share:g}" if rule.share is not None else "any column"
    detail = (f"{len(drifted)} of {len(judged)} column(s) drifted ({share:.0%}; fails at {limit})"
              + (f": {', '.join(drifted)}" if drifted else ""))
    return RuleResult(rule, "failed" if failed else "passed", observed=round(share, 6),
                      threshold=rule.share, detail=detail, columns=rows)


@executes("score_drift")
def _score_drift(rule: decl.ScoreDrift, spec: decl.MonitorSpec, reference: Mapping[str, Any],
                 current: Current) -> RuleResult:
    if current.scores is None or not reference.get("scores", {}).get("rows"):
        return RuleResult(rule, "not applicable", detail="no scores")
    threshold = rule.threshold if rule.threshold is not None else decl.METHODS[rule.method].threshold
    pair = bin_current({**reference["scores"], "type": "numeric"}, current.scores)
    statistic, p = IMPLEMENTATIONS[rule.method](pair)
    value = p if p is not None else statistic
    failed = value < threshold if p is not None else statistic >= threshold
    return RuleResult(rule, "failed" if failed else "passed", observed=value, threshold=threshold,
                      detail=f"{rule.method} {'p-value' if p is not None else ''} {value:.4g} "
                             f"({'<' if p is not None else '>='} {threshold:g} fails)".replace("  ", " "))


@executes("positive_share")
def _positive_share(rule: decl.PositiveShare, spec: decl.MonitorSpec, reference: Mapping[str, Any],
                    current: Current) -> RuleResult:
    if current.decisions is None or reference.get("scores", {}).get("positive_share") is None:
        return RuleResult(rule, "not applicable", detail="no decisions")
    now = float(np.mean(current.decisions))
    before = float(reference["scores"]["positive_share"])
    change = now - before
    return RuleResult(rule, "failed" if abs(change) > rule.max_change else "passed", observed=round(now, 6),
                      threshold=rule.max_change,
                      detail=f"{now:.2%} positive against {before:.2%} on the hold-out (change {change:+.2%}, "
                             f"at most ±{rule.max_change:.2%})")


@executes("outside_domain")
def _outside_domain(rule: decl.OutsideDomain, spec: decl.MonitorSpec, reference: Mapping[str, Any],
                    current: Current) -> RuleResult:
    if current.outside is None:
        return RuleResult(rule, "not applicable", detail="no training domain to compare with")
    share = float(np.mean(current.outside)) if len(current.outside) else 0.0
    return RuleResult(rule, "failed" if share > rule.max else "passed", observed=round(share, 6), threshold=rule.max,
                      detail=f"{share:.2%} of rows outside the training domain (at most {rule.max:.2%})")


@executes("quality")
def _quality(rule: decl.Quality, spec: decl.MonitorSpec, reference: Mapping[str, Any], current: Current) -> RuleResult:
    report = current.quality
    if report is None:
        return RuleResult(rule, "not applicable", detail="no sources read (the prediction log holds model inputs)")
    failed = list(report.gate_failures)
    return RuleResult(rule, "failed" if failed else "passed", observed=failed, threshold=[],
                      detail=(f"quality rule(s) of severity error failed: {', '.join(failed)}" if failed else
                              f"the training config's quality rules pass ({len(report.warnings)} warning(s))"))


@executes("performance")
def _performance(rule: decl.Performance, spec: decl.MonitorSpec, reference: Mapping[str, Any],
                 current: Current) -> RuleResult:
    if current.labels is None or current.scores is None:
        return RuleResult(rule, "not applicable", detail="no labels yet")
    mask = current.labelled if current.labelled is not None else np.ones(len(current.scores), dtype=bool)
    y, s = np.asarray(current.labels), current.scores[mask]
    d = current.decisions[mask] if current.decisions is not None else (s >= 0.5).astype(int)
    minimum = rule.min_rows if rule.min_rows is not None else spec.min_rows
    if len(y) < minimum:
        return RuleResult(rule, "insufficient data", observed=len(y), threshold=minimum,
                          detail=f"{len(y)} labelled row(s), fewer than min_rows {minimum}")
    if len(np.unique(y)) < 2 and rule.metric == "roc_auc":
        return RuleResult(rule, "insufficient data", detail="the labels hold one class only")
    every = _realised(current, y, s, d)
    value = every.get(rule.metric)
    if value is None:
        return RuleResult(rule, "insufficient data", detail=f"{rule.metric} is undefined on these labels")
    result = _bounded(rule, float(value), reference, f"{len(y)} labelled rows:")
    result.columns = [{"key_metrics": {k: _plain(v) for k, v in every.items()}}] if current.key_metrics else []
    # each chunk's labelled rows (labels: the labelled rows in order; position -> label)
    position = np.cumsum(mask) - 1
    per_chunk = []
    for name, rows in current_chunks(spec.chunks, reference, current):
        rows = rows[mask[rows]]
        if len(rows) < minimum or (rule.metric == "roc_auc" and len(np.unique(y[position[rows]])) < 2):
            per_chunk.append((name, len(rows), None))
            continue
        chunk_d = current.decisions[rows] if current.decisions is not None else (current.scores[rows] >= 0.5)
        per_chunk.append((name, len(rows), _realised(current, y[position[rows]], current.scores[rows],
                                                     chunk_d).get(rule.metric)))
    return _with_chunks(result, rule, reference, per_chunk)


def _realised(current: Current, y: np.ndarray, s: np.ndarray, d: np.ndarray) -> dict[str, Any]:
    """Every stakeholder's metric (the run layer's, with the economics), else the stage's own."""
    if current.key_metrics is not None:
        return dict(current.key_metrics(y, s))
    return realised_metrics(y, s, d, current.economics)


@executes("estimated_performance")
def _estimated(rule: decl.EstimatedPerformance, spec: decl.MonitorSpec, reference: Mapping[str, Any],
               current: Current) -> RuleResult:
    if current.scores is None:
        return RuleResult(rule, "not applicable", detail="no scores")
    if rule.metric == "net_value_per_month" and current.economics is None:
        return RuleResult(rule, "not applicable", detail="no business economics to value the expected "
                          "confusion matrix with")
    decisions = current.decisions if current.decisions is not None else (current.scores >= 0.5).astype(int)
    p = calibrated(reference.get("scores", {}), current.scores)
    value = estimated_metrics(current.scores, decisions, current.economics, p).get(rule.metric)
    if value is None:
        return RuleResult(rule, "insufficient data", detail="too few scores")
    result = _bounded(rule, value, reference, "estimated (CBPE)")
    minimum = rule.min_rows if rule.min_rows is not None else spec.min_rows
    per_chunk = []
    for name, rows in current_chunks(spec.chunks, reference, current):
        estimate = estimated_metrics(current.scores[rows], decisions[rows], current.economics,
                                     p[rows]).get(rule.metric) if len(rows) >= minimum else None
        per_chunk.append((name, len(rows), estimate))
    return _with_chunks(result, rule, reference, per_chunk)


def _show(metric: str, value: float) -> str:
    return f"${value:,.2f}" if metric == "net_value_per_month" else f"{value:.4f}"


def band(reference: Mapping[str, Any], metric: str, sigma: float | None) -> tuple[float, float] | None:
    """The reference chunks' mean ± sigma standard deviations of a metric's realised value
    (NannyML's alert band; the CBPE estimates' when the hold-out had no labels); None when
    the rule declares no sigma or the profile keeps no chunks of that metric (older
    profiles)."""
    if sigma is None:
        return None
    chunks = reference.get("scores", {}).get("chunks") or {}
    stats_ = (chunks.get("realised") or {}).get(metric) or (chunks.get("estimated") or {}).get(metric) or {}
    if stats_.get("mean") is None or stats_.get("std") is None:
        return None
    lower, upper = stats_["mean"] - sigma * stats_["std"], stats_["mean"] + sigma * stats_["std"]
    if metric != "net_value_per_month":  # a share: the band within [0, 1], as NannyML's limits
        lower, upper = max(lower, 0.0), min(upper, 1.0)
    return lower, upper


def _problems(rule: Any, value: float, before: float | None, limits: tuple[float, float] | None) -> list[str]:
    """What a value breaks of a rule's bounds (the ones that can be judged)."""
    problems = []
    if rule.min is not None and value < rule.min:
        problems.append(f"below min {_show(rule.metric, rule.min)}")
    if rule.max_drop is not None and before is not None and before - value > rule.max_drop:
        problems.append(f"{_show(rule.metric, before - value)} below the hold-out's {_show(rule.metric, before)} "
                        f"(at most {rule.max_drop:g})")
    if limits is not None and not limits[0] <= value <= limits[1]:
        problems.append(f"outside the reference chunks' {_show(rule.metric, limits[0])} .. "
                        f"{_show(rule.metric, limits[1])} (mean ± {rule.sigma:g}σ)")
    return problems


def _bounded(rule: Any, value: float, reference: Mapping[str, Any], how: str) -> RuleResult:
    """A value against a rule's ``min``, ``max_drop`` (the hold-out's realised value) and
    ``sigma`` (the reference chunks' band). A relative bound the profile cannot judge (an
    older profile without the hold-out's value or chunks) is named; with no bound left to
    judge, the rule is ``not applicable``."""
    before = reference.get("scores", {}).get(rule.metric)
    limits = band(reference, rule.metric, rule.sigma)
    unjudged = []
    if rule.max_drop is not None and before is None:
        unjudged.append(f"max_drop: the reference profile keeps no hold-out {rule.metric}")
    if rule.sigma is not None and limits is None:
        unjudged.append(f"sigma: the reference profile keeps no chunks of {rule.metric}")
    threshold = {"min": rule.min, "max_drop": rule.max_drop, "sigma": rule.sigma,
                 "band": [_plain(x) for x in limits] if limits else None}
    detail = f"{how} {rule.metric} {_show(rule.metric, value)}" + \
        (f" against {_show(rule.metric, before)} on the hold-out" if before is not None else "") + \
        (f", band {_show(rule.metric, limits[0])} .. {_show(rule.metric, limits[1])}" if limits else "")
    if rule.min is None and len(unjudged) == sum(x is not None for x in (rule.max_drop, rule.sigma)):
        return RuleResult(rule, "not applicable", observed=round(value, 6), threshold=threshold,
                          detail=f"{detail}; not judged: {'; '.join(unjudged)} (retrain to record it)")
    problems = _problems(rule, value, before, limits)
    if unjudged:
        detail += f" (not judged: {'; '.join(unjudged)})"
    return RuleResult(rule, "failed" if problems else "passed", observed=round(value, 6), threshold=threshold,
                      detail=detail + (": " + "; ".join(problems) if problems else ""))


def _with_chunks(result: RuleResult, rule: Any, reference: Mapping[str, Any],
                 per_chunk: list[tuple[str, int, float | None]]) -> RuleResult:
    """Each current chunk judged by the same bounds as the window; a failed chunk fails the rule."""
    if result.verdict == "not applicable" or not per_chunk:
        return result
    before = reference.get("scores", {}).get(rule.metric)
    limits = band(reference, rule.metric, rule.sigma)
    components = (reference.get("scores", {}).get("sampling_error") or {}).get(rule.metric)
    failed = []
    for name, rows, value in per_chunk:
        problems = _problems(rule, value, before, limits) if value is not None else []
        verdict = "insufficient data" if value is None else "failed" if problems else "passed"
        error = sampling_error(components, rows) if value is not None else None
        result.chunks.append({"chunk": name, "rows": rows, "value": _plain(round(value, 6)) if value is not None
                              else None, "band": [_plain(x) for x in limits] if limits else None,
                              "sampling_error": round(error, 6) if error is not None else None,
                              "verdict": verdict, "detail": "; ".join(problems)})
        if problems:
            failed.append(name)
    if failed:
        result.verdict = "failed"
        result.detail += f"; chunk(s) failed: {', '.join(failed)}"
    else:
        result.detail += f"; {len(per_chunk)} chunk(s) judged"
    return result


# ------------------------------------------------------------------ the training domain, vectorised


def outside_domain(frame: pd.DataFrame, domain: Mapping[str, Any]) -> np.ndarray:
    """True for each row outside the training domain (the flags of
    :func:`engine.stages.domain.flags`, per column array instead of per row)."""
    outside = np.zeros(len(frame), dtype=bool)
    for name, spec in domain["columns"].items():
        if name not in frame.columns:
            continue
        values = frame[name]
        missing = values.isna().to_numpy()
        if spec.get("missing_share", 0) == 0:
            outside |= missing
        if spec["type"] in ("integer", "number"):
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                if spec.get("min") is not None:
                    outside |= numbers < spec["min"]
                if spec.get("max") is not None:
                    outside |= numbers > spec["max"]
        elif spec.get("categories") is not None:
            outside |= ~missing & ~values.astype(str).isin(spec["categories"]).to_numpy()
    return outside


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
