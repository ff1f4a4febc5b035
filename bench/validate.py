"""The champion gate's costs: the vectorised paired bootstrap against a Python loop.

    python bench/validate.py                 # --rows 20000 --resamples 1000 --repeats 3
    python bench/validate.py --gate          # also the whole gate on the demo at 100,000 customers

Both sides use the same resamples (the same seed, drawn the same way): the loop calls
scikit-learn's ``roc_auc_score`` on each resample of each model, as one would write it
by hand; ours (engine.run.validate.paired_bootstrap) computes every metric of the gate
(ROC AUC, accuracy, precision, recall, F1, log loss, Brier and the business value) for
both models at once. The intervals of the ROC AUC difference must agree to 1e-9.
20,000 rows is the hold-out of the demo at 100,000 customers (test_size 0.2). Times are
CPU seconds of this process (time.process_time): the machine is shared, and both sides
are single-threaded.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from engine.config.business import Economics
from engine.config.promotion import PromotionSpec
from engine.run import validate

ECONOMICS = Economics(customers=100_000, price=10.0, churners_per_month=1000, retention_effect=0.5,
                      discounted_price=8.0, false_positive_cost=2.0)


def data(rows: int, seed: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=rows) < 0.03).astype(int)
    signal = rng.normal(size=rows) + 1.2 * y
    scores = {"champion": 1 / (1 + np.exp(-(signal + rng.normal(0, 0.8, rows)) + 3)),
              "candidate": 1 / (1 + np.exp(-(signal + rng.normal(0, 0.6, rows)) + 3))}
    scores["champion"] = np.round(scores["champion"], 3)  # ties, as a tree model gives
    return y, scores


def loop(y: np.ndarray, scores: dict[str, np.ndarray], spec: PromotionSpec) -> tuple[float, float]:
    rng = np.random.default_rng(spec.seed)
    diffs = []
    for start in range(0, spec.resamples, validate.CHUNK):
        size = min(validate.CHUNK, spec.resamples - start)
        for idx in rng.integers(0, len(y), size=(size, len(y))):
            diffs.append(roc_auc_score(y[idx], scores["candidate"][idx]) - roc_auc_score(y[idx], scores["champion"][idx]))
    tail = (1 - spec.confidence) / 2 * 100
    return float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))


def gate(customers: int, repeats: int) -> None:
    """The gate's own work beyond the candidate's training, on the demo: a project in a
    temporary folder, a champion (logistic) and a candidate (random forest) trained and
    registered with the real command, then :func:`engine.run.validate.gate` timed in
    this process (wall seconds: reading the data, the features from the store, scoring
    both models, the bootstrap, the latency check and the report)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from _common import copy_conf

    from engine.config import plan as plans

    mlops = str(Path(sys.executable).with_name("mlops"))
    source = Path(__file__).resolve().parents[1] / "conf"
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        root = Path(tmp)
        copy_conf(source, root)
        (root / "conf" / "local" / "default.yaml").write_text(
            f"# @package _global_\ndata:\n  generate:\n    customers: {customers}\nreport: false\n")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        def mlops_run(*args: str) -> None:
            subprocess.run([mlops, *args], cwd=root, check=True, capture_output=True, env=env)

        mlops_run("validate", "--against", "churn@champion", "--promote")  # champion: the defaults
        mlops_run("run", "model=random_forest")
        candidate = sorted((root / "outputs" / "runs").glob("*/*"))[-1]
        import yaml

        plan = plans.compile(yaml.safe_load((candidate / "config.resolved.yaml").read_text()))
        previous = Path.cwd()
        os.chdir(root)
        try:
            walls, parts = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                verdict = validate.gate(candidate, root, "churn@champion", root / "outputs" / "registry",
                                        plan.promotion, plan.business.economics)
                walls.append(time.perf_counter() - started)
                parts.append(verdict["seconds"])
        finally:
            os.chdir(previous)
        latency = statistics.median(p.get("latency", 0.0) for p in parts)
        own = statistics.median(w - p.get("latency", 0.0) for w, p in zip(walls, parts, strict=True))
        print(f"gate at {customers} customers ({verdict['evaluation']}), {plan.promotion.resamples} resamples, "
              f"median of {repeats}: {statistics.median(walls):.2f} s wall; runs {[round(w, 2) for w in walls]}")
        print("  by part (median s): " + ", ".join(f"{k} {statistics.median(p[k] for p in parts):.2f}"
                                                   for k in parts[0]))
        print(f"  the gate's own work (all but the policy's latency rule, which times single-row calls for up to "
              f"latency.max_seconds): {own:.2f} s (target <= 2 s); the latency rule: {latency:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gate", action="store_true", help="also time the whole gate on the demo")
    parser.add_argument("--customers", type=int, default=100_000, help="demo customers for --gate")
    args = parser.parse_args()
    if args.gate:
        gate(args.customers, args.repeats)
    y, scores = data(args.rows)
    spec = PromotionSpec(resamples=args.resamples, seed=7)
    thresholds = {"candidate": 0.5, "champion": 0.5}
    ours_s, loop_s = [], []
    for _ in range(args.repeats):
        started = time.process_time()
        ours = validate.paired_bootstrap(ECONOMICS, y, scores, thresholds, spec)
        ours_s.append(time.process_time() - started)
        started = time.process_time()
        theirs = loop(y, scores, spec)
        loop_s.append(time.process_time() - started)
    gap = max(abs(a - b) for a, b in zip(ours["roc_auc"], theirs, strict=True))
    print(f"{args.rows} rows x {args.resamples} paired resamples, median of {args.repeats}")
    print(f"  ours (every metric, both models): {statistics.median(ours_s):.2f} s")
    print(f"  loop (roc_auc_score per resample): {statistics.median(loop_s):.2f} s")
    print(f"  speed-up: {statistics.median(loop_s) / statistics.median(ours_s):.1f}x (target >= 20x)")
    print(f"  ROC AUC difference interval: ours {ours['roc_auc']}, loop {theirs}; largest gap {gap:.2e} "
          f"(target <= 1e-9)")


if __name__ == "__main__":
    main()
