"""Hydra callbacks: what happens when a sweep ends."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from engine.errors import EngineError
from engine.registry import DEFAULT_PATH, Registry

log = logging.getLogger("engine.sweep")


class RegisterBest(Callback):
    """When a sweep ends, register its best succeeded run and alias it ``challenger``.

    Active only when the experiment declares ``select: {metric, mode}`` and
    ``register: NAME``. Runs that failed, or failed a gate, are never candidates.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        select, name = config.get("select"), config.get("register")
        if not select or not name:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        metric, mode = str(select["metric"]), str(select["mode"])
        candidates = []
        for record_path in sorted(sweep_dir.glob("*/run.json")):
            record = json.loads(record_path.read_text())
            metrics_path = record_path.parent / "metrics.json"
            if record.get("status") != "succeeded" or not metrics_path.exists():
                continue
            value = json.loads(metrics_path.read_text()).get("metrics", {}).get(metric)
            if isinstance(value, int | float):
                candidates.append((float(value), record_path.parent, record["id"]))
        if not candidates:
            log.warning("sweep %s: no succeeded run has %s; nothing registered", sweep_dir, metric)
            return
        value, run_dir, run_id = (max if mode == "max" else min)(candidates, key=lambda c: c[0])
        registry = Registry(Path(os.environ.get("MLOPS_REGISTRY", str(DEFAULT_PATH))))
        try:
            version = registry.register(str(name), run_dir)
            registry.promote(str(name), version["version"], "challenger")
        except EngineError as exc:
            log.warning("sweep %s: could not register the best run %s: %s", sweep_dir, run_id[:8], exc)
            return
        log.info("sweep best by %s (%s): run %s with %.4f, registered as %s/%d and aliased challenger",
                 metric, mode, run_id[:8], value, name, version["version"])
