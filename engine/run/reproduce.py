"""``mlops reproduce RUN``: re-execute a run from its record and say whether it is identical.

1. Check first: the code (git commit, dirty state, diff hash) and the data (each
   source's fingerprint) against the record, and say exactly what differs; refuse
   unless ``--force``.
2. Re-execute the recorded resolved config in a new run directory.
3. Compare metrics, hold-out predictions and the model's sha256, with a verdict each.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from engine.config.plan import DataSpec
from engine.errors import EXIT_BAD_INPUT, EXIT_NOT_REPRODUCED, UsageError
from engine.run import provenance
from engine.stages import data


def differences(record: Mapping[str, Any], resolved: Mapping[str, Any], root: Path) -> list[str]:
    """What differs between the recorded run and the code and data here now."""
    found: list[str] = []
    then = (record.get("provenance") or {}).get("git") or {}
    now = provenance.git_state(root) or {}
    for name in ("commit", "dirty", "diff_sha256", "untracked_py"):
        if then.get(name) != now.get(name):
            found.append(f"code: git {name} was {then.get(name)!r}, is {now.get(name)!r}")
    tables = data.load(DataSpec.from_config(resolved["data"]), root)  # as the files are now: never regenerated here
    recorded = record.get("data") or {}
    for name, table in tables.items():
        was = (recorded.get(name) or {}).get("fingerprint")
        if was != table.fingerprint:
            found.append(f"data: source {name} fingerprint was {str(was)[:19]}, is {table.fingerprint[:19]}")
    for name in sorted(set(recorded) - set(tables)):
        found.append(f"data: source {name} was read then and is not now")
    return found


def reproduce(run_dir: Path, root: Path, force: bool, execute: Callable[[list[str]], int]) -> int:
    """Re-execute the run in ``run_dir``; returns the exit status.

    Args:
        run_dir: The recorded run.
        root: The project folder (relative data paths are relative to it).
        force: Re-execute even when code or data differ.
        execute: Runs ``mlops run`` with Hydra arguments in this process.
    """
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"usage error: {run_dir} has no readable run.json; expected a run directory") from exc
    if record.get("kind", "run") != "run" or not (run_dir / "config.resolved.yaml").exists():
        raise UsageError(f"usage error: {run_dir} is not a training run with a resolved config")
    resolved = OmegaConf.to_container(OmegaConf.load(run_dir / "config.resolved.yaml"))
    assert isinstance(resolved, dict)
    found = differences(record, resolved, root)
    for line in found:
        print(f"differs  {line}")
    if found and not force:
        print(f"mlops: refusing to reproduce run {record['id'][:8]}: {len(found)} difference(s) in code or data "
              "(listed above); pass --force to run it anyway", file=sys.stderr)
        return EXIT_BAD_INPUT
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    new_dir = root / "outputs" / "reproduce" / f"{stamp}-{record['id'][:8]}"
    # features.store=null: recompute the features instead of reading what the run built;
    # ++cache=false: retrain, never answer from the run cache (that would prove nothing).
    status = execute(["-cp", str(run_dir.resolve()), "-cn", "config.resolved", f"hydra.run.dir={new_dir}",
                      "hydra.job.name=run", "hydra.job.chdir=false", "features.store=null", "++cache=false"])
    if status != 0:
        return status
    return verdict(run_dir, new_dir, record)


def verdict(old: Path, new: Path, record: Mapping[str, Any]) -> int:
    """Compare the re-executed run with the recorded one; print a verdict per artifact."""
    checks: list[tuple[str, bool, str]] = []
    old_metrics = json.loads((old / "metrics.json").read_text())
    new_metrics = json.loads((new / "metrics.json").read_text())
    changed = sorted(k for k in set(old_metrics["metrics"]) | set(new_metrics["metrics"])
                     if old_metrics["metrics"].get(k) != new_metrics["metrics"].get(k))
    checks.append(("metrics", old_metrics == new_metrics, f"differ: {', '.join(changed)}" if changed else ""))
    try:
        before, after = pd.read_parquet(old / "predictions.parquet"), pd.read_parquet(new / "predictions.parquet")
        same = before.equals(after)
        detail = "" if same else f"{int((before['y_score'] != after['y_score']).sum())} scores differ" \
            if before.shape == after.shape else f"shape {before.shape} -> {after.shape}"
    except (OSError, KeyError, ValueError) as exc:
        same, detail = False, str(exc)
    checks.append(("predictions", same, detail))
    new_record = json.loads((new / "run.json").read_text())
    old_model, new_model = record.get("model") or {}, new_record.get("model") or {}
    old_file, new_file = (Path(str(m.get("path", ""))).name for m in (old_model, new_model))
    if old_file != new_file:
        # A run of an earlier version saved a pickle (model.joblib): no skops file can have
        # its bytes, so the model is judged by what it does, its hold-out predictions.
        print(f"note: the model was saved as {old_file} and now as {new_file}; its sha256 cannot match, "
              "its predictions are compared")
        checks.append(("model", same, f"saved as {new_file} now, was {old_file}; predictions differ"))
    else:
        old_sha, new_sha = old_model.get("sha256"), new_model.get("sha256")
        checks.append(("model", old_sha == new_sha, f"sha256 {str(old_sha)[:12]} -> {str(new_sha)[:12]}"))
    for name, ok, detail in checks:
        print(f"{'identical' if ok else 'DIFFERENT':<10} {name}{'' if ok else ': ' + detail}")
    identical = all(ok for _, ok, _ in checks)
    print(f"reproduce: run {record['id'][:8]} {'reproduced identically' if identical else 'NOT reproduced'} "
          f"in {new}")
    return 0 if identical else EXIT_NOT_REPRODUCED

