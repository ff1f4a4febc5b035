"""Benchmark of the data-quality rule engine (``engine.stages.quality``).

Three contenders (plus one informational pandera setting) check the same six rules on
the same in-memory frames:

* ``engine``  - ``engine.stages.quality.run`` on a one-table :class:`Context`, as the
  quality stage calls it (parses the rules, checks the columns exist, runs the
  vectorised checks, counts over explicit denominators, collects up to 20 failing
  examples per rule).
* ``floor``   - the bare pandas reductions for the same checks, counts only: what a
  competent engineer writes by hand. The engine cannot be much faster than this.
* ``pandera`` - a ``pandera.pandas.DataFrameSchema`` with equivalent checks,
  ``validate(df, lazy=True, inplace=True)``, catching ``SchemaErrors``: the peer,
  tuned for speed (``n_failure_cases=20``, like the engine's 20 examples).
* ``pandera_all`` - the same schema with pandera's default ``n_failure_cases=None``
  (every failure case kept): shown for information, not used by the targets.

The rules (same thresholds for all three):

1. ``missing_share`` of ``amount`` <= 2%            (completeness)
2. ``between`` ``quantity`` in [1, 100]               (accuracy)
3. ``in_set`` ``category`` among 8 known values       (accuracy)
4. ``unique`` ``id``                                  (consistency)
5. ``freshness`` ``ordered_at``, ``max_age: 1d`` against an explicit ``as_of``
6. ``compare`` ``discount <= amount``                 (consistency)

Data: ``--rows`` rows x 6 columns made with a seeded numpy generator, in two
variants. *clean*: every rule passes (1% of ``amount`` is null, 0.5% of the events
are after ``as_of`` and must be ignored by freshness). *dirty*: about 1% of the rows
violate each row-level rule (``amount`` is 3% null so that the 2% limit fails; 1% of
``id`` values sit in duplicated pairs) and the newest event at or before ``as_of``
is 3 days old, so freshness fails (1% of rows cannot make a max-based rule fail).

Timing: every repeat runs each contender once on each variant, the contender order
rotating from repeat to repeat (interleaved, so drift on a noisy machine hits all
contenders alike); the table shows medians. Memory is measured in fresh subprocesses:
with tracemalloc (which sees Python objects, numpy buffers and pandas' hash tables, but
not Arrow buffers, so it under-counts pandera's string-heavy failure-case frames), all
contenders in turn, and, as a cross-check, with the kernel's peak RSS (VmHWM, reset
through ``/proc/self/clear_refs`` just before the call), one process per contender. The
memory target is judged on tracemalloc.

    python bench/quality.py                          # 5,000,000 rows, 5 repeats
    python bench/quality.py --rows 200000 --repeats 2 --json out.json

Exits 0 even when a target is missed (it is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import frame_bytes, rss_peak, traced_peak, verdict

from engine.config.quality import QualitySpec
from engine.stages import quality
from engine.stages.data import CsvSource, Table

AS_OF = pd.Timestamp("2026-10-01")
MAX_AGE = "1d"  # the engine's duration literal
MAX_AGE_TD = pd.Timedelta(days=1)
MAX_NULL_SHARE = 0.02
Q_MIN, Q_MAX = 1, 100
CATEGORIES = ["books", "electronics", "garden", "grocery", "health", "home", "sports", "toys"]
SEED = 20261001
VARIANTS = ("clean", "dirty")
CONTENDERS = ("engine", "floor", "pandera", "pandera_all")  # the last: informational
RSS_CONTENDERS = ("engine", "floor", "pandera")  # one fresh process each
MAX_EXAMPLES = 20  # the engine's examples per rule; pandera's n_failure_cases

# Targets (issue 3, point 8).
TARGET_ENGINE_OVER_FLOOR = 1.3     # engine / floor, clean and dirty: at most
TARGET_PANDERA_OVER_ENGINE = 2.5   # pandera / engine, dirty: at least
TARGET_PEAK_OVER_FRAME = 2.0       # engine's peak extra memory / frame size: under

RULE_NAMES = ("amount_missing", "quantity_range", "category_known", "id_unique", "orders_fresh",
              "discount_le_amount")


# ------------------------------------------------------------------ data


def make_frame(rows: int, dirty: bool, seed: int = SEED) -> pd.DataFrame:
    """``rows`` x 6 columns; clean passes every rule, dirty breaks each (see the module doc)."""
    rng = np.random.default_rng(seed + (1 if dirty else 0))
    share = 0.01
    k = max(1, int(rows * share))

    ids = rng.permutation(rows).astype(np.int64) + 1_000_000
    quantity = rng.integers(Q_MIN, Q_MAX + 1, rows, dtype=np.int64)
    amount = np.round(rng.gamma(2.0, 50.0, rows) + 1.0, 2)
    discount = np.round(amount * rng.uniform(0.0, 0.3, rows), 2)
    codes = rng.integers(0, len(CATEGORIES), rows, dtype=np.int8)
    categories = list(CATEGORIES)

    day_ns = 86_400 * 10**9
    ages = rng.integers(0, 365 * day_ns, rows, dtype=np.int64)  # age before as_of
    if dirty:
        ages += 3 * day_ns  # the newest event at or before as_of is 3 days old: stale
    stamps = AS_OF.value - ages
    late = rng.choice(rows, max(1, rows // 200), replace=False)  # 0.5% after as_of
    stamps[late] = AS_OF.value + rng.integers(1, 2 * day_ns, len(late), dtype=np.int64)
    if not dirty:
        stamps[rng.integers(0, rows)] = AS_OF.value - 3_600 * 10**9  # newest: 1h before as_of

    null_share = 0.03 if dirty else 0.01  # dirty: over the 2% limit
    amount[rng.choice(rows, max(1, int(rows * null_share)), replace=False)] = np.nan

    if dirty:
        # unique: k rows (k/2 pairs) share an id.
        pairs = rng.choice(rows, 2 * (k // 2), replace=False)
        ids[pairs[: k // 2]] = ids[pairs[k // 2:]]
        # between: 1% out of [1, 100].
        quantity[rng.choice(rows, k, replace=False)] = rng.choice(np.array([0, 101, 1000, -5]), k)
        # in_set: 1% unknown category.
        categories.append("unknown")
        codes[rng.choice(rows, k, replace=False)] = len(categories) - 1
        # compare: 1% discount above amount (rows where amount is null do not count).
        over = rng.choice(rows, k, replace=False)
        discount[over] = np.round(np.nan_to_num(amount[over], nan=10.0) + rng.uniform(0.01, 10.0, k), 2)

    return pd.DataFrame({
        "id": ids,
        "amount": amount,
        "discount": discount,
        "category": pd.Categorical.from_codes(codes, categories=categories),
        "ordered_at": stamps.view("datetime64[ns]"),
        "quantity": quantity,
    })




# ------------------------------------------------------------------ contender (a): the engine


def quality_config() -> dict[str, Any]:
    common = {"severity": "warn", "source": "t"}
    return {"rules": {
        "amount_missing": {"check": "missing_share", "dimension": "completeness", "column": "amount",
                           "max": MAX_NULL_SHARE, **common},
        "quantity_range": {"check": "between", "dimension": "accuracy", "column": "quantity",
                           "min": Q_MIN, "max": Q_MAX, **common},
        "category_known": {"check": "in_set", "dimension": "accuracy", "column": "category",
                           "values": list(CATEGORIES), **common},
        "id_unique": {"check": "unique", "dimension": "consistency", "columns": ["id"], **common},
        "orders_fresh": {"check": "freshness", "dimension": "timeliness", "column": "ordered_at",
                         "max_age": MAX_AGE, **common},
        "discount_le_amount": {"check": "compare", "dimension": "consistency", "left": "discount",
                               "op": "<=", "right": "amount", **common},
    }}


def run_engine(df: pd.DataFrame, cfg: dict[str, Any]) -> quality.QualityReport:
    table = Table("t", df, CsvSource(key="id", timestamp="ordered_at"), "bench")
    return quality.run(QualitySpec.from_config(cfg), quality.Context(tables={"t": table}, as_of=AS_OF))


def engine_summary(report: quality.QualityReport) -> dict[str, dict[str, Any]]:
    return {r.rule: {"passed": bool(r.passed), "unexpected": r.unexpected, "denominator": r.denominator,
                     "examples": len(r.examples)} for r in report.results}


# ------------------------------------------------------------------ contender (b): the pandas floor


def run_floor(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The six checks as bare pandas reductions, counts only (no denominators, no examples)."""
    n = len(df)
    amount, discount = df["amount"], df["discount"]
    quantity, category = df["quantity"], df["category"]

    nulls = int(amount.isna().sum())
    out_of_range = int((~quantity.between(Q_MIN, Q_MAX) & quantity.notna()).sum())
    unknown = int((~category.isin(CATEGORIES) & category.notna()).sum())
    duplicated = int(df["id"].duplicated(keep=False).sum())
    ts = df["ordered_at"]
    newest = ts[ts <= AS_OF].max()
    fresh = bool(pd.notna(newest) and AS_OF - newest <= MAX_AGE_TD)
    over = int(((discount > amount) & discount.notna() & amount.notna()).sum())
    return {
        "amount_missing": {"passed": nulls <= MAX_NULL_SHARE * n, "unexpected": nulls},
        "quantity_range": {"passed": out_of_range == 0, "unexpected": out_of_range},
        "category_known": {"passed": unknown == 0, "unexpected": unknown},
        "id_unique": {"passed": duplicated == 0, "unexpected": duplicated},
        "orders_fresh": {"passed": fresh, "unexpected": None},
        "discount_le_amount": {"passed": over == 0, "unexpected": over},
    }


# ------------------------------------------------------------------ contender (c): pandera


def pandera_schema(n_failure_cases: int | None = MAX_EXAMPLES) -> Any:
    """Equivalent checks, built for speed: no dtypes to check or coerce, every column
    nullable (the engine's row rules skip nulls; null share is its own check),
    ``ignore_na=False`` on the custom checks, which handle nulls themselves (pandera's
    ``ignore_na=True`` on a wide check computes ``df.isna().all(axis=1)``), and
    ``n_failure_cases=20`` like the engine's 20 examples (about 2x faster on dirty data
    than pandera's default of keeping every failure case; ``n_failure_cases=None`` is
    the ``pandera_all`` column). ``validate`` runs with ``inplace=True`` (no frame copy)."""
    n = n_failure_cases
    import pandera.pandas as pa

    as_of, max_age = AS_OF, MAX_AGE_TD

    def null_share(s: pd.Series) -> bool:
        return bool(s.isna().mean() <= MAX_NULL_SHARE)

    def fresh(df: pd.DataFrame) -> bool:
        ts = df["ordered_at"]
        newest = ts[ts <= as_of].max()
        return bool(pd.notna(newest) and as_of - newest <= max_age)

    def discount_le_amount(df: pd.DataFrame) -> pd.Series:
        d, a = df["discount"], df["amount"]
        return (d <= a) | d.isna() | a.isna()

    return pa.DataFrameSchema(
        columns={
            "id": pa.Column(nullable=True, unique=True),
            "amount": pa.Column(nullable=True, checks=pa.Check(null_share, ignore_na=False,
                                                               name="missing_share", n_failure_cases=n)),
            "discount": pa.Column(nullable=True),
            "category": pa.Column(nullable=True, checks=pa.Check.isin(CATEGORIES, n_failure_cases=n)),
            "ordered_at": pa.Column(nullable=True),
            "quantity": pa.Column(nullable=True, checks=pa.Check.in_range(Q_MIN, Q_MAX, n_failure_cases=n)),
        },
        checks=[pa.Check(fresh, ignore_na=False, name="freshness", n_failure_cases=n),
                pa.Check(discount_le_amount, ignore_na=False, name="discount_le_amount", n_failure_cases=n)],
    )


def run_pandera(df: pd.DataFrame, schema: Any) -> Any:
    """None when the frame passes, else the SchemaErrors (counted outside the timing)."""
    import pandera.errors

    try:
        schema.validate(df, lazy=True, inplace=True)
    except pandera.errors.SchemaErrors as exc:
        return exc
    return None


def pandera_summary(errors: Any) -> dict[str, int]:
    """Failure cases per pandera check (rows for row checks; 1 for a failed aggregate)."""
    if errors is None:
        return {}
    fc = errors.failure_cases
    return {str(k): int(v) for k, v in fc.groupby("check", dropna=False).size().items()}


# ------------------------------------------------------------------ correctness


def compare_counts(variant: str, engine: dict[str, dict[str, Any]], floor: dict[str, dict[str, Any]]) -> list[str]:
    """Mismatches between the engine and the floor, and verdicts not as the variant intends."""
    problems = []
    for name in RULE_NAMES:
        e, f = engine[name], floor[name]
        if e["unexpected"] != f["unexpected"]:
            problems.append(f"{variant}/{name}: engine unexpected {e['unexpected']} != floor {f['unexpected']}")
        if e["passed"] != f["passed"]:
            problems.append(f"{variant}/{name}: engine passed={e['passed']} != floor passed={f['passed']}")
        if e["passed"] != (variant == "clean"):
            problems.append(f"{variant}/{name}: passed={e['passed']}, but the {variant} data should "
                            f"{'pass' if variant == 'clean' else 'fail'} it")
    return problems


# ------------------------------------------------------------------ timing


def timed(fn: Callable[[], Any]) -> float:
    """Seconds for one call; the result is freed after the clock stops (for every contender)."""
    gc.collect()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    del out
    return seconds


def bench_times(frames: dict[str, pd.DataFrame], repeats: int) -> dict[str, dict[str, list[float]]]:
    cfg, schema, schema_all = quality_config(), pandera_schema(), pandera_schema(None)
    calls: dict[str, Callable[[pd.DataFrame], Any]] = {
        "engine": lambda df: run_engine(df, cfg),
        "floor": run_floor,
        "pandera": lambda df: run_pandera(df, schema),
        "pandera_all": lambda df: run_pandera(df, schema_all),
    }
    # Warm-up on a small slice: imports and first-call costs stay out of the figures.
    for df in frames.values():
        for call in calls.values():
            call(df.iloc[:2000])
    times: dict[str, dict[str, list[float]]] = {v: {c: [] for c in CONTENDERS} for v in frames}
    for rep in range(repeats):
        r = rep % len(CONTENDERS)
        order = CONTENDERS[r:] + CONTENDERS[:r]
        for variant, df in frames.items():
            for contender in order:
                times[variant][contender].append(timed(lambda: calls[contender](df)))
        print(f"  repeat {rep + 1}/{repeats}: " + ", ".join(
            f"{v} " + " ".join(f"{c} {times[v][c][-1]:.3f}s" for c in CONTENDERS) for v in frames),
            flush=True)
    return times


# ------------------------------------------------------------------ memory (fresh subprocess)




def memory_probe(rows: int, variant: str, method: str, seed: int) -> dict[str, Any]:
    """Runs in a fresh process: build the frame, warm up, then measure the peak extra memory
    of one call (tracemalloc: each contender in turn; ``rss:NAME``: that contender only)."""
    df = make_frame(rows, variant == "dirty", seed)
    size = frame_bytes(df)
    cfg, schema, schema_all = quality_config(), pandera_schema(), pandera_schema(None)
    calls = {"engine": lambda: run_engine(df, cfg), "floor": lambda: run_floor(df),
             "pandera": lambda: run_pandera(df, schema), "pandera_all": lambda: run_pandera(df, schema_all)}
    small = df.iloc[:2000]
    run_engine(small, cfg), run_floor(small), run_pandera(small, schema)  # imports, caches
    run_pandera(small, schema_all)
    out: dict[str, Any] = {"frame_bytes": size, "method": method}
    if method == "tracemalloc":
        for name, call in calls.items():
            out[name] = traced_peak(call)
    else:  # "rss:<contender>": one contender per fresh process
        name = method.partition(":")[2]
        out[name], _ = rss_peak(calls[name])
    return out


def run_probe(rows: int, variant: str, method: str, seed: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--rows", str(rows), "--seed", str(seed), "--probe", f"{variant}:{method}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ report




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: VARIANT:METHOD
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)

    if args.probe:
        variant, _, method = args.probe.partition(":")
        print(json.dumps(memory_probe(args.rows, variant, method, args.seed)))
        return 0

    import pandera

    print(f"quality benchmark: {args.rows:,} rows x 6 columns, {args.repeats} repeats (interleaved, medians)")
    print(f"python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
          f"pandera {pandera.__version__}, {os.cpu_count()} cpus")
    start = time.perf_counter()
    frames = {v: make_frame(args.rows, v == "dirty", args.seed) for v in VARIANTS}
    sizes = {v: frame_bytes(df) for v, df in frames.items()}
    print(f"data made in {time.perf_counter() - start:.1f}s; frame size "
          + ", ".join(f"{v} {sizes[v] / 2**20:.1f} MiB" for v in VARIANTS))

    # Correctness first: the engine's counts against the floor's.
    cfg, schema = quality_config(), pandera_schema()
    problems: list[str] = []
    counts: dict[str, Any] = {}
    for variant, df in frames.items():
        e, f = engine_summary(run_engine(df, cfg)), run_floor(df)
        p = pandera_summary(run_pandera(df, schema))
        problems += compare_counts(variant, e, f)
        counts[variant] = {"engine": e, "floor": f, "pandera_failure_cases": p}
    print("\nunexpected counts (engine vs pandas floor; freshness is an aggregate: verdict only)")
    print(f"{'rule':<20}" + "".join(f"{v + ' engine':>16}{v + ' floor':>14}{'ok':>5}" for v in VARIANTS))
    for name in RULE_NAMES:
        cells = ""
        for v in VARIANTS:
            e, f = counts[v]["engine"][name], counts[v]["floor"][name]
            show = (lambda r: ("pass" if r["passed"] else "FAIL") if r["unexpected"] is None
                    else f"{r['unexpected']:,}{'' if r['passed'] else ' F'}")
            ok = e["unexpected"] == f["unexpected"] and e["passed"] == f["passed"]
            cells += f"{show(e):>16}{show(f):>14}{'yes' if ok else 'NO':>5}"
        print(f"{name:<20}{cells}")
    print("pandera failure cases per check (dirty, n_failure_cases=20; uniqueness has no such cap): "
          + (", ".join(f"{k} {v:,}" for k, v in counts["dirty"]["pandera_failure_cases"].items()) or "none"))
    if counts["clean"]["pandera_failure_cases"]:
        problems.append(f"pandera rejects the clean frame: {counts['clean']['pandera_failure_cases']}")
    if problems:
        print("\n" + "!" * 78)
        print("!!! MISMATCH between the engine and the pandas floor (or an unintended verdict):")
        for p in problems:
            print(f"!!!   {p}")
        print("!" * 78)
    else:
        print("counts: engine == floor on every rule, clean passes every rule, dirty fails every rule")

    print(f"\ntiming ({args.repeats} repeats)")
    times = bench_times(frames, args.repeats)
    med = {v: {c: statistics.median(times[v][c]) for c in CONTENDERS} for v in VARIANTS}
    print(f"\n{'median seconds':<16}" + "".join(f"{c:>12}" for c in CONTENDERS)
          + f"{'engine/floor':>14}{'pandera/engine':>16}{'p_all/engine':>14}")
    for v in VARIANTS:
        m = med[v]
        print(f"{v:<16}" + "".join(f"{m[c]:>12.3f}" for c in CONTENDERS)
              + f"{m['engine'] / m['floor']:>14.2f}{m['pandera'] / m['engine']:>16.2f}"
              f"{m['pandera_all'] / m['engine']:>14.2f}")
    print(f"{'(min seconds)':<16}")
    for v in VARIANTS:
        print(f"{v:<16}" + "".join(f"{min(times[v][c]):>12.3f}" for c in CONTENDERS))

    ratios = {f"engine_over_floor_{v}": med[v]["engine"] / med[v]["floor"] for v in VARIANTS}
    ratios["pandera_over_engine_dirty"] = med["dirty"]["pandera"] / med["dirty"]["engine"]
    ratios["pandera_all_over_engine_dirty"] = med["dirty"]["pandera_all"] / med["dirty"]["engine"]
    targets = {
        **{f"engine_over_floor_{v}": (ratios[f"engine_over_floor_{v}"] <= TARGET_ENGINE_OVER_FLOOR,
                                      f"<= {TARGET_ENGINE_OVER_FLOOR}") for v in VARIANTS},
        "pandera_over_engine_dirty": (ratios["pandera_over_engine_dirty"] >= TARGET_PANDERA_OVER_ENGINE,
                                      f">= {TARGET_PANDERA_OVER_ENGINE}"),
    }

    memory: dict[str, Any] = {}
    if not args.no_memory:
        print("\npeak extra memory while checking, fresh subprocess per variant and method")
        print("  tracemalloc: traced Python + numpy + pandas hash-table allocations during the call")
        print("  rss: kernel VmHWM after the call - VmRSS before it (VmHWM reset via /proc/self/clear_refs)")
        print(f"{'variant':<10}{'method':<13}{'frame MiB':>10}" + "".join(f"{c + ' MiB':>16}" for c in CONTENDERS)
              + f"{'engine/frame':>14}")
        for v in VARIANTS:
            for method in ("tracemalloc", "rss"):
                if method == "tracemalloc":
                    probe = run_probe(args.rows, v, method, args.seed)
                else:
                    probe = {}
                    for c in RSS_CONTENDERS:
                        one = run_probe(args.rows, v, f"rss:{c}", args.seed)
                        if "error" in one:
                            probe = one
                            break
                        probe.update(one)
                memory[f"{v}/{method}"] = probe
                if "error" in probe:
                    print(f"{v:<10}{method:<13}  probe failed: {probe['error']}")
                    continue
                cells = "".join(f"{probe[c] / 2**20:>16.1f}" if c in probe else f"{'-':>16}" for c in CONTENDERS)
                print(f"{v:<10}{method:<13}{probe['frame_bytes'] / 2**20:>10.1f}{cells}"
                      f"{probe['engine'] / probe['frame_bytes']:>14.2f}")
        for v in VARIANTS:
            probe = memory.get(f"{v}/tracemalloc", {})
            if "engine" in probe:
                key = f"engine_peak_over_frame_{v}"
                ratios[key] = probe["engine"] / probe["frame_bytes"]
                targets[key] = (ratios[key] < TARGET_PEAK_OVER_FRAME, f"< {TARGET_PEAK_OVER_FRAME} (tracemalloc)")

    print("\ntargets")
    for key, (ok, want) in targets.items():
        print(f"  {key:<30}{ratios[key]:>8.2f}  target {want:<22}{verdict(ok)}")
    if problems:
        print("  counts                        MISMATCH (see above)")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rows": args.rows, "repeats": args.repeats, "seed": args.seed, "frame_bytes": sizes,
            "versions": {"python": platform.python_version(), "pandas": pd.__version__,
                         "numpy": np.__version__, "pandera": pandera.__version__},
            "seconds": times, "median_seconds": med, "ratios": ratios,
            "targets": {k: {"ok": ok, "target": want} for k, (ok, want) in targets.items()},
            "memory": memory, "counts": counts, "problems": problems,
        }, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
