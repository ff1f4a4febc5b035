"""Benchmark: ``mlops run`` (the churn demo) against the same work written by hand.

The hand-written version is ``bench/baseline_churn.py`` (pandas + scikit-learn only).
Both run as subprocesses, sequentially and interleaved (the order alternates each
repeat), on the same data files; each subprocess's wall time is measured with
``time.perf_counter``. The engine's in-process figures come from its ``run.json``,
the baseline's from the JSON on its last stdout line.

    cd /work/main && /work/venv/bin/python bench/run_demo.py                  # 100k customers, 5 repeats
    /work/venv/bin/python bench/run_demo.py --customers 20000 --repeats 2      # quick
    /work/venv/bin/python bench/run_demo.py --json outputs/bench.json          # also write the figures

Reported (medians over the repeats):

* wall ratio = engine wall / baseline wall                       (target <= 1.3)
* engine overhead = run.json duration_s - ingest - train.fit_s   (target < 1.5 s)
  and the same quantity for the baseline (total_s - load_s - fit_s), for comparison
* start-up share = wall - in-process total (interpreter, imports, Hydra, teardown)
* the model file (issue 12): save + load of the demo's model and of a 300-tree random
  forest (the demo's ``model=random_forest`` with ``n_estimators=300``, one more untimed
  engine run), our skops file against the zlib pickle it replaced, medians over
  ``--model-file-repeats`` interleaved repeats, and the files' sizes; see
  :func:`model_file_costs`. ``--model-file-only`` runs the warm-up and this alone;
  ``--measure RUN_DIR...`` measures the models of existing run folders and prints JSON
  (bench/sweeps.py runs it that way, against the code it benchmarks).

Before timing, one untimed warm-up of each generates the data (``data.dir`` defaults
to data/bench-<N>k, so the default demo data is left alone), warms the file cache,
and checks that the baseline does the same work: same resolved config values, same
ROC AUC (|diff| <= 1e-6) and the same hold-out scores as the engine's run.

Exit status: 0 when the measurement ran (targets met or missed: PASS/MISS is printed),
1 when a subprocess failed, 3 when the baseline's result differs from the engine's
(the comparison is then invalid).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import print_model_file_costs

ROOT = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).resolve().with_name("baseline_churn.py")
STAGES = ("validate", "ingest", "features", "split", "train", "evaluate", "save")
# engine stage -> the baseline's step doing the same work (None: no counterpart)
BASELINE_STEP = {"validate": None, "ingest": "load_s", "features": "features_s", "split": "split_s",
                 "train": "fit_s", "evaluate": "evaluate_s", "save": "save_s"}
FIGURES = ("wall_s", "total_s", "startup_s", "before_run_s", "after_run_s", "load_s", "fit_s", "overhead_s")
RATIO_TARGET = 1.3
OVERHEAD_TARGET = 1.5
AUC_TOLERANCE = 1e-6
RUN_LINE = re.compile(r"run [0-9a-f]+ succeeded in [0-9.]+s: (\S+)")
# What baseline_churn.py hard-codes, checked against the engine's resolved config.
EXPECTED_CONFIG = {
    "as_of": "2026-10-01",
    "threads": 1,
    "split.strategy": "holdout",
    "split.test_size": 0.25,
    "split.stratify": True,
    "split.seed": 7,
    "model._target_": "sklearn.linear_model.LogisticRegression",
    "model.C": 1.0,
    "model.class_weight": "balanced",
    "model.max_iter": 1000,
    "model.random_state": 7,
    "preprocess.numeric_impute": "median",
    "preprocess.scale": True,
    "preprocess.categorical_impute": "most_frequent",
    "preprocess.min_frequency": None,
}


class Failed(Exception):
    """A subprocess failed; the message holds the command and the end of its output."""


def mlops_command() -> list[str]:
    beside = Path(sys.executable).parent / "mlops"
    found = str(beside) if beside.exists() else shutil.which("mlops")
    if not found:
        raise SystemExit("run_demo: cannot find the mlops command next to this Python or on PATH")
    return [found]


def run(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run one command from the project folder: (wall seconds, launch epoch, result)."""
    launched = time.time()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise Failed(f"command failed with exit status {done.returncode}:\n  (cd {ROOT} && {' '.join(cmd)})\n{tail}")
    return wall, launched, done


def engine_run(cmd: list[str]) -> dict[str, Any]:
    wall, launched, done = run(cmd)
    run_dir = None
    for line in reversed((done.stdout + done.stderr).splitlines()):
        if match := RUN_LINE.search(line):
            run_dir = ROOT / match.group(1)
            break
    if run_dir is None or not (run_dir / "run.json").is_file():  # fall back: the newest run.json
        newest = max((ROOT / "outputs" / "runs").glob("*/*/run.json"), key=lambda p: p.stat().st_mtime)
        if newest.stat().st_mtime < launched:
            raise Failed(f"no run.json written by: {' '.join(cmd)}")
        run_dir = newest.parent
    record = json.loads((run_dir / "run.json").read_text())
    if record.get("status") != "succeeded":
        raise Failed(f"engine run {run_dir} has status {record.get('status')}: {record.get('error')}")
    stages = {name: record["stages"][name]["duration_s"] for name in STAGES}
    total = record["duration_s"]
    fit = record["stages"]["train"]["fit_s"]
    before = datetime.fromisoformat(record["started_at"]).timestamp() - launched
    return {
        "wall_s": wall, "total_s": total, "load_s": stages["ingest"], "fit_s": fit,
        "overhead_s": total - stages["ingest"] - fit, "startup_s": wall - total,
        "before_run_s": before, "after_run_s": wall - before - total,
        "stages": stages, "roc_auc": record["metrics"]["roc_auc"], "run_dir": str(run_dir),
        "generated_data": record["stages"]["ingest"].get("generated_demo_data"),
    }


def baseline_run(cmd: list[str], out: Path) -> dict[str, Any]:
    wall, launched, done = run([*cmd, "--out", str(out)])
    report = json.loads(done.stdout.strip().splitlines()[-1])
    before = report["started_epoch"] - launched
    return {
        "wall_s": wall, "total_s": report["total_s"], "load_s": report["load_s"], "fit_s": report["fit_s"],
        "overhead_s": report["total_s"] - report["load_s"] - report["fit_s"],
        "startup_s": wall - report["total_s"],
        "before_run_s": before, "after_run_s": wall - before - report["total_s"],
        "stages": {name: report[step] for name, step in BASELINE_STEP.items() if step},
        "roc_auc": report["roc_auc"], "out": str(out),
    }


def check_config(run_dir: Path) -> list[str]:
    """Differences between the engine's resolved config and what the baseline hard-codes."""
    import yaml  # PyYAML comes with omegaconf; only the harness needs it

    resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    problems = []
    for path, expected in EXPECTED_CONFIG.items():
        value: Any = resolved
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value) != str(expected):
            problems.append(f"{path}: engine has {value!r}, baseline assumes {expected!r}")
    return problems


def compare_predictions(engine_dir: Path, baseline_dir: Path) -> str | None:
    """None when both wrote the same hold-out rows, labels and scores; else what differs."""
    import numpy as np
    import pandas as pd

    e = pd.read_parquet(engine_dir / "predictions.parquet")
    b = pd.read_parquet(baseline_dir / "predictions.parquet")
    if len(e) != len(b):
        return f"hold-out rows differ: engine {len(e)}, baseline {len(b)}"
    if not (e.iloc[:, 0].to_numpy() == b["customer_id"].to_numpy()).all():
        return "hold-out customers differ (split or population)"
    if not (e["y_true"].to_numpy() == b["y_true"].to_numpy()).all():
        return "labels differ (target)"
    diff = float(np.abs(e["y_score"].to_numpy() - b["y_score"].to_numpy()).max())
    if diff > 1e-9:
        return f"scores differ: max |engine - baseline| = {diff:.3g} (features or model)"
    return None


def median(values: list[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------- model file

def zlib_pickle_save(obj: Any, directory: Path) -> str:
    """The model file this engine wrote before skops (the baseline): one pickle, protocol 5,
    in one zlib stream (level 3), hashed as written, atomically, with its .sha256 beside it."""
    import hashlib
    import pickle
    import zlib

    from engine.files import atomic_path

    class ZlibWriter:
        def __init__(self, handle: Any) -> None:
            self.handle, self.zlib, self.sha256 = handle, zlib.compressobj(3), hashlib.sha256()

        def write(self, data: Any) -> int:
            self.emit(self.zlib.compress(data))
            return memoryview(data).nbytes

        def emit(self, chunk: bytes) -> None:
            if chunk:
                self.handle.write(chunk)
                self.sha256.update(chunk)

    with atomic_path(directory / "model.joblib") as tmp, open(tmp, "wb") as handle:
        writer = ZlibWriter(handle)
        pickle.dump(obj, writer, protocol=5)
        writer.emit(writer.zlib.flush())
    digest = writer.sha256.hexdigest()
    with atomic_path(directory / "model.joblib.sha256") as tmp:
        tmp.write_text(f"{digest}  model.joblib\n")
    return digest


def zlib_pickle_load(path: Path, sha256: str) -> Any:
    """What load_model did with it: read, check the sha256, joblib.load the bytes."""
    import hashlib
    import io

    import joblib

    payload = path.read_bytes()
    assert hashlib.sha256(payload).hexdigest() == sha256
    return joblib.load(io.BytesIO(payload))


def skops_load(path: Path, sha256: str) -> Any:
    """What load_model does with a skops file, records aside: read, check the sha256,
    refuse untrusted types, build, bounds-check the trees."""
    import hashlib

    from engine.store.registry import read_model

    payload = path.read_bytes()
    assert hashlib.sha256(payload).hexdigest() == sha256
    return read_model(payload, path)


def model_file_costs(models: dict[str, Any], repeats: int, scratch: Path) -> dict[str, Any]:
    """Save + load of each model: ours (engine.stages.model.save, then the loader) against
    the zlib pickle it replaced, interleaved (the order alternates each repeat), after one
    untimed round of each (imports, first use of skops). Seconds are medians."""
    from engine.stages import model as model_stage

    contenders = {"skops": (model_stage.save, skops_load, model_stage.MODEL_FILE),
                  "zlib_pickle": (zlib_pickle_save, zlib_pickle_load, "model.joblib")}
    out: dict[str, Any] = {}
    for label, fitted in models.items():
        times: dict[str, dict[str, list[float]]] = {c: {"save_s": [], "load_s": []} for c in contenders}
        sizes: dict[str, int] = {}
        for i in range(repeats + 1):
            order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for name in order:
                save, load, file_name = contenders[name]
                folder = scratch / f"{label}-{name}"
                folder.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                digest = save(fitted, folder)
                saved = time.perf_counter()
                loaded = load(folder / file_name, digest)
                done = time.perf_counter()
                if i == 0:  # untimed: warms up, and checks the round trip
                    sizes[name] = (folder / file_name).stat().st_size
                    probe = getattr(loaded, "n_features_in_", None)
                    assert type(loaded) is type(fitted) and probe == getattr(fitted, "n_features_in_", None)
                    continue
                times[name]["save_s"].append(saved - start)
                times[name]["load_s"].append(done - saved)
        row: dict[str, Any] = {"repeats": repeats}
        for name in contenders:
            row[name] = {k: median(v) for k, v in times[name].items()}
            row[name]["total_s"] = row[name]["save_s"] + row[name]["load_s"]
            row[name]["bytes"] = sizes[name]
        for key in ("save_s", "load_s", "total_s", "bytes"):
            row[f"ratio_{key.removesuffix('_s')}"] = row["skops"][key] / row["zlib_pickle"][key]
        out[label] = row
    out["skops_import_s"] = skops_import_seconds()
    return out


def skops_import_seconds() -> float:
    """What a fresh process pays the first time it saves or loads a model: ``import
    skops.io`` after the modules a run has imported by then (it imports every
    scikit-learn estimator module to list the ones it trusts)."""
    probe = ("import time, engine.run.job, sklearn.linear_model, sklearn.model_selection, sklearn.frozen; "
             "t = time.perf_counter(); import skops.io; print(time.perf_counter() - t)")  # as a logistic run has
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def run_models(run_dirs: dict[str, Path]) -> dict[str, Any]:
    """The fitted model of each run folder, read as load_model reads it."""
    from engine.stages import model as model_stage
    from engine.store.registry import read_model

    return {label: read_model((d / "model" / model_stage.MODEL_FILE).read_bytes(), d / "model")
            for label, d in run_dirs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark mlops run against a hand-written pandas + scikit-learn script.")
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the demo data (default 100000, ~1M orders)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--data-dir", default=None, help="data folder relative to the project (default data/bench-<N>k)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--model-file-repeats", type=int, default=5,
                        help="repeats of the model file's save + load, skops vs zlib pickle (default 5; 0: skip)")
    parser.add_argument("--model-file-trees", type=int, default=300, help="trees of the random forest measured (300)")
    parser.add_argument("--model-file-only", action="store_true",
                        help="only the warm-up runs and the model file's measurement")
    parser.add_argument("--measure", nargs="+", metavar="LABEL=RUN_DIR", default=None,
                        help="measure the model files of these run folders and print JSON (bench/sweeps.py)")
    args = parser.parse_args()
    if args.measure:
        pairs = dict(item.split("=", 1) for item in args.measure)
        with tempfile.TemporaryDirectory(prefix="bench-model-file-") as tmp:
            costs = model_file_costs(run_models({k: Path(v) for k, v in pairs.items()}),
                                     max(args.model_file_repeats, 1), Path(tmp))
        print(json.dumps(costs))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    size = f"{args.customers // 1000}k" if args.customers % 1000 == 0 else str(args.customers)
    data_dir = args.data_dir or f"data/bench-{size}"

    # features.store=null: every engine run computes its features, as the baseline does;
    # report=false: the baseline writes no HTML report (the report's cost is its own line
    # in the README: matplotlib rendering, ~1-3 s)
    # (with the store, repeats 2..N would reuse them and do less work than the baseline).
    engine_cmd = [*mlops_command(), "run", f"data.dir={data_dir}", f"data.generate.customers={args.customers}",
                  "features.store=null", "report=false"]
    baseline_cmd = [sys.executable, str(BASELINE), "--data-dir", str(ROOT / data_dir)]
    scratch = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    print(f"benchmark: {args.customers} customers in {data_dir}, {args.repeats} repeats, "
          f"{os.cpu_count()} CPUs, sequential")
    print(f"  engine:   {' '.join(engine_cmd)}")
    print(f"  baseline: {' '.join(baseline_cmd)}")

    try:
        # Warm-up (untimed): generates the data if needed, warms the file cache, and
        # checks that both do the same work.
        warm_engine = engine_run(engine_cmd)
        warm_base = baseline_run(baseline_cmd, scratch / "warmup")
        print(f"warm-up: engine {warm_engine['wall_s']:.2f}s"
              f"{' (generated the data)' if warm_engine['generated_data'] else ''}, "
              f"baseline {warm_base['wall_s']:.2f}s")
        problems = check_config(Path(warm_engine["run_dir"]))
        auc_diff = abs(warm_engine["roc_auc"] - warm_base["roc_auc"])
        print(f"check: ROC AUC engine {warm_engine['roc_auc']:.6f}  baseline {warm_base['roc_auc']:.6f}  "
              f"|diff| {auc_diff:.1e}")
        if auc_diff > AUC_TOLERANCE:
            problems.append(f"ROC AUC differs by {auc_diff:.3g} (> {AUC_TOLERANCE:g})")
        if (why := compare_predictions(Path(warm_engine["run_dir"]), scratch / "warmup")) is not None:
            problems.append(why)
        else:
            print("check: identical hold-out rows, labels and scores (max |diff| <= 1e-9)")

        engine: list[dict[str, Any]] = []
        base: list[dict[str, Any]] = []
        for i in range(0 if args.model_file_only else args.repeats):
            order = ("engine", "baseline") if i % 2 == 0 else ("baseline", "engine")
            for which in order:
                if which == "engine":
                    engine.append(engine_run(engine_cmd))
                else:
                    out = scratch / f"run{i}"
                    base.append(baseline_run(baseline_cmd, out))
                    shutil.rmtree(out, ignore_errors=True)
            e, b = engine[-1], base[-1]
            print(f"  repeat {i + 1}/{args.repeats}: engine {e['wall_s']:.2f}s (in-process {e['total_s']:.2f}s)  "
                  f"baseline {b['wall_s']:.2f}s (in-process {b['total_s']:.2f}s)  ratio {e['wall_s'] / b['wall_s']:.2f}")
            diff = abs(e["roc_auc"] - b["roc_auc"])
            if diff > AUC_TOLERANCE:
                problems.append(f"repeat {i + 1}: ROC AUC engine {e['roc_auc']} vs baseline {b['roc_auc']}")
        model_file = None
        if args.model_file_repeats > 0:
            trees = args.model_file_trees
            forest = engine_run([*engine_cmd, "model=random_forest", f"model.n_estimators={trees}"])  # untimed
            models = run_models({"demo model (LogisticRegression)": Path(warm_engine["run_dir"]),
                                 f"random forest, {trees} trees": Path(forest["run_dir"])})
            model_file = model_file_costs(models, args.model_file_repeats, scratch / "model-file")
            print_model_file_costs(model_file)
    except Failed as exc:
        print(f"\nrun_demo: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if args.model_file_only:
        if args.json and model_file:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"model_file": model_file}, indent=2) + "\n")
        return 3 if problems else 0

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return median([r[key] for r in runs])

    def spread(runs: list[dict[str, Any]], key: str) -> str:
        values = [r[key] for r in runs]
        return f"{min(values):.2f}-{max(values):.2f}"

    figures: dict[str, Any] = {
        "customers": args.customers, "data_dir": data_dir, "repeats": args.repeats,
        "engine": {k: med(engine, k) for k in FIGURES},
        "baseline": {k: med(base, k) for k in FIGURES},
        "engine_stages": {s: median([r["stages"][s] for r in engine]) for s in STAGES},
        "baseline_steps": {s: median([r["stages"][s] for r in base]) for s in STAGES if BASELINE_STEP[s]},
        "roc_auc": {"engine": warm_engine["roc_auc"], "baseline": warm_base["roc_auc"]},
        "runs": {"engine": engine, "baseline": base},
        "model_file": model_file,
    }
    ratio = figures["engine"]["wall_s"] / figures["baseline"]["wall_s"]
    overhead = figures["engine"]["overhead_s"]
    figures.update(wall_ratio=ratio, ratio_target=RATIO_TARGET, overhead_target_s=OVERHEAD_TARGET,
                   ratio_pass=ratio <= RATIO_TARGET, overhead_pass=overhead < OVERHEAD_TARGET,
                   valid=not problems, problems=problems)

    print(f"\nmedians over {args.repeats} repeats (seconds)      engine   baseline   engine-baseline")
    rows = [
        ("wall time (subprocess)", "wall_s"),
        ("in-process total", "total_s"),
        ("start-up share (wall - in-process)", "startup_s"),
        ("  before the run (imports, Hydra...)", "before_run_s"),
        ("  after the run (exit, teardown)", "after_run_s"),
        ("data load (ingest / load_s)", "load_s"),
        ("fit", "fit_s"),
        ("overhead (total - load - fit)", "overhead_s"),
    ]
    for label, key in rows:
        e, b = figures["engine"][key], figures["baseline"][key]
        print(f"  {label:<36} {e:8.2f}   {b:8.2f}   {e - b:+8.2f}")
    print(f"  {'wall range (min-max)':<36} {spread(engine, 'wall_s'):>8}   {spread(base, 'wall_s'):>8}")
    print("\nper stage (medians, seconds)          engine   baseline")
    for stage in STAGES:
        e = figures["engine_stages"][stage]
        b = figures["baseline_steps"].get(stage)
        extra = "   (fit only: %.2f)" % figures["engine"]["fit_s"] if stage == "train" else ""
        print(f"  {stage:<36} {e:8.2f}   {'-' if b is None else f'{b:.2f}':>8}{extra}")

    if problems:
        print("\n" + "!" * 78)
        print("INVALID COMPARISON: the baseline does not do the same work as the engine:")
        for problem in problems:
            print(f"  - {problem}")
        print("!" * 78)
    print(f"\nwall ratio {ratio:.2f}: {'PASS' if ratio <= RATIO_TARGET else 'MISS'} (target <= {RATIO_TARGET})")
    print(f"engine overhead {overhead:.2f} s: {'PASS' if overhead < OVERHEAD_TARGET else 'MISS'} "
          f"(target < {OVERHEAD_TARGET} s; baseline's same quantity {figures['baseline']['overhead_s']:.2f} s)")
    if args.json:
        path = args.json if args.json.is_absolute() else Path.cwd() / args.json
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {path}")
    print(f"ratio {ratio:.2f} (target <= {RATIO_TARGET})  overhead {overhead:.2f} s (target < {OVERHEAD_TARGET} s)"
          f"{'' if not problems else '  INVALID COMPARISON'}")
    return 3 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
