"""Following an alias: a promotion swaps the new version in without a restart.

A server started on ``NAME@ALIAS`` watches the model's entry in the registry's store
(:meth:`engine.store.registry.Registry.stamp`: its number of versions and its latest
alias move, two indexed reads every ``poll_s`` seconds). When the alias points at
another version, the new version is loaded on this thread, with every check a start
makes (its sha256 against the registry and the run's records, skops' trusted types,
the sha256 of its input domain), then warmed up on the rows most recently logged (or
on a typical row of its training domain when their columns differ), and only then
swapped in: one assignment, so requests in flight finish on the model they started
with and the next ones use the new one. If anything fails, the old version keeps
serving, one line says why, and the same version is not tried again until the
registry changes once more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pandas as pd

from engine.errors import EngineError
from engine.serve.holder import Holder
from engine.serve.model import Served, load_version, warm_up
from engine.store.registry import Registry

log = logging.getLogger("engine.serve")


class AliasFollower:
    """A daemon thread that swaps in the version an alias points at.

    Args:
        registry: The registry the model was loaded from.
        name: The model's name.
        alias: The alias followed.
        holder: Where the model in use is kept.
        tracking_uri: The metadata store for the new version's checks.
        poll_s: How often the registry file is looked at.
        recent_rows: The rows most recently scored (for the warm-up), or None.
        on_outcome: Called with ``swapped`` or ``refused`` after each attempt.
    """

    def __init__(self, registry: Registry, name: str, alias: str, holder: Holder, tracking_uri: str | None = None,
                 poll_s: float = 1.0, recent_rows: Callable[[], pd.DataFrame | None] | None = None,
                 on_outcome: Callable[[str], None] | None = None, allow_version_mismatch: bool = False) -> None:
        self.registry = registry
        self.name = name
        self.alias = alias
        self.holder = holder
        self.tracking_uri = tracking_uri
        self.poll_s = poll_s
        self.recent_rows = recent_rows or (lambda: None)
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.allow_version_mismatch = allow_version_mismatch
        self._stop = threading.Event()
        self._seen = self._stamp()
        self._refused: tuple[int, str] | None = None
        self._thread = threading.Thread(target=self._run, name="mlops-alias-follower", daemon=True)

    def start(self) -> AliasFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, 3 * self.poll_s))

    def _stamp(self) -> object:
        try:
            return self.registry.stamp(self.name)  # the JSON file's mtime and size, or the store's rows
        except EngineError:
            return None  # the store is away: looked at again next time

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            stamp = self._stamp()
            if stamp == self._seen:
                continue
            self._seen = stamp
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the thread must outlive a bug: the old model keeps serving
                log.exception("alias %s@%s: unexpected error while following it; the model in use keeps serving",
                              self.name, self.alias)

    def check(self) -> str | None:
        """Look at the alias once; swap when it moved. Returns ``swapped``, ``refused`` or None."""
        current = self.holder.current
        try:
            _, version = self.registry.resolve(f"{self.name}@{self.alias}")
        except EngineError as exc:
            log.warning("alias %s@%s: cannot be resolved (%s); %s keeps serving", self.name, self.alias, exc,
                        current.label)
            return None
        number, sha = int(version["version"]), str(version["model_sha256"])
        if (number, sha) == (current.version, current.sha256) or (number, sha) == self._refused:
            return None
        started = time.perf_counter()
        try:
            new = load_version(self.registry, f"{self.name}/{number}", self.tracking_uri, alias=self.alias,
                               allow_version_mismatch=self.allow_version_mismatch)
            rows = _usable(self.recent_rows(), new)
            warm_up(new, rows)
        except Exception as exc:  # noqa: BLE001 - whatever a new version does, the old one keeps serving
            self._refused = (number, sha)
            message = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.error("alias %s@%s moved to v%d, which was not swapped in (%s); %s keeps serving", self.name,
                      self.alias, number, message, current.label)
            self.on_outcome("refused")
            return "refused"
        self.holder.swap(new)
        self._refused = None
        log.info("alias %s@%s: v%s -> v%d swapped in (sha256 %s, loaded, verified and warmed up on %s in %.2fs)",
                 self.name, self.alias, current.version, number, sha[:12],
                 f"{len(rows)} logged row(s)" if rows is not None else "a typical row",
                 time.perf_counter() - started)
        self.on_outcome("swapped")
        return "swapped"


def _usable(rows: pd.DataFrame | None, served: Served) -> pd.DataFrame | None:
    """The logged rows, if they hold every input column of the new version."""
    if rows is None or not len(rows) or any(c not in rows.columns for c in served.columns):
        return None
    return rows[served.columns]


def follows(ref: str) -> tuple[str, str] | None:
    """(name, alias) when MODEL is ``NAME@ALIAS``, else None."""
    from engine.store.registry import REF

    match = REF.match(ref)
    if match and match["alias"]:
        return match["name"], match["alias"]
    return None

