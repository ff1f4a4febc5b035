"""The drift methods on the frozen profile agree with scipy on seeded samples, and with a
reference PSI; the correction, CBPE and the rules behave as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from engine.config.monitor import Drift, MonitorSpec
from engine.stages import monitor

RNG_SEEDS = range(5)


def _numeric_pair(reference: np.ndarray, current: np.ndarray) -> monitor.Pair:
    return monitor.bin_current({"type": "numeric", **monitor.numeric_profile(reference)}, current)


def _categorical_pair(reference: np.ndarray, current: np.ndarray) -> monitor.Pair:
    return monitor.bin_current({"type": "categorical", **monitor.categorical_profile(pd.Series(reference))},
                               pd.Series(current))


def reference_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """The textbook PSI: deciles of the reference, shares floored at 1e-4."""
    edges = np.quantile(reference, np.arange(1, bins) / bins, method="inverted_cdf")
    r = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=bins) / len(reference)
    c = np.bincount(np.searchsorted(edges, current, side="left"), minlength=bins) / len(current)
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_ks_agrees_with_scipy_on_continuous_samples(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    reference, current = rng.normal(size=20_000), rng.normal(shift, 1.0, size=5_000)
    statistic, p = monitor.ks(_numeric_pair(reference, current))
    expected = stats.ks_2samp(reference, current, method="asymp")
    # the gap is measured at the reference's 1,001 quantiles: within a bin's mass of the exact one
    assert statistic == pytest.approx(expected.statistic, abs=2e-3)
    assert (p < 0.05) == (expected.pvalue < 0.05) or abs(expected.pvalue - 0.05) < 0.02


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_ks_is_exact_on_integers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference, current = rng.poisson(3, size=8_000).astype(float), rng.poisson(3.2, size=3_000).astype(float)
    statistic, p = monitor.ks(_numeric_pair(reference, current))
    expected = stats.ks_2samp(reference, current, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_wasserstein_agrees_with_scipy(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    reference, current = rng.gamma(2.0, 3.0, size=20_000), rng.gamma(2.0, 3.0 * scale, size=5_000)
    statistic, p = monitor.wasserstein(_numeric_pair(reference, current))
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert p is None
    assert statistic == pytest.approx(expected, abs=3e-3)


def test_wasserstein_is_exact_on_integers_and_counts_values_beyond_the_range() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.poisson(4, size=5_000).astype(float), rng.poisson(9, size=2_000).astype(float)
    statistic, _ = monitor.wasserstein(_numeric_pair(reference, current))
    assert current.max() > reference.max()  # some current values lie beyond the reference's range
    assert statistic == pytest.approx(stats.wasserstein_distance(reference, current) / np.std(reference), rel=1e-9)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("p_new", [(0.5, 0.3, 0.2), (0.45, 0.3, 0.25), (0.3, 0.3, 0.4)])
def test_chi2_agrees_with_chi2_contingency(seed: int, p_new: tuple[float, ...]) -> None:
    rng = np.random.default_rng(seed)
    labels = np.array(["monthly", "annual", "family"])
    reference, current = rng.choice(labels, 4_000, p=[0.5, 0.3, 0.2]), rng.choice(labels, 1_500, p=p_new)
    statistic, p = monitor.chi2(_categorical_pair(reference, current))
    table = np.array([[np.sum(reference == c) for c in labels], [np.sum(current == c) for c in labels]])
    expected = stats.chi2_contingency(table)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_chi2_with_two_categories_applies_yates_like_scipy_and_takes_new_categories() -> None:
    rng = np.random.default_rng(0)
    reference, current = rng.choice(["a", "b"], 500), rng.choice(["a", "b"], 300, p=[0.4, 0.6])
    statistic, p = monitor.chi2(_categorical_pair(reference, current))
    table = np.array([[np.sum(reference == c) for c in "ab"], [np.sum(current == c) for c in "ab"]])
    assert statistic == pytest.approx(stats.chi2_contingency(table).statistic, rel=1e-9)
    pair = _categorical_pair(reference, np.array(["a", "b", "weekly", "weekly"]))
    assert "weekly" in pair.labels and pair.reference[pair.labels.index("weekly")] == 0


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_jensenshannon_agrees_with_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.array(list("abcde"))
    reference, current = rng.choice(labels, 3_000), rng.choice(labels, 1_000, p=[0.4, 0.15, 0.15, 0.15, 0.15])
    statistic, _ = monitor.jensen_shannon(_categorical_pair(reference, current))
    p = np.array([np.mean(reference == c) for c in labels])
    q = np.array([np.mean(current == c) for c in labels])
    assert statistic == pytest.approx(distance.jensenshannon(p, q), rel=1e-9)
    numbers_ref, numbers_cur = rng.normal(size=10_000), rng.normal(0.2, 1, size=4_000)
    statistic, _ = monitor.jensen_shannon(_numeric_pair(numbers_ref, numbers_cur))
    edges = np.quantile(numbers_ref, np.arange(1, 10) / 10, method="inverted_cdf")
    r = np.bincount(np.searchsorted(edges, numbers_ref), minlength=10)
    c = np.bincount(np.searchsorted(edges, numbers_cur), minlength=10)
    assert statistic == pytest.approx(distance.jensenshannon(r / r.sum(), c / c.sum()), rel=1e-9)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_psi_agrees_with_a_reference_psi(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    reference, current = rng.normal(size=10_000), rng.normal(shift, 1, size=4_000)
    statistic, _ = monitor.psi(_numeric_pair(reference, current))
    assert statistic == pytest.approx(reference_psi(reference, current), rel=1e-9, abs=1e-12)


def test_bonferroni_and_fdr() -> None:
    p = [0.001, 0.01, 0.02, 0.04, 0.5]
    assert monitor.adjust(p, "none") == p
    assert monitor.adjust(p, "bonferroni") == pytest.approx([0.005, 0.05, 0.1, 0.2, 1.0])
    assert monitor.adjust(p, "fdr") == pytest.approx(stats.false_discovery_control(p, method="bh"))


def test_cbpe_estimates_the_roc_auc_of_calibrated_scores() -> None:
    rng = np.random.default_rng(1)
    scores = rng.beta(1, 6, size=20_000)
    labels = rng.uniform(size=scores.size) < scores  # calibrated by construction
    from sklearn.metrics import roc_auc_score

    assert monitor.estimated_roc_auc(scores) == pytest.approx(roc_auc_score(labels, scores), abs=0.01)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, new_plan: float = 0.0) -> pd.DataFrame:
    plan = rng.choice(["monthly", "annual", "family"], n, p=[0.55, 0.3, 0.15]).astype(object)
    plan[rng.uniform(size=n) < new_plan] = "weekly"
    return pd.DataFrame({"orders_30d": rng.poisson(0.7 + shift, n), "amount": rng.lognormal(3 + shift, 0.5, n),
                         "plan": plan})


def test_rules_flag_the_drifted_columns_and_say_insufficient_data_below_min_rows() -> None:
    rng = np.random.default_rng(0)
    reference = monitor.profile(_frame(rng, 5_000), rng.beta(1, 6, 1_000), 0.3)
    spec = MonitorSpec.from_config({"rules": {
        "any": {"check": "drift", "dimension": "drift", "severity": "warn"},
        "plan_mix": {"check": "drift", "dimension": "drift", "columns": ["plan"]},
        "half": {"check": "drift", "dimension": "drift", "share": 0.5}}})
    same = monitor.run(spec, reference, monitor.Current(_frame(rng, 3_000)))
    assert same.failed_errors == [] and same.failed_warnings == []
    drifted = monitor.run(spec, reference, monitor.Current(_frame(rng, 3_000, shift=0.5, new_plan=0.3)))
    assert drifted.failed_errors == ["plan_mix", "half"]
    assert set(drifted.drifted_columns) == {"orders_30d", "amount", "plan"}
    few = monitor.run(spec, reference, monitor.Current(_frame(rng, 50, shift=2)))
    assert {r.verdict for r in few.results} == {"insufficient data"}


def test_the_defaults_switch_to_statistical_tests_on_a_small_reference() -> None:
    spec = MonitorSpec.from_config({"rules": {}})
    assert spec.test("x", "numeric", 500).method == "ks"
    assert spec.test("x", "categorical", 500).method == "chi2"
    assert spec.test("x", "numeric", 5_000).method == "wasserstein"
    assert spec.test("x", "categorical", 5_000).method == "jensenshannon"
    assert spec.test("x", "categorical", 5_000, Drift(name="r", dimension="drift", method="ks")).method == \
        "jensenshannon"  # ks does not apply to categories: the default by type


def test_performance_with_labels_and_the_cbpe_estimate_against_the_hold_out() -> None:
    rng = np.random.default_rng(2)
    holdout = rng.beta(1, 6, 2_000)
    labels = (rng.uniform(size=holdout.size) < holdout).astype(int)
    reference = monitor.profile(_frame(rng, 2_000), holdout, 0.5, labels)
    spec = MonitorSpec.from_config({"rules": {
        "auc": {"check": "performance", "dimension": "performance", "metric": "roc_auc", "max_drop": 0.05},
        "cbpe": {"check": "estimated_performance", "dimension": "performance", "metric": "roc_auc", "max_drop": 0.05}}})
    scores = rng.beta(1, 6, 3_000)
    good = monitor.Current(_frame(rng, 3_000), scores=scores, decisions=(scores >= 0.5).astype(int),
                           labels=(rng.uniform(size=scores.size) < scores).astype(int))
    assert monitor.run(spec, reference, good).failed_errors == []
    # labels that no longer follow the scores: the realised ROC AUC falls, the estimate cannot know
    noise = monitor.Current(good.frame, scores=scores, decisions=good.decisions,
                            labels=(rng.uniform(size=scores.size) < 0.15).astype(int))
    assert monitor.run(spec, reference, noise).failed_errors == ["auc"]
    # scores squeezed towards the middle: the estimate falls without any label
    flat = np.clip(0.15 + (scores - 0.15) * 0.1, 0, 1)
    squeezed = monitor.Current(good.frame, scores=flat, decisions=(flat >= 0.5).astype(int))
    report = monitor.run(spec, reference, squeezed)
    assert report.failed_errors == ["cbpe"]
    assert [r.verdict for r in report.results] == ["not applicable", "failed"]


def test_outside_domain_agrees_with_the_servers_flags() -> None:
    from engine.stages import domain

    rng = np.random.default_rng(4)
    train = _frame(rng, 1_000)
    fitted = domain.profile(train)
    current = _frame(rng, 500, shift=1.0, new_plan=0.2)
    current.loc[::7, "amount"] = np.nan
    expected = np.array([bool(flags) for flags in domain.flags(current, fitted)])
    assert expected.any()
    assert np.array_equal(monitor.outside_domain(current, fitted), expected)
