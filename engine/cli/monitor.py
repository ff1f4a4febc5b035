"""``mlops monitor``: drift, live quality and performance of a model, by the rules of ``conf/monitor/``."""

from __future__ import annotations

import os
from pathlib import Path

from engine.cli.common import command_parser, tracking_store
from engine.errors import UsageError

MONITOR_USAGE = """\
usage: mlops monitor MODEL [--since DURATION | --current SOURCE [--as-of DATE]] [--labels SOURCE]
                     [OVERRIDE ...] [--registry PATH] [--tracking-uri URI]

  MODEL       NAME@ALIAS (churn@champion), NAME/VERSION, NAME, or a training run
  --since     the prediction log's rows of the last DURATION (7d, 12h; default
              monitor.window), as the server logged them
  --current   features: the population's features at --as-of, built from the project's
              data (its quality rules applied too; labels when the data reaches 30 days
              past the cut-off); or a CSV or Parquet file of feature rows
  --as-of     the cut-off of --current features (default: the config's as_of)
  --labels    the realised labels, from a source of their own: a CSV or Parquet file,
              or a source of conf/data/ by name, with the key, the label (0/1) and,
              optionally, when it became known (monitor.labels); joined by key, point
              in time: a row takes the latest label of its key known after its cut-off
              and within monitor.label_delay of it (instead of the project's labels)
  OVERRIDE    Hydra overrides of the project's config (monitor.*, data.*, ...)

Compares the current rows with the reference profile frozen beside the model at
training (the training data is never read), applies the rules of conf/monitor/, and
writes monitor.json and report.html into outputs/monitor/<date>/<time>-monitor-NAME/;
the run is recorded in the store (kind monitor: mlops runs --where "kind = monitor").
With monitor.on_failure set, a failure launches the retrain it names.

Exit 0: every rule of severity error passed; 6: one failed (one line naming the rules
and the drifted columns); 2: bad input.
"""


def monitor_command(args: list[str]) -> int:
    """``mlops monitor MODEL ...``."""
    import pandas as pd

    from engine.cli.check import _check
    from engine.config.monitor import duration
    from engine.errors import ConfigError
    from engine.run import monitor
    from engine.store import registry

    parser = command_parser("mlops monitor", MONITOR_USAGE)
    parser.add_argument("model")
    parser.add_argument("--since")
    parser.add_argument("--current")
    parser.add_argument("--as-of", dest="as_of")
    parser.add_argument("--labels")
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(registry.DEFAULT_PATH)))
    options, overrides = parser.parse_known_args(args)
    flags = [a for a in overrides if a.startswith("-")]
    if flags:
        parser.error(f"unrecognized arguments: {' '.join(flags)}")
    if options.since and options.current:
        parser.error("--since reads the prediction log, --current other data: give one of them")
    if options.as_of and options.current != "features":
        parser.error("--as-of is the cut-off of --current features")
    root = Path.cwd()
    if not (root / "conf" / "config.yaml").is_file():
        raise UsageError(f"usage error: no conf/config.yaml in {root}; run mlops monitor from a project folder")
    if options.as_of:
        try:
            pd.Timestamp(options.as_of)
        except (ValueError, TypeError) as exc:
            parser.error(f"--as-of must be a date such as 2026-12-01, got {options.as_of!r}")
            raise AssertionError from exc
        overrides = [o for o in overrides if not o.startswith("as_of=")] + [f"as_of={options.as_of}"]
    plan = _check(root / "conf", overrides)
    since = None
    if not options.current:
        try:
            since = duration(options.since, "--since") if options.since else plan.monitor.window
        except ConfigError as exc:
            parser.error(f"--since {exc.problem}")
    store = tracking_store(options.tracking_uri)
    monitored = monitor.resolve_model(options.model, Path(options.registry), store, options.tracking_uri)
    if options.current == "features":
        spec = {"kind": "features", "as_of": plan.settings.as_of.isoformat()}

        def load() -> monitor.monitoring.Current:
            return monitor.from_features(plan, root, monitored)
    elif options.current:
        spec = {"kind": "file", "path": options.current}

        def load() -> monitor.monitoring.Current:
            return monitor.from_file(Path(options.current), monitored, plan)
    else:
        assert since is not None
        spec = {"kind": "prediction_log", "since": options.since or str(plan.monitor.window)}

        def load() -> monitor.monitoring.Current:
            return monitor.from_log(root, monitored, since, plan, project_labels=not options.labels)
    if options.labels:
        # read before the run starts: a bad labels file is bad input, not a failed monitor run
        labels, what = monitor.read_labels(options.labels, plan, root, monitored)
        spec["labels"] = options.labels
        unlabelled = load

        def load() -> monitor.monitoring.Current:
            current = unlabelled()
            monitor.attach_labels(current, labels, plan.monitor.label_delay, what)
            return current
    record, report = monitor.execute(plan, monitored, spec, root, store, overrides, load)
    print(f"monitor: {monitored.ref} on {record.data['monitor']['current']['source']}")
    print(report.table())
    shown = record.run_dir.relative_to(root) if record.run_dir.is_relative_to(root) else record.run_dir
    print(f"monitor: {'passed' if not report.failed_errors else 'FAILED'}; run {record.id[:8]}: "
          f"{shown / monitor.MONITOR_FILE}")
    if report.failed_errors and plan.monitor.on_failure is not None:
        from engine.run.retrain import retrain

        retrain(plan, monitored, record, overrides, root, Path(options.registry), store, options.tracking_uri)
    monitor.gate(report)
    return 0
