"""A running job's heartbeat: its store row says "alive" every few seconds, from a daemon
thread, so a run killed on any host is seen as lost once it stops beating.

The interval is ``MLOPS_HEARTBEAT_SECONDS`` (default 30), recorded in the run's row, so
a reader on another host knows how late is too late (:func:`tracking.lost_since`).
A beat that cannot be written (the server restarting) is skipped, never fatal: the next
one, or the run's end, catches up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from engine.errors import EngineError
from engine.store import tracking

log = logging.getLogger(__name__)


class Heartbeat:
    """Beat for one run until :meth:`stop`.

    Args:
        store: The run's store.
        run_id: The run.
        interval: Seconds between beats.
    """

    def __init__(self, store: tracking.RunStore, run_id: str, interval: float) -> None:
        self.store, self.run_id, self.interval = store, run_id, interval
        self.was_lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (waits for a beat being written)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                status = self.store.heartbeat(self.run_id)
            except NotImplementedError:
                return
            except (EngineError, sqlite3.Error, OSError) as exc:
                log.debug("heartbeat of run %s not written: %s", self.run_id[:8], exc)
                continue
            if status == "interrupted" and not self.was_lost:
                self.was_lost = True
                log.warning("run %s was marked lost by a reader (no heartbeat in time); it goes on, and is "
                            "revived if it finishes", self.run_id[:8])


def revive_if_lost(store: tracking.RunStore, run_id: str, status: str) -> bool:
    """After a run's final status was written: if it had been marked lost, add ``revived``
    to its history (its row already holds the final status). Returns whether it did."""
    try:
        events = store.events(run_id)
    except NotImplementedError:
        return False
    if not any(e["event"] == "lost" for e in events) or events[-1]["event"] == "revived":
        return False
    store.log_event(run_id, "revived", f"finished {status} after it had been marked lost")
    return True
