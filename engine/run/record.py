"""The run record: ``run.json``, rewritten atomically as the run moves through its stages.

A run is ``running`` from the moment its directory exists and becomes ``succeeded``
only after every artifact is on disk, so a crash, Ctrl-C or kill never leaves a run
that looks succeeded.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.files import write_json
from engine.store import tracking

log = logging.getLogger("engine.run")

RUN_FILE = "run.json"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunRecord:
    """The ``run.json`` of one run, saved at :meth:`start`, at each stage's start, and at the end.

    Fields set between two saves (:meth:`update`, a stage's outcome) reach the file with
    the next save: what a reader of a running run's file needs is which stage is running,
    and the final status is written with everything else, durably.

    Args:
        run_dir: The run directory (Hydra's job output dir).
        name: The run name (config key ``name``).
        fields: More top-level fields (provenance, seed, determinism, ...).
    """

    def __init__(self, run_dir: Path, name: str, **fields: Any) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RUN_FILE
        self._t0 = time.perf_counter()
        self.data: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "name": name,
            "status": "running",
            "error": None,
            "started_at": now_iso(),
            "ended_at": None,
            "duration_s": None,
            "run_dir": str(run_dir),
            "pid": os.getpid(),
            "host": tracking.host_id(),  # MLOPS_HOST_ID, else the host name
            "stages": {},
            **fields,
        }

    def start(self) -> None:
        """Write the first run.json: the run is ``running`` from here on.

        Not in the constructor: the caller starts the record inside the block that closes
        it on an error or an interrupt, so no signal can fall between the two.
        """
        self.save()

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return round(time.perf_counter() - self._t0, 4)

    def save(self, durable: bool = False) -> None:
        """Write run.json atomically. Progress notes skip the fsync; the final status
        (:meth:`finish`) is durable, so even a power loss never shows a run as
        succeeded whose record did not reach the disk."""
        write_json(self.path, self.data, durable)

    def update(self, **fields: Any) -> None:
        """Set top-level fields; they are written with the next stage's start or the finish."""
        self.data.update(fields)

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage, log its start and end, and record it; yields its record dict.

        run.json is written as the stage starts; its outcome is written with the next save.
        A Ctrl-C or SIGTERM from the moment the stage is in the record (while run.json is
        written, say, by a watcher that just saw it running) marks it interrupted.
        """
        entry: dict[str, Any] = {"status": "running", "started_at": now_iso()}
        start = time.perf_counter()
        try:
            self.data["stages"][name] = entry
            self.save()  # observers see which stage is running
            log.info("%s: started", name)
            yield entry
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            entry.update(status=status, duration_s=round(time.perf_counter() - start, 4))
            log.info("%s: %s after %.2fs", name, status, entry["duration_s"])
            raise
        entry.update(status="succeeded", duration_s=round(time.perf_counter() - start, 4))
        log.info("%s: done in %.2fs", name, entry["duration_s"])

    def finish(self, status: str, error: dict[str, Any] | None = None) -> None:
        """Close the record with its final status (and the error, for a failure)."""
        self.data.update(
            status=status,
            error=error,
            ended_at=now_iso(),
            duration_s=self.elapsed(),
        )
        self.save(durable=True)
