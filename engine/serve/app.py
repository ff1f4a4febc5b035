"""The HTTP service of ``mlops serve``: FastAPI routes over one :class:`~engine.serve.holder.Holder`.

    POST /predict   raw feature rows (JSON records or columns, or CSV) or entity keys in,
                    per row: key, score, decision at the model's threshold, domain flags,
                    and the training config's quality rules the row breaks (--quality)
    GET  /health    the process is alive
    GET  /ready     a verified model is loaded (503 while shutting down)
    GET  /model     name, version, alias, run, sha256, threshold, input schema, lineage
    GET  /metrics   Prometheus text: requests by status, latency, rows scored and flagged
    GET  /docs      OpenAPI, with the request schema built from the model's input domain

Requests are read as bytes and parsed by :mod:`engine.serve.inputs` (JSON or CSV, never
evaluated or unpickled); answers are JSON encoded once, without FastAPI's generic
encoder, since they are plain lists and numbers.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from engine import __version__
from engine.errors import RequestError
from engine.serve import inputs
from engine.serve.holder import Holder, Scorer
from engine.serve.model import Served
from engine.stages import domain as domains

log = logging.getLogger("engine.serve")

#: Bodies larger than this are parsed on a worker thread, not on the event loop.
_LARGE_BODY = 64 * 1024
#: The route labels of the request metrics; any other path is counted as "other".
ROUTES = ("/predict", "/health", "/ready", "/model", "/metrics", "/docs", "/openapi.json")


@dataclass(frozen=True)
class Limits:
    """What one request may hold.

    Args:
        max_body_bytes: A larger body is refused with 413 before it is parsed.
        max_rows: A request with more rows is refused with 422.
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 10_000


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mlops_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("mlops_request_latency_seconds", "Time to answer a request, by route", ["route"],
                                 registry=r, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.rows = Counter("mlops_rows_scored", "Rows scored", registry=r)
        self.outside = Counter("mlops_rows_outside_domain", "Scored rows outside the training domain", registry=r)
        self.flags = Counter("mlops_domain_flags", "Domain flags raised, by column and flag", ["column", "flag"],
                             registry=r)
        self.rule_violations = Counter("mlops_rule_violations", "Quality rules broken by scored rows, by rule "
                                       "and severity", ["rule", "severity"], registry=r)
        self.unknown_keys = Counter("mlops_unknown_keys", "Rows given by a key the feature store does not hold",
                                    registry=r)
        self.batch_rows = Histogram("mlops_batch_rows", "Rows per predict_proba call (micro-batching)", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 64, 256, 1024, 4096))
        self.model = Gauge("mlops_model_info", "The model in use (value 1)", ["name", "version", "sha256"], registry=r)
        self.swaps = Counter("mlops_model_swaps", "Alias moves handled, by outcome", ["outcome"], registry=r)
        self.log_rows = Counter("mlops_prediction_log_rows", "Rows written to the prediction log", registry=r)
        self.log_dropped = Counter("mlops_prediction_log_dropped_rows",
                                   "Rows not logged because the log's queue was full", registry=r)
        self.log_queue = Gauge("mlops_prediction_log_queue_rows", "Rows waiting to be written", registry=r)

    def set_model(self, served: Served, old: Served | None = None) -> None:
        if old is not None:
            self.model.remove(old.name, str(old.version), old.sha256[:12])
        self.model.labels(served.name, str(served.version), served.sha256[:12]).set(1)

    def set_model_swap(self, old: Served, new: Served) -> None:
        self.set_model(new, old)


class Service:
    """What the routes share: the model holder, the scorer, metrics and the optional parts.

    Args:
        holder: The model in use.
        limits: Request limits.
        predictions: The prediction log (:class:`engine.serve.predlog.PredictionLog`), or None.
        online: The feature lookup for rows given by key
            (:class:`engine.serve.online.OnlineFeatures`), or None.
        ref: The MODEL the server was started with (``churn@champion``).
        quality: One of :data:`engine.serve.inputs.QUALITY_MODES`.
    """

    def __init__(self, holder: Holder, limits: Limits, predictions: Any = None, online: Any = None,
                 ref: str = "", quality: str = "flag") -> None:
        self.holder = holder
        self.quality = quality
        self.limits = limits
        self.predictions = predictions
        self.online = online
        self.ref = ref
        self.metrics = Metrics()
        self.scorer = Scorer()
        self.ready = True
        self.metrics.set_model(holder.current)
        #: The last few scored frames: what a new version is warmed up on before a swap.
        self.recent: deque[pd.DataFrame] = deque(maxlen=16)
        holder.on_swap = self.metrics.set_model_swap

    def recent_rows(self) -> pd.DataFrame | None:
        """Up to the last 16 scored requests' rows, for warming a new version up."""
        frames = list(self.recent)
        return pd.concat(frames, ignore_index=True) if frames else None

    async def predict(self, body: bytes, content_type: str | None, received: float) -> dict[str, Any]:
        """Check, score and answer one request body (see the module's docstring).

        Raises:
            RequestError: The body or its rows do not fit the model (400, 422), or every
                row was given by an unknown key (404).
        """
        served = self.holder.current  # one model for the whole request, whatever swaps meanwhile
        if len(body) > _LARGE_BODY:
            rows = await run_in_threadpool(self._check, body, content_type, served)
        else:
            rows = self._check(body, content_type, served)
        frame, as_of, unknown = rows.features, None, []
        if rows.by_key:
            looked_up, as_of, unknown = await run_in_threadpool(self.online.lookup, served, rows.by_key,
                                                                [rows.keys[i] for i in rows.by_key])
            frame = pd.concat([frame, looked_up]).sort_index() if len(frame) else looked_up
        self.metrics.unknown_keys.inc(len(unknown))
        if not len(frame):
            raise RequestError(404, f"no row could be scored: the feature store's latest materialization holds none "
                                    f"of the keys given ({_keys_shown([rows.keys[i] for i in unknown])})",
                               row=unknown[0], column=served.key)
        violations = self._violations(served, frame)
        try:
            scores = await self.scorer.score(served, frame)
        except (ValueError, TypeError, ArithmeticError) as exc:
            # Values of the right type that the model still cannot take (a number so large
            # that scaling overflows): the request's fault, named at its first such row.
            row = await run_in_threadpool(_first_unscorable_row, served, frame)
            raise RequestError(422, f"the model cannot score this row: {_first_line(exc)}", row=row) from exc
        self.metrics.batch_rows.observe(len(frame))
        self.recent.append(frame)
        flags = domains.flags(frame, served.domain, None if rows.by_key else rows.arrays)
        decisions = (scores >= served.threshold).astype(np.int8)
        request_id = uuid.uuid4().hex
        by_key = set(rows.by_key)
        positions = frame.index.tolist()
        keys = rows.keys
        answers: list[dict[str, Any]] = [
            {"row": position, "status": 200, "key": keys[position], "score": score, "decision": decision,
             "in_domain": not row_flags, "flags": row_flags}
            for position, score, decision, row_flags in zip(positions, _finite_list(scores), decisions.tolist(),
                                                            flags, strict=True)]
        if violations is not None:
            for answer, broken in zip(answers, violations, strict=False):  # 404 rows come after
                answer["rules"] = broken
                for violation in broken:
                    self.metrics.rule_violations.labels(violation["rule"], violation["severity"]).inc()
        outside = 0
        for row_flags in flags:
            if row_flags:
                outside += 1
                for flag in row_flags:
                    self.metrics.flags.labels(flag["column"], flag["flag"]).inc()
        if by_key:
            for answer in answers:
                if answer["row"] in by_key:
                    answer["as_of"] = as_of
        for position in unknown:
            answers.append({"row": position, "status": 404, "key": rows.keys[position],
                            "error": f"unknown key: the feature store's latest materialization (as of {as_of}) "
                                     f"holds no {served.key} {rows.keys[position]!r}"})
        if unknown:
            answers.sort(key=lambda a: a["row"])
        self.metrics.rows.inc(len(frame))
        self.metrics.outside.inc(outside)
        latency_ms = (time.perf_counter() - received) * 1000
        if self.predictions is not None:
            self.predictions.append(served, request_id, frame, [rows.keys[p] for p in frame.index], scores,
                                    decisions, flags, [p in by_key for p in frame.index], as_of, latency_ms,
                                    violations, None if by_key else rows.arrays)
        return {"request_id": request_id, "model": served.identity(), "threshold": served.threshold,
                "predictions": answers}

    def _violations(self, served: Served, frame: pd.DataFrame) -> list[list[dict[str, Any]]] | None:
        """The row rules each row breaks (None: none checked); under ``enforce``, the first
        row that breaks an error-severity rule is refused."""
        if self.quality == "off" or not served.rules:
            return None
        violations = domains.rule_violations(frame, served.rules)
        if self.quality == "enforce":
            inputs.enforce_rules(violations, frame.index.tolist())
        return violations

    def _check(self, body: bytes, content_type: str | None, served: Served) -> inputs.Rows:
        return inputs.check(inputs.parse(body, content_type), served.domain, self.limits.max_rows,
                            by_key_allowed=self.online is not None)

    def describe(self) -> dict[str, Any]:
        """The body of ``GET /model``."""
        served = self.holder.current
        body = {**served.describe(), "serving": self.ref, "engine": __version__,
                "limits": {"max_body_bytes": self.limits.max_body_bytes, "max_rows": self.limits.max_rows},
                "quality": {"mode": self.quality, "rules": [
                    {"name": r.rule.name, "check": r.rule.check, "severity": r.rule.severity,
                     "columns": sorted(r.inputs.values()), "expected": domains.expected(r.rule)}
                    for r in served.rules]}}
        if self.online is not None:
            body["feature_store"] = self.online.describe(served)
        if self.predictions is not None:
            body["prediction_log"] = self.predictions.describe()
        return body


def create_app(service: Service) -> FastAPI:
    """The FastAPI application of one service."""
    app = FastAPI(title="mlops serve", version=__version__,
                  description="A registered model, its inputs checked against its training domain.")
    metrics = service.metrics

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return _json(exc.to_json(), exc.status)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("internal error answering %s %s (a bug in mlops-engine; please report it)", request.method,
                      request.url.path)
        return _json({"error": "internal error: a bug in mlops-engine, logged by the server", "status": 500}, 500)

    @app.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {}}})
    async def predict(request: Request) -> Response:
        received = time.perf_counter()
        body = await _read_body(request, service.limits.max_body_bytes)
        return _json(await service.predict(body, request.headers.get("content-type"), received), 200)

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "alive"}, 200)

    @app.get("/ready")
    async def ready() -> Response:
        if not service.ready:
            return _json({"status": "shutting down"}, 503)
        return _json({"status": "ready", "model": service.holder.current.identity()}, 200)

    @app.get("/model")
    async def model() -> Response:
        return _json(service.describe(), 200)

    @app.get("/metrics")
    async def prometheus() -> Response:
        if service.predictions is not None:
            metrics.log_queue.set(service.predictions.queued_rows)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        # Built from the model in use, each time (a swap may change the columns): small.
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        body = schema["paths"]["/predict"]["post"]["requestBody"]
        body["content"] = request_schemas(service.holder.current)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return _Measured(app, metrics)  # type: ignore[return-value]


def request_schemas(served: Served) -> dict[str, Any]:
    """The OpenAPI request bodies of ``/predict`` for the model's input domain."""
    properties: dict[str, Any] = {}
    for name, spec in served.domain["columns"].items():
        kind = {"number": "number", "integer": "integer", "boolean": "boolean", "string": "string"}[spec["type"]]
        prop: dict[str, Any] = {"type": [kind, "null"]}
        if spec.get("categories"):
            prop["examples"] = spec["categories"][:5]
            prop["description"] = f"seen in training: {', '.join(map(str, spec['categories'][:20]))}"
        elif spec.get("min") is not None:
            prop["description"] = f"training range {spec['min']} to {spec['max']}"
        properties[name] = prop
    row = {"type": "object", "properties": dict(properties), "required": list(properties)}
    variants: list[dict[str, Any]] = [row]
    if served.key:
        key_type = {"integer": "integer", "number": "number"}.get((served.domain.get("key") or {}).get("type"),
                                                                 "string")
        row["properties"][served.key] = {"type": key_type, "description": "the entity key, returned with the row"}
        variants.append({"type": "object", "properties": {served.key: {"type": key_type}}, "required": [served.key],
                         "description": "by key: its features from the feature store's latest materialization"})
    one = {"oneOf": variants}
    example = {name: (spec.get("categories") or [None])[0] if spec["type"] == "string" else spec.get("min")
               for name, spec in served.domain["columns"].items()}
    return {
        "application/json": {"schema": {"oneOf": [
            {"type": "array", "items": one, "description": "records"},
            one,
            {"type": "object", "properties": {"records": {"type": "array", "items": one}}, "required": ["records"]},
            {"type": "object", "properties": {"columns": {"type": "object"}}, "required": ["columns"],
             "description": "columns: name -> list of values"},
        ]}, "example": [example]},
        "text/csv": {"schema": {"type": "string", "description": f"a header line ({', '.join(properties)}), then "
                                                                 "one line per row; an empty cell is missing"}},
    }


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared):,} bytes; expected at most {limit:,} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over {limit:,} bytes; expected at most {limit:,} (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: Any, status: int) -> Response:
    if _orjson is not None:
        try:
            content = _orjson.dumps(body, default=_default)
        except TypeError:  # an integer beyond 64 bits (an echoed key): Python's json writes it
            content = json.dumps(body, separators=(",", ":"), default=_default).encode()
    else:
        content = json.dumps(body, separators=(",", ":"), default=_default).encode()
    return Response(content, status_code=status, media_type="application/json")


try:
    import orjson as _orjson
except ImportError:  # the serve extra brings it; Python's json writes the same, slower
    _orjson = None


def _default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _finite(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return str(value)


def _finite_list(values: np.ndarray) -> list[float | None]:
    """Scores as JSON numbers (a NaN, which a model should never give, as null)."""
    out = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _first_unscorable_row(served: Served, frame: pd.DataFrame, limit: int = 200) -> int | None:
    """The request position of the first row the model fails on alone (among the first ``limit``)."""
    for position in frame.index[:limit]:
        try:
            served.scores(frame.loc[[position]])
        except (ValueError, TypeError, ArithmeticError):
            return int(position)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _keys_shown(keys: list[Any]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


class _Measured:
    """ASGI middleware: every HTTP request's status and latency into the metrics.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which adds a task and a
    stream per request.
    """

    def __init__(self, app: FastAPI, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope.get("path", "")
            route = path if path in ROUTES else "other"
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

