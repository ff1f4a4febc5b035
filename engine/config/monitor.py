"""Monitoring rules as declarations: what ``conf/monitor/`` may say, parsed and checked.

The same shape as :mod:`engine.config.quality`: each rule type is a small frozen
dataclass registered under its ``check`` name, its fields the YAML keys one to one, so
the JSON Schema of a rule is generated from the dataclass. The drift *methods* are data
too: each is a :class:`Method` registered under its name, with what it measures, the
column types it applies to and when it says "drift". Executing them is separate:
:mod:`engine.stages.monitor` registers one vectorised function per method and per
rule type, working on the reference profile frozen beside the model at training.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import pandas as pd

from engine.config import quality
from engine.errors import ConfigError

DIMENSIONS = ("drift", "prediction", "domain", "quality", "performance")
SEVERITIES = ("error", "warn")
COLUMN_TYPES = ("numeric", "categorical")
CORRECTIONS = ("none", "bonferroni", "fdr")
#: The metrics a performance rule may bound: with labels (``performance``), or estimated
#: from calibrated scores without them (``estimated_performance``, CBPE).
PERFORMANCE_METRICS = ("roc_auc", "precision", "recall", "f1", "accuracy", "net_value_per_month")
ESTIMATED_METRICS = PERFORMANCE_METRICS
#: How the current rows are cut into chunks: by calendar month of their time, or by rows.
CHUNK_BY = ("month", "rows")


# ------------------------------------------------------------------ drift methods


@dataclass(frozen=True)
class Method:
    """A drift method: what it computes and when it says "drift".

    Args:
        name: Its ``method`` value.
        statistic: What it computes, for the reference table.
        types: The column types it applies to.
        p_value: True: a statistical test; drift when its p-value (corrected across
            columns) is below the threshold. False: a distance; drift when it is at or
            above the threshold.
        threshold: The usual threshold.
        scipy: The scipy function it agrees with (tests/unit/stages/test_monitor.py).
    """

    name: str
    statistic: str
    types: tuple[str, ...]
    p_value: bool
    threshold: float
    scipy: str


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make a drift method available as ``method: <name>``."""
    METHODS[method.name] = method
    return method


register_method(Method("psi", "population stability index over ten reference-quantile bins (categories: each "
                       "category a bin); 0.1 moderate, 0.25 large", COLUMN_TYPES, False, 0.2,
                       "reference PSI (numpy)"))
register_method(Method("ks", "two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value",
                       ("numeric",), True, 0.05, "scipy.stats.ks_2samp"))
register_method(Method("chi2", "chi-squared test of the 2 x k table of category counts (Yates' correction at "
                       "two categories)", ("categorical",), True, 0.05, "scipy.stats.chi2_contingency"))
register_method(Method("wasserstein", "Wasserstein-1 distance divided by the reference's standard deviation",
                       ("numeric",), False, 0.1, "scipy.stats.wasserstein_distance"))
register_method(Method("jensenshannon", "Jensen-Shannon distance (natural log) of the category shares, or of the "
                       "ten reference-quantile bins", COLUMN_TYPES, False, 0.1,
                       "scipy.spatial.distance.jensenshannon"))


@dataclass(frozen=True)
class Test:
    """A method with its threshold: how one column is compared with its reference."""

    method: str
    threshold: float

    @property
    def p_value(self) -> bool:
        return METHODS[self.method].p_value


@dataclass(frozen=True)
class Defaults:
    """The test of every column not named in ``monitor.columns``, by column type.

    Evidently's defaults, which switch at 1,000 reference rows: below, the statistical
    tests (their p-values are meaningful on small samples); from there on, distances
    (on large samples a test flags differences too small to matter).

    Args:
        numeric: The test of numeric columns, on a large reference.
        categorical: The test of categorical columns, on a large reference.
        small_rows: A reference of fewer rows is small.
        small_numeric: The test of numeric columns on a small reference.
        small_categorical: The test of categorical columns on a small reference.
    """

    numeric: Test = Test("wasserstein", 0.1)
    categorical: Test = Test("jensenshannon", 0.1)
    small_rows: int = 1000
    small_numeric: Test = Test("ks", 0.05)
    small_categorical: Test = Test("chi2", 0.05)

    def test(self, column_type: str, reference_rows: int) -> Test:
        """The test of a column of this type against a reference of this many rows."""
        small = reference_rows < self.small_rows
        if column_type == "numeric":
            return self.small_numeric if small else self.numeric
        return self.small_categorical if small else self.categorical


# ------------------------------------------------------------------ rules

RULE_TYPES: dict[str, type[MonitorRule]] = {}


def register(name: str) -> Callable[[type[MonitorRule]], type[MonitorRule]]:
    """Class decorator: make a monitoring rule type available as ``check: <name>``."""

    def add(cls: type[MonitorRule]) -> type[MonitorRule]:
        cls.check = name
        RULE_TYPES[name] = cls
        return cls

    return add


@dataclass(frozen=True, kw_only=True)
class MonitorRule:
    """Fields every monitoring rule has.

    Args:
        name: The rule's key in ``monitor.rules``.
        dimension: drift, prediction, domain, quality or performance.
        severity: ``error``: a failure makes ``mlops monitor`` exit 6 (and may launch a
            retrain: ``monitor.on_failure``); ``warn``: recorded and shown.
        min_rows: Fewer current rows than this: the rule says ``insufficient data``
            instead of guessing (null: ``monitor.min_rows``).
        description: For people.
    """

    name: str
    dimension: str
    severity: str = "error"
    min_rows: int | None = None
    description: str = ""
    check: ClassVar[str] = ""


@register("drift")
@dataclass(frozen=True, kw_only=True)
class Drift(MonitorRule):
    """Each column's distribution against the reference profile. ``columns``: null for
    every input column of the model; ``method``/``threshold``: null for the defaults by
    column type (and ``monitor.columns``); fails when at least ``share`` of the columns
    drift (null: any one)."""

    columns: list[str] | None = None
    method: str | None = None
    threshold: float | None = None
    share: float | None = None


@register("score_drift")
@dataclass(frozen=True, kw_only=True)
class ScoreDrift(MonitorRule):
    """The distribution of the model's scores against its scores on the hold-out."""

    method: str = "psi"
    threshold: float | None = None


@register("positive_share")
@dataclass(frozen=True, kw_only=True)
class PositiveShare(MonitorRule):
    """The share of positive decisions differs from the hold-out's by at most ``max_change``
    (absolute)."""

    max_change: float


@register("outside_domain")
@dataclass(frozen=True, kw_only=True)
class OutsideDomain(MonitorRule):
    """The share of rows outside the training domain (a number out of range, an unseen
    category, a value missing where training had none) is at most ``max``."""

    max: float


@register("quality")
@dataclass(frozen=True, kw_only=True)
class Quality(MonitorRule):
    """The training config's quality rules, applied to the current data (``--current
    features``: its sources at the new cut-off); fails when one of severity error fails."""


@register("performance")
@dataclass(frozen=True, kw_only=True)
class Performance(MonitorRule):
    """A metric on labelled rows (the prediction log's rows joined by key to the labels
    of their cut-off once complete, or the rows of ``--labels``; ``--current features`` at
    such a cut-off; a file with the label column) is at least ``min``, no more than
    ``max_drop`` below the hold-out's, and inside the reference chunks' mean ± ``sigma``
    standard deviations; every stakeholder's metric, the net value included, is recorded."""

    metric: str
    min: float | None = None
    max_drop: float | None = None
    sigma: float | None = None


@register("estimated_performance")
@dataclass(frozen=True, kw_only=True)
class EstimatedPerformance(MonitorRule):
    """CBPE: a metric estimated without labels from the calibrated scores (each row a
    positive with its score's probability: the expected confusion matrix at the model's
    threshold, the net value from it as on the hold-out) is at least ``min``, no more than
    ``max_drop`` below the hold-out's realised value, and inside the reference chunks'
    mean ± ``sigma`` standard deviations of the realised value (NannyML's alert)."""

    metric: str
    min: float | None = None
    max_drop: float | None = None
    sigma: float | None = None


# ------------------------------------------------------------------ retraining


@dataclass(frozen=True)
class OnFailure:
    """``monitor.on_failure``: what a failed error-severity rule launches.

    Args:
        experiment: The experiment to run on fresh data (``experiment=<name>``), its
            ``as_of`` moved to the latest complete label window.
        overrides: More overrides of the retraining run.
        promote: Validate the retrained model against the monitored alias, and move the
            alias when the promotion policy passes.
        cooldown: No retrain for the same model within this long of the last one.
    """

    experiment: str
    overrides: tuple[str, ...] = ()
    promote: bool = True
    cooldown: pd.Timedelta = pd.Timedelta(days=1)
    declared_cooldown: str = "1d"


# ------------------------------------------------------------------ chunks and labels


@dataclass(frozen=True)
class Chunks:
    """``monitor.chunks``: NannyML's chunks, for the ±sigma alerts of performance rules.

    Args:
        reference_count: The hold-out (the reference) is cut into this many chunks of
            equal size, in its row order, when the model is saved (None: by size).
        reference_size: ...or into chunks of this many rows (the last, smaller one is
            dropped when it is under half this size).
        by: ``month`` (the calendar month of each current row's time) or ``rows``.
        size: ``by: rows``: rows per current chunk (null: the reference chunks' size).
    """

    reference_count: int | None = 10
    reference_size: int | None = None
    by: str = "month"
    size: int | None = None


@dataclass(frozen=True)
class Labels:
    """``monitor.labels``: the columns of a ``--labels`` file (or source).

    Args:
        key: Its key column (None: the features' entity).
        label: Its label column, 0/1 or true/false (None: the target's name).
        time: When each label became known (None: the file has none; a row's label is
            then its key's alone, whatever its time).
    """

    key: str | None = None
    label: str | None = None
    time: str | None = None


# ------------------------------------------------------------------ the group


@dataclass(frozen=True)
class MonitorSpec:
    """The ``monitor`` group, parsed.

    Args:
        rules: The rules by name, in declaration order.
        defaults: The drift test by column type.
        columns: Column -> its own test.
        correction: ``none``, ``bonferroni`` or ``fdr`` (Benjamini-Hochberg) across the
            columns a rule tests with a p-value.
        min_rows: The default minimum number of current rows.
        window: ``mlops monitor MODEL`` without ``--since``: the log's last window.
        label_delay: How long after a cut-off its labels are complete (the target's
            horizon): the latest complete label window ends this long before the data's end.
        on_failure: The retrain a failure launches; None: none.
        chunks: How the reference and the current rows are cut into chunks.
        labels: The columns of a ``--labels`` source.
    """

    rules: Mapping[str, MonitorRule] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    columns: Mapping[str, Test] = field(default_factory=dict)
    correction: str = "bonferroni"
    min_rows: int = 100
    window: pd.Timedelta = pd.Timedelta(days=7)
    label_delay: pd.Timedelta = pd.Timedelta(days=30)
    on_failure: OnFailure | None = None
    chunks: Chunks = field(default_factory=Chunks)
    labels: Labels = field(default_factory=Labels)

    @classmethod
    def from_config(cls, monitor_cfg: Mapping[str, Any] | None) -> MonitorSpec:
        """Parse a ``monitor`` group (the schema has checked its shape); None: no rules.

        Raises:
            ConfigError: A method that does not apply to a column type, a duration that
                does not parse, a performance metric not computed.
        """
        if not monitor_cfg:
            return cls()
        defaults_cfg = monitor_cfg.get("by_type") or {}
        small = defaults_cfg.get("small_reference") or {}
        base = Defaults()
        defaults = Defaults(
            numeric=_test(defaults_cfg.get("numeric"), base.numeric, "monitor.by_type.numeric", "numeric"),
            categorical=_test(defaults_cfg.get("categorical"), base.categorical, "monitor.by_type.categorical",
                              "categorical"),
            small_rows=int(small.get("rows", base.small_rows)),
            small_numeric=_test(small.get("numeric"), base.small_numeric, "monitor.by_type.small_reference.numeric",
                                "numeric"),
            small_categorical=_test(small.get("categorical"), base.small_categorical,
                                    "monitor.by_type.small_reference.categorical", "categorical"),
        )
        columns = {str(name): _test(spec, None, f"monitor.columns.{name}", None)
                   for name, spec in (monitor_cfg.get("columns") or {}).items()}
        rules: dict[str, MonitorRule] = {}
        for name, spec in (monitor_cfg.get("rules") or {}).items():
            params = {k: v for k, v in spec.items() if k != "check"}
            rule = RULE_TYPES[spec["check"]](name=name, **params)
            path = f"monitor.rules.{name}"
            if isinstance(rule, Drift | ScoreDrift) and rule.method is not None and rule.method not in METHODS:
                raise ConfigError(f"{path}.method", f"unknown method {rule.method!r}; expected one of: "
                                  f"{', '.join(METHODS)}")
            if isinstance(rule, Performance) and rule.metric not in PERFORMANCE_METRICS:
                raise ConfigError(f"{path}.metric", f"unknown metric {rule.metric!r}; expected one of: "
                                  f"{', '.join(PERFORMANCE_METRICS)}")
            if isinstance(rule, EstimatedPerformance) and rule.metric not in ESTIMATED_METRICS:
                raise ConfigError(f"{path}.metric", f"cannot be estimated without labels: {rule.metric!r}; expected "
                                  f"one of: {', '.join(ESTIMATED_METRICS)}")
            if isinstance(rule, Performance | EstimatedPerformance) and rule.min is None and \
                    rule.max_drop is None and rule.sigma is None:
                raise ConfigError(path, "expected min, max_drop or sigma (or several), got none of them")
            rules[name] = rule
        retrain = monitor_cfg.get("on_failure")
        on_failure = None
        if retrain and retrain.get("retrain"):
            declared = str(retrain.get("cooldown", "1d"))
            on_failure = OnFailure(experiment=str(retrain["retrain"]["experiment"]),
                                   overrides=tuple(str(o) for o in retrain["retrain"].get("overrides") or ()),
                                   promote=bool(retrain.get("promote", True)),
                                   cooldown=duration(declared, "monitor.on_failure.cooldown"),
                                   declared_cooldown=declared)
        return cls(rules=rules, defaults=defaults, columns=columns,
                   correction=str(monitor_cfg.get("correction", "bonferroni")),
                   min_rows=int(monitor_cfg.get("min_rows", 100)),
                   window=duration(str(monitor_cfg.get("window", "7d")), "monitor.window"),
                   label_delay=duration(str(monitor_cfg.get("label_delay", "30d")), "monitor.label_delay"),
                   on_failure=on_failure, chunks=_chunks(monitor_cfg.get("chunks")),
                   labels=Labels(**{k: (str(v) if v is not None else None)
                                    for k, v in (monitor_cfg.get("labels") or {}).items()}))

    def test(self, column: str, column_type: str, reference_rows: int, rule: Drift | None = None) -> Test:
        """The test of one column: the rule's own method, the column's, or the default by type.

        A method that does not apply to the column's type (``ks`` on a category) falls
        back to the default by type.
        """
        chosen: Test | None = None
        if rule is not None and rule.method is not None:
            chosen = Test(rule.method, rule.threshold if rule.threshold is not None else METHODS[rule.method].threshold)
        elif column in self.columns:
            chosen = self.columns[column]
        if chosen is not None and column_type in METHODS[chosen.method].types:
            return chosen
        default = self.defaults.test(column_type, reference_rows)
        if rule is not None and rule.threshold is not None and rule.method is None:
            return Test(default.method, rule.threshold)
        return default


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str, path: str) -> pd.Timedelta:
    """``7d``, ``12h``, ``30m``, ``2w`` -> a Timedelta.

    (Not through :func:`engine.config.expr.duration`: a monitoring window is no feature
    expression, and the expression parser counts the declarations it reads.)

    Raises:
        ConfigError: Not such a duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(path, f"must be a duration such as 7d, 12h or 30m, got {text!r}")
    return pd.Timedelta(**{_UNITS[match[2]]: float(match[1])})


def _chunks(spec: Mapping[str, Any] | None) -> Chunks:
    """``monitor.chunks`` (its shape checked by the schema): one of the reference's count
    and size, ``by: rows`` with an optional size."""
    if not spec:
        return Chunks()
    reference = spec.get("reference") or {}
    if reference.get("count") is not None and reference.get("size") is not None:
        raise ConfigError("monitor.chunks.reference", f"expected count or size, got both "
                          f"(count {reference['count']}, size {reference['size']})")
    count = reference.get("count")
    size = reference.get("size")
    current = spec.get("current") or {}
    by = str(current.get("by", "month"))
    if by == "month" and current.get("size") is not None:
        raise ConfigError("monitor.chunks.current.size", f"only with by: rows, got by: month and size "
                          f"{current['size']}")
    return Chunks(reference_count=int(count) if count is not None else (None if size is not None else 10),
                  reference_size=int(size) if size is not None else None, by=by,
                  size=int(current["size"]) if current.get("size") is not None else None)


def _test(spec: Mapping[str, Any] | None, default: Test | None, path: str, column_type: str | None) -> Test:
    if not spec:
        assert default is not None
        return default
    method = str(spec.get("method", default.method if default else ""))
    if method not in METHODS:
        raise ConfigError(f"{path}.method", f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    if column_type is not None and column_type not in METHODS[method].types:
        fitting = [m for m, d in METHODS.items() if column_type in d.types]
        raise ConfigError(f"{path}.method", f"{method!r} does not apply to {column_type} columns; expected one of: "
                          f"{', '.join(fitting)}")
    threshold = spec.get("threshold")
    return Test(method, float(threshold) if threshold is not None else METHODS[method].threshold)


# ------------------------------------------------------------------ schema and reference

_ENUMS = {"dimension": DIMENSIONS, "severity": SEVERITIES}


def schema() -> dict[str, Any]:
    """The JSON Schema of one rule: common keys, then the keys of its ``check``."""
    return quality.rules_schema(RULE_TYPES, _json_type)


def _json_type(name: str, cls: type) -> dict[str, Any]:
    if name in _ENUMS:
        return {"enum": list(_ENUMS[name])}
    if name == "method":
        return {"enum": [*METHODS, *([None] if cls is Drift else [])]}
    if name in ("share", "max", "max_change"):
        return {"type": ["number", "null"] if name == "share" else "number", "minimum": 0, "maximum": 1}
    if name == "min_rows":
        return {"type": ["integer", "null"], "minimum": 1}
    if name == "sigma":
        return {"type": ["number", "null"], "exclusiveMinimum": 0}
    if name == "columns":
        return {"type": ["array", "null"], "minItems": 1, "items": {"type": "string"}}
    hint = typing.get_type_hints(cls)[name]
    return _from_hint(hint)


def _from_hint(hint: Any) -> dict[str, Any]:
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if hint in simple:
        return {"type": simple[hint]}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds: list[str] = []
        for arg in typing.get_args(hint):
            kinds.append("null" if arg is type(None) else simple.get(arg, "string"))
        return {"type": kinds}
    return {}


def reference() -> str:
    """The Markdown tables of the drift methods and the rule types (docs/monitoring.md's
    copy is kept current by tests/unit/config/test_monitor.py)."""
    lines = ["| method | column types | drift when | usual threshold | computes | checked against |",
             "|---|---|---|---|---|---|"]
    for m in METHODS.values():
        when = "p-value < threshold (after the correction)" if m.p_value else "distance >= threshold"
        lines.append(f"| `{m.name}` | {', '.join(m.types)} | {when} | {m.threshold:g} | {m.statistic} | `{m.scipy}` |")
    lines += ["", "| check | keys (**required**, optional=default) | what it checks |", "|---|---|---|"]
    common = {f.name for f in fields(MonitorRule)}
    lines.append("| every rule | " + ", ".join(_key(f) for f in fields(MonitorRule) if f.name != "name")
                 + " | dimension: " + ", ".join(DIMENSIONS) + " |")
    for check, cls in RULE_TYPES.items():
        own = [f for f in fields(cls) if f.name not in common]
        doc = " ".join((cls.__doc__ or "").split())
        doc = re.sub(r"``([^`]+)``", r"`\1`", doc).replace("|", "\\|")
        lines.append(f"| `{check}` | {', '.join(_key(f) for f in own)} | {doc} |")
    return "\n".join(lines) + "\n"


def _key(f: Any) -> str:
    if f.default is MISSING and f.default_factory is MISSING:
        return f"**`{f.name}`**"
    default = "null" if f.default is None else f.default
    return f"`{f.name}`={default}" if default != "" else f"`{f.name}`"
