"""The model in use, swapped whole, and the micro-batcher that scores with it.

:class:`Holder` keeps one :class:`~engine.serve.model.Served` at a time. A request takes
the model once, at its start, and is checked, scored and answered by that model: a swap
(the alias moved) replaces the reference in one assignment, so no request sees half of
two models and none waits for the swap.

:class:`Scorer` batches concurrent requests: while the model scores one batch on its
thread, the requests that arrive queue up, and the next call scores them all at once.
A lone request is scored at once (no timer), so batching costs nothing at concurrency 1
and turns eight waiting single-row requests into one ``predict_proba`` call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from engine.serve.model import Served

log = logging.getLogger("engine.serve")


class Holder:
    """The model being served.

    Args:
        served: The model loaded at start.
        on_swap: Called with (old, new) after every swap (metrics, log lines).
    """

    def __init__(self, served: Served, on_swap: Callable[[Served, Served], None] | None = None) -> None:
        self._current = served
        self._lock = threading.Lock()  # serialises swaps; readers never take it
        self.on_swap = on_swap

    @property
    def current(self) -> Served:
        """The model to use for one whole request."""
        return self._current

    def swap(self, new: Served) -> Served:
        """Put ``new`` in use; return the model it replaces."""
        with self._lock:
            old, self._current = self._current, new
        if self.on_swap is not None:
            self.on_swap(old, new)
        return old


class Scorer:
    """Scores frames on one worker thread, batching the requests that wait meanwhile.

    Args:
        max_batch_rows: The most rows one ``predict_proba`` call takes; more waiting
            rows go into the next call.
    """

    def __init__(self, max_batch_rows: int = 4096) -> None:
        self.max_batch_rows = max_batch_rows
        self._pending: list[tuple[Served, pd.DataFrame, asyncio.Future[np.ndarray]]] = []
        self._draining: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-scorer")
        self._solo = 0
        self.batches = 0

    async def score(self, served: Served, frame: pd.DataFrame) -> np.ndarray:
        """The scores of ``frame``'s rows by ``served`` (batched with other waiting requests)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((served, frame, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._take()
                served = batch[0][0]
                try:
                    scores = await loop.run_in_executor(self._executor, _score, served, [f for _, f, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to the request(s) it belongs to
                    if len(batch) == 1:
                        if not batch[0][2].done():
                            batch[0][2].set_exception(exc)
                        continue
                    # One request's values the model cannot take (a number so large that
                    # scaling overflows) must not fail the requests batched with it: score
                    # each alone, so the error reaches only its own request.
                    self._pending[:0] = [(s, f, future) for s, f, future in batch]
                    self._solo = len(batch)
                    continue
                self.batches += 1
                start = 0
                for _, frame, future in batch:
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(scores[start:start + len(frame)])
                    start += len(frame)
        finally:
            self._draining = None

    def _take(self) -> list[tuple[Served, pd.DataFrame, asyncio.Future[np.ndarray]]]:
        """The next batch: waiting requests of one model, up to ``max_batch_rows`` rows (at least one)."""
        if self._solo:  # the requests of a failed batch, one at a time
            self._solo -= 1
            batch, self._pending = self._pending[:1], self._pending[1:]
            return batch
        served = self._pending[0][0]
        rows, count = 0, 0
        for item_served, frame, _ in self._pending:
            if item_served is not served or (count and rows + len(frame) > self.max_batch_rows):
                break
            rows += len(frame)
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _score(served: Served, frames: list[pd.DataFrame]) -> np.ndarray:
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return served.scores(frame)

