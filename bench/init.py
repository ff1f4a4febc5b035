"""Benchmark of ``mlops init`` (``engine.scaffold``) against pandas' ``read_csv``.

``mlops init`` reads a table, profiles every column once and writes a project's
``conf/`` tree. Reading is pandas' ``read_csv`` itself, so the cost of init beyond the
floor is the profile (a distinct-value count or a range per column, date and number
detection on the distinct values of text columns) and writing the YAML files.

Two contenders on the same file, in one process:

* ``read_csv`` - ``pandas.read_csv(path)``: the floor (init cannot be faster).
* ``init``     - ``engine.cli.init.init_command([DIR, --data, path, --target,
  y, --force])``: the whole command as ``mlops init`` runs it, the interpreter and
  its imports aside (those are timed once, apart, as the wall time of the real
  ``mlops init`` in a subprocess).

Data: ``--rows`` rows x 20 columns from a seeded numpy generator, written once as CSV:
6 integer columns (one an identifier 0..n-1, one a 0/1 flag), 6 float columns (two with
5% missing), 5 text categories (3 to 50 values, one with 3% missing), a text identifier,
a date and the 0/1 target.

Timing: every repeat runs both contenders, the order alternating from repeat to repeat
(interleaved, so drift on a noisy machine hits both alike); the table shows medians and
the ratio of the medians. Target: init at most 3x ``read_csv``.

    python bench/init.py                         # 1,000,000 rows, 5 repeats
    python bench/init.py --rows 100000 --repeats 3

Exits 0 even when the target is missed (it is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import verdict  # noqa: E402
from engine.cli.init import init_command  # noqa: E402


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """20 mixed columns, as a typical export has them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": np.arange(rows),
        "age": rng.integers(18, 90, rows),
        "tenure_months": rng.integers(0, 120, rows),
        "n_orders": rng.poisson(4, rows),
        "n_contacts": rng.poisson(1, rows),
        "is_member": rng.integers(0, 2, rows),
        "income": np.round(rng.lognormal(10, 0.5, rows), 2),
        "balance": np.round(rng.normal(1000, 400, rows), 2),
        "monthly_spend": np.round(rng.uniform(5, 300, rows), 2),
        "discount": np.round(rng.uniform(0, 0.3, rows), 3),
        "score": rng.normal(0, 1, rows),
        "latitude": rng.uniform(40, 55, rows),
        "plan": rng.choice(["basic", "plus", "pro"], rows),
        "region": rng.choice([f"region_{i}" for i in range(12)], rows),
        "channel": rng.choice(["web", "store", "phone", "partner"], rows),
        "city": rng.choice([f"city_{i}" for i in range(50)], rows),
        "device": rng.choice(["ios", "android", "desktop", "tablet", "tv"], rows),
        "customer_ref": [f"R{i:08d}" for i in rng.permutation(rows)],
        "signed_up": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 2000, rows), unit="D")
                      ).strftime("%Y-%m-%d"),
        "churned": rng.integers(0, 2, rows),
    })
    for column in ("income", "balance"):
        frame.loc[rng.random(rows) < 0.05, column] = np.nan
    frame.loc[rng.random(rows) < 0.03, "channel"] = None
    return frame


def timed(call: object) -> float:
    start = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-init-") as tmp:
        root = Path(tmp)
        csv = root / "table.csv"
        make_table(options.rows).to_csv(csv, index=False)
        size = csv.stat().st_size
        project = root / "project"
        args = [str(project), "--data", str(csv), "--target", "churned", "--force"]
        devnull = open(os.devnull, "w")  # noqa: SIM115 - init prints its summary
        contenders = {
            "read_csv": lambda: pd.read_csv(csv),
            "init": lambda: _quiet(devnull, lambda: init_command(args)),
        }
        _quiet(devnull, lambda: init_command(args))  # warm: imports and the file in the page cache
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for repeat in range(options.repeats):
            order = list(contenders) if repeat % 2 == 0 else list(reversed(contenders))
            for name in order:
                times[name].append(timed(contenders[name]))
        shutil.rmtree(project)
        mlops = shutil.which("mlops", path=str(Path(sys.executable).parent)) or "mlops"
        start = time.perf_counter()
        subprocess.run([mlops, "init", *args], check=True, capture_output=True)
        cli_wall = time.perf_counter() - start

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["init"] / median["read_csv"]
    print(f"mlops init vs pandas read_csv: {options.rows:,} rows x 20 columns, {size / 2**20:.0f} MiB CSV, "
          f"{options.repeats} interleaved repeats (Python {platform.python_version()}, pandas {pd.__version__}, "
          f"load average {os.getloadavg()[0]:.1f})")
    print()
    print("| contender | median | runs | x read_csv | target |")
    print("|---|---|---|---|---|")
    print(f"| pandas read_csv | {median['read_csv']:.2f} s | "
          f"{', '.join(f'{t:.2f}' for t in times['read_csv'])} | 1.00 | |")
    print(f"| mlops init (in process) | {median['init']:.2f} s | {', '.join(f'{t:.2f}' for t in times['init'])} | "
          f"**{ratio:.2f}** | <= 3x: {verdict(ratio <= 3)} |")
    print(f"| `mlops init` command, once (interpreter and imports included) | {cli_wall:.2f} s | | "
          f"{cli_wall / median['read_csv']:.2f} | (information) |")


def _quiet(devnull: object, call: object) -> object:
    saved = sys.stdout
    sys.stdout = devnull  # type: ignore[assignment]
    try:
        return call()  # type: ignore[operator]
    finally:
        sys.stdout = saved


if __name__ == "__main__":
    main()
