"""Hydra's basic sweeper with ``max_failures``: a grid that stops launching after N failures.

Hydra's basic sweeper launches every job of a batch, then raises the first failed job's
error; with one batch (its default) a sweep with a broken config trains every other job
before it says so. Here ``max_failures: N`` launches the grid in batches (of
``max_batch_size``, default as many as the launcher runs at once) and stops launching
once N jobs have failed; ``max_failures: 1`` is fail-fast. ``null`` keeps Hydra's behaviour:
every job runs. Either way the sweep ends with the first failed job's error, so the
command's exit status is that job's.
"""

# No `from __future__ import annotations`: Hydra runs this module before it is in
# sys.modules, and dataclasses cannot resolve string annotations there.
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple  # noqa: UP035 - OmegaConf reads the hints

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class MlopsGridSweeperConf:
    _target_: str = "hydra_plugins.mlops_grid_sweeper.mlops_grid_sweeper.MlopsGridSweeper"
    #: Jobs launched together; null: the launcher's n_jobs when max_failures is set, else all.
    max_batch_size: Optional[int] = None  # noqa: UP007
    #: Stop launching after this many failed jobs (1: fail fast); null: run every job.
    max_failures: Optional[int] = None  # noqa: UP007
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP007


ConfigStore.instance().store(group="hydra/sweeper", name="mlops_grid", node=MlopsGridSweeperConf,
                             provider="mlops-engine")


class MlopsGridSweeper(BasicSweeper):
    """The basic sweeper, launching in batches and stopping after ``max_failures`` failures."""

    def __init__(self, max_batch_size: Optional[int] = None, max_failures: Optional[int] = None,  # noqa: UP007
                 params: Optional[Dict[str, str]] = None) -> None:  # noqa: UP006, UP007
        if max_failures is not None and (isinstance(max_failures, bool) or int(max_failures) < 1):
            from engine.errors import ConfigError

            raise ConfigError("hydra.sweeper.max_failures", f"must be an integer >= 1 or null, got {max_failures!r}")
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.max_failures = max_failures
        self._validated: Set[Tuple[Tuple[str, str], ...]] = set()  # noqa: UP006 - group choices composed

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from engine.config.composecache import parse_once

        # Every job's config is composed from the same files: parse each once per process.
        hydra_context = HydraContext(config_loader=parse_once(hydra_context.config_loader),
                                     callbacks=hydra_context.callbacks)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Any) -> None:
        """Compose one job per choice of config groups before launching, not every job.

        Hydra's basic sweeper composes every job's config here and again in the
        launcher; on a config the size of ours that doubles Hydra's cost per job. Jobs
        that pick the same config group options differ only in values, and each job
        validates its own composed config first thing, so a bad value fails that job
        with one line; a group option that does not exist (``model=lgbm`` in a grid)
        still stops the sweep before any job runs.
        """
        assert self.hydra_context is not None
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        groups: Dict[str, bool] = {}  # noqa: UP006

        def is_group(name: str) -> bool:
            if name not in groups:
                groups[name] = bool(loader.get_group_options(name))
            return groups[name]

        new = []
        for overrides in batch:
            choice = tuple(sorted((o.key_or_group, str(o.value()) if not o.is_delete() else "~")
                                  for o in parser.parse_overrides(list(overrides)) if is_group(o.key_or_group)))
            if choice not in self._validated:
                self._validated.add(choice)
                new.append(overrides)
        if new:
            super().validate_batch_is_legal(new)

    def sweep(self, arguments: List[str]) -> Any:  # noqa: UP006
        if self.max_failures is None:
            return super().sweep(arguments)
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        params = self._parse_config()
        params.extend(arguments)
        overrides = OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(params)
        total = len(self.split_arguments(overrides, None)[0]) if overrides else 1
        batch_size = self.max_batch_size or _parallelism(self.config.hydra.launcher, total)
        self.overrides = self.split_arguments(overrides, max(1, batch_size))
        self.validate_batch_is_legal([job for batch in self.overrides for job in batch])  # every group choice, once
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: List[List[JobReturn]] = []  # noqa: UP006
        failed: List[JobReturn] = []  # noqa: UP006
        launched = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results = list(self.launcher.launch(batch, initial_job_idx=launched))
            launched += len(batch)
            returns.append(results)
            failed += [r for r in results if r.status == JobStatus.FAILED]
            if len(failed) >= self.max_failures and launched < total:
                log.warning("sweep stopped: %d job(s) failed (max_failures=%d); %d of %d jobs not launched",
                            len(failed), self.max_failures, total - launched, total)
                break
        if failed:
            _ = failed[0].return_value  # re-raises the first failed job's error, as the basic sweeper does
        return returns


def _parallelism(launcher: Any, total: int) -> int:
    """How many jobs the launcher runs at once: the batch that keeps it busy.

    basic: 1; joblib: ``n_jobs`` read as joblib does (-1: every core); submitit:
    ``array_parallelism``; any other launcher: the whole grid, so ``max_failures`` is
    only checked once every job has run.
    """
    target = str(launcher.get("_target_", ""))
    if target.endswith("BasicLauncher"):
        return 1
    if "joblib" in target:
        n_jobs = launcher.get("n_jobs")
        if n_jobs is None:
            return 1
        return int(n_jobs) if int(n_jobs) > 0 else max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    if "submitit" in target:
        return int(launcher.get("array_parallelism") or total)
    log.warning("max_failures with launcher %s: jobs are launched together, so failures are counted when all "
                "have run (set hydra.sweeper.max_batch_size to launch in smaller batches)", target or "?")
    return total
