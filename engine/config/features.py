"""Declarations parsed from config groups, apart from the code that executes them.

``engine.config.plan.compile`` parses them once, checking a config without touching data; the
stages read the same objects to execute it, so a config is parsed one way, and once.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from engine.config import expr
from engine.errors import ConfigError

DERIVED = "features.derived."


@dataclass(frozen=True)
class Aggregation:
    """One aggregation of events per entity.

    Args:
        pandas: The pandas reduction over the aggregated column.
        fill: What an entity without events gets (None: missing).
        needs_column: Whether ``column`` is required (else the event time is used).
        numeric: Whether the column must hold numbers.
    """

    pandas: str
    fill: float | None
    needs_column: bool
    numeric: bool = False


#: Every aggregation a feature group may use: the one registry of their names.
AGGREGATIONS: dict[str, Aggregation] = {
    "count": Aggregation("size", 0.0, needs_column=False),
    "sum": Aggregation("sum", 0.0, needs_column=True, numeric=True),
    "mean": Aggregation("mean", None, needs_column=True, numeric=True),
    "min": Aggregation("min", None, needs_column=True, numeric=True),
    "max": Aggregation("max", None, needs_column=True, numeric=True),
    "last": Aggregation("last", None, needs_column=True),
    "nunique": Aggregation("nunique", 0.0, needs_column=True),
    "days_since_last": Aggregation("max", None, needs_column=False),
    "days_since_first": Aggregation("min", None, needs_column=False),
}


def is_selector(value: Any) -> bool:
    """Whether an ``attributes`` entry selects many columns (``{from: loans, columns: all}``)."""
    return isinstance(value, Mapping) and "columns" in value
# ------------------------------------------------------------------ data.sources.<name>.columns

#: The column types a source may declare (``data.sources.<name>.columns``), by the name
#: a config uses; ``string`` is another name for ``str``.
COLUMN_TYPES: dict[str, str] = {"int": "int", "float": "float", "bool": "bool", "str": "str", "string": "str",
                                "category": "category", "datetime": "datetime"}
#: The key column the engine adds to a source declared with ``key: null``: the row's
#: number, from 1 in the order the source gives its rows.
ROW_NUMBER = "row_number"


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column of a source: ``tenure: int`` or ``{type: float, nullable: true}``.

    Args:
        type: The canonical type: ``int``, ``float``, ``bool``, ``str``, ``category`` or
            ``datetime``.
        nullable: Whether missing values are allowed; a declared column allows none by
            default.
        format: A datetime column's ``strftime`` format (``%d/%m/%Y``); None: inferred.
    """

    type: str
    nullable: bool = False
    format: str | None = None

    @classmethod
    def from_config(cls, value: str | Mapping[str, Any]) -> ColumnSpec:
        if isinstance(value, str):
            return cls(type=COLUMN_TYPES[value])
        return cls(type=COLUMN_TYPES[value["type"]], nullable=bool(value.get("nullable", False)),
                   format=value.get("format"))

    def to_json(self) -> dict[str, Any]:
        """What the run records: the type, whether it may be missing, the format if any."""
        out: dict[str, Any] = {"type": self.type, "nullable": self.nullable}
        if self.format:
            out["format"] = self.format
        return out


def attribute_ref(value: str | Mapping[str, Any]) -> tuple[str, str, str | None]:
    """``crm.segment`` or ``{from: crm.segment, ttl: 90d}`` as (source, column, ttl)."""
    if isinstance(value, str):
        text, ttl = value, None
    else:
        text, ttl = value["from"], value.get("ttl")
    source, _, column = text.partition(".")
    return source, column, ttl


#: Names an expression may read besides columns: the run's cut-off, and each row's own
#: cut-off (its label time when the entity declares one, else as_of).
CUT_OFFS = frozenset({"as_of", "cutoff"})


@dataclass(frozen=True)
class Attribute:
    """One column joined onto the spine (``crm.segment``, or ``{from: crm.segment, ttl: 90d}``).

    Args:
        source: The source it is read from.
        column: The column of that source.
        ttl: No value older than this (parsed ``ttl``); None: any age.
        selector: The selector (``features.attributes.<selector>``) that took it, or None
            when it is declared on its own.
    """

    source: str
    column: str
    ttl: pd.Timedelta | None = None
    selector: str | None = None


@dataclass(frozen=True)
class Selector:
    """Many columns of one source joined as attributes at once, each under its own name.

    Declared as an ``attributes`` entry whose value has ``columns``::

        attributes:
          loan_columns: {from: loans, columns: all, exclude: [loan_id, issued_on]}

    The columns are known only once the source is read, so :meth:`FeatureSpec.select`
    expands the selector into one :class:`Attribute` per column then. A selector never
    takes the entity key, the entity's label time, a column the target reads (that
    would leak the label), or a name declared elsewhere in ``features``: those are
    skipped without a word, so ``columns: all`` means "every other column".

    Args:
        source: The source whose columns are taken.
        columns: The columns, in order; None: all of them, in the source's order.
        exclude: Columns left out.
    """

    source: str
    columns: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class AggregationSpec:
    """One declared aggregation of a feature group (``{agg: sum, column: amount, window: 30d}``).

    Args:
        agg: A name of :data:`AGGREGATIONS`.
        column: The aggregated column; None: the event time.
        window: Only events this close before the cut-off (parsed ``window``); None: all.
    """

    agg: str
    column: str | None = None
    window: pd.Timedelta | None = None


@dataclass(frozen=True)
class FeatureGroup:
    """A group of aggregations over one event source.

    Args:
        source: The event source aggregated.
        aggregations: Feature name -> its aggregation, in declaration order.
        version: The user's label for this definition (``version``), or None.
        definition: ``source`` and ``aggregations`` as declared: the store key of the
            group's table hashes it.
    """

    source: str
    aggregations: Mapping[str, AggregationSpec]
    version: Any = None
    definition: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureSpec:
    """The ``features`` group, parsed and checked against the declared sources.

    Everything the feature stage reads: expressions are parsed trees, windows and ttls
    are durations, so nothing is parsed again when the table is built.

    Args:
        expressions: Config path (``features.derived.avg_expenditure``) -> parsed tree.
        derived_order: Derived feature names, each after the names it reads.
        features: Every feature name, in order: attributes, aggregations, derived.
        used: The features the model uses (``features.use``; all of them when it is null).
        key: The entity key (``entity.key``).
        entity_source: The spine: the source with one row per entity (``entity.source``).
        label_time: The spine's column of each row's own cut-off, or None.
        population: The population expression as written, or None (every spine row).
        attributes: Attribute feature name -> what it joins.
        selectors: Selector name -> the columns it joins, expanded into ``attributes``
            by :meth:`select` once the sources are read (then empty).
        groups: Group name -> its aggregations.
        derived: Derived feature name -> its expression as written.
        target: The target's column name.
        target_expr: The target expression as written.
        store: The feature store folder, relative to the project (``store.path``), or None.
        declared: The group as declared: the store key of the whole table hashes it.
    """

    expressions: Mapping[str, expr.Node]
    derived_order: tuple[str, ...]
    features: tuple[str, ...]
    used: tuple[str, ...] = ()
    key: str = ""
    entity_source: str = ""
    label_time: str | None = None
    population: str | None = None
    attributes: Mapping[str, Attribute] = field(default_factory=dict)
    selectors: Mapping[str, Selector] = field(default_factory=dict)
    groups: Mapping[str, FeatureGroup] = field(default_factory=dict)
    derived: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    target_expr: str = ""
    store: str | None = None
    declared: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, features_cfg: Mapping[str, Any],
                    sources: Mapping[str, Mapping[str, Any]] | None = None) -> FeatureSpec:
        """Parse and check a ``features`` group, before any data is read.

        Args:
            features_cfg: The resolved ``features`` group.
            sources: ``data.sources``, to check the source names and timestamps the
                features rely on; None skips those checks.

        Raises:
            ConfigError: An expression does not parse; derived features read each other
                in a cycle; two features, the key or the target share a name; a feature
                reads a column the target reads (label leakage); a source is unknown, or
                an event group's source declares no timestamp.
        """
        found: dict[str, str] = {}
        if features_cfg.get("population"):
            found["features.population"] = features_cfg["population"]
        for name, text in (features_cfg.get("derived") or {}).items():
            found[f"{DERIVED}{name}"] = text
        found["features.target.expr"] = features_cfg["target"]["expr"]
        parsed: dict[str, expr.Node] = {}
        for path, text in found.items():
            try:
                parsed[path] = expr.parse(text)
            except expr.ExpressionError as exc:
                raise ConfigError(path, f"invalid expression {text!r}: {exc}") from exc
        derived = {p.removeprefix(DERIVED): node for p, node in parsed.items() if p.startswith(DERIVED)}
        try:
            order = expr.dependency_order(derived)
        except expr.ExpressionError as exc:
            first = str(exc).removeprefix("cycle: ").split(" ")[0]
            raise ConfigError(f"{DERIVED}{first}", f"derived features must not read themselves, got a {exc}") from exc
        names = _check_names(features_cfg)
        durations = _check_durations(features_cfg)
        _check_leakage(features_cfg, parsed)
        if sources is not None:
            _check_sources(features_cfg, sources)
        entity = features_cfg["entity"]
        attributes = {}
        selectors = {}
        for name, ref in (features_cfg.get("attributes") or {}).items():
            if is_selector(ref):
                columns = ref["columns"]
                selectors[name] = Selector(ref["from"], None if columns == "all" else tuple(columns),
                                           tuple(ref.get("exclude") or ()))
                continue
            source, column, _ = attribute_ref(ref)
            attributes[name] = Attribute(source, column, durations.get(f"features.attributes.{name}.ttl"))
        groups = {}
        for group, spec in (features_cfg.get("groups") or {}).items():
            aggregations = {
                name: AggregationSpec(agg["agg"], agg.get("column"),
                                      durations.get(f"features.groups.{group}.aggregations.{name}.window"))
                for name, agg in spec["aggregations"].items()}
            groups[group] = FeatureGroup(spec["source"], aggregations, spec.get("version"),
                                         {"source": spec["source"], "aggregations": spec["aggregations"]})
        return cls(
            expressions=parsed, derived_order=tuple(order), features=tuple(names),
            used=_used(features_cfg, names, deferred=bool(selectors)),
            key=entity["key"], entity_source=entity["source"], label_time=entity.get("label_time"),
            population=features_cfg.get("population") or None, attributes=attributes, selectors=selectors,
            groups=groups,
            derived=dict(features_cfg.get("derived") or {}), target=features_cfg["target"]["name"],
            target_expr=features_cfg["target"]["expr"], store=(features_cfg.get("store") or {}).get("path"),
            declared=features_cfg,
        )

    def select(self, columns_of: Mapping[str, Sequence[Any]]) -> FeatureSpec:
        """This spec with every selector expanded into one attribute per selected column.

        Attributes keep the order of their declarations, a selector's columns the order
        of its list (or of the source). ``features`` and ``used`` are worked out again,
        and a name in ``features.use`` that is still unknown is an error now.

        Args:
            columns_of: Source name -> its columns, as read.

        Raises:
            ConfigError: A selector's source is not loaded, or it names (in ``columns``
                or ``exclude``) a column the source does not have.
        """
        if not self.selectors:
            return self
        declared = self.declared.get("attributes") or {}
        target_reads = expr.names(self.expressions["features.target.expr"]) - CUT_OFFS
        taken = {self.key, self.target, *self.attributes, *self.derived} | ({self.label_time} - {None})
        taken |= {name for group in self.groups.values() for name in group.aggregations}
        attributes: dict[str, Attribute] = {}
        selected: dict[str, list[str]] = {}
        for name in declared:
            if name in self.attributes:
                attributes[name] = self.attributes[name]
                continue
            selector = self.selectors[name]
            path = f"features.attributes.{name}"
            if selector.source not in columns_of:
                raise ConfigError(f"{path}.from", f"unknown source {selector.source!r}; expected one of: "
                                  f"{', '.join(columns_of)}")
            present = [str(c) for c in columns_of[selector.source]]
            for key, listed in (("columns", selector.columns or ()), ("exclude", selector.exclude)):
                for i, column in enumerate(listed):
                    if column not in present:
                        close = difflib.get_close_matches(column, present, n=1)
                        hint = f"did you mean {close[0]!r}? " if close else ""
                        raise ConfigError(f"{path}.{key}.{i}", f"source {selector.source!r} has no column "
                                          f"{column!r}; {hint}expected one of its columns")
            skipped = set(selector.exclude) | taken
            if selector.source == self.entity_source:
                skipped |= target_reads  # the label's own columns: leakage
            selected[name] = [c for c in dict.fromkeys(selector.columns or present)
                              if c not in skipped and c not in attributes]
            attributes.update((column, Attribute(selector.source, column, selector=name)) for column in selected[name])
        groups = {group: list(spec.aggregations) for group, spec in self.groups.items()}
        names = [*attributes, *(n for names in groups.values() for n in names), *self.derived]
        used = _used(self.declared, names, groups={**groups, **selected})
        return dataclasses.replace(self, attributes=attributes, selectors={}, features=tuple(names), used=used)

    def passthrough(self) -> dict[str, tuple[str, str]]:
        """The features that are a source column as it is: name -> (source, column).

        Attributes are; so is a derived feature whose expression is a bare name of the
        spine's columns (``age: age``). A quality rule on such a column judges the feature's
        values too, so serving can apply it to a request's row.
        """
        out = {name: (attribute.source, attribute.column) for name, attribute in self.attributes.items()}
        known = {*self.attributes, *(n for group in self.groups.values() for n in group.aggregations), *self.derived}
        for name in self.derived_order:
            node = self.expressions[f"{DERIVED}{name}"]
            if isinstance(node, expr.Name) and node.name not in known and node.name not in CUT_OFFS:
                out[name] = (self.entity_source, node.name)
        return out

    def lineage(self, timestamps: Mapping[str, str | None] | None = None) -> dict[str, frozenset[str]]:
        """The source columns each column of the feature table is computed from, as ``source.column``.

        The table's columns are the entity key, the features and the target.

        Attributes read one column; an aggregation reads its column (or the event time
        for counts and recency); a derived feature reads the lineage of every name in its
        expression, and a name that is not a feature is a column of the entity's source.
        Compliance checks read this, so a derived feature built on a protected column is
        caught by the column's name.

        Args:
            timestamps: Source name -> its event-time column (``data.sources.<name>.timestamp``),
                which counts and recency read; without it that column is ``<event time>``.
        """
        timestamps = timestamps or {}
        spine = self.entity_source
        out: dict[str, frozenset[str]] = {}
        for name, attribute in self.attributes.items():
            out[name] = frozenset({f"{attribute.source}.{attribute.column}"})
        for group in self.groups.values():
            for name, agg in group.aggregations.items():
                column = agg.column or timestamps.get(group.source) or "<event time>"
                out[name] = frozenset({f"{group.source}.{column}"})
        for name in self.derived_order:
            columns: set[str] = set()
            for read in expr.names(self.expressions[f"{DERIVED}{name}"]) - CUT_OFFS:
                columns |= out.get(read, {f"{spine}.{read}"})
            out[name] = frozenset(columns)
        out[self.key] = frozenset({f"{spine}.{self.key}"})
        out[self.target] = frozenset(f"{spine}.{n}" for n in expr.names(self.expressions["features.target.expr"])
                                     - CUT_OFFS)
        return out


def _used(features_cfg: Mapping[str, Any], names: list[str], *, deferred: bool = False,
          groups: Mapping[str, list[str]] | None = None) -> tuple[str, ...]:
    """Expand ``features.use`` (group names and feature names) to feature names, in table order.

    Args:
        features_cfg: The ``features`` group as declared.
        names: Every feature name, in table order.
        deferred: Selectors are not expanded yet: a name not known now may be one of
            their columns, checked again by :meth:`FeatureSpec.select`.
        groups: Group (or selector) name -> its feature names; default: the groups.
    """
    use = features_cfg.get("use")
    if use is None:
        return tuple(names)
    if groups is None:
        groups = {group: list(spec["aggregations"]) for group, spec in (features_cfg.get("groups") or {}).items()}
    chosen: set[str] = set()
    for i, name in enumerate(use):
        if name in groups:
            chosen.update(groups[name])
        elif name in names:
            chosen.add(name)
        elif deferred:
            continue
        else:
            choices = [*groups, *names]
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"features.use.{i}", f"unknown feature or group {name!r}; {hint}expected one of: "
                              f"{', '.join(choices)}")
    if not chosen and not deferred:
        raise ConfigError("features.use", "must name at least one feature or group, got an empty list")
    return tuple(n for n in names if n in chosen)


def _check_names(features_cfg: Mapping[str, Any]) -> list[str]:
    """Feature names, unique across attributes, aggregations and derived, and apart
    from the entity key and the target."""
    seen: dict[str, str] = {
        features_cfg["entity"]["key"]: "features.entity.key",
        features_cfg["target"]["name"]: "features.target.name",
    }
    names = []
    declared = [(f"features.attributes.{n}", n) for n, ref in (features_cfg.get("attributes") or {}).items()
                if not is_selector(ref)]
    for group, spec in (features_cfg.get("groups") or {}).items():
        declared += [(f"features.groups.{group}.aggregations.{n}", n) for n in spec["aggregations"]]
    declared += [(f"{DERIVED}{n}", n) for n in features_cfg.get("derived") or {}]
    for path, name in declared:
        if name in seen:
            raise ConfigError(path, f"feature name {name!r} is already used by {seen[name]}; "
                              "expected a name used once")
        seen[name] = path
        names.append(name)
    return names


def _check_durations(features_cfg: Mapping[str, Any]) -> dict[str, pd.Timedelta]:
    """Every ttl and window is a duration in range (the schema checks only its form).

    Returns:
        Config path -> the parsed duration, for each ttl and window declared.
    """
    found = [(f"features.attributes.{name}.ttl", attribute_ref(ref)[2])
             for name, ref in (features_cfg.get("attributes") or {}).items() if not is_selector(ref)]
    for group, spec in (features_cfg.get("groups") or {}).items():
        found += [(f"features.groups.{group}.aggregations.{name}.window", agg.get("window"))
                  for name, agg in spec["aggregations"].items()]
    parsed = {}
    for path, text in found:
        if text:
            try:
                parsed[path] = expr.duration(text)
            except expr.ExpressionError as exc:
                raise ConfigError(path, str(exc)) from exc
    return parsed


def _check_leakage(features_cfg: Mapping[str, Any], parsed: Mapping[str, expr.Node]) -> None:
    """No feature may read a column the target is computed from."""
    label_columns = expr.names(parsed["features.target.expr"]) - CUT_OFFS
    for path, node in parsed.items():
        if path.startswith(DERIVED):
            leaked = sorted(expr.names(node) & label_columns)
            if leaked:
                raise ConfigError(path, f"reads {leaked[0]!r}, which the target reads: that leaks the label "
                                  "into the features; expected columns known at as_of")
    for name, ref in (features_cfg.get("attributes") or {}).items():
        if is_selector(ref):
            continue  # a selector skips the target's columns itself
        source, column, _ = attribute_ref(ref)
        if column in label_columns and source == features_cfg["entity"]["source"]:
            raise ConfigError(f"features.attributes.{name}", f"'{source}.{column}' is read by the target: that "
                              "leaks the label into the features; expected columns known at as_of")


def _check_sources(features_cfg: Mapping[str, Any], sources: Mapping[str, Mapping[str, Any]]) -> None:
    known = ", ".join(sources)

    def require(path: str, name: str) -> Mapping[str, Any]:
        if name not in sources:
            raise ConfigError(path, f"unknown source {name!r}; expected one of: {known}")
        return sources[name]

    require("features.entity.source", features_cfg["entity"]["source"])
    for name, ref in (features_cfg.get("attributes") or {}).items():
        if is_selector(ref):
            require(f"features.attributes.{name}.from", ref["from"])
            continue
        source, _, ttl = attribute_ref(ref)
        declared = require(f"features.attributes.{name}", source)
        if ttl and not declared.get("timestamp"):
            raise ConfigError(f"features.attributes.{name}.ttl", f"source {source!r} declares no timestamp, so "
                              "a ttl has nothing to measure; expected a source with data.sources.<name>.timestamp")
    for group, spec in (features_cfg.get("groups") or {}).items():
        source = require(f"features.groups.{group}.source", spec["source"])
        if not source.get("timestamp"):
            raise ConfigError(f"features.groups.{group}.source", f"source {spec['source']!r} declares no "
                              "timestamp; expected an event source (data.sources.<name>.timestamp)")
        for name, agg in spec["aggregations"].items():
            if AGGREGATIONS[agg["agg"]].needs_column and not agg.get("column"):
                raise ConfigError(f"features.groups.{group}.aggregations.{name}.column",
                                  f"missing required key; aggregation {agg['agg']!r} needs a column")


def lineage(features_cfg: Mapping[str, Any],
            sources: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, frozenset[str]]:
    """:meth:`FeatureSpec.lineage` of a ``features`` group as declared (parsed here).

    ``sources`` (``data.sources``) names the event-time column of counts and recency.
    """
    timestamps = {name: source.get("timestamp") for name, source in (sources or {}).items()}
    return FeatureSpec.from_config(features_cfg).lineage(timestamps)
