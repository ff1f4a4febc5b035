"""Benchmark: sweeps (issue 6): per-job overhead, parallel speed-up, memory, resume.

    cd /work/main && /work/venv/bin/python bench/sweeps.py        # the README figures (~10 min)
    /work/venv/bin/python bench/sweeps.py --quick                  # smoke run (~4 min)
    /work/venv/bin/python bench/sweeps.py --only overhead --json outputs/bench-sweeps.json

Every measurement runs ``mlops run -m ...`` as a subprocess in a fresh project folder
under a temp dir (a copy of ``conf/`` plus ``conf/local/default.yaml`` with 4,000 demo
customers, as tests/conftest.py makes one), with the basic launcher unless said, our
grid sweeper ``hydra/sweeper=mlops_grid`` (what ``conf/experiment/`` selects: Hydra's
basic sweeper that composes one job per batch, not every job, before launching), and
with ``report=false``: the per-run report.html (matplotlib) is a deliverable, not
bookkeeping, and costs more than everything else a tiny job does; measurement 1 also
times the defaults (report.html after every run) once, and prints both verdicts.

Which engine code runs. By default the script first makes a ``git clone --shared`` of
this repository's HEAD into the temp dir and runs everything with ``PYTHONPATH`` set to
it (the venv's packages, the clone's ``engine`` and ``conf``): the figures are those of
a commit, and other people's uncommitted edits neither change them mid-run nor (see 3)
change the run cache's key between the two halves of the resume test. ``--code
working`` runs the working tree as installed instead.

1. Per-job overhead (target: ours at most 2x Hydra's). A sweep of N jobs (default 32)
   of ``model=logistic`` over N values of ``model.C``, and the same command with 1 job.
   Both after an untimed warm-up run that generates the data and fills the feature
   store, so every timed job reads the same files and gets a feature-store hit.

   * ours per job = (wall(N jobs) - wall(1 job)) / (N - 1) - mean fit time.
     The difference of the two walls cancels everything paid once per process
     (interpreter start, imports, Hydra composing the config to pick the mode, plugin
     discovery, the sweep's end: leaderboard, registry), and leaves the marginal cost
     of one more job: Hydra's per-job work (compose the job's config, job logging,
     ``.hydra/*.yaml``), our callbacks (progress line, leaderboard rewritten after each
     job) and the whole run: provenance, validation, data load, quality rules, feature
     store read, split, fit, predict, metrics, model file, run.json, metadata store.
     The fit is taken out with the ``speed.train_seconds`` each run records (the
     estimator's ``fit`` alone), so "overhead" is everything beyond the model fit,
     prediction and evaluation included.
   * Hydra's per job = the same difference for Hydra's own multirun of an empty app:
     a ``@hydra.main`` function that does nothing, on a one-key config, N jobs
     (``x=1..N``), basic launcher, written to the temp dir by this script. Hydra's
     per-job work is exactly what it pays per job inside our sweep too.
   * For the breakdown only (first repeat), the same empty app composing our project's
     ``conf/`` (callbacks removed) with our sweeper shows how much of Hydra's per-job
     cost our bigger config adds: composing a job's config (even with each file parsed
     once, see engine/config/composecache.py), deep-copying it and writing ``.hydra/*.yaml``
     scale with the size of the composed tree. "Engine's own" is what is left: the run.

   The commands are interleaved (ours N, ours 1, Hydra N, Hydra 1; the pairs alternate
   order each repeat); figures are medians over the repeats. When the target is missed
   the script profiles one N'-job sweep in-process (``python -m cProfile <mlops> run
   -m ...``) and prints where a job's time goes (cumulative time per job of the main
   functions, the run.json stage durations, and the top engine functions).

2. Parallel speed-up (target >= 1.6) and memory. ``model=random_forest`` with
   ``n_estimators`` calibrated so one fit takes about 2 s here (one calibration run,
   scaled linearly), 16 jobs over ``model.random_state``: the basic launcher against
   ``hydra/launcher=joblib hydra.launcher.n_jobs=2`` (2 worker processes), after a
   warm-up run; speed-up = wall(basic) / wall(joblib), whole commands. While each runs
   a sampler thread reads every 0.5 s the resident memory (VmRSS) of the process tree
   (the mlops process and the joblib workers), and for the basic launcher the kernel's
   high-water mark (VmHWM) of the one process running every job, read when the
   progress line "sweep: k/16 jobs done" appears: flat means the high-water mark after
   job 16 is within 10% of the one after job 4.

3. Resume (target: jobs re-executed == jobs unfinished). ``cache=true``, N jobs
   (default 8) of ``model=logistic``; the script watches stdout for "sweep: N/2/N jobs
   done", kills the process group with SIGKILL, counts the jobs that succeeded in that
   sweep folder, then runs the same command again and reads every ``run.json`` of the
   second sweep folder: a ``reused`` key means taken from the cache, no key means
   re-executed. The cache key includes a hash of the engine's uncommitted git diff;
   with the default ``--code head`` the engine is a clean clone, so nobody's edits can
   change the key between the two sweeps.

4. The model file (issue 12; no target: a cost to know). Every job saves its model, and
   whoever serves it loads it once: save + load of a sweep job's model (``model=logistic``
   on the project's data) and of a 300-tree random forest (``model=random_forest
   model.n_estimators=300``), our skops file against the zlib pickle it replaced, medians
   of ``--model-repeats`` interleaved repeats, and the files' sizes. Two untimed runs make
   the models; ``bench/run_demo.py --measure`` times them in a process that imports the
   benchmarked engine (the clone with ``--code head``), and also times the once-per-process
   ``import skops.io`` (skops imports every scikit-learn estimator to list the ones it
   trusts): a sweep pays it once per process that runs jobs, not per job.

Exit status: 0 when the measurements ran (PASS/MISS printed), 1 when a command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import copy_conf, engine_under_test, pid_status_kib, print_model_file_costs, tree_rss_kib, verdict

ROOT = Path(__file__).resolve().parents[1]
SMALL_DATA = "# @package _global_\ndata:\n  generate:\n    customers: {customers}\n"
HYDRA_APP = '''\
import hydra


@hydra.main(version_base="1.3", config_path={config_path!r}, config_name="config")
def main(cfg):
    pass


if __name__ == "__main__":
    main()
'''
PROGRESS = re.compile(r"sweep: (\d+)/(\d+) jobs done")
OVERHEAD_TARGET = 2.0   # ours / Hydra's, per job
SPEEDUP_TARGET = 1.6
FLAT_TOLERANCE = 0.10   # peak after the last job within 10% of the peak after job 4


class Failed(Exception):
    """A command failed; the message holds the command and the end of its output."""


class Bench:
    """The temp dir, the engine code to run and the environment of every command."""

    def __init__(self, tmp: Path, code: str, customers: int) -> None:
        self.tmp = tmp
        self.customers = customers
        self.source, self.env, self.mlops = engine_under_test(tmp, code, ROOT, "sweeps")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=self.source, capture_output=True,
                                text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=self.source,
                               capture_output=True, text=True, check=False).stdout.strip()
        self.describe = f"{self.source} at {commit}{' + uncommitted edits' if dirty else ' (clean)'}"
        engine_file = subprocess.run([sys.executable, "-c", "import engine; print(engine.__file__)"],
                                     cwd=tmp, env=self.env, capture_output=True, text=True, check=True).stdout.strip()
        if not engine_file.startswith(str(self.source)):
            raise SystemExit(f"sweeps: the engine imports from {engine_file}, not from {self.source}")

    def project(self, name: str) -> Path:
        """A fresh project folder: a copy of conf/ with small demo data."""
        folder = self.tmp / name
        copy_conf(self.source / "conf", folder)
        (folder / "conf" / "local" / "default.yaml").write_text(SMALL_DATA.format(customers=self.customers))
        return folder

    def run(self, cmd: list[str], cwd: Path) -> tuple[float, str]:
        """(wall seconds, stdout + stderr) of one command."""
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            tail = "\n".join(done.stdout.strip().splitlines()[-25:])
            raise Failed(f"exit status {done.returncode}: (cd {cwd} && {' '.join(cmd)})\n{tail}")
        return wall, done.stdout

    def mlops_run(self, cwd: Path, *overrides: str) -> tuple[float, str]:
        return self.run([self.mlops, "run", *overrides], cwd)


#: Our grid sweeper (what conf/experiment/ selects): Hydra's basic sweeper that composes
#: one job per batch before launching instead of every job, plus max_failures.
GRID = "hydra/sweeper=mlops_grid"


def sweep_dirs(project: Path) -> list[Path]:
    """The project's sweep folders, oldest first (their names start with the time)."""
    return sorted((project / "outputs" / "sweeps").glob("*/*"))


def job_records(sweep: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(sweep.glob("*/run.json"), key=lambda p: int(p.parent.name)):
        records.append(json.loads(path.read_text()))
    return records


def values(n: int, start: float, step: float) -> str:
    return ",".join(f"{start + step * i:g}" for i in range(n))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------- 1. overhead

def measure_overhead(bench: Bench, jobs: int, repeats: int, profile_jobs: int) -> dict[str, Any]:
    print(f"\n== 1. per-job overhead: {jobs}-job sweep of model=logistic vs Hydra's empty app, "
          f"{repeats} repeat(s) ==")
    project = bench.project("overhead")
    ours_n = ["-m", GRID, "report=false", "model=logistic", f"model.C={values(jobs, 0.05, 0.05)}"]
    ours_1 = ["-m", GRID, "report=false", "model=logistic", "model.C=0.5"]
    # warm-up (untimed): generates the data, fills the feature store, warms the file cache
    wall, _ = bench.mlops_run(project, "report=false", "model=logistic", "model.C=9")
    print(f"  warm-up run {wall:.1f}s (data generated, feature store filled)")

    tiny = bench.tmp / "hydra-empty"
    (tiny / "conf").mkdir(parents=True)
    (tiny / "conf" / "config.yaml").write_text("x: 0\n")
    (tiny / "app.py").write_text(HYDRA_APP.format(config_path="conf"))
    ours_conf = bench.tmp / "hydra-empty-our-conf"
    ours_conf.mkdir()
    (ours_conf / "app.py").write_text(HYDRA_APP.format(config_path=str(project / "conf")))
    no_callbacks = ["~hydra.callbacks.sweep_summary", "~hydra.callbacks.register_best"]
    hydra_n = [sys.executable, "app.py", "-m", f"x={','.join(str(i) for i in range(1, jobs + 1))}"]
    hydra_1 = [sys.executable, "app.py", "-m", "x=1"]
    conf_n = [sys.executable, "app.py", "-m", GRID, *no_callbacks, f"model.C={values(jobs, 0.05, 0.05)}"]
    conf_1 = [sys.executable, "app.py", "-m", GRID, *no_callbacks, "model.C=0.5"]
    bench.run(hydra_1, tiny)  # warm-up: byte-compiles the app, warms the file cache
    bench.run(conf_1, ours_conf)

    rows: list[dict[str, float]] = []
    for i in range(repeats):
        row: dict[str, float] = {}
        pairs = [("ours", project, [bench.mlops, "run", *ours_n], [bench.mlops, "run", *ours_1]),
                 ("hydra", tiny, hydra_n, hydra_1)]
        if i == 0:  # for the breakdown only: once is enough
            pairs.append(("hydra_conf", ours_conf, conf_n, conf_1))
        if i % 2:
            pairs.reverse()
        for name, cwd, many, one in pairs:
            row.update(timed_pair(bench, name, cwd, many, one, jobs, project if name == "ours" else None))
        row["ours_overhead"] = row["ours_job"] - row["fit_s"]
        row["ratio"] = row["ours_overhead"] / row["hydra_job"]
        rows.append(row)
        print(f"  repeat {i + 1}/{repeats}: ours {jobs} jobs {row['ours_n']:.1f}s, 1 job {row['ours_1']:.1f}s "
              f"-> {row['ours_job'] * 1000:.0f} ms/job (fit {row['fit_s'] * 1000:.0f} ms); "
              f"Hydra {row['hydra_n']:.2f}s / {row['hydra_1']:.2f}s -> {row['hydra_job'] * 1000:.0f} ms/job; "
              f"ratio {row['ratio']:.2f}")
    # the defaults: report=true writes report.html (matplotlib) after every run; once
    with_report = timed_pair(bench, "ours", project, [bench.mlops, "run", *ours_n[:1], *ours_n[2:]],
                             [bench.mlops, "run", *ours_1[:1], *ours_1[2:]], jobs, project)
    print(f"  defaults (report.html per run), once: {jobs} jobs {with_report['ours_n']:.1f}s, "
          f"1 job {with_report['ours_1']:.1f}s -> {with_report['ours_job'] * 1000:.0f} ms/job")

    med = {k: median([r[k] for r in rows if k in r]) for k in rows[0]}
    ratio = med["ours_overhead"] / med["hydra_job"]
    report_overhead = with_report["ours_job"] - with_report["fit_s"]
    report_ratio = report_overhead / med["hydra_job"]
    print(f"\n  medians over {repeats} repeat(s)                            ours      Hydra (empty app)")
    print(f"  wall, {jobs} jobs (s)                                  {med['ours_n']:8.2f}   {med['hydra_n']:8.2f}")
    print(f"  wall, 1 job (s)                                      {med['ours_1']:8.2f}   {med['hydra_1']:8.2f}")
    print(f"  per job = (wall {jobs} - wall 1) / {jobs - 1} (ms)                {med['ours_job'] * 1000:8.1f}   "
          f"{med['hydra_job'] * 1000:8.1f}")
    print(f"  naive wall {jobs} / {jobs} (ms, start-up included)               {med['ours_n'] / jobs * 1000:8.1f}   "
          f"{med['hydra_n'] / jobs * 1000:8.1f}")
    print(f"  - model fit (speed.train_seconds, mean) (ms)         {med['fit_s'] * 1000:8.1f}          -")
    print(f"  = per-job overhead beyond the fit (ms)               {med['ours_overhead'] * 1000:8.1f}   "
          f"{med['hydra_job'] * 1000:8.1f}")
    print(f"    of which inside run.json's duration_s (ms)         {(med['run_s'] - med['fit_s']) * 1000:8.1f}")
    print(f"    of which outside the run record (ms)               {(med['ours_job'] - med['run_s']) * 1000:8.1f}")
    print(f"  Hydra's empty app on our conf/ and sweeper (ms/job)  {'':8}   {med['hydra_conf_job'] * 1000:8.1f}")
    print(f"  engine's own = ours - Hydra on our conf/ - fit (ms)  "
          f"{(med['ours_job'] - med['hydra_conf_job'] - med['fit_s']) * 1000:8.1f}")
    print(f"  with the defaults (report=true, 1 run): overhead {report_overhead * 1000:.0f} ms/job, of which "
          f"report.html ~{(with_report['ours_job'] - med['ours_job']) * 1000:.0f} ms")
    ok = ratio <= OVERHEAD_TARGET
    report_ok = report_ratio <= OVERHEAD_TARGET
    print(f"  overhead ratio ours / Hydra = {ratio:.2f}x (report=false): {verdict(ok)} (target <= "
          f"{OVERHEAD_TARGET:g}x); per-repeat ratios {min(r['ratio'] for r in rows):.2f}-"
          f"{max(r['ratio'] for r in rows):.2f}")
    print(f"  overhead ratio ours / Hydra = {report_ratio:.2f}x (defaults, report.html per run): "
          f"{verdict(report_ok)} (target <= {OVERHEAD_TARGET:g}x)")
    result: dict[str, Any] = {"jobs": jobs, "repeats": repeats, "medians": med, "ratio": ratio, "pass": ok,
                              "with_report": with_report, "report_overhead_s": report_overhead,
                              "report_ratio": report_ratio, "report_pass": report_ok, "runs": rows}
    if (not ok or not report_ok) and profile_jobs:
        result["profile"] = profile_sweep(bench, project, profile_jobs)
    return result


def timed_pair(bench: Bench, name: str, cwd: Path, many: list[str], one: list[str], jobs: int,
               project: Path | None) -> dict[str, float]:
    """Walls of the N-job and the 1-job command, the marginal cost per job and, for our
    sweeps (``project`` given), the mean fit and run time the N runs recorded."""
    row: dict[str, float] = {}
    row[f"{name}_n"], _ = bench.run(many, cwd)
    if project is not None:
        records = job_records(sweep_dirs(project)[-1])
        if len(records) != jobs or any(r.get("status") != "succeeded" for r in records):
            raise Failed(f"the {jobs}-job sweep has {len(records)} records, not all succeeded")
        row["fit_s"] = statistics.fmean(r["speed"]["train_seconds"] for r in records)
        row["run_s"] = statistics.fmean(r["duration_s"] for r in records)
    row[f"{name}_1"], _ = bench.run(one, cwd)
    row[f"{name}_job"] = (row[f"{name}_n"] - row[f"{name}_1"]) / (jobs - 1)
    return row


#: (label, file suffix, function name): cumulative time per job in the profile.
PROFILE_POINTS = (
    ("Hydra run_job: one whole job", "hydra/core/utils.py", "run_job"),
    ("  Hydra: compose the job's config", "hydra/_internal/config_loader_impl.py", "load_sweep_config"),
    ("  Hydra: job logging set-up", "hydra/core/utils.py", "configure_log"),
    ("  Hydra: write .hydra/*.yaml", "hydra/core/utils.py", "_save_config"),
    ("  engine task (the run)", "engine/run/job.py", "task"),
    ("    provenance.collect (git, package versions)", "engine/run/provenance.py", "collect"),
    ("      of which git subprocesses", "engine/run/provenance.py", "git_state"),
    ("    metadata store: open + index the run", "engine/store/tracking.py", "open_store"),
    ("    metadata store: track (3x per run)", "engine/store/tracking.py", "track"),
    ("    run.json writes (RunRecord.save)", "engine/run/record.py", "save"),
    ("    stages (_execute)", "engine/run/job.py", "_execute"),
    ("      resolve the config", "engine/config/validation.py", "resolve"),
    ("      OmegaConf.save (all callers: config.resolved + .hydra)", "omegaconf/omegaconf.py", "save"),
    ("      threadpoolctl.threadpool_info", "threadpoolctl.py", "threadpool_info"),
    ("      compile the plan (schemas, checks, parse once)", "engine/config/plan.py", "compile"),
    ("      data.prepare (demo data up to date?)", "engine/stages/data.py", "prepare"),
    ("      data.load (read 3 sources)", "engine/stages/data.py", "load"),
    ("      runcache.key", "engine/store/runcache.py", "key"),
    ("      quality.run (rules)", "engine/stages/quality.py", "run"),
    ("      features.build (store hit)", "engine/stages/features.py", "build"),
    ("      split.holdout", "engine/stages/split.py", "holdout"),
    ("      model.build", "engine/stages/model.py", "build"),
    ("      model.fit", "engine/stages/model.py", "fit"),
    ("      model.predict_proba", "engine/stages/model.py", "predict_proba"),
    ("      metrics and business value (_evaluate)", "engine/run/job.py", "_evaluate"),
    ("        evaluate.holdout_metrics (3 thresholds)", "engine/stages/evaluate.py", "holdout_metrics"),
    ("        business.best_threshold", "engine/stages/business.py", "best_threshold"),
    ("      model.importances", "engine/stages/model.py", "importances"),
    ("      predictions.parquet", "pandas/core/frame.py", "to_parquet"),
    ("      model.with_threshold", "engine/stages/model.py", "with_threshold"),
    ("      model.save (joblib + zlib + sha256)", "engine/stages/model.py", "save"),
    ("    report.html", "engine/run/job.py", "_report"),
    ("  callbacks: SweepSummary.on_job_end (leaderboard)", "engine/callbacks.py", "on_job_end"),
    ("  all subprocesses (fork+exec+wait)", "subprocess.py", "run"),
)


def profile_sweep(bench: Bench, project: Path, jobs: int) -> dict[str, Any]:
    """Profile one sweep in-process (cProfile) and print where a job's time goes."""
    print(f"\n  profile: one {jobs}-job sweep under cProfile (python -m cProfile {Path(bench.mlops).name} run -m ...)")
    out = bench.tmp / "sweep.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), bench.mlops, "run", "-m", GRID, "report=false",
           "model=logistic",
           f"model.C={values(jobs, 1.05, 0.05)}"]
    wall, _ = bench.run(cmd, project)
    records = job_records(sweep_dirs(project)[-1])
    stats = pstats.Stats(str(out))
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cumulative(suffix: str, name: str) -> float | None:
        found = [v[3] for (f, _, n), v in table.items() if n == name and f.replace(os.sep, "/").endswith(suffix)]
        return sum(found) if found else None

    per_job: dict[str, float] = {}
    print(f"  wall {wall:.1f}s under the profiler; cumulative time per job (ms), mean of {jobs} jobs:")
    for label, suffix, name in PROFILE_POINTS:
        seconds = cumulative(suffix, name)
        if seconds is None:
            continue
        per_job[label.strip()] = seconds / jobs * 1000
        print(f"    {label:<52} {seconds / jobs * 1000:8.1f}")
    stages = sorted({s for r in records for s in r["stages"]}, key=lambda s: list(records[0]["stages"]).index(s)
                    if s in records[0]["stages"] else 99)
    print("  run.json stage durations, median of the profiled jobs (ms; profiler overhead included):")
    stage_ms = {s: median([r["stages"][s]["duration_s"] * 1000 for r in records if s in r["stages"]]) for s in stages}
    print("    " + "  ".join(f"{s} {ms:.0f}" for s, ms in stage_ms.items()))
    wrappers = {"task", "_job", "_execute", "job"}  # the call chain every job goes through
    engine_rows = sorted(((v[3], f, n) for (f, _, n), v in table.items()
                          if "/engine/" in f.replace(os.sep, "/") and "/engine/cli/" not in f.replace(os.sep, "/")
                          and n not in wrappers),
                         reverse=True)
    print("  top engine functions below the job's own call chain, by cumulative time per job (ms):")
    for seconds, f, n in engine_rows[:14]:
        print(f"    {seconds / jobs * 1000:8.1f}  {Path(f).parent.name}/{Path(f).name}:{n}")
    return {"jobs": jobs, "wall_s": wall, "per_job_ms": per_job, "stages_ms": stage_ms}


# --------------------------------------------------------------------------- 2. speed-up

class Sampler:
    """Samples a process tree's resident memory while a sweep runs, and the root's
    high-water mark each time a progress line reports a finished job."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        # 0.5 s, not finer: walking /proc for the tree costs CPU, and at 50 ms it took a
        # fifth of a core from a 2-worker joblib sweep that needs both (the root's true
        # peak comes from the kernel's VmHWM anyway).
        self.pid = pid
        self.period = period
        self.tree_peak_kib = 0
        self.root_peak_kib = 0
        self.hwm_at: dict[int, int] = {}
        self.rss_at: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.tree_peak_kib = max(self.tree_peak_kib, tree_rss_kib(self.pid))
            self.root_peak_kib = max(self.root_peak_kib, pid_status_kib(self.pid, "VmRSS") or 0)

    def progress(self, done: int) -> None:
        hwm, rss = pid_status_kib(self.pid, "VmHWM"), pid_status_kib(self.pid, "VmRSS")
        if hwm is not None and rss is not None:
            self.hwm_at[done], self.rss_at[done] = hwm, rss

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def watched(bench: Bench, cmd: list[str], cwd: Path, kill_after: int | None = None) -> dict[str, Any]:
    """Run a sweep, reading its progress lines; memory sampled; optionally SIGKILL it
    once ``kill_after`` jobs are reported done. Returns wall, samples and the output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = Path("/proc/loadavg").read_text().split()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=bench.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    sampler = Sampler(proc.pid)
    lines, killed = [], False
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if match := PROGRESS.search(line):
            done = int(match.group(1))
            sampler.progress(done)
            if kill_after is not None and done >= kill_after and not killed:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
    proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the tree's CPU, workers included once reaped
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    sampler.stop()
    if proc.returncode != 0 and not killed:
        tail = "".join(lines[-25:])
        raise Failed(f"exit status {proc.returncode}: (cd {cwd} && {' '.join(cmd)})\n{tail}")
    return {"wall_s": wall, "cpu_s": cpu, "load_before": float(load), "tree_peak_mib": sampler.tree_peak_kib / 1024,
            "root_peak_mib": sampler.root_peak_kib / 1024,
            "hwm_mib": {k: v / 1024 for k, v in sampler.hwm_at.items()},
            "rss_mib": {k: v / 1024 for k, v in sampler.rss_at.items()}, "killed": killed, "output": "".join(lines)}


def _bare_fit(args: tuple[int, int]) -> float:
    """One RandomForest fit on synthetic data of the demo's size, no engine: seconds."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    trees, seed = args
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 12))
    y = (X[:, 0] + rng.normal(size=3000) > 1).astype(int)
    start = time.perf_counter()
    RandomForestClassifier(n_estimators=trees, max_depth=8, min_samples_leaf=20, n_jobs=1,
                           random_state=seed).fit(X, y)
    return time.perf_counter() - start


def fit_ceiling(trees: int) -> float:
    """What 2 processes can gain on this machine: 4 bare fits one after the other vs
    in a pool of 2 (workers started and warmed first, so only the fits are timed)."""
    from multiprocessing import get_context

    _bare_fit((trees, 0))
    start = time.perf_counter()
    for seed in range(4):
        _bare_fit((trees, seed))
    sequential = time.perf_counter() - start
    with get_context("spawn").Pool(2) as pool:
        pool.map(_bare_fit, [(trees, 9), (trees, 9)])
        start = time.perf_counter()
        pool.map(_bare_fit, [(trees, seed) for seed in range(4)], chunksize=1)
        parallel = time.perf_counter() - start
    return sequential / parallel


def measure_speedup(bench: Bench, jobs: int, fit_target: float, repeats: int) -> dict[str, Any]:
    print(f"\n== 2. parallel: {jobs} jobs of ~{fit_target:g}s fits, joblib (2 workers) vs basic, "
          f"{repeats} repeat(s) ==")
    project = bench.project("speedup")
    trees = 200
    for attempt in range(2):  # calibrate: fit time is about linear in the number of trees
        wall, _ = bench.mlops_run(project, "report=false", "model=random_forest", f"model.n_estimators={trees}")
        runs = sorted((project / "outputs" / "runs").glob("*/*/run.json"))
        fit = json.loads(runs[-1].read_text())["speed"]["train_seconds"]
        print(f"  calibration {attempt + 1}: {trees} trees fit in {fit:.2f}s (run {wall:.1f}s)")
        if abs(fit - fit_target) / fit_target < 0.15:
            break
        trees = max(5, round(trees * fit_target / fit))
    common = ["-m", GRID, "report=false", "model=random_forest", f"model.n_estimators={trees}",
              f"model.random_state={','.join(str(i) for i in range(jobs))}"]
    basic_cmd = [bench.mlops, "run", *common]
    joblib_cmd = [bench.mlops, "run", *common, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    rows: list[dict[str, Any]] = []
    for i in range(repeats):
        order = [("basic", basic_cmd), ("joblib", joblib_cmd)]
        if i % 2:
            order.reverse()
        row: dict[str, Any] = {}
        for name, cmd in order:
            row[name] = watched(bench, cmd, project)
            records = job_records(sweep_dirs(project)[-1])
            if len(records) != jobs or any(r.get("status") != "succeeded" for r in records):
                raise Failed(f"{name}: the sweep has {len(records)} records, not all succeeded")
            row[name]["fit_s"] = statistics.fmean(r["speed"]["train_seconds"] for r in records)
            row[name]["run_s"] = statistics.fmean(r["duration_s"] for r in records)
            del row[name]["output"]
        row["speedup"] = row["basic"]["wall_s"] / row["joblib"]["wall_s"]
        rows.append(row)
        print(f"  repeat {i + 1}/{repeats}: basic {row['basic']['wall_s']:.1f}s (mean fit "
              f"{row['basic']['fit_s']:.2f}s), joblib {row['joblib']['wall_s']:.1f}s (mean fit "
              f"{row['joblib']['fit_s']:.2f}s): speed-up {row['speedup']:.2f}")
        # On a shared machine the workers may not get two cores: CPU seconds / wall says
        # how many cores the sweep actually had (load average: other workers included).
        for name in ("basic", "joblib"):
            r = row[name]
            print(f"    {name}: CPU {r['cpu_s']:.0f}s over {r['wall_s']:.0f}s wall = {r['cpu_s'] / r['wall_s']:.2f} "
                  f"cores used; load average before {r['load_before']:.1f} on {os.cpu_count()} CPUs")
    speedup = median([r["speedup"] for r in rows])
    ceiling = fit_ceiling(trees)
    print(f"  the machine's ceiling: 4 bare RandomForest fits of {trees} trees, one after the other vs "
          f"2 processes: {ceiling:.2f}")
    basic_wall = median([r["basic"]["wall_s"] for r in rows])
    joblib_wall = median([r["joblib"]["wall_s"] for r in rows])
    ok = speedup >= SPEEDUP_TARGET
    print(f"  median walls: basic {basic_wall:.1f}s, joblib {joblib_wall:.1f}s; "
          f"speed-up {speedup:.2f}: {verdict(ok)} (target >= {SPEEDUP_TARGET:g})")

    # memory: the basic launcher runs every job in one process; its high-water mark
    # must not grow with the number of jobs done
    early = min(4, jobs)
    hwm_early = median([r["basic"]["hwm_mib"].get(early, float("nan")) for r in rows])
    hwm_last = median([r["basic"]["hwm_mib"].get(jobs, float("nan")) for r in rows])
    growth = hwm_last / hwm_early - 1
    flat = growth <= FLAT_TOLERANCE
    trend = rows[-1]["basic"]["rss_mib"]
    print(f"  memory, basic launcher (one process runs all {jobs} jobs): VmHWM after job {early} "
          f"{hwm_early:.0f} MiB, after job {jobs} {hwm_last:.0f} MiB ({growth:+.1%}): {verdict(flat)} "
          f"(flat: within {FLAT_TOLERANCE:.0%})")
    print("    VmRSS after each job (MiB): " + " ".join(f"{trend[k]:.0f}" for k in sorted(trend)))
    tree_basic = median([r["basic"]["tree_peak_mib"] for r in rows])
    tree_joblib = median([r["joblib"]["tree_peak_mib"] for r in rows])
    print(f"  peak RSS of the process tree (sampled every 0.5 s): basic {tree_basic:.0f} MiB, "
          f"joblib 2 workers {tree_joblib:.0f} MiB (parent + workers)")
    return {"jobs": jobs, "trees": trees, "repeats": repeats, "speedup": speedup, "pass": ok, "ceiling": ceiling,
            "basic_wall_s": basic_wall, "joblib_wall_s": joblib_wall, "hwm_early_mib": hwm_early,
            "hwm_last_mib": hwm_last, "memory_flat": flat, "tree_peak_basic_mib": tree_basic,
            "tree_peak_joblib_mib": tree_joblib, "runs": rows}


# --------------------------------------------------------------------------- 4. model file

def measure_model_file(bench: Bench, repeats: int, trees: int) -> dict[str, Any]:
    print(f"\n== 4. model file: save + load, skops (ours) vs the zlib pickle it replaced, {repeats} repeats ==")
    project = bench.project("model-file")
    runs = {}
    for label, overrides in (("sweep job model (LogisticRegression)", ["model=logistic"]),
                             (f"random forest, {trees} trees", ["model=random_forest",
                                                                f"model.n_estimators={trees}"])):
        bench.mlops_run(project, "report=false", *overrides)
        runs[label] = sorted((project / "outputs" / "runs").glob("*/*/run.json"))[-1].parent
    cmd = [sys.executable, str(ROOT / "bench" / "run_demo.py"), "--model-file-repeats", str(repeats),
           "--measure", *(f"{label}={folder}" for label, folder in runs.items())]
    _, output = bench.run(cmd, project)
    costs = json.loads(output.strip().splitlines()[-1])
    print_model_file_costs(costs)
    print(f"  once per process: import skops.io {costs['skops_import_s']:.2f} s")
    return costs


# --------------------------------------------------------------------------- 3. resume

def measure_resume(bench: Bench, jobs: int) -> dict[str, Any]:
    half = jobs // 2
    print(f"\n== 3. resume: {jobs} jobs with cache=true, SIGKILL after {half} done, then the same command ==")
    project = bench.project("resume")
    bench.mlops_run(project, "report=false", "model=logistic", "model.C=9")  # data, feature store; not a sweep job
    cmd = [bench.mlops, "run", "-m", GRID, "cache=true", "report=false", "model=logistic",
           f"model.C={values(jobs, 0.05, 0.05)}"]
    first = watched(bench, cmd, project, kill_after=half)
    if not first["killed"]:
        raise Failed("the first sweep ended before it could be killed")
    first_dir = sweep_dirs(project)[-1]
    statuses = [r.get("status") for r in job_records(first_dir)]
    finished = statuses.count("succeeded")
    unfinished = jobs - finished
    print(f"  first sweep killed after {first['wall_s']:.1f}s: {finished} succeeded, {unfinished} unfinished "
          f"(run.json statuses: {', '.join(s or '?' for s in statuses)}; "
          f"{jobs - len(statuses)} job(s) never started)")
    second = watched(bench, cmd, project)
    second_dir = sweep_dirs(project)[-1]
    if second_dir == first_dir:
        raise Failed("the second sweep wrote no new sweep folder")
    records = job_records(second_dir)
    reused = sum(1 for r in records if "reused" in r)
    executed = sum(1 for r in records if "reused" not in r and r.get("status") == "succeeded")
    failed = sum(1 for r in records if r.get("status") != "succeeded")
    ok = executed == unfinished and reused == finished and failed == 0 and len(records) == jobs
    print(f"  second sweep {second['wall_s']:.1f}s: {reused} reused, {executed} re-executed, {failed} not succeeded")
    print(f"  re-executed {executed} == unfinished {unfinished}: {verdict(ok)}")
    return {"jobs": jobs, "finished_first": finished, "unfinished_first": unfinished, "reused": reused,
            "reexecuted": executed, "failed": failed, "first_wall_s": first["wall_s"],
            "second_wall_s": second["wall_s"], "pass": ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller: a smoke run of a couple of minutes")
    parser.add_argument("--only", choices=["overhead", "speedup", "resume", "model"], action="append",
                        help="run only this measurement (repeatable)")
    parser.add_argument("--code", choices=["head", "working"], default="head",
                        help="head: a clean clone of HEAD (default); working: the working tree as installed")
    parser.add_argument("--customers", type=int, default=4000, help="demo customers per project (default 4000)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs of the overhead sweep (default 32, quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of the overhead pair (default 3, quick 1)")
    parser.add_argument("--profile-jobs", type=int, default=None,
                        help="jobs of the profiled sweep when the target is missed (default 4, quick 3; 0: none)")
    parser.add_argument("--parallel-jobs", type=int, default=None, help="jobs of the speed-up sweep (default 16)")
    parser.add_argument("--fit-seconds", type=float, default=None, help="target fit time (default 2, quick 0.5)")
    parser.add_argument("--parallel-repeats", type=int, default=1, help="repeats of the speed-up pair (default 1)")
    parser.add_argument("--resume-jobs", type=int, default=None, help="jobs of the resume sweep (default 8, quick 4)")
    parser.add_argument("--model-repeats", type=int, default=None,
                        help="repeats of the model file's save + load (default 9, quick 3)")
    parser.add_argument("--model-trees", type=int, default=300, help="trees of the random forest measured (300)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (projects, sweeps, profile)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    q = args.quick
    jobs = args.jobs or (8 if q else 32)
    repeats = args.repeats or (1 if q else 3)
    profile_jobs = args.profile_jobs if args.profile_jobs is not None else (3 if q else 4)
    parallel_jobs = args.parallel_jobs or (6 if q else 16)
    fit_seconds = args.fit_seconds or (0.5 if q else 2.0)
    resume_jobs = args.resume_jobs or (4 if q else 8)
    model_repeats = args.model_repeats or (3 if q else 9)
    which = args.only or ["overhead", "speedup", "resume", "model"]
    if jobs < 2 or resume_jobs < 2:
        parser.error("--jobs and --resume-jobs must be at least 2")

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweeps-"))
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        bench = Bench(tmp, args.code, args.customers)
        print(f"sweeps benchmark: engine {bench.describe}; {os.cpu_count()} CPUs; projects of "
              f"{args.customers} demo customers in {tmp}")
        if "overhead" in which:
            figures["overhead"] = measure_overhead(bench, jobs, repeats, profile_jobs)
        if "speedup" in which:
            figures["speedup"] = measure_speedup(bench, parallel_jobs, fit_seconds, args.parallel_repeats)
        if "resume" in which:
            figures["resume"] = measure_resume(bench, resume_jobs)
        if "model" in which:
            figures["model"] = measure_model_file(bench, model_repeats, args.model_trees)
    except Failed as exc:
        print(f"\nsweeps: a command failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nsummary ({time.perf_counter() - started:.0f}s):")
    if "overhead" in figures:
        o = figures["overhead"]
        print(f"  per-job overhead ours / Hydra = {o['ratio']:.1f}x "
              f"({o['medians']['ours_overhead'] * 1000:.0f} ms vs {o['medians']['hydra_job'] * 1000:.1f} ms): "
              f"{verdict(o['pass'])} (target <= {OVERHEAD_TARGET:g}x)")
    if "speedup" in figures:
        s = figures["speedup"]
        print(f"  joblib (2 workers) speed-up = {s['speedup']:.2f}: {verdict(s['pass'])} "
              f"(target >= {SPEEDUP_TARGET:g}); "
              f"memory flat ({s['hwm_early_mib']:.0f} -> {s['hwm_last_mib']:.0f} MiB): {verdict(s['memory_flat'])}")
    if "resume" in figures:
        r = figures["resume"]
        print(f"  resume: re-executed {r['reexecuted']}, unfinished {r['unfinished_first']}, reused {r['reused']}: "
              f"{verdict(r['pass'])}")
    if "model" in figures:
        for label, row in figures["model"].items():
            if isinstance(row, dict):
                print(f"  model file, {label}: skops / zlib pickle = save x{row['ratio_save']:.1f}, "
                      f"load x{row['ratio_load']:.1f}, size x{row['ratio_bytes']:.1f}")
    if args.json:
        path = args.json if args.json.is_absolute() else Path.cwd() / args.json
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
