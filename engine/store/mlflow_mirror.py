"""An optional mirror of every run into MLflow, through its public ``MlflowClient``.

With ``tracking.mlflow.uri`` set (and the ``mlflow`` extra installed), each finished
run is also logged to MLflow: params (the resolved config, flattened), metrics, the
tags ``mlflow.runName`` and ``mlflow.source.git.commit``, sweep jobs as child runs of
one parent run per sweep (``mlflow.parentRunId``), and the model and run files as
artifacts. The mirror is idempotent (a run already mirrored is found by its
``mlops.run_id`` tag and updated), and a failing MLflow never fails or loses the run:
the run directory records what failed, and ``mlops runs sync-mlflow`` replays it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engine.errors import UsageError
from engine.store.tracking import flatten

STATUS = {"succeeded": "FINISHED", "interrupted": "KILLED", "running": "RUNNING"}
MAX_PARAM = 500  # MLflow's limit on a param value's length


def _client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise UsageError("usage error: tracking.mlflow.uri is set but mlflow is not installed; "
                         "install it with: pip install 'mlops-engine[mlflow]'") from exc
    return MlflowClient(tracking_uri=uri)


def mirror(run_dir: Path, uri: str) -> str:
    """Log one run directory to MLflow; returns the MLflow run id.

    Raises:
        UsageError: mlflow is not installed.
        Exception: whatever MLflow raises (the caller records it and goes on).
    """
    client = _client(uri)
    record = json.loads((run_dir / "run.json").read_text())
    resolved: Mapping[str, Any] = {}
    if (run_dir / "config.resolved.yaml").exists():
        loaded = OmegaConf.to_container(OmegaConf.load(run_dir / "config.resolved.yaml"))
        resolved = loaded if isinstance(loaded, dict) else {}
    metrics = {}
    if (run_dir / "metrics.json").exists():
        metrics = json.loads((run_dir / "metrics.json").read_text()).get("metrics", {})

    experiment = _experiment(client, str(record.get("name") or "mlops"))
    tags = {
        "mlflow.runName": f"{record.get('name')}-{record['id'][:8]}",
        "mlops.run_id": record["id"],
        "mlops.run_dir": str(run_dir),
        "mlops.kind": str(record.get("kind", "run")),
    }
    git = (record.get("provenance") or {}).get("git") or {}
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = git["commit"]
    if resolved.get("hypothesis"):
        tags["mlops.hypothesis"] = str(resolved["hypothesis"])
    parent = None
    if (run_dir / ".hydra" / "hydra.yaml").exists() and run_dir.name.isdigit():  # a sweep job
        parent = tags["mlflow.parentRunId"] = _parent(client, experiment, run_dir.parent)

    existing = client.search_runs([experiment], filter_string=f"tags.`mlops.run_id` = '{record['id']}'")
    run_id = existing[0].info.run_id if existing else client.create_run(experiment, tags=tags).info.run_id
    from mlflow.entities import Metric, Param, RunTag

    params = [Param(k, str(v)[:MAX_PARAM]) for k, v in flatten(dict(resolved)).items()] if not existing else []
    numbers = [Metric(k, float(v), 0, 0) for k, v in metrics.items()
               if isinstance(v, int | float) and not isinstance(v, bool)]
    for start in range(0, max(len(params), 1), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(run_id, metrics=numbers if start == 0 else [], params=params[start:start + 100],
                         tags=[RunTag(k, v) for k, v in tags.items()] if start == 0 else [])
    for name in ("run.json", "metrics.json", "quality.json", "config.resolved.yaml"):
        if (run_dir / name).exists():
            client.log_artifact(run_id, str(run_dir / name))
    if (run_dir / "model").is_dir():
        client.log_artifacts(run_id, str(run_dir / "model"), artifact_path="model")
    client.set_terminated(run_id, status=STATUS.get(str(record.get("status")), "FAILED"))
    if parent is not None:
        client.set_terminated(parent)  # the sweep's end moves with its last job
    return str(run_id)


def record_mirror(run_dir: Path, uri: str) -> dict[str, Any]:
    """Mirror a run directory and note the outcome in its run.json (never raises)."""
    from engine.files import write_json

    try:
        outcome: dict[str, Any] = {"uri": uri, "run_id": mirror(run_dir, uri), "synced": True}
    except Exception as exc:  # noqa: BLE001 - MLflow may fail in any way; the run must not
        outcome = {"uri": uri, "synced": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    record = json.loads((run_dir / "run.json").read_text())
    record["mlflow"] = outcome
    write_json(run_dir / "run.json", record)
    return outcome


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id if found is not None else client.create_experiment(name))


def _parent(client: Any, experiment: str, sweep_dir: Path) -> str:
    """The one parent run of a sweep, created by its first job to be mirrored."""
    found = client.search_runs([experiment], filter_string=f"tags.`mlops.sweep_dir` = '{sweep_dir}'")
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(experiment, tags={"mlflow.runName": f"sweep {sweep_dir.name}",
                                              "mlops.sweep_dir": str(sweep_dir)})
    return str(run.info.run_id)
