"""The checks of a composed config, run before any data is read.

:func:`engine.config.plan.compile` runs them in this order, each stopping at the first problem
with a :class:`ConfigError` that names the key path, the file it came from, what was
expected and what was given, and keeps what each one parses in the plan:

1. JSON Schema, one per config group (``engine/config/schemas/<group>.json``).
2. Every source's declared columns agree with its timestamp and ``load_args``.
   Every ``_target_`` anywhere in the config is on the allowlist.
3. Every expression (population, derived features, target) parses, and derived
   features do not read each other in a cycle.
4. Quality rules read only sources that ``data.sources`` defines.
5. Business requirements bound known metrics (``business.requirements``).
6. The model's hyper-parameters are accepted by the estimator itself (its own
   ``_parameter_constraints``), so a value scikit-learn would reject fails here, not
   minutes later in ``fit``.

:func:`validate` is the same checks with the plan thrown away.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pandas as pd
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engine.config import monitor, quality, targets
from engine.config.business import Requirement
from engine.config.business import parse as parse_requirements
from engine.config.features import AGGREGATIONS, ROW_NUMBER, FeatureSpec
from engine.config.monitor import MonitorSpec
from engine.config.origin import GROUPS, ConfigOrigin
from engine.config.promotion import PromotionSpec
from engine.errors import ConfigError


@cache
def schema() -> dict[str, Any]:
    """The root schema with each group's schema under its key."""
    root = _load_schema("config")
    for group in GROUPS:
        root["properties"][group] = _load_schema(group)
    root["properties"].update(_load_schema("experiment")["properties"])
    root["properties"]["quality"]["properties"]["rules"]["additionalProperties"] = quality.schema()
    root["properties"]["monitor"]["properties"]["rules"]["additionalProperties"] = monitor.schema()
    aggregation = root["properties"]["features"]["properties"]["groups"]["additionalProperties"]
    aggregation["properties"]["aggregations"]["additionalProperties"]["properties"]["agg"] = {
        "enum": list(AGGREGATIONS)}
    return root


def _load_schema(name: str) -> dict[str, Any]:
    text = resources.files("engine.config.schemas").joinpath(f"{name}.json").read_text(encoding="utf-8")
    loaded = json.loads(text)
    # Inline "#/$defs/..." references: each group stays local once embedded in the root,
    # and validation skips the reference registry, which cost more than the checks.
    defs = loaded.pop("$defs", {})
    return _inline(loaded, defs)


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, defs) for value in node]
    return node


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def resolve(cfg: Any) -> dict[str, Any]:
    """A composed config as plain data, interpolations resolved.

    Raises:
        ConfigError: An interpolation cannot be resolved or a value is missing (``???``).
    """
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        path = str(getattr(exc, "full_key", "") or "")
        raise ConfigError(path, str(exc).splitlines()[0]) from exc
    assert isinstance(resolved, dict)
    return resolved


def validate(cfg: Mapping[str, Any], where: ConfigOrigin | None = None) -> None:
    """Check a resolved config (a plain dict); raise on the first problem.

    :func:`engine.config.plan.compile` with the plan thrown away.

    Args:
        cfg: ``OmegaConf.to_container(cfg, resolve=True)`` of the job config.
        where: Where keys came from, for the message.

    Raises:
        ConfigError: The first problem found, as one line.
    """
    from engine.config.plan import compile  # the plan is built on this module's checks

    compile(cfg, where)


def check_schema(cfg: Mapping[str, Any], where: ConfigOrigin) -> None:
    """The JSON Schema of the root keys and of every group."""
    errors = sorted(_validator().iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        path, problem = _describe(errors[0])
        raise ConfigError(path, problem, where.source_of(path))


def check_as_of(cfg: Mapping[str, Any], where: ConfigOrigin) -> pd.Timestamp:
    """``as_of`` is a time; returns it parsed."""
    try:
        return pd.Timestamp(cfg["as_of"])
    except (ValueError, TypeError) as exc:
        raise ConfigError("as_of", f"must be {schema()['properties']['as_of']['x-expected']}, got {cfg['as_of']!r}",
                          where.source_of("as_of")) from exc


def check_features(cfg: Mapping[str, Any], where: ConfigOrigin) -> FeatureSpec:
    """The ``features`` group parses and reads declared sources; returns it parsed."""
    try:
        return FeatureSpec.from_config(cfg["features"], cfg["data"]["sources"])
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, where.source_of(exc.path)) from exc


def check_promotion(cfg: Mapping[str, Any], where: ConfigOrigin) -> PromotionSpec:
    """``promotion`` names metrics the gate computes and a valid evaluation cut-off;
    returns it parsed."""
    try:
        spec = PromotionSpec.from_config(cfg.get("promotion"), cfg["seed"])
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, where.source_of(exc.path)) from exc
    if spec.evaluation_as_of is not None:
        try:
            pd.Timestamp(spec.evaluation_as_of)
        except (ValueError, TypeError) as exc:
            path = "promotion.evaluation.as_of"
            raise ConfigError(path, f"must be null or an ISO date such as 2026-11-01, got {spec.evaluation_as_of!r}",
                              where.source_of(path)) from exc
    return spec


def check_monitor(cfg: Mapping[str, Any], where: ConfigOrigin) -> MonitorSpec:
    """``monitor`` names known methods that apply to the column types they are given for, and
    durations that parse; returns it parsed (no rules when the config has no ``monitor`` group)."""
    try:
        return MonitorSpec.from_config(cfg.get("monitor"))
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, where.source_of(exc.path)) from exc


def check_requirements(cfg: Mapping[str, Any], where: ConfigOrigin) -> tuple[Requirement, ...]:
    """``business.requirements`` bound known metrics; returns them parsed."""
    try:
        return parse_requirements(cfg["business"])
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, where.source_of(exc.path)) from exc


def check_economics(business: Mapping[str, Any], where: ConfigOrigin) -> None:
    """The business inputs agree with each other (each one's range is the schema's)."""
    for key, bound, name in (("churners_per_month", "customers", "the customers scored each month"),
                             ("discounted_price", "price", "the price: the offer is a discount")):
        if business[key] > business[bound]:
            path = f"business.{key}"
            raise ConfigError(path, f"must be at most business.{bound} ({name}, {business[bound]!r}), "
                              f"got {business[key]!r}", where.source_of(path))


def check_rules(cfg: Mapping[str, Any], where: ConfigOrigin) -> dict[str, quality.Rule]:
    """Quality rules: filters and durations parse, and every source they read exists.

    Returns:
        The rules by name, parsed.
    """
    try:
        parsed = quality.parse_rules(cfg["quality"])
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.problem, where.source_of(exc.path)) from exc
    sources = sorted(cfg["data"]["sources"])
    for name, rule in parsed.items():
        for key, source, _ in rule.reads():
            if source not in sources:
                path = f"quality.rules.{name}.{key}"
                close = difflib.get_close_matches(source, sources, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(path, f"rule {name!r} reads source {source!r}, which data.sources does not "
                                  f"define; {hint}expected one of: {', '.join(sources)}", where.source_of(path))
    return parsed


def check_sources(cfg: Mapping[str, Any], where: ConfigOrigin) -> None:
    """Each source's declared columns agree with its other keys (the schema checks each key alone).

    A timestamp declared with a type must be a datetime; ``format`` belongs to datetimes;
    a column is typed in one place (``columns``, not also ``load_args.dtype`` or
    ``parse_dates``); a keyless source's ``row_number`` is the engine's, not a column's.
    """
    for name, source in cfg["data"]["sources"].items():
        columns = source.get("columns") or {}
        base = f"data.sources.{name}"

        def refuse(path: str, problem: str) -> None:
            raise ConfigError(path, problem, where.source_of(path))

        for column, declared in columns.items():
            kind = declared if isinstance(declared, str) else declared["type"]
            path = f"{base}.columns.{column}"
            if column == source.get("timestamp") and kind != "datetime":
                refuse(path, f"the source's timestamp column must be declared datetime, got {kind!r}")
            if isinstance(declared, Mapping) and declared.get("format") and kind != "datetime":
                refuse(f"{path}.format", f"a format belongs to a datetime column, got one on a {kind!r} column")
        load_args = source.get("load_args") or {}
        dtype = load_args.get("dtype")
        typed = set(dtype) if isinstance(dtype, Mapping) else set()
        dates = load_args.get("parse_dates")
        typed |= {d for d in dates if isinstance(d, str)} if isinstance(dates, list) else set()
        for column in columns:
            if column in typed:
                refuse(f"{base}.columns.{column}", f"column {column!r} is also typed in {base}.load_args (dtype or "
                       "parse_dates); expected it typed in one place: keep it in columns")
        if not source.get("key") and ROW_NUMBER in columns:
            refuse(f"{base}.columns.{ROW_NUMBER}", f"a source without a key gets the engine's {ROW_NUMBER!r} column "
                   f"(each row's number); expected another name, or key: {ROW_NUMBER} to use the file's own")


def check_model_params(model_cfg: Mapping[str, Any], where: ConfigOrigin) -> None:
    """Check hyper-parameters against the estimator's own names and constraints."""
    cls = targets.import_target(model_cfg["_target_"])
    params = {k: v for k, v in model_cfg.items() if k != "_target_"}
    known = cls().get_params(deep=False)
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"model.{key}",
                f"unknown parameter of {cls.__name__}; {hint}expected one of: {', '.join(sorted(known))}",
                where.source_of(f"model.{key}"),
            )
    estimator = cls(**params)
    if not hasattr(estimator, "predict_proba"):  # available_if: SVC(probability=False), SGD(loss="hinge")
        raise ConfigError("model", f"{cls.__name__} gives no predict_proba with these parameters; expected a "
                          "classifier with probabilities (the engine scores, ranks and picks the value threshold "
                          "on them), e.g. SVC with probability: true or SGDClassifier with loss: log_loss",
                          where.source_of("model"))
    validate_params = getattr(estimator, "_validate_params", None)
    if validate_params is None:  # scikit-learn < 1.2: fit() will check
        return
    try:
        validate_params()
    except (ValueError, TypeError) as exc:
        message = str(exc).splitlines()[0]
        name = next((k for k in params if f"'{k}' parameter" in message), None)
        path = f"model.{name}" if name else "model"
        raise ConfigError(path, message, where.source_of(path)) from exc


# ------------------------------------------------------------------ error messages

_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def expected(schema_node: Mapping[str, Any]) -> str:
    """Say in words what a schema node accepts: ``an integer >= 1``."""
    if "x-expected" in schema_node:
        return str(schema_node["x-expected"])
    if "enum" in schema_node:
        return "one of: " + ", ".join(str(v) for v in schema_node["enum"])
    if "const" in schema_node:
        return repr(schema_node["const"])
    types = schema_node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    words = " or ".join(_TYPE_WORDS.get(t, t) for t in types) or "a value"
    bounds = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema_node:
            bounds.append(f"{sign} {schema_node[key]}")
    if bounds:
        words += " " + " and ".join(bounds)
    return words


def _describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    path = [str(p) for p in error.absolute_path]
    kind, value, node = error.validator, error.instance, error.schema
    if kind == "additionalProperties" and isinstance(value, Mapping):
        allowed = sorted(node.get("properties", {}))
        extra = sorted(k for k in value if k not in allowed)[0]
        close = difflib.get_close_matches(extra, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return ".".join([*path, extra]), f"unknown key; {hint}expected one of: {', '.join(allowed)}"
    if kind == "required" and isinstance(value, Mapping):
        missing = next(k for k in error.validator_value if k not in value)
        what = expected(node.get("properties", {}).get(missing, {}))
        return ".".join([*path, missing]), f"missing required key; expected {what}"
    if kind == "propertyNames":
        return ".".join(path), f"key {value!r} is not a valid name; expected {expected(node['propertyNames'])}"
    if kind == "minProperties":
        return ".".join(path), f"must have at least {error.validator_value} entries, got {len(value)}"
    if kind == "minLength":
        return ".".join(path), f"must be a non-empty string, got {value!r}"
    return ".".join(path), f"must be {expected(node)}, got {value!r}"
