"""CBPE's expected confusion matrix and value a month against hand-computed values and against
labels drawn from the calibrated scores; the reference chunks' bands; the ±sigma alerts per
current chunk; older profiles without the hold-out's value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from engine.config.business import Economics
from engine.config.monitor import Chunks, MonitorSpec
from engine.stages import business, monitor

ECONOMICS = Economics(customers=10_000, price=10.0, churners_per_month=1_000, retention_effect=0.5,
                      discounted_price=8.0)


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({"orders_30d": rng.poisson(0.7, n), "plan": rng.choice(["monthly", "annual"], n)})


def test_the_expected_confusion_matrix_and_its_value_by_hand() -> None:
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    decisions = (scores >= 0.5).astype(int)
    tp, fp, fn, tn = monitor.expected_confusion(scores, decisions)
    assert (tp, fp, fn, tn) == pytest.approx((1.7, 0.3, 0.4, 1.6))
    # recall 1.7 / 2.1, false alarms 0.3 / 1.9; 1,000 churners and 9,000 stayers a month;
    # a kept churner pays $8 (half are kept), a needless offer gives away $2
    recall, false_alarms = 1.7 / 2.1, 0.3 / 1.9
    by_hand = 1_000 * recall * 0.5 * 8.0 - 9_000 * false_alarms * 2.0
    estimated = monitor.estimated_metrics(scores, decisions, ECONOMICS)
    assert estimated["net_value_per_month"] == pytest.approx(by_hand, abs=0.005)
    assert estimated["precision"] == pytest.approx(1.7 / 2.0) and estimated["recall"] == pytest.approx(recall)
    assert estimated["accuracy"] == pytest.approx(3.3 / 4)


def test_the_estimate_lands_on_the_mean_of_labels_drawn_from_the_calibrated_scores() -> None:
    """Labels drawn from the scores over many seeds: the realised confusion matrix and value
    average to CBPE's estimate, within a few standard errors of that mean."""
    rng = np.random.default_rng(11)
    scores = rng.beta(1, 5, 4_000)
    decisions = (scores >= 0.35).astype(int)
    estimated = monitor.estimated_metrics(scores, decisions, ECONOMICS)
    expected = np.array(monitor.expected_confusion(scores, decisions))
    draws = 600
    labels = rng.uniform(size=(draws, scores.size)) < scores  # calibrated by construction
    d = decisions.astype(bool)
    tp, fn = (labels & d).sum(axis=1), (labels & ~d).sum(axis=1)
    fp, tn = d.sum() - tp, (~d).sum() - fn
    realised = np.column_stack([tp, fp, fn, tn]).astype(float)
    assert realised.mean(axis=0) == pytest.approx(expected, abs=4 * realised.std(axis=0).max() / np.sqrt(draws))
    values = np.array([business.value_at(ECONOMICS, *row)["net_value_per_month"] for row in realised])
    error = values.std() / np.sqrt(draws)
    assert abs(values.mean() - estimated["net_value_per_month"]) < 4 * error + 0.002 * abs(values.mean())
    aucs = np.array([roc_auc_score(row, scores) for row in labels[:200]])
    assert estimated["roc_auc"] == pytest.approx(aucs.mean(), abs=4 * aucs.std() / np.sqrt(200) + 0.002)


def test_miscalibrated_scores_are_calibrated_on_the_hold_out_before_they_are_trusted() -> None:
    """A model whose scores are the square root of the probability (as a class-weighted model
    overstates churn): the raw scores overestimate every count; the profile's isotonic map
    brings the estimate on new rows to the realised value."""
    rng = np.random.default_rng(5)
    p_holdout, p_new = rng.beta(1, 8, 6_000), rng.beta(1, 8, 6_000)
    holdout_labels = (rng.uniform(size=p_holdout.size) < p_holdout).astype(int)
    new_labels = (rng.uniform(size=p_new.size) < p_new).astype(int)
    scores_holdout, scores_new = np.sqrt(p_holdout), np.sqrt(p_new)
    reference = monitor.profile(_frame(rng, 500), scores_holdout, 0.5, holdout_labels, ECONOMICS)
    decisions = (scores_new >= 0.5).astype(int)
    realised = monitor.realised_metrics(new_labels, scores_new, decisions, ECONOMICS)
    raw = monitor.estimated_metrics(scores_new, decisions, ECONOMICS)
    fixed = monitor.estimated_metrics(scores_new, decisions, ECONOMICS,
                                      monitor.calibrated(reference["scores"], scores_new))
    assert abs(raw["precision"] - realised["precision"]) > 0.2
    assert fixed["precision"] == pytest.approx(realised["precision"], abs=0.05)
    assert fixed["recall"] == pytest.approx(realised["recall"], abs=0.05)
    assert fixed["roc_auc"] == pytest.approx(realised["roc_auc"], abs=0.02)
    # the map is scikit-learn's isotonic regression, stored as points and interpolated
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores_holdout, holdout_labels)
    assert monitor.calibrated(reference["scores"], scores_new) == pytest.approx(iso.predict(scores_new))


def test_the_profile_keeps_the_hold_outs_value_and_its_chunks_mean_and_std() -> None:
    rng = np.random.default_rng(3)
    scores = rng.beta(1, 4, 1_000)
    labels = (rng.uniform(size=scores.size) < scores).astype(int)
    reference = monitor.profile(_frame(rng, 300), scores, 0.4, labels, ECONOMICS, Chunks(reference_count=8))
    entry = reference["scores"]
    d = scores >= 0.4
    tp, fp = int((d & (labels == 1)).sum()), int((d & (labels == 0)).sum())
    fn = int((~d & (labels == 1)).sum())
    assert entry["net_value_per_month"] == business.value_at(ECONOMICS, tp, fp, fn, 1_000 - tp - fp - fn)[
        "net_value_per_month"]
    assert entry["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    chunks = entry["chunks"]
    assert chunks["count"] == 8 and chunks["rows"] == [125] * 8
    by_chunk = [roc_auc_score(labels[i:i + 125], scores[i:i + 125]) for i in range(0, 1_000, 125)]
    assert chunks["realised"]["roc_auc"]["mean"] == pytest.approx(np.mean(by_chunk))
    assert chunks["realised"]["roc_auc"]["std"] == pytest.approx(np.std(by_chunk))  # NannyML's: ddof 0
    sized = monitor.profile(_frame(rng, 300), scores, 0.4, labels, ECONOMICS, Chunks(None, 300))
    assert sized["scores"]["chunks"]["rows"] == [300, 300, 400]  # the incomplete last chunk joins the one before


def _spec(**rule: object) -> MonitorSpec:
    return MonitorSpec.from_config({"min_rows": 50, "chunks": {"current": {"by": "rows", "size": 500}}, "rules": {
        "auc": {"check": "performance", "dimension": "performance", "metric": "roc_auc", **rule},
        "value": {"check": "estimated_performance", "dimension": "performance", "metric": "net_value_per_month",
                  **rule}}})


def _profiled_and_current(rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """The profile of a 4,000-row hold-out (beta(1, 4) scores, labels drawn from them,
    threshold 0.4) and 2,000 current scores drawn alike."""
    holdout = rng.beta(1, 4, 4_000)
    reference = monitor.profile(_frame(rng, 500), holdout, 0.4,
                                (rng.uniform(size=holdout.size) < holdout).astype(int), ECONOMICS)
    return reference, rng.beta(1, 4, 2_000)


def test_a_chunk_outside_the_reference_band_fails_the_rule_and_is_named() -> None:
    rng = np.random.default_rng(8)
    reference, scores = _profiled_and_current(rng)
    labels = (rng.uniform(size=scores.size) < scores).astype(int)
    labels[1_500:] = rng.permutation(labels[1_500:])  # the last chunk's labels no longer follow the scores
    current = monitor.Current(_frame(rng, 2_000), scores=scores, decisions=(scores >= 0.4).astype(int),
                              labels=labels, economics=ECONOMICS)
    report = monitor.run(_spec(sigma=3), reference, current)
    auc = report.results[0]
    assert [c["chunk"] for c in auc.chunks] == ["rows 0-499", "rows 500-999", "rows 1000-1499", "rows 1500-1999"]
    assert [c["verdict"] for c in auc.chunks] == ["passed", "passed", "passed", "failed"]
    assert auc.verdict == "failed" and "chunk(s) failed: rows 1500-1999" in auc.detail
    low, high = monitor.band(reference, "roc_auc", 3)
    stats = reference["scores"]["chunks"]["realised"]["roc_auc"]
    assert (low, high) == pytest.approx((stats["mean"] - 3 * stats["std"], min(stats["mean"] + 3 * stats["std"], 1)))
    # each chunk's sampling error at its size, from the hold-out's components (NannyML's)
    components = reference["scores"]["sampling_error"]["roc_auc"]
    assert [c["sampling_error"] for c in auc.chunks] == pytest.approx(
        [monitor.sampling_error(components, 500)] * 4, abs=1e-6)  # kept to 6 decimals
    assert [c["sampling_error"] for c in report.results[1].chunks] == pytest.approx(
        [monitor.sampling_error(reference["scores"]["sampling_error"]["net_value_per_month"], 500)] * 4, abs=1e-6)
    # the estimate cannot see labels: every chunk's expected value stays in the band
    assert report.results[1].verdict == "passed" and len(report.results[1].chunks) == 4
    # scores pushed over the threshold: everyone contacted, the expected value falls out of
    # the band, without any label
    flat = 0.41 + 0.05 * scores
    squeezed = monitor.Current(current.frame, scores=flat, decisions=(flat >= 0.4).astype(int), economics=ECONOMICS)
    assert monitor.run(_spec(sigma=3), reference, squeezed).results[1].verdict == "failed"


def test_chunks_by_month_follow_the_rows_times_and_one_month_is_no_chunking() -> None:
    times = pd.to_datetime(["2026-10-30", "2026-11-02", "2026-10-01", "2026-12-31"]).to_numpy()
    current = monitor.Current(pd.DataFrame({"x": range(4)}), scores=np.zeros(4), times=times)
    chunks = monitor.current_chunks(Chunks(by="month"), {}, current)
    assert [(name, rows.tolist()) for name, rows in chunks] == [("2026-10", [0, 2]), ("2026-11", [1]),
                                                                ("2026-12", [3])]
    current.times = times[:1].repeat(4)
    assert monitor.current_chunks(Chunks(by="month"), {}, current) == []


def test_an_older_profile_without_the_hold_outs_value_says_not_applicable_for_a_relative_bound() -> None:
    rng = np.random.default_rng(4)
    holdout = rng.beta(1, 4, 1_000)
    reference = monitor.profile(_frame(rng, 200), holdout, 0.4, (rng.uniform(size=1_000) < holdout).astype(int))
    older = {**reference, "scores": {k: v for k, v in reference["scores"].items()
                                     if k not in ("net_value_per_month", "chunks", "calibration")}}
    scores = rng.beta(1, 4, 600)
    current = monitor.Current(_frame(rng, 600), scores=scores, decisions=(scores >= 0.4).astype(int),
                              economics=ECONOMICS)
    relative = MonitorSpec.from_config({"rules": {"value": {
        "check": "estimated_performance", "dimension": "performance", "metric": "net_value_per_month",
        "max_drop": 100, "sigma": 3}}})
    (result,) = monitor.run(relative, older, current).results
    assert result.verdict == "not applicable"
    assert "keeps no hold-out net_value_per_month" in result.detail and "no chunks of net_value_per_month" in \
        result.detail
    absolute = MonitorSpec.from_config({"rules": {"value": {
        "check": "estimated_performance", "dimension": "performance", "metric": "net_value_per_month",
        "min": 1e9, "max_drop": 100}}})
    (result,) = monitor.run(absolute, older, current).results
    assert result.verdict == "failed" and "below min" in result.detail and "not judged: max_drop" in result.detail
    # the profile of today keeps it: the same relative rule is judged
    (result,) = monitor.run(relative, monitor.profile(_frame(rng, 200), holdout, 0.4,
                                                      (rng.uniform(size=1_000) < holdout).astype(int), ECONOMICS),
                            current).results
    assert result.verdict in ("passed", "failed") and "hold-out" in result.detail


def test_the_calibration_error_by_hand() -> None:
    """Ten bins of equal count: each bin's |mean probability - share of positives|, weighted."""
    p = np.linspace(0.05, 0.95, 20)
    y = np.array([0, 0, 0, 1] * 5)  # a quarter positive wherever the scores are
    by_hand = sum(abs(p[i:i + 2].mean() - y[np.argsort(p)][i:i + 2].mean()) * 0.1 for i in range(0, 20, 2))
    assert monitor._ece(y, p) == pytest.approx(by_hand)
    assert monitor._ece(np.array([0, 1] * 10), np.full(20, 0.5)) == 0.0


def test_the_map_is_used_only_when_it_lowers_the_cross_validated_calibration_error() -> None:
    """NannyML's rule: the square root of the probability is miscalibrated and the map is
    used; labels drawn from the scores leave the raw scores' error near zero; the profile
    says which, and why."""
    rng = np.random.default_rng(8)
    p = rng.beta(2, 5, 20_000)
    labels = (rng.uniform(size=p.size) < p).astype(int)
    skewed = monitor.calibration(np.sqrt(p), labels)
    assert skewed["used"] and skewed["ece"]["raw"] > 0.15 > 0.02 > skewed["ece"]["calibrated"]
    assert skewed["why"] == "cross-validated: the map lowers the calibration error"
    honest = monitor.calibration(p, labels)
    assert honest["ece"]["raw"] < 0.015 and honest["used"] == (honest["ece"]["calibrated"] < honest["ece"]["raw"])


@pytest.mark.parametrize(("scores", "labels", "why"), [
    (np.linspace(0, 1, 400), (np.linspace(0, 1, 400) > 0.5).astype(int), "rank the hold-out perfectly"),
    (np.linspace(0, 1, 15), np.array([0] * 10 + [1] * 5), "too few rows"),
    (np.linspace(0, 1, 400), np.array([1] + [0] * 399), "too few rows"),
])
def test_a_map_that_cannot_be_judged_is_kept_but_not_used(scores: np.ndarray, labels: np.ndarray,
                                                          why: str) -> None:
    entry = {"calibration": monitor.calibration(scores, labels)}
    assert entry["calibration"]["used"] is False and why in entry["calibration"]["why"]
    assert monitor.calibrated(entry, scores) == pytest.approx(scores)  # the scores as they are


def test_a_profile_written_before_the_check_uses_its_map_and_one_not_used_gives_the_scores() -> None:
    scores = np.array([0.1, 0.5, 0.9])
    older = {"calibration": {"x": [0.0, 1.0], "y": [0.0, 0.5]}}
    assert monitor.calibrated(older, scores) == pytest.approx([0.05, 0.25, 0.45])
    unused = {"calibration": {**older["calibration"], "used": False}}
    assert monitor.calibrated(unused, scores) == pytest.approx(scores)


def test_the_calibration_error_is_nannymls_on_tied_probabilities() -> None:
    """Mapped scores are a step function, so the equal-count bins cut through ties; the
    rows fall into them as in NannyML's ``_calculate_expected_calibration_error`` (its
    code, transcribed: numpy's default argsort, then the bins' weighted gaps)."""

    def nannyml(y_true: np.ndarray, y_pred_proba: np.ndarray, bin_count: int = 10) -> float:
        width = len(y_pred_proba) // bin_count
        edges = np.asarray(range(0, len(y_pred_proba) + 1, width))
        edges[-1] = len(y_pred_proba)
        order = y_pred_proba.argsort()
        p, y = y_pred_proba[order], y_true[order]
        return float(np.sum([(r - left) / len(p) * abs(np.mean(p[left:r]) - np.mean(y[left:r]))
                             for left, r in zip(edges[:-1], edges[1:])]))

    rng = np.random.default_rng(21)
    for n in (200, 997, 5_000):
        probabilities = rng.choice([0.05, 0.2, 0.2, 0.5, 0.9], n)  # few values: many ties
        labels = (rng.uniform(size=n) < probabilities).astype(int)
        assert monitor._ece(labels, probabilities) == pytest.approx(nannyml(labels, probabilities), abs=1e-12)


@pytest.mark.parametrize("size", [300, 1_000])
def test_the_sampling_error_is_the_spread_of_each_metric_over_chunks_of_that_size(size: int) -> None:
    """Chunks of ``size`` rows drawn from a labelled population: the standard deviation of
    each realised metric over 400 chunks matches the standard error the hold-out's
    components give for that size (within 15%: the spread of 400 draws is itself known to
    about 4%)."""
    rng = np.random.default_rng(4)
    p = rng.beta(1, 5, 20_000)
    labels = (rng.uniform(size=p.size) < p).astype(int)
    decisions = (p >= 0.35).astype(int)
    components = monitor.sampling_error_components(labels, p, decisions, ECONOMICS)
    assert set(components) == {"accuracy", "precision", "recall", "f1", "roc_auc", "net_value_per_month"}
    drawn: dict[str, list[float]] = {}
    for _ in range(400):
        rows = rng.integers(0, p.size, size)
        for metric, value in monitor.realised_metrics(labels[rows], p[rows], decisions[rows], ECONOMICS).items():
            drawn.setdefault(metric, []).append(value)
    ratios = {m: monitor.sampling_error(components[m], size) / np.std(v) for m, v in drawn.items()}
    assert all(0.85 < r < 1.15 for r in ratios.values()), ratios
    # DeLong's variance, not NannyML's of the positives' placements alone (which runs low)
    order = np.argsort(p)
    placements = (np.flatnonzero(labels[order] == 1) - np.arange(labels.sum())) / (labels == 0).sum()
    nannyml = np.std(placements) / np.sqrt(size * labels.mean()) / np.std(drawn["roc_auc"])
    assert abs(ratios["roc_auc"] - 1) < abs(nannyml - 1), (ratios["roc_auc"], nannyml)


def test_no_sampling_error_without_the_observations_it_needs() -> None:
    scores = np.linspace(0, 1, 200)
    labels = (scores > 0.9).astype(int)  # 20 positives: fewer than 30
    components = monitor.sampling_error_components(labels, scores, (scores > 0.5).astype(int), ECONOMICS)
    assert set(components) == {"accuracy", "precision", "f1"}  # 100 positive decisions; too few positives
    assert monitor.sampling_error_components(labels[:2], scores[:2], labels[:2], ECONOMICS) == {}  # a tiny hold-out
    assert monitor.sampling_error(None, 500) is None and monitor.sampling_error(components["accuracy"], 0) is None


def test_a_chunk_without_a_value_shows_no_sampling_error_nor_does_an_older_profile() -> None:
    rng = np.random.default_rng(8)
    reference, scores = _profiled_and_current(rng)
    labelled = np.ones(scores.size, dtype=bool)
    labelled[500:1_470] = False  # the second chunk has no labelled row, the third 30 (min_rows: 50)
    labels = (rng.uniform(size=scores.size) < scores).astype(int)[labelled]
    current = monitor.Current(_frame(rng, 2_000), scores=scores, decisions=(scores >= 0.4).astype(int),
                              labels=labels, labelled=labelled, economics=ECONOMICS)
    chunks = monitor.run(_spec(sigma=3), reference, current).results[0].chunks
    assert [(c["verdict"], c["sampling_error"] is None) for c in chunks] == [
        ("passed", False), ("insufficient data", True), ("insufficient data", True), ("passed", False)]
    older = {**reference, "scores": {k: v for k, v in reference["scores"].items() if k != "sampling_error"}}
    assert all(c["sampling_error"] is None for r in monitor.run(_spec(sigma=3), older, current).results
               for c in r.chunks)
