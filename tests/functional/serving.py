"""A real ``mlops serve`` in a subprocess on a free loopback port, for the functional tests."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tests.conftest import MLOPS

#: A cold start imports scikit-learn, skops and FastAPI and verifies the model: seconds
#: on a loaded 2-core machine.
START_TIMEOUT_S = 120


class Server:
    """``mlops serve ARGS`` started in ``cwd``; :meth:`stop` sends SIGTERM and waits.

    The server is asked for port 0 (any free port) unless ``--port`` is given, and
    its address is read from the line it prints once it listens.
    """

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None, mlops: str | None = None) -> None:
        assert mlops or MLOPS, "the mlops console script is not installed in this environment"
        argv = [str(mlops or MLOPS), "serve", *args]
        if "--port" not in args:
            argv += ["--port", "0"]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=full_env)
        self.stdout = ""
        self.stderr = ""
        self.url = self._wait_for_address()

    def _wait_for_address(self) -> str:
        selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if selector.select(timeout=1):
                line = self.process.stdout.readline()
                self.stdout += line
                found = re.search(r" on (http://\S+)", line)
                if found:
                    return found.group(1)
                if not line and self.process.poll() is not None:
                    break
            elif self.process.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"mlops serve did not start: status {self.process.returncode}\n{self.stderr[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Stop the server; return its exit status (stdout and stderr are kept)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self.stdout += out or ""
        self.stderr += err or ""
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def feature_rows(project: Path, n: int) -> pd.DataFrame:
    """``n`` rows of the feature table the model was trained from (key, inputs)."""
    domain = json.loads((project / "outputs" / "registry" / "churn" / "1" / "input_domain.json").read_text())
    (table,) = [p for p in (project / "outputs" / "feature_store" / "tables").glob("*.json")
                if json.loads(p.read_text())["kind"] == "features"]
    frame = pd.read_parquet(table.with_suffix(".parquet"))
    return frame[[domain["key"]["name"], *domain["columns"]]].head(n)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON records as a client sends them: NaN as null, every float to its last digit."""
    return [{k: None if pd.isna(v) else v.item() if hasattr(v, "item") else v for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def in_process_scores(project: Path, frame: pd.DataFrame) -> list[float]:
    """What the registered model gives for the same rows, loaded in this process."""
    import engine
    from engine.stages.model import as_model_input

    model = engine.load_model("churn/1", registry=project / "outputs" / "registry",
                              tracking_uri=f"sqlite:///{project / 'outputs' / 'mlops.db'}")
    return list(model.predict_proba(as_model_input(frame[list(model.feature_names_in_)]))[:, 1])
