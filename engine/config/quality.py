"""Data-quality rules as declarations: what ``conf/quality/`` may say, parsed and checked.

Rules are data. Each rule type is a small frozen dataclass registered under its
``check`` name; its fields are the YAML keys one to one, so the JSON Schema of a rule
is generated from the dataclass and a wrong key or type is reported like any other
config error. Executing a rule is separate: :mod:`engine.stages.quality` registers
one vectorised function per rule type.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import pandas as pd

from engine.config import expr
from engine.errors import ConfigError

DIMENSIONS = ("accuracy", "completeness", "consistency", "timeliness")
SEVERITIES = ("error", "warn")

RULE_TYPES: dict[str, type[Rule]] = {}


def register(name: str, family: str) -> Callable[[type[Rule]], type[Rule]]:
    """Class decorator: make a rule type available as ``check: <name>``.

    Args:
        name: The ``check`` value.
        family: The dimension the check usually serves, for the reference table (a
            rule still declares its own ``dimension``).
    """

    def add(cls: type[Rule]) -> type[Rule]:
        cls.check = name
        cls.family = family
        RULE_TYPES[name] = cls
        return cls

    return add


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Fields every rule has.

    Args:
        name: The rule's key in ``quality.rules``.
        dimension: accuracy, completeness, consistency or timeliness.
        severity: ``error`` stops the run before features (the quality gate);
            ``warn`` is recorded and shown.
        mostly: The share of rows that must pass, in [0, 1] (row-level rules).
        filter: An expression over the source's columns; only rows where it holds
            are checked (parsed, never ``eval``-ed).
        description: For people.
    """

    name: str
    dimension: str
    severity: str = "error"
    mostly: float = 1.0
    filter: str | None = None
    description: str = ""
    check: ClassVar[str] = ""
    family: ClassVar[str] = ""

    @cached_property
    def filter_node(self) -> expr.Node | None:
        """``filter`` parsed, once: :func:`parse_rules` reads it to check it, the quality
        stage evaluates the same tree. None without a filter.

        Raises:
            expr.ExpressionError: The filter does not parse.
        """
        return expr.parse(self.filter) if self.filter else None

    def reads(self) -> Iterator[tuple[str, str, str | None]]:
        """Every (config key, source, column) the rule reads; column None: the whole table.

        Validation checks the sources; the quality stage checks the columns exist
        before any rule runs, so a typo is one clear error, not a failed rule.
        """
        source = getattr(self, "source", None)
        if source is None:
            return
        yield "source", source, None
        for key in ("column", "left", "right"):
            if isinstance(getattr(self, key, None), str):
                yield key, source, getattr(self, key)
        if self.check != "columns_exist":  # that rule's job is to report missing ones
            for column in getattr(self, "columns", None) or ():
                yield "columns", source, column


# ------------------------------------------------------------------ completeness


@register("not_null", "completeness")
@dataclass(frozen=True, kw_only=True)
class NotNull(Rule):
    """At least ``mostly`` of the rows have a value. Denominator: all rows."""

    source: str
    column: str


@register("missing_share", "completeness")
@dataclass(frozen=True, kw_only=True)
class MissingShare(Rule):
    """The share of missing values is at most ``max``. Denominator: all rows."""

    source: str
    column: str
    max: float


@register("row_count", "completeness")
@dataclass(frozen=True, kw_only=True)
class RowCount(Rule):
    """The number of rows is between ``min`` and ``max`` (either may be null)."""

    source: str
    min: int | None = None
    max: int | None = None


@register("columns_exist", "completeness")
@dataclass(frozen=True, kw_only=True)
class ColumnsExist(Rule):
    """Every column in ``columns`` exists. Denominator: the required columns."""

    source: str
    columns: list[str]


# ------------------------------------------------------------------ accuracy / validity


@register("between", "accuracy")
@dataclass(frozen=True, kw_only=True)
class Between(Rule):
    """Values lie in [min, max] (``strict``: open interval); numbers or dates. Denominator: non-null rows."""

    source: str
    column: str
    min: Any = None
    max: Any = None
    strict: bool = False


@register("in_set", "accuracy")
@dataclass(frozen=True, kw_only=True)
class InSet(Rule):
    """Values are among ``values``. Denominator: non-null rows."""

    source: str
    column: str
    values: list[Any]


@register("not_in_set", "accuracy")
@dataclass(frozen=True, kw_only=True)
class NotInSet(Rule):
    """Values are none of ``values``. Denominator: non-null rows."""

    source: str
    column: str
    values: list[Any]


@register("regex", "accuracy")
@dataclass(frozen=True, kw_only=True)
class Regex(Rule):
    """Values, as text, fully match ``pattern``. Denominator: non-null rows."""

    source: str
    column: str
    pattern: str


@register("dtype", "accuracy")
@dataclass(frozen=True, kw_only=True)
class Dtype(Rule):
    """The column holds ``expected`` values: integer, float, numeric, string, bool,
    datetime or category. Unexpected: non-null values of another kind."""

    source: str
    column: str
    expected: str


@register("length", "accuracy")
@dataclass(frozen=True, kw_only=True)
class Length(Rule):
    """Text length is in [min, max]. Denominator: non-null rows."""

    source: str
    column: str
    min: int | None = None
    max: int | None = None


@register("stat", "accuracy")
@dataclass(frozen=True, kw_only=True)
class Stat(Rule):
    """A column statistic (min, max, mean, median, std or quantile ``q``) is in [min, max]."""

    source: str
    column: str
    stat: str
    q: float | None = None
    min: float | None = None
    max: float | None = None


# ------------------------------------------------------------------ consistency


@register("unique", "consistency")
@dataclass(frozen=True, kw_only=True)
class Unique(Rule):
    """No two rows share the values of ``columns`` (one column or a compound key).
    Unexpected: rows in a duplicated group. Denominator: rows with all columns non-null."""

    source: str
    columns: list[str]


@register("compare", "consistency")
@dataclass(frozen=True, kw_only=True)
class Compare(Rule):
    """Row by row, ``left op right`` holds. Each side is a column or an expression over
    the source's columns: ``left: discount``, ``op: <=``, ``right: amount * 0.5``.
    Denominator: rows where both sides are non-null."""

    source: str
    left: str
    op: str
    right: str

    @cached_property
    def sides(self) -> tuple[expr.Node, expr.Node]:
        """``left`` and ``right`` parsed, once. A side with none of the expression
        language's operators is a column name as written, so a column such as
        ``total charges`` needs no quoting.

        Raises:
            expr.ExpressionError: A side is an expression that does not parse.
        """
        return _side(self.left), _side(self.right)

    def reads(self) -> Iterator[tuple[str, str, str | None]]:
        yield "source", self.source, None
        for key, node in zip(("left", "right"), self.sides, strict=True):
            for column in sorted(expr.names(node) - {"as_of"}):
                yield key, self.source, column


_OPERATOR = re.compile(r"[-+*/%<>=!()]|\b(?:and|or|not|is)\b|^\s*[\d.]+\s*$")


def _side(text: str) -> expr.Node:
    return expr.parse(text) if _OPERATOR.search(text) else expr.Name(text.strip())


@register("agree", "consistency")
@dataclass(frozen=True, kw_only=True)
class Agree(Rule):
    """A field agrees between two sources joined on a key: ``left: customers.active``,
    ``right: crm.active``, ``key: customer_id`` (not ``on``: YAML reads that as true).
    Denominator: joined rows."""

    left: str
    right: str
    key: str

    def reads(self) -> Iterator[tuple[str, str, str | None]]:
        for key in ("left", "right"):
            source, _, column = getattr(self, key).partition(".")
            yield key, source, None
            yield key, source, column
            yield "key", source, self.key


@register("foreign_key", "consistency")
@dataclass(frozen=True, kw_only=True)
class ForeignKey(Rule):
    """Every non-null value of ``column`` exists in ``references`` (``source.column``).
    Denominator: non-null rows."""

    source: str
    column: str
    references: str

    def reads(self) -> Iterator[tuple[str, str, str | None]]:
        yield from super().reads()
        source, _, column = self.references.partition(".")
        yield "references", source, None
        yield "references", source, column


@register("row_count_equal", "consistency")
@dataclass(frozen=True, kw_only=True)
class RowCountEqual(Rule):
    """Two sources have the same number of rows (``left`` and ``right`` are source names)."""

    left: str
    right: str

    def reads(self) -> Iterator[tuple[str, str, str | None]]:
        yield "left", self.left, None
        yield "right", self.right, None


# ------------------------------------------------------------------ timeliness


@register("freshness", "timeliness")
@dataclass(frozen=True, kw_only=True)
class Freshness(Rule):
    """The newest event at or before ``as_of`` is at most ``max_age`` old (a duration
    such as 1d or 12h), measured against the run's ``as_of``, never the wall clock."""

    source: str
    column: str
    max_age: str

    @cached_property
    def max_age_delta(self) -> pd.Timedelta:
        """``max_age`` parsed, once (:func:`parse_rules` reads it to check it).

        Raises:
            expr.ExpressionError: It is not a duration.
        """
        return expr.duration(self.max_age)


@register("after_cutoff", "timeliness")
@dataclass(frozen=True, kw_only=True)
class AfterCutoff(Rule):
    """The share of events after ``as_of`` is at most ``max``. Denominator: non-null times."""

    source: str
    column: str
    max: float


@register("newest_between", "timeliness")
@dataclass(frozen=True, kw_only=True)
class NewestBetween(Rule):
    """The newest timestamp lies in [min, max] (ISO times; either may be null)."""

    source: str
    column: str
    min: str | None = None
    max: str | None = None


# ------------------------------------------------------------------ parsing and schema

COMPARE_OPS = ("<", "<=", ">", ">=", "==", "!=")
DTYPES = ("integer", "float", "numeric", "string", "bool", "datetime", "category")
STATS = ("min", "max", "mean", "median", "std", "quantile")
_ENUMS = {"dimension": DIMENSIONS, "severity": SEVERITIES, "op": COMPARE_OPS, "expected": DTYPES, "stat": STATS}
#: Keys that name ``source.column``, and the one check where they do.
_QUALIFIED = {"left": "agree", "right": "agree", "references": "foreign_key"}


def parse_rules(quality_cfg: Mapping[str, Any]) -> dict[str, Rule]:
    """Turn ``quality.rules`` into rule objects (the schema has checked their shape).

    Raises:
        ConfigError: A rule's filter or duration does not parse.
    """
    rules: dict[str, Rule] = {}
    for name, spec in (quality_cfg.get("rules") or {}).items():
        params = {k: v for k, v in spec.items() if k != "check"}
        rule = RULE_TYPES[spec["check"]](name=name, **params)
        path = f"quality.rules.{name}"
        if rule.filter:
            try:
                rule.filter_node  # noqa: B018 - parsed here, kept on the rule for the stage
            except expr.ExpressionError as exc:
                raise ConfigError(f"{path}.filter", f"invalid expression {rule.filter!r}: {exc}") from exc
        if rule.filter and getattr(rule, "source", None) is None:
            raise ConfigError(f"{path}.filter", f"check {rule.check!r} reads two sources, so a filter has no "
                              "single source to apply to; expected no filter")
        if isinstance(rule, Compare):
            for key, side in (("left", rule.left), ("right", rule.right)):
                try:
                    _side(side)
                except expr.ExpressionError as exc:
                    raise ConfigError(f"{path}.{key}", f"invalid expression {side!r}: {exc}") from exc
        if isinstance(rule, Freshness):
            try:
                rule.max_age_delta  # noqa: B018 - parsed here, kept on the rule for the stage
            except expr.ExpressionError as exc:
                raise ConfigError(f"{path}.max_age", str(exc)) from exc
        if isinstance(rule, Regex):
            try:
                re.compile(rule.pattern)
            except re.error as exc:
                raise ConfigError(f"{path}.pattern", f"must be a regular expression, got {rule.pattern!r} ({exc})") \
                    from exc
        if isinstance(rule, NewestBetween):
            for key in ("min", "max"):
                bound = getattr(rule, key)
                if bound is not None and pd.isna(pd.to_datetime(bound, errors="coerce")):
                    raise ConfigError(f"{path}.{key}", f"must be a date or time such as 2026-10-01, got {bound!r}")
        if isinstance(rule, RowCount | Length | Stat) and None not in (rule.min, rule.max) and rule.min > rule.max:
            raise ConfigError(f"{path}.min", f"must be <= max ({rule.max}), got {rule.min}")
        rules[name] = rule
    return rules


@dataclass(frozen=True)
class QualitySpec:
    """The ``quality`` group, parsed: its rules by name, in declaration order."""

    rules: Mapping[str, Rule]

    @classmethod
    def from_config(cls, quality_cfg: Mapping[str, Any]) -> QualitySpec:
        """Parse a ``quality`` group (:func:`parse_rules`).

        Raises:
            ConfigError: A rule's filter, duration, pattern or bounds do not parse.
        """
        return cls(parse_rules(quality_cfg))


def schema() -> dict[str, Any]:
    """The JSON Schema of one rule: common keys, then the keys of its ``check``."""
    return rules_schema(RULE_TYPES, _json_type)


def rules_schema(types: Mapping[str, type], json_type: Callable[[str, type], dict[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of one rule of a registry of rule dataclasses (``check`` -> class):
    the keys every rule has, then, per ``check``, its class's fields as the only keys allowed.

    Args:
        types: The registry (this module's or :mod:`engine.config.monitor`'s).
        json_type: Field name, class -> the field's JSON Schema.
    """
    branches = []
    for check, cls in sorted(types.items()):
        props: dict[str, Any] = {"check": {"const": check}}
        required = ["check"]
        for f in fields(cls):
            if f.name == "name":
                continue
            props[f.name] = json_type(f.name, cls)
            if f.default is MISSING and f.default_factory is MISSING:
                required.append(f.name)
        branches.append({
            "if": {"properties": {"check": {"const": check}}, "required": ["check"]},
            "then": {"properties": props, "required": required, "additionalProperties": False},
        })
    return {
        "type": "object",
        "required": ["check", "dimension"],
        "properties": {"check": {"enum": sorted(types)}},
        "allOf": branches,
    }


def _json_type(name: str, cls: type) -> dict[str, Any]:
    if name in _ENUMS:
        return {"enum": list(_ENUMS[name])}
    if name == "mostly":
        return {"type": "number", "minimum": 0, "maximum": 1}
    if name == "filter":
        return {"type": ["string", "null"]}
    if name in _QUALIFIED and _QUALIFIED[name] == cls.check:
        pattern = "^[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*$"
        return {"type": "string", "pattern": pattern, "x-expected": "'source.column'"}
    if name == "q":
        return {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    if name in ("columns", "values"):
        return {"type": "array", "minItems": 1, "items": _from_hint(typing.get_args(typing.get_type_hints(cls)[name])[0])}
    hint = typing.get_type_hints(cls)[name]
    return _from_hint(hint)


def _from_hint(hint: Any) -> dict[str, Any]:
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if hint in simple:
        return {"type": simple[hint]}
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_from_hint(arg) for arg in typing.get_args(hint)]
        kinds: list[str] = []
        for part in parts:
            kind = part.get("type")
            if kind is None:
                return {}
            kinds += [kind] if isinstance(kind, str) else kind
        return {"type": kinds}
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return {"type": "array", "items": _from_hint(item)}
    if hint is type(None):
        return {"type": "null"}
    return {}


def reference() -> str:
    """The Markdown table of every rule type and its keys, from the declarations (the
    README's copy is kept current by tests/unit/config/test_quality.py)."""
    common = [f for f in fields(Rule) if f.name != "name"]
    lines = ["| check | usual dimension | keys (**required**, optional=default) | what it checks |", "|---|---|---|---|",
             "| every rule | | " + ", ".join(_key(f) for f in common) + " | " + _arguments(Rule, common) + " |"]
    for family in DIMENSIONS:
        for check, cls in RULE_TYPES.items():
            if cls.family == family:
                own = [f for f in fields(cls) if f.name not in {c.name for c in fields(Rule)}]
                lines.append(f"| `{check}` | {family} | {', '.join(_key(f) for f in own)} | {_summary(cls)} |")
    return "\n".join(lines) + "\n"


def _key(f: Any) -> str:
    if f.default is MISSING and f.default_factory is MISSING:
        return f"**`{f.name}`**"
    default = "null" if f.default is None else str(f.default).lower() if isinstance(f.default, bool) else f.default
    return f"`{f.name}`={default!s}" if default != "" else f"`{f.name}`"


def _summary(cls: type) -> str:
    text = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
    return re.sub(r"``([^`]+)``", r"`\1`", text).replace("|", "\\|")


def _arguments(cls: type, keys: list[Any]) -> str:
    """The Args of a Google docstring, for ``keys``, as one cell: "`key`: text; ..."."""
    doc = (cls.__doc__ or "").split("Args:", 1)[-1]
    found = dict(re.findall(r"^\s{8}(\w+): (.+?)(?=^\s{8}\w+: |\Z)", doc, flags=re.M | re.S))
    parts = [f"`{f.name}`: {' '.join(found[f.name].split()).rstrip('.')}" for f in keys if f.name in found]
    return re.sub(r"``([^`]+)``", r"`\1`", "; ".join(parts)).replace("|", "\\|")
