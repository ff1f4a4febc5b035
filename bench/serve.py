"""Benchmark: ``mlops serve`` against ``mlflow models serve``, one model, one load generator.

A project in a temp folder runs the demo once and registers its model (churn@champion).
The same fitted model (``engine.load_model``) is saved with ``mlflow.sklearn.save_model``
(``pyfunc_predict_fn="predict_proba"``, with a signature inferred from the feature rows,
so MLflow checks dtypes) and served by ``mlflow models serve --env-manager local``. Both
servers run one worker process on 127.0.0.1, all started at once and measured in
interleaved rounds (medians reported), driven by the same asyncio + httpx load generator
in this process. Measured:

1. single-row requests at concurrency 1: p50 and p99 latency (target: our p50 <= MLflow's);
2. single-row requests at concurrency 8: requests per second (target: >= 2x MLflow's);
3. 1,000-row requests at concurrency 1: rows per second (target: >= 1.5x MLflow's);
4. ours with the prediction log on and off, single rows at concurrency 8 (target: on >= 0.9x off);
5. the limit: in-process ``predict_proba`` of one row, and of 1,000 rows.

Every loop is bounded by a count and a time. Rows are the feature table's rows, sent as
JSON records (MLflow: ``{"dataframe_records": [...]}``).

    python bench/serve.py [--customers 4000] [--seconds 5] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from _common import copy_conf

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are their medians")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        project = Path(tmp) / "project"
        rows = prepare(project, options.customers)
        model_dir = save_for_mlflow(project, rows, Path(tmp) / "mlflow-model")
        results: dict[str, Any] = {"load_average": os.getloadavg(), "customers": options.customers}
        results["in_process"] = in_process(project, rows)
        one, thousand = rows[:1], rows[:1000]
        servers = {
            "mlops": [str(BIN / "mlops"), "serve", "churn@champion", "--port", "{port}"],
            "mlops_no_log": [str(BIN / "mlops"), "serve", "churn@champion", "--port", "{port}", "--no-log"],
            "mlflow": [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                       "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
        }
        # All three run at once (idle between their turns) and are measured in interleaved
        # rounds, so that a change in the shared machine's load falls on every side alike;
        # each figure is the median over the rounds.
        with contextlib.ExitStack() as stack:
            urls = {name: stack.enter_context(Running(argv, project)) for name, argv in servers.items()}
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for number in range(options.rounds):
                for name, url in urls.items():
                    path, body = ("/invocations", "dataframe_records") if name == "mlflow" else ("/predict", "records")
                    figures = asyncio.run(measure(url + path, body, one, thousand, options.seconds,
                                                  full=name != "mlops_no_log"))
                    rounds[name].append(figures)
                    print(f"round {number + 1} {name}: {json.dumps(figures)}", flush=True)
        for name, figures in rounds.items():
            results[name] = {key: statistics.median(f[key] for f in figures) for key in figures[0]}
            results[name]["rounds"] = figures
        report(results)
        if options.json:
            options.json.write_text(json.dumps(results, indent=1))


def prepare(project: Path, customers: int) -> list[dict[str, Any]]:
    """Run the demo, register and promote its model; return 1,000 feature rows as JSON records."""
    copy_conf(REPO / "conf", project)
    (project / "conf" / "local" / "default.yaml").write_text(
        f"# @package _global_\ndata:\n  generate:\n    customers: {customers}\nreport: false\n")
    for args in (("run",), ("registry", "register", "latest", "--name", "churn"),
                 ("registry", "promote", "churn/1", "--alias", "champion")):
        subprocess.run([str(BIN / "mlops"), *args], cwd=project, check=True, capture_output=True)
    domain = json.loads((project / "outputs" / "registry" / "churn" / "1" / "input_domain.json").read_text())
    (table,) = [p for p in (project / "outputs" / "feature_store" / "tables").glob("*.json")
                if json.loads(p.read_text())["kind"] == "features"]
    frame = pd.read_parquet(table.with_suffix(".parquet"))[list(domain["columns"])]
    frame = pd.concat([frame] * (1 + 1000 // len(frame))).head(1000)
    return [{k: None if pd.isna(v) else v.item() if hasattr(v, "item") else v for k, v in r.items()}
            for r in frame.to_dict(orient="records")]


def save_for_mlflow(project: Path, rows: list[dict[str, Any]], path: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    import engine

    model = engine.load_model("churn@champion", registry=project / "outputs" / "registry",
                              tracking_uri=f"sqlite:///{project / 'outputs' / 'mlops.db'}")
    frame = pd.DataFrame(rows[:50])
    signature = infer_signature(frame, model.predict_proba(frame))
    mlflow.sklearn.save_model(model, str(path), signature=signature, pyfunc_predict_fn="predict_proba",
                              serialization_format="pickle")
    return path


def in_process(project: Path, rows: list[dict[str, Any]]) -> dict[str, float]:
    """The floor: the model's own predict_proba in this process, no HTTP, no checks."""
    import engine
    from engine.stages.model import as_model_input

    model = engine.load_model("churn@champion", registry=project / "outputs" / "registry",
                              tracking_uri=f"sqlite:///{project / 'outputs' / 'mlops.db'}")
    out = {}
    for label, n in (("one_row_ms", 1), ("thousand_rows_ms", 1000)):
        frame = as_model_input(pd.DataFrame(rows[:n]))
        times = []
        for _ in range(200 if n == 1 else 30):
            started = time.perf_counter()
            model.predict_proba(frame)
            times.append((time.perf_counter() - started) * 1000)
        out[label] = round(statistics.median(times), 3)
    return out


async def measure(url: str, body_key: str, one: list[dict[str, Any]], thousand: list[dict[str, Any]],
                  seconds: float, full: bool = True) -> dict[str, Any]:
    single = json.dumps({body_key: one}).encode()
    big = json.dumps({body_key: thousand}).encode()
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(20):  # warm-up: connections, lazy imports
            (await client.post(url, content=single, headers=headers)).raise_for_status()
        out: dict[str, Any] = {}
        if full:
            latencies, _, errors = await load(client, url, single, headers, 1, seconds, max_requests=2000)
            out["c1_p50_ms"] = round(percentile(latencies, 50), 3)
            out["c1_p99_ms"] = round(percentile(latencies, 99), 3)
            out["c1_errors"] = errors
        latencies, wall, errors = await load(client, url, single, headers, 8, seconds, max_requests=50_000)
        out["c8_rps"] = round(len(latencies) / wall, 1)
        out["c8_errors"] = errors
        if full:
            latencies, wall, errors = await load(client, url, big, headers, 1, seconds, max_requests=200)
            out["rows1000_rows_per_s"] = round(1000 * len(latencies) / wall, 0)
            out["rows1000_p50_ms"] = round(percentile(latencies, 50), 3)
            out["rows1000_errors"] = errors
    return out


async def load(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], concurrency: int,
               seconds: float, max_requests: int) -> tuple[list[float], float, int]:
    """``concurrency`` workers posting ``body`` until ``seconds`` or ``max_requests``; latencies in ms."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
            t0 = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            if response.status_code == 200:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, errors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class Running:
    """A server subprocess on a free loopback port, stopped with SIGTERM."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.argv = [a.format(port=self.port) for a in argv]
        self.cwd = cwd

    def __enter__(self) -> str:
        # mlflow starts uvicorn by name through a shell: this environment's bin/ goes first on PATH
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True, env=env)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                ready = "/ping" if "mlflow" in self.argv[0] else "/ready"
                if httpx.get(url + ready, timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{' '.join(self.argv)} did not start in 180 s")

    def __exit__(self, *exc: Any) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)  # mlflow's uvicorn runs in a child process
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def report(r: dict[str, Any]) -> None:
    ours, theirs, quiet = r["mlops"], r["mlflow"], r["mlops_no_log"]
    lines = [
        f"load average at start: {', '.join(f'{x:.2f}' for x in r['load_average'])} (2 cores, shared)",
        f"in process (the floor): one row {r['in_process']['one_row_ms']} ms, "
        f"1,000 rows {r['in_process']['thousand_rows_ms']} ms",
        f"1 row, concurrency 1: p50 {ours['c1_p50_ms']} ms vs mlflow {theirs['c1_p50_ms']} ms "
        f"(target <= mlflow: {'met' if ours['c1_p50_ms'] <= theirs['c1_p50_ms'] else 'NOT met'}); "
        f"p99 {ours['c1_p99_ms']} vs {theirs['c1_p99_ms']} ms",
        f"1 row, concurrency 8: {ours['c8_rps']} vs {theirs['c8_rps']} requests/s = "
        f"{ours['c8_rps'] / theirs['c8_rps']:.2f}x (target >= 2x)",
        f"1,000 rows, concurrency 1: {ours['rows1000_rows_per_s']:,.0f} vs {theirs['rows1000_rows_per_s']:,.0f} "
        f"rows/s = {ours['rows1000_rows_per_s'] / theirs['rows1000_rows_per_s']:.2f}x (target >= 1.5x)",
        f"prediction log: concurrency 8 with it {ours['c8_rps']} vs without {quiet['c8_rps']} requests/s = "
        f"{ours['c8_rps'] / quiet['c8_rps']:.2f}x (target >= 0.9x)",
        f"failed requests over all rounds: ours {_errors(ours) + _errors(quiet)}, mlflow {_errors(theirs)}",
    ]
    print("\n".join(lines))


def _errors(side: dict[str, Any]) -> int:
    return sum(v for f in side["rounds"] for k, v in f.items() if k.endswith("_errors"))


if __name__ == "__main__":
    main()
