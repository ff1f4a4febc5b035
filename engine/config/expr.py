"""A small expression language for features, filters and targets: parsed, never ``eval``-ed.

Configs are code that other people share, so an expression such as
``total_expenditure / n_orders`` is tokenised and parsed into a tree of frozen nodes,
and evaluated by :func:`evaluate` over pandas columns. Nothing reaches Python's
``eval``; attribute access, subscripts, lambdas and dunder names cannot even be
written, and only the functions in :data:`FUNCTIONS` can be called.

Grammar (lowest precedence first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
             | sum "is" ["not"] "null"
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/" | "%") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | DURATION | STRING | "true" | "false" | "null"
             | NAME | QUOTED | NAME "(" [expr ("," expr)*] ")" | "(" expr ")"

``DURATION`` is a number with a unit: ``30d``, ``12h``, ``15m``, ``10s``, ``2w``.
``QUOTED`` is a column name in backticks, for names that are not identifiers:
``` `Churn Label` == 'Yes' ```, ``` `total.charges` / tenure ``` (as ``DataFrame.query``
writes them). It is only ever a column, never a keyword or a function.

Semantics that differ from Python on purpose:

* ``x / 0`` and ``x % 0`` are missing (NaN), not ``inf`` or an error: an average over
  zero orders is unknown. A derived feature that comes out infinite (``log(0)``) is
  stored as missing too.
* comparisons with a missing value are false; ``x is null`` tests for missing.
* ``and``, ``or`` and ``not`` work element-wise on columns.
* ``*`` multiplies numbers only: text is never repeated. Text joined with ``+`` may be
  at most :data:`MAX_TEXT` characters a value, checked before it is built.
* Integer arithmetic that leaves the 64-bit range gives a float, as a column would.

Expressions are shared config, so their size is bounded before anything is built: at
most :data:`MAX_LENGTH` characters, parentheses nested at most :data:`MAX_DEPTH` deep,
at most :data:`MAX_NESTING` operations nested in one another, and durations of at most
:data:`MAX_DURATION`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

import numpy as np
import pandas as pd


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the message says where."""


# ----------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negated: bool


Node = Literal | Name | Call | Unary | Binary | IsNull


# ------------------------------------------------------------------------ tokenizer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<duration>\d+(?:\.\d+)?(?:d|h|m|s|w)\b)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'[^'\\]*'|"[^"\\]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`]+`)
  | (?P<op><=|>=|==|!=|[-+*/%<>(),])
    """,
    re.VERBOSE,
)
_DURATION_UNITS = {"w": "W", "d": "D", "h": "h", "m": "min", "s": "s"}
_KEYWORDS = {"and", "or", "not", "is", "null", "true", "false"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            hint = " (attribute access is not allowed)" if char == "." else ""
            raise ExpressionError(f"unexpected character {char!r} at position {pos}: "
                                  f"{text[max(0, pos - 10):pos + 10]!r}{hint}")
        kind = match.lastgroup or ""
        if kind != "ws":
            word = match.group()
            if kind == "name" and word in _KEYWORDS:
                kind = word
            tokens.append(_Token(kind, word, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self, *kinds: str) -> _Token | None:
        token = self.tokens[self.i]
        if token.kind in kinds or (token.kind == "op" and token.text in kinds):
            self.i += 1
            return token
        return None

    def expect(self, text: str) -> None:
        if self.take(text) is None:
            token = self.peek()
            got = repr(token.text) if token.text else "the end"
            raise ExpressionError(f"expected {text!r} at position {token.pos}, got {got}")

    def parse(self) -> Node:
        node = self.or_()
        token = self.peek()
        if token.kind != "end":
            raise ExpressionError(f"unexpected {token.text!r} at position {token.pos}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.take("or"):
            node = Binary("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("and"):
            node = Binary("and", node, self.not_())
        return node

    def not_(self) -> Node:
        return self._prefixed("not", self.compare)

    def compare(self) -> Node:
        node = self.sum_()
        if self.take("is"):
            negated = self.take("not") is not None
            self.expect("null")
            return IsNull(node, negated)
        token = self.take("<", "<=", ">", ">=", "==", "!=")
        if token is not None:
            node = Binary(token.text, node, self.sum_())
        return node

    def sum_(self) -> Node:
        node = self.product()
        while (token := self.take("+", "-")) is not None:
            node = Binary(token.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while (token := self.take("*", "/", "%")) is not None:
            node = Binary(token.text, node, self.unary())
        return node

    def unary(self) -> Node:
        return self._prefixed("-", self.atom)

    def _prefixed(self, op: str, operand: Callable[[], Node]) -> Node:
        """``op op ... operand``, read in a loop, not by recursion: a long chain such as
        ``not not ... x`` cannot approach the recursion limit (the depth check after
        parsing refuses it)."""
        count = 0
        while self.take(op):
            count += 1
        node = operand()
        for _ in range(count):
            node = Unary(op, node)
        return node

    def atom(self) -> Node:
        token = self.peek()
        self.i += 1
        if token.kind == "number":
            text = token.text
            return Literal(int(text) if text.isdigit() and len(text) <= 18 else float(text))
        if token.kind == "duration":
            return Literal(_duration_literal(token))
        if token.kind == "string":
            return Literal(token.text[1:-1])
        if token.kind in ("true", "false"):
            return Literal(token.kind == "true")
        if token.kind == "null":
            return Literal(None)
        if token.kind == "quoted":
            name = token.text[1:-1]
            if name.startswith("__"):
                raise ExpressionError(f"name {name!r} at position {token.pos} is not allowed")
            return Name(name)
        if token.kind == "name":
            if token.text.startswith("__"):
                raise ExpressionError(f"name {token.text!r} at position {token.pos} is not allowed")
            if self.take("("):
                return self.call(token)
            return Name(token.text)
        if token.kind == "op" and token.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        got = repr(token.text) if token.text else "the end"
        raise ExpressionError(f"expected a value at position {token.pos}, got {got}")

    def call(self, name: _Token) -> Node:
        if name.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(
                f"function {name.text!r} at position {name.pos} is not allowed; "
                f"expected one of: {known}"
            )
        args: list[Node] = []
        if not self.take(")"):
            args.append(self.or_())
            while self.take(","):
                args.append(self.or_())
            self.expect(")")
        arity = FUNCTIONS[name.text][1]
        if len(args) not in arity:
            expected = " or ".join(str(n) for n in arity)
            raise ExpressionError(
                f"{name.text}() takes {expected} argument(s), got {len(args)}"
            )
        return Call(name.text, tuple(args))


def parse(text: str) -> Node:
    """Parse an expression into a tree.

    Args:
        text: The expression, e.g. ``"total_expenditure / n_orders"``.

    Returns:
        The root node.

    Raises:
        ExpressionError: The text is not a valid expression; the message gives the
            position and what was expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expected a non-empty expression, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expected at most {MAX_LENGTH} characters, got {len(text)}")
    depth = max(_running_depth(text))
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expected parentheses nested at most {MAX_DEPTH} deep, got {depth}")
    node = _Parser(text).parse()
    nesting = depth_of(node)
    if nesting > MAX_NESTING:
        raise ExpressionError(f"expected at most {MAX_NESTING} operations nested in one another, got {nesting}; "
                              "split it into several derived features")
    for part in _walk(node):  # text written in the expression is refused here, before any data is read
        texts = [side.value for side in (part.left, part.right) if isinstance(side, Literal)
                 and isinstance(side.value, str)] if isinstance(part, Binary) and part.op == "*" else []
        if texts:
            raise ExpressionError(f"'*' multiplies numbers, got the text {_clip_text(texts[0])!r}; "
                                  "text is never repeated")
    return node


#: Limits that keep the recursive parser and evaluator far from Python's recursion limit
#: (1000 frames), whatever the caller's own stack: the parser spends about 8 frames per
#: parenthesis (one per precedence level), the evaluator 1 to 3 per nested operation.
#: A real expression is a line or two, nested a few levels (a derived feature ten deep
#: is rare), so these are far above what a config needs.
MAX_LENGTH = 2000
MAX_DEPTH = 50
#: Operations nested in one another: ``a + b + c`` is 2 deep (``(a + b) + c``), ``-x`` 1.
MAX_NESTING = 100
#: The longest duration literal: 100 years, more than any look-back window, ttl or
#: freshness a config needs, and ``as_of`` plus or minus it stays inside even the narrowest
#: times pandas holds (nanoseconds: years 1677 to 2262); pandas' own limit on a duration is
#: 292 years, beyond which it raises instead of parsing.
MAX_DURATION = pd.Timedelta(days=36525)
#: The longest text value ``+`` may build (characters per value): a category such as
#: ``plan + '/' + segment`` is a few dozen; this stops chained derived features doubling
#: text until memory runs out.
MAX_TEXT = 1000
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_INT64 = 2**63 - 1


def _duration_literal(token: _Token) -> pd.Timedelta:
    """A duration token as a Timedelta, refused before it is built if over :data:`MAX_DURATION`."""
    unit = token.text[-1]
    seconds = float(token.text[:-1]) * _SECONDS[unit]
    if not seconds <= MAX_DURATION.total_seconds():
        raise ExpressionError(f"expected a duration of at most {MAX_DURATION.days}d (100 years), "
                              f"got {_clip_text(token.text)} at position {token.pos}")
    return pd.Timedelta(float(token.text[:-1]), unit=_DURATION_UNITS[unit])


def _clip_text(text: str, width: int = 40) -> str:
    return text if len(text) <= width else f"{text[:width - 10]}...{text[-7:]} ({len(text)} characters)"


def depth_of(node: Node) -> int:
    """How many operations are nested in one another in ``node`` (a literal or name is 0).

    Walked with an explicit stack, so any tree can be measured.
    """
    deepest = 0
    stack = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(current, Call):
            stack += [(arg, depth + 1) for arg in current.args]
        elif isinstance(current, Unary | IsNull):
            stack.append((current.operand, depth + 1))
        elif isinstance(current, Binary):
            stack += [(current.left, depth + 1), (current.right, depth + 1)]
    return deepest


def _running_depth(text: str) -> Iterator[int]:
    depth = 0
    yield 0
    for char in text:
        depth += (char == "(") - (char == ")")
        yield depth


def duration(text: str) -> pd.Timedelta:
    """A duration literal such as ``30d``, ``12h`` or ``2w``.

    Raises:
        ExpressionError: The text is not one duration.
    """
    node = None
    try:
        node = parse(str(text))
    except ExpressionError as exc:
        if "expected a duration" in str(exc):  # a duration out of range: say so, with the limit
            raise ExpressionError(f"expected a duration of at most {MAX_DURATION.days}d (100 years), "
                                  f"got {_clip_text(str(text))}") from exc
    if not isinstance(node, Literal) or not isinstance(node.value, pd.Timedelta):
        raise ExpressionError(f"expected a duration such as 30d or 12h, got {_clip_text(str(text))!r}")
    return node.value


def names(node: Node) -> set[str]:
    """Every column or variable name an expression reads."""
    return {n.name for n in _walk(node) if isinstance(n, Name)}


def null_handled(node: Node) -> set[str]:
    """The names whose missing values an expression handles itself: those inside an
    ``x is null`` test or a ``fillna(...)`` call."""
    return {n.name for sub in _walk(node) if isinstance(sub, IsNull) or (isinstance(sub, Call) and sub.func == "fillna")
            for n in _walk(sub) if isinstance(n, Name)}


def dependency_order(defined: Mapping[str, Node]) -> list[str]:
    """Order named expressions so that each comes after the names it reads.

    Args:
        defined: Name -> parsed expression (e.g. the derived features).

    Raises:
        ExpressionError: An expression reads itself, or several read each other in a
            cycle; the message names the cycle.
    """
    graph = {name: names(node) & set(defined) for name, node in defined.items()}
    for name, deps in graph.items():
        if name in deps:
            raise ExpressionError(f"{name} reads itself")
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ExpressionError(f"cycle: {' -> '.join(exc.args[1])}") from exc


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from _walk(arg)
    elif isinstance(node, Unary | IsNull):
        yield from _walk(node.operand)
    elif isinstance(node, Binary):
        yield from _walk(node.left)
        yield from _walk(node.right)


# ------------------------------------------------------------------------ evaluation


def _days(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.dt.total_seconds() / 86400.0
    return pd.Timedelta(value).total_seconds() / 86400.0


def _where(cond: Any, a: Any, b: Any) -> Any:
    result = np.where(_as_bool(cond), a, b)
    if isinstance(cond, pd.Series):
        return pd.Series(result, index=cond.index)
    return result


def _fillna(value: Any, fill: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.fillna(fill)
    return fill if _is_missing(value) else value


def _clip(value: Any, lower: Any, upper: Any) -> Any:
    return value.clip(lower, upper) if isinstance(value, pd.Series) else min(max(value, lower), upper)


def _numeric(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return func(value)

    return apply


#: The only callable functions: name -> (implementation, allowed argument counts).
FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "abs": (abs, (1,)),
    "log": (_numeric(np.log), (1,)),
    "log1p": (_numeric(np.log1p), (1,)),
    "sqrt": (_numeric(np.sqrt), (1,)),
    "clip": (_clip, (3,)),
    "where": (_where, (3,)),
    "fillna": (_fillna, (2,)),
    "days": (_days, (1,)),
}


def _is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, pd.Series) and bool(pd.isna(value)))


def _as_bool(value: Any) -> Any:
    if isinstance(value, pd.Series):
        return value.fillna(False).astype(bool)
    return False if _is_missing(value) else bool(value)


def _divide(left: Any, right: Any, modulo: bool = False) -> Any:
    """``left / right`` (or ``%``); a zero divisor gives a missing value, never inf or an error."""
    if isinstance(left, pd.Series) or isinstance(right, pd.Series):
        with np.errstate(divide="ignore", invalid="ignore"):
            left_f = left.astype("float64") if isinstance(left, pd.Series) else left
            right_f = right.astype("float64") if isinstance(right, pd.Series) else right
            result = left_f % right_f if modulo else left_f / right_f
        zero = right == 0
        if isinstance(zero, pd.Series):
            return result.mask(zero.fillna(False).astype(bool))
        return result * math.nan if zero else result
    if _is_missing(left) or _is_missing(right) or right == 0:
        return math.nan
    return left % right if modulo else left / right


def _compare(op: str, left: Any, right: Any) -> Any:
    if _is_missing(left) or _is_missing(right):
        index = next((v.index for v in (left, right) if isinstance(v, pd.Series)), None)
        return pd.Series(False, index=index) if index is not None else False
    result = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }[op](left, right)
    if isinstance(result, pd.Series):
        # Missing on either side compares false, whatever the dtype's own convention.
        missing = pd.Series(False, index=result.index)
        for side in (left, right):
            if isinstance(side, pd.Series):
                missing |= side.isna()
        return result.fillna(False).astype(bool) & ~missing
    return result


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


def evaluate(node: Node, env: Mapping[str, Any]) -> Any:
    """Evaluate a parsed expression over columns and variables.

    Args:
        node: A tree from :func:`parse`.
        env: Names to values: usually the columns of a frame (``pd.Series``) plus
            scalars such as ``as_of``.

    Returns:
        A ``pd.Series`` when any input is a column, else a scalar.

    Raises:
        ExpressionError: A name is not defined or the operands do not fit the operator.
    """
    try:
        return _eval(node, env)
    except ExpressionError:
        raise
    except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise ExpressionError(f"cannot evaluate: {exc}") from exc
    except RecursionError as exc:
        raise ExpressionError("cannot evaluate: the expression is nested too deeply") from exc


def _eval(node: Node, env: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        if node.name not in env:
            raise ExpressionError(f"unknown name {node.name!r}")
        return env[node.name]
    if isinstance(node, Call):
        func = FUNCTIONS[node.func][0]
        return func(*(_eval(arg, env) for arg in node.args))
    if isinstance(node, IsNull):
        value = _eval(node.operand, env)
        missing = value.isna() if isinstance(value, pd.Series) else _is_missing(value)
        return ~missing if node.negated else missing
    if isinstance(node, Unary):
        value = _eval(node.operand, env)
        if node.op == "not":
            flag = _as_bool(value)
            return ~flag if isinstance(flag, pd.Series) else not flag
        return -value
    left, right = _eval(node.left, env), _eval(node.right, env)
    if node.op in ("and", "or"):
        a, b = _as_bool(left), _as_bool(right)
        return (a & b) if node.op == "and" else (a | b)
    if node.op in ("/", "%"):
        return _divide(left, right, modulo=node.op == "%")
    if node.op in _ARITHMETIC:
        if _is_missing(left) or _is_missing(right):
            return math.nan
        _check_text(node.op, left, right)
        result = _ARITHMETIC[node.op](left, right)
        if type(result) is int and abs(result) > _INT64:  # noqa: E721 - not bool, not numpy
            return float(result)
        return result
    return _compare(node.op, left, right)


def _check_text(op: str, left: Any, right: Any) -> None:
    """Refuse text that ``op`` would repeat, or join beyond :data:`MAX_TEXT`, before it is built."""
    sizes = [_text_length(left), _text_length(right)]
    if sizes == [None, None]:
        return
    if op == "*":
        raise ExpressionError("cannot evaluate: '*' multiplies numbers, got text; text is never repeated")
    if op == "+" and sum(n or 0 for n in sizes) > MAX_TEXT:
        raise ExpressionError(f"cannot evaluate: '+' would build text of {sum(n or 0 for n in sizes)} characters; "
                              f"expected at most {MAX_TEXT}")


def _text_length(value: Any) -> int | None:
    """The longest text in a value or column, None when it holds no text."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, pd.Series) and (value.dtype == object or isinstance(value.dtype, pd.StringDtype)):
        lengths = [len(v) for v in value.array if isinstance(v, str)]
        return max(lengths) if lengths else None
    return None
