"""``mlops serve`` and ``mlops predict``: the registered model behind HTTP, or over a file."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import command_parser
from engine.errors import UsageError

SERVE_USAGE = """\
usage: mlops serve MODEL [--host 127.0.0.1] [--port 8000] [options]
       mlops serve --bundle DIR [options]       (a folder written by mlops registry export)

  MODEL                NAME@ALIAS (follows the alias), NAME/VERSION, NAME (its latest
                       version), or a run (id, id prefix, run directory, latest)
  --host HOST          the address to listen on (default 127.0.0.1: this machine only)
  --port PORT          the port (default 8000; 0: any free port, printed at start)
  --max-rows N         the most rows one request may hold (default 10000; more: 422)
  --max-body-bytes N   the largest request body (default 8 MiB; larger: 413)
  --log-dir PATH       the prediction log's folder (default outputs/predictions; the model's
                       name and date=YYYY-MM-DD/ below it)
  --no-log             do not log predictions
  --log-queue-rows N   rows that may wait for the log's writer (default 100000); beyond,
                       rows are dropped, counted in /metrics and logged
  --feature-store PATH where rows given by their key only are looked up (the latest
                       materialization of the model's features); default the project's
                       features.store.path, else the store the model's run used; none: off
  --no-follow          serve the version NAME@ALIAS points at now, and keep it
  --poll-seconds S     how often the registry is checked for a moved alias (default 1)
  --threads N          BLAS/OpenMP threads while scoring (default 1)
  --quality MODE       the training config's quality rules that judge one row (kept with
                       the model): enforce (a row breaking an error rule gets 422), flag
                       (scored, the rules it breaks listed), off; default the project's
                       serve.quality, else flag
  --access-log         log a line per request
  --allow-version-mismatch  load a model trained with another major version of
                       scikit-learn, numpy, scipy, pandas or skops (default: refused)
  --registry PATH      default outputs/registry or $MLOPS_REGISTRY
  --tracking-uri URI   the metadata store the model's run is recorded in

  POST /predict  GET /health /ready /model /metrics /docs   (see docs/serving.md)
"""


def serve_command(args: list[str]) -> int:
    """``mlops serve MODEL``: run the HTTP service until SIGTERM or Ctrl-C (exit 0)."""
    if args and args[0] in ("-h", "--help"):
        print(SERVE_USAGE, end="")
        return 0
    parser = command_parser("mlops serve", SERVE_USAGE)
    parser.add_argument("model", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8000)
    parser.add_argument("--max-rows", type=_positive, default=10_000)
    parser.add_argument("--max-body-bytes", type=_positive, default=8 * 1024 * 1024)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--log-dir", default=str(Path("outputs") / "predictions"))
    parser.add_argument("--no-log", action="store_true")
    parser.add_argument("--log-queue-rows", type=_positive, default=100_000)
    parser.add_argument("--feature-store", default=None)
    parser.add_argument("--no-follow", action="store_true")
    parser.add_argument("--poll-seconds", type=_seconds, default=1.0)
    parser.add_argument("--threads", type=_positive, default=1)
    parser.add_argument("--quality", type=_quality, default=None)
    parser.add_argument("--allow-version-mismatch", action="store_true")
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(Path("outputs") / "registry")))
    options = parser.parse_args(args)
    if options.bundle and options.model:
        raise UsageError("usage error: serve takes MODEL or --bundle DIR, not both")
    if options.bundle:
        options.model = options.bundle
    if not options.model:
        raise UsageError("usage error: serve needs MODEL (NAME@ALIAS, NAME/VERSION or a run); see mlops serve --help")
    _require_serve_extra()
    _configure_logging()
    log = logging.getLogger("engine.serve")

    from threadpoolctl import threadpool_limits

    from engine.serve import app as service_app
    from engine.serve import model as served_model
    from engine.serve import server
    from engine.serve.follow import AliasFollower, follows
    from engine.serve.holder import Holder
    from engine.store.registry import Registry

    threadpool_limits(limits=options.threads)  # for the process: scoring never oversubscribes the cores
    served = _load(options.model, options.registry, options.tracking_uri, options.allow_version_mismatch)
    served_model.warm_up(served)
    sock = server.bind(options.host, options.port)  # after loading: a refused model never holds the port
    holder = Holder(served)
    service = service_app.Service(holder, service_app.Limits(options.max_body_bytes, options.max_rows),
                                  ref=options.model, quality=_quality_mode(options.quality))
    store = _feature_store(options.feature_store, served.feature_store)
    if store is not None and served.key:
        from engine.serve.online import OnlineFeatures

        service.online = OnlineFeatures(store)
        table = service.online.table(served)
        log.info("serving by key (%s) from %s%s", served.key, store,
                 f": the materialization as of {table.as_of} ({len(table.frame)} rows)" if table else
                 ": no materialization of this model's features yet (mlops features materialize)")
    if not options.no_log:
        from engine.serve.predlog import PredictionLog

        service.predictions = PredictionLog(Path(options.log_dir) / served.name, options.log_queue_rows,
                                            on_written=service.metrics.log_rows.inc,
                                            on_dropped=service.metrics.log_dropped.inc)
    follower = None
    followed = follows(options.model)
    if followed and not options.no_follow:
        follower = AliasFollower(Registry(Path(options.registry), options.tracking_uri), *followed, holder, options.tracking_uri,
                                 options.poll_seconds, service.recent_rows,
                                 lambda outcome: service.metrics.swaps.labels(outcome).inc(),
                                 options.allow_version_mismatch)
    app = service_app.create_app(service)
    where = server.address(sock)
    if service.predictions is not None:
        log.info("prediction log: %s", service.predictions.root)
    print(f"serving {options.model} ({served.label}, run {served.run_id[:8]}, sha256 {served.sha256[:12]}, "
          f"threshold {served.threshold:.4g}) on {where}  (docs: {where}/docs)", flush=True)

    if follower is not None:
        follower.start()
        log.info("following %s: a promotion swaps the new version in (registry checked every %gs)", options.model,
                 options.poll_seconds)

    def stop() -> None:
        service.ready = False
        if follower is not None:
            follower.stop()
        service.scorer.close()
        if service.predictions is not None:
            service.predictions.close()  # after the last request: everything it scored is written
            log.info("prediction log: %d row(s) written, %d dropped", service.predictions.written_rows,
                     service.predictions.dropped_rows)

    stopped_by = server.run(app, sock, stop, access_log=options.access_log)
    log.info("stopped%s", f" by {stopped_by}" if stopped_by else "")
    return 0


def _load(ref: str, registry: str, tracking_uri: str | None, allow_version_mismatch: bool) -> Any:
    """MODEL, or a bundle folder (mlops registry export), loaded and verified."""
    from engine.serve import bundle
    from engine.serve import model as served_model

    if bundle.is_bundle(ref):
        return bundle.load_bundle(Path(ref), allow_version_mismatch)
    return served_model.load(ref, Path(registry), tracking_uri, allow_version_mismatch)


def _feature_store(option: str | None, recorded: str | None) -> Path | None:
    """The feature store for rows given by key: ``--feature-store``, else the project's
    ``features.store.path``, else the one the model's run recorded; None when there is none."""
    if option is not None:
        if option.lower() == "none":
            return None
        if not Path(option).is_dir():
            raise UsageError(f"usage error at --feature-store: {option} is not a folder")
        return Path(option)
    from engine.cli.common import project_setting

    configured = project_setting("features.store.path", None)
    for candidate in (configured, recorded):
        if candidate and Path(str(candidate)).is_dir():
            return Path(str(candidate))
    return None


def _require_serve_extra() -> None:
    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client") if not _importable(m)]
    if missing:
        raise UsageError(f"usage error: mlops serve needs the serve extra ({', '.join(missing)} not installed): "
                         "pip install 'mlops-engine[serve]'")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _configure_logging() -> None:
    """The run's log format on stderr, for the engine's lines and uvicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s", "%H:%M:%S"))
    for name in ("engine", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def _quality(text: str) -> str:
    from engine.serve.inputs import QUALITY_MODES

    if text not in QUALITY_MODES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(QUALITY_MODES)}, got {text!r}")
    return text


def _quality_mode(option: str | None) -> str:
    """``--quality``, else the project's ``serve.quality``, else flag.

    Raises:
        UsageError: The project's ``serve.quality`` is not a mode.
    """
    from engine.cli.common import project_setting
    from engine.serve.inputs import QUALITY_MODES

    if option is not None:
        return option
    configured = str(project_setting("serve.quality", "flag"))
    if configured not in QUALITY_MODES:
        raise UsageError(f"config error at serve.quality (conf/config.yaml): expected one of "
                         f"{', '.join(QUALITY_MODES)}, got {configured!r}")
    return configured


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0.05 to 3600, got {text!r}")
    return value


PREDICT_USAGE = """\
usage: mlops predict MODEL --input FILE|feature-store --output SCORES.parquet [options]

  MODEL                NAME@ALIAS, NAME/VERSION, NAME, or a run (as mlops serve)
  --input FILE         rows to score: .csv, .parquet, .json (records or columns), .jsonl;
                       a row may give only the entity key (looked up in the feature store);
                       feature-store: every entity of the latest materialization
  --output PATH        the scores, as Parquet: row, key, status (200, or 404 for an unknown
                       key), score, decision, in_domain, domain_flags, rule_flags, as_of
  --feature-store PATH as mlops serve (default the project's features.store.path; none: off)
  --log-dir PATH       the prediction log's folder (default outputs/predictions)
  --no-log             do not log the predictions
  --chunk-rows N       rows checked and scored at a time (default 50000)
  --progress           a progress line whatever the input's size (default: from 100,000 rows)
  --threads N          BLAS/OpenMP threads while scoring (default 1)
  --quality MODE       as mlops serve (enforce: the first row breaking an error rule stops it, exit 2)
  --allow-version-mismatch  as mlops serve
  --registry PATH      default outputs/registry or $MLOPS_REGISTRY
  --tracking-uri URI   the metadata store the model's run is recorded in
"""


def predict_command(args: list[str]) -> int:
    """``mlops predict MODEL --input ... --output ...``: score a file with serving's checks."""
    if args and args[0] in ("-h", "--help"):
        print(PREDICT_USAGE, end="")
        return 0
    parser = command_parser("mlops predict", PREDICT_USAGE)
    parser.add_argument("model", nargs="?")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--feature-store", default=None)
    parser.add_argument("--log-dir", default=str(Path("outputs") / "predictions"))
    parser.add_argument("--no-log", action="store_true")
    parser.add_argument("--chunk-rows", type=_positive, default=50_000)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--threads", type=_positive, default=1)
    parser.add_argument("--quality", type=_quality, default=None)
    parser.add_argument("--allow-version-mismatch", action="store_true")
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(Path("outputs") / "registry")))
    options = parser.parse_args(args)
    for name in ("model", "input", "output"):
        if not getattr(options, name):
            raise UsageError(f"usage error: predict needs {'MODEL' if name == 'model' else '--' + name} "
                             "(see mlops predict --help)")
    if Path(options.output).suffix.lower() not in (".parquet", ".pq"):
        raise UsageError(f"usage error at --output: expected a .parquet file, got {options.output}")
    _configure_logging()
    log = logging.getLogger("engine.serve")
    from threadpoolctl import threadpool_limits

    from engine.serve import batch

    threadpool_limits(limits=options.threads)
    served = _load(options.model, options.registry, options.tracking_uri, options.allow_version_mismatch)
    store = _feature_store(options.feature_store, served.feature_store)
    online = None
    if store is not None and served.key:
        from engine.serve.online import OnlineFeatures

        online = OnlineFeatures(store)
    rows = batch.read_rows(options.input, served, online)
    n = len(next(iter(rows.values()), [])) if isinstance(rows, dict) else len(rows)
    prediction_log = None
    if not options.no_log:
        from engine.serve.predlog import PredictionLog

        # A batch waits for its log instead of dropping rows: the queue holds the whole input.
        prediction_log = PredictionLog(Path(options.log_dir) / served.name, max_queued_rows=max(n, 1))
    progress = batch.progress_printer() if options.progress or n >= 100_000 else None
    try:
        summary = batch.score(served, rows, Path(options.output), online, prediction_log, options.chunk_rows,
                              progress, _quality_mode(options.quality))
    finally:
        if prediction_log is not None:
            prediction_log.close()
    logged = f"; logged to {prediction_log.root}" if prediction_log is not None else ""
    print(f"scored {summary.scored:,} of {summary.rows:,} rows with {served.label} (sha256 {served.sha256[:12]}) in "
          f"{summary.seconds:.1f}s: {summary.positive:,} decided 1 at threshold {served.threshold:.4g}, "
          f"{summary.outside:,} outside the training domain"
          + (f", {summary.unknown:,} unknown key(s)" if summary.unknown else "") + f" -> {options.output}{logged}")
    if prediction_log is not None and (prediction_log.failed_rows or prediction_log.dropped_rows):
        log.warning("prediction log: %d row(s) not written", prediction_log.failed_rows + prediction_log.dropped_rows)
    return 0
