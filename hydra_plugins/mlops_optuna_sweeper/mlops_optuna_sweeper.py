"""The ``mlops_optuna`` sweeper: Bayesian search with a current Optuna, resumable.

A study lives in a database (``storage: sqlite:///outputs/optuna.db``) under
``study_name``. ``n_trials`` is the total number of COMPLETE trials the study should
have: a sweep counts the complete trials already stored and launches only the missing
ones, so re-running the same command after a kill resumes the study. Trials are asked
``n_jobs`` at a time and launched as one batch through the configured launcher
(basic, joblib, submitit, ray), then told their result.

The objective is ``select.metric`` of each job's run record, the direction
``select.mode``. A job that fails (a bad config, a failed gate, a crash) is told as a
FAIL trial with its error; the sweep goes on and, as the basic sweeper does, ends with
the first failed job's error and status. ``max_failures`` stops launching after that
many failed trials. Trials left RUNNING by a sweep that was killed are marked FAIL
when the study is opened again: at once when that sweep ran on this host and its
process is gone, else once its heartbeat is older than ``2 x heartbeat_s``.
"""

# No `from __future__ import annotations`: Hydra runs this module before it is in
# sys.modules, and dataclasses then cannot resolve string annotations.

import json
import logging
import os
import socket
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional  # noqa: UP035 - OmegaConf reads the dataclass's hints

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("engine.sweep")

SAMPLERS = ("tpe", "random", "qmc")


@dataclass
class MlopsOptunaSweeperConf:
    """``hydra/sweeper=mlops_optuna``: every key can be overridden as ``hydra.sweeper.KEY=...``."""

    _target_: str = "hydra_plugins.mlops_optuna_sweeper.mlops_optuna_sweeper.MlopsOptunaSweeper"
    study_name: str = "${name}"                       # the study in the storage; one per question
    storage: Optional[str] = "sqlite:///outputs/optuna.db"  # null: in memory, nothing resumes
    n_trials: int = 20                                # total COMPLETE trials the study should have
    n_jobs: int = 1                                   # trials per batch, launched together
    sampler: str = "tpe"                              # tpe | random | qmc
    seed: Optional[int] = None                        # the sampler's seed
    max_failures: Optional[int] = None                # stop launching after this many failed trials
    heartbeat_s: int = 60                             # RUNNING trials are kept alive this often
    params: Optional[Dict[str, str]] = field(default=None)  # key: search space (Hydra override grammar)


ConfigStore.instance().store(group="hydra/sweeper", name="mlops_optuna", node=MlopsOptunaSweeperConf,
                             provider="mlops-engine")


class MlopsOptunaSweeper(Sweeper):
    """Hydra's Sweeper interface (``setup`` and ``sweep``) over an Optuna study."""

    def __init__(self, study_name: str, storage: str | None, n_trials: int, n_jobs: int, sampler: str,
                 seed: int | None, max_failures: int | None, heartbeat_s: int,
                 params: dict[str, str] | None = None) -> None:
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.sampler = sampler
        self.seed = seed
        self.max_failures = max_failures
        self.heartbeat_s = heartbeat_s
        self.params = params
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from engine.config.composecache import parse_once

        # Every trial's config is composed from the same files: parse each once per process.
        hydra_context = HydraContext(config_loader=parse_once(hydra_context.config_loader),
                                     callbacks=hydra_context.callbacks)
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[Any]:
        from engine.errors import ConfigError

        from ._search_space import parse

        assert self.config is not None and self.launcher is not None
        metric, direction = self._objective()
        self._check()
        params = OmegaConf.to_container(self.config.hydra.sweeper.params, resolve=True) \
            if self.config.hydra.sweeper.get("params") else {}
        assert isinstance(params, dict)
        space = parse(params, arguments)
        if not space.distributions:
            raise ConfigError("hydra.sweeper.params", "the Optuna sweeper needs at least one sweep to sample, "
                              "e.g. model.max_depth: int(interval(2, 12))")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = self._study(direction)
        reaped = _reap_stale(study)
        complete = _count(study, "COMPLETE")
        budget = max(self.n_trials - complete - _count(study, "RUNNING"), 0)
        log.info("study %s (%s): %d of %d trials complete%s; launching %d, %d at a time", study.study_name,
                 self.storage or "in memory", complete, self.n_trials,
                 f", {reaped} left running by a killed sweep marked failed" if reaped else "", budget, self.n_jobs)
        returns, failures = [], []
        while budget > 0 and not (self.max_failures and len(failures) >= self.max_failures):
            with warnings.catch_warnings():  # Optuna: heartbeats are "supposed to be used with optimize"
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, budget))]
            for trial in trials:
                trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid()})
            batch = [space.overrides(trial.params) for trial in trials]
            self.validate_batch_is_legal(batch)
            with _Heartbeat(study, trials, self.heartbeat_s):
                try:
                    results = self.launcher.launch(batch, initial_job_idx=self.job_idx)
                except BaseException:
                    for trial in trials:  # Ctrl-C, SIGTERM, or a launcher that died: not a result
                        _tell_failed(study, trial, "the sweep was interrupted while this trial ran")
                    raise
            self.job_idx += len(results)
            budget -= len(results)
            returns.append(results)
            for trial, result in zip(trials, results):
                error = self._tell(study, trial, result, metric)
                if error is not None:
                    failures.append(error)
            best = _best(study)
            log.info("study %s: %d/%d trials complete, %d failed in this sweep, %s", study.study_name,
                     _count(study, "COMPLETE"), self.n_trials, len(failures),
                     f"best {metric} {best.value:.4f} (trial {best.number})" if best else f"no {metric} yet")
        best = _best(study)
        if best is not None:
            (sweep_dir / "optuna_best.json").write_text(json.dumps(
                {"study": study.study_name, "storage": self.storage, "metric": metric, "direction": direction,
                 "trial": best.number, "value": best.value, "params": best.params,
                 "run": best.user_attrs.get("run_id"), "run_dir": best.user_attrs.get("run_dir"),
                 "complete_trials": _count(study, "COMPLETE"), "n_trials": self.n_trials}, indent=2) + "\n")
        if failures:
            if self.max_failures and len(failures) >= self.max_failures and budget > 0:
                log.warning("study %s: stopped after %d failed trial(s) (max_failures=%d); %d not launched",
                            study.study_name, len(failures), self.max_failures, budget)
            raise failures[0]
        return returns

    def _objective(self) -> tuple[str, str]:
        from engine.errors import ConfigError

        assert self.config is not None
        select = self.config.get("select")
        if not select or not select.get("metric"):
            raise ConfigError("select", "the Optuna sweeper optimises select.metric: set select: {metric: roc_auc, "
                              "mode: max} in the experiment")
        mode = str(select.get("mode", "max"))
        if mode not in ("max", "min"):
            raise ConfigError("select.mode", f"expected one of: max, min; got {mode!r}")
        return str(select["metric"]), "maximize" if mode == "max" else "minimize"

    def _check(self) -> None:
        from engine.errors import ConfigError

        checks = [("n_trials", self.n_trials, 1), ("n_jobs", self.n_jobs, 1), ("heartbeat_s", self.heartbeat_s, 1)]
        if self.max_failures is not None:
            checks.append(("max_failures", self.max_failures, 1))
        for key, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"hydra.sweeper.{key}", f"must be an integer >= {low}, got {value!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError("hydra.sweeper.sampler", f"unknown sampler {self.sampler!r}; expected one of: "
                              f"{', '.join(SAMPLERS)}")
        if self.storage is not None and not str(self.storage).startswith(("sqlite:///", "postgresql", "mysql")):
            raise ConfigError("hydra.sweeper.storage", f"expected sqlite:///PATH (or an Optuna RDB URL), "
                              f"got {self.storage!r}")

    def _study(self, direction: str) -> Any:
        import optuna

        from engine.errors import ConfigError

        optuna.logging.disable_default_handler()  # Optuna's lines go through Hydra's logging
        optuna.logging.enable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=self.seed),
                   "random": lambda: optuna.samplers.RandomSampler(seed=self.seed),
                   "qmc": lambda: optuna.samplers.QMCSampler(seed=self.seed)}[self.sampler]()
        storage = None
        if self.storage:
            url = str(self.storage)
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, heartbeat_interval=self.heartbeat_s,
                                                     grace_period=2 * self.heartbeat_s)
        try:
            study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=sampler,
                                        direction=direction, load_if_exists=True)
        except ValueError as exc:  # an existing study with another direction
            raise ConfigError("select.mode", f"study {self.study_name!r} in {self.storage}: {exc}") from exc
        if study.direction.name.lower() != direction:
            raise ConfigError("select.mode", f"study {self.study_name!r} in {self.storage} was created to "
                              f"{study.direction.name.lower()}, not to {direction}; use another study_name")
        return study

    def _tell(self, study: Any, trial: Any, result: Any, metric: str) -> BaseException | None:
        """Tell the study one job's result; return the job's error if it failed."""
        from engine.errors import ConfigError

        run_dir = _run_dir(result)
        if run_dir:
            trial.set_user_attr("run_dir", run_dir)
        if result.status.name != "COMPLETED":
            error = result._return_value
            _tell_failed(study, trial, str(error).splitlines()[0] if str(error) else type(error).__name__)
            return error if isinstance(error, BaseException) else RuntimeError(str(error))
        record = result.return_value if isinstance(result.return_value, dict) else {}
        trial.set_user_attr("run_id", str(record.get("id", "")))
        metrics = dict(record.get("metrics") or {})
        if metric not in metrics and run_dir and (Path(run_dir) / "metrics.json").exists():
            stored = json.loads((Path(run_dir) / "metrics.json").read_text())
            metrics = {**stored.get("business", {}), **stored.get("metrics", {}), **metrics}
        if metric not in metrics:
            error = ConfigError("select.metric", f"unknown metric {metric!r}; expected one of: "
                                f"{', '.join(sorted(k for k, v in metrics.items() if isinstance(v, int | float)))}")
            _tell_failed(study, trial, str(error))
            raise error
        value = metrics[metric]
        if not isinstance(value, int | float) or value != value:
            _tell_failed(study, trial, f"{metric} is undefined for this run ({value!r})")
            return None
        study.tell(trial, float(value))
        return None


class _Heartbeat:
    """Record the heartbeat of the trials in flight while a batch runs (RDB storages only)."""

    def __init__(self, study: Any, trials: list[Any], every_s: int) -> None:
        self.storage, self.ids, self.every_s = study._storage, [t._trial_id for t in trials], every_s
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if hasattr(self.storage, "record_heartbeat") and getattr(self.storage, "heartbeat_interval", None):
            self.thread = threading.Thread(target=self._beat, name="mlops-optuna-heartbeat", daemon=True)
            self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _beat(self) -> None:
        while True:
            for trial_id in self.ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as err:  # noqa: BLE001 - a missed beat is retried; never fail the sweep
                    log.debug("optuna heartbeat: %s", err)
            if self.stop.wait(self.every_s):
                return


def _reap_stale(study: Any) -> int:
    """Mark FAIL the RUNNING trials whose sweep is gone; return how many."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = _count(study, "FAIL")
        optuna.storages.fail_stale_trials(study)  # heartbeat older than the grace period
        reaped = _count(study, "FAIL") - before
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get("owner") or {}
        if owner.get("host") == host and not _alive(int(owner.get("pid", 0))):
            _fail_by_id(study, trial._trial_id, f"the sweep that ran it (pid {owner.get('pid')}) was killed")
            reaped += 1
    return reaped


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tell_failed(study: Any, trial: Any, reason: str) -> None:
    _fail_by_id(study, trial._trial_id, reason)


def _fail_by_id(study: Any, trial_id: int, reason: str) -> None:
    import optuna

    try:
        study._storage.set_trial_user_attr(trial_id, "error", reason[:500])
        study._storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another process finished it first


def _count(study: Any, state: str) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(getattr(optuna.trial.TrialState, state),)))


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _run_dir(result: Any) -> str | None:
    try:
        return str(result.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # noqa: BLE001 - a job that failed before its config had a run dir
        return None
