"""A real ``mlops serve`` in a subprocess on a free loopback port, for the functional tests."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import MLOPS

#: A cold start imports scikit-learn, skops and FastAPI and verifies the model: seconds
#: on a loaded 2-core machine.
START_TIMEOUT_S = 120


class Server:
    """``mlops serve ARGS`` started in ``cwd``; :meth:`stop` sends SIGTERM and waits.

    The server is asked for port 0 (any free port) unless ``--port`` is given, and
    its address is read from the line it prints once it listens.
    """

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        assert MLOPS, "the mlops console script is not installed in this environment"
        argv = [MLOPS, "serve", *args]
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
