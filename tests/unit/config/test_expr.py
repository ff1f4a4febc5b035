from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.config import expr


def ev(text: str, **env: object) -> object:
    return expr.evaluate(expr.parse(text), env)


def test_arithmetic_follows_precedence() -> None:
    assert ev("1 + 2 * 3") == 7
    assert ev("(1 + 2) * 3") == 9
    assert ev("-2 * -3") == 6
    assert ev("7 % 4") == 3


def test_division_by_zero_is_missing_not_inf() -> None:
    total = pd.Series([10.0, 5.0, 0.0])
    n = pd.Series([2, 0, 0])
    out = ev("total / n", total=total, n=n)
    assert out.iloc[0] == 5.0
    assert out.iloc[1:].isna().all()
    assert math.isnan(ev("1 / 0"))


def test_division_by_a_nonzero_scalar_keeps_the_column() -> None:
    out = ev("x / (y / 30)", x=pd.Series([3.0, 6.0]), y=pd.Series([30.0, 60.0]))
    assert out.tolist() == [3.0, 3.0]


def test_comparisons_with_missing_values_are_false() -> None:
    when = pd.Series(pd.to_datetime(["2026-10-05", None, "2026-09-01"]))
    as_of = pd.Timestamp("2026-10-01")
    out = ev("cancelled_at > as_of and cancelled_at <= as_of + 30d", cancelled_at=when, as_of=as_of)
    assert out.tolist() == [True, False, False]
    assert ev("cancelled_at is null", cancelled_at=when).tolist() == [False, True, False]
    assert ev("cancelled_at is not null", cancelled_at=when).tolist() == [True, False, True]


def test_boolean_logic_is_elementwise() -> None:
    a = pd.Series([True, True, False])
    b = pd.Series([True, False, False])
    assert ev("a and b", a=a, b=b).tolist() == [True, False, False]
    assert ev("a or b", a=a, b=b).tolist() == [True, True, False]
    assert ev("not a", a=a).tolist() == [False, False, True]


def test_durations_and_days() -> None:
    signup = pd.Series(pd.to_datetime(["2026-09-01", "2026-09-21"]))
    out = ev("days(as_of - signup)", signup=signup, as_of=pd.Timestamp("2026-10-01"))
    assert out.tolist() == [30.0, 10.0]
    assert ev("days(2w)") == 14.0
    assert ev("days(12h)") == 0.5


def test_allowlisted_functions() -> None:
    x = pd.Series([-1.0, np.nan, 4.0])
    assert ev("abs(x)", x=x).iloc[0] == 1.0
    assert ev("fillna(x, 0)", x=x).tolist() == [-1.0, 0.0, 4.0]
    assert ev("clip(x, 0, 2)", x=x).iloc[[0, 2]].tolist() == [0.0, 2.0]
    assert ev("where(x > 0, 1, 0)", x=x).tolist() == [0, 0, 1]
    assert ev("sqrt(x)", x=x).iloc[2] == 2.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x.__class__", "attribute access is not allowed"),
        ("__import__('os')", "is not allowed"),
        ("system('ls')", "function 'system'"),
        ("lambda: 1", "unexpected character ':'"),
        ("x[0]", "unexpected character '['"),
        ("1 +", "expected a value"),
        ("(1 + 2", "expected ')'"),
        ("abs(1, 2)", "takes 1 argument"),
        ("", "non-empty"),
        ("a b", "unexpected 'b'"),
    ],
)
def test_rejected_expressions_say_why(text: str, fragment: str) -> None:
    with pytest.raises(expr.ExpressionError, match=None) as info:
        expr.parse(text)
    assert fragment in str(info.value)


def test_parser_never_calls_python_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec must never be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert ev("total / n", total=pd.Series([4.0]), n=pd.Series([2])).tolist() == [2.0]


def test_names_lists_every_column_read() -> None:
    assert expr.names(expr.parse("where(a > b, c, fillna(d, 0)) + as_of")) == {"a", "b", "c", "d", "as_of"}


def test_unknown_name_is_an_error() -> None:
    with pytest.raises(expr.ExpressionError, match="unknown name 'nope'"):
        ev("nope + 1")


def test_dependency_order_and_cycles() -> None:
    parsed = {name: expr.parse(text) for name, text in {"c": "a + b", "a": "x", "b": "a * 2"}.items()}
    order = expr.dependency_order(parsed)
    assert order.index("a") < order.index("b") < order.index("c")
    cyclic = {name: expr.parse(text) for name, text in {"a": "b + 1", "b": "a + 1"}.items()}
    with pytest.raises(expr.ExpressionError, match="cycle: (a -> b -> a|b -> a -> b)"):
        expr.dependency_order(cyclic)
    with pytest.raises(expr.ExpressionError, match="reads itself"):
        expr.dependency_order({"a": expr.parse("a + 1")})


def test_modulo_by_zero_is_missing_too() -> None:
    assert math.isnan(ev("5 % 0"))
    assert ev("x % 0", x=pd.Series([1, 2])).isna().all()


def test_limits_keep_the_parser_away_from_the_recursion_limit() -> None:
    with pytest.raises(expr.ExpressionError, match="nested at most 50 deep"):
        expr.parse("(" * 60 + "1" + ")" * 60)
    with pytest.raises(expr.ExpressionError, match="at most 2000 characters"):
        expr.parse("1 + " * 600 + "1")
    try:  # a long unary chain either evaluates or fails with our error, never RecursionError
        assert ev("- " * 990 + "1") == 1
    except expr.ExpressionError as exc:
        assert "nested" in str(exc)


def test_number_literals() -> None:
    assert ev("1e308") == 1e308 and isinstance(ev("1e308"), float)
    assert ev("12") == 12 and isinstance(ev("12"), int)
    assert ev("2.5") == 2.5


@pytest.mark.parametrize("text", ["-" * 1500 + "x", "not " * 480 + "x", " + ".join(["x"] * 400),
                                  "abs(" * 45 + "-" * 60 + "x" + ")" * 45])
def test_deep_nesting_is_refused_by_depth_before_the_recursion_limit(text: str) -> None:
    with pytest.raises(expr.ExpressionError, match=r"at most 100 operations nested in one another, got \d+"):
        expr.parse(text)


def test_nesting_a_real_config_needs_is_allowed() -> None:
    assert ev(" + ".join(["x"] * 101), x=1) == 101  # 100 deep: the limit itself
    assert ev("(" * 10 + "x" + " + 1)" * 10, x=0) == 10
    assert expr.depth_of(expr.parse("a + b * c")) == 2
    assert expr.depth_of(expr.parse("x")) == 0


@pytest.mark.parametrize("text", ["as_of + 9999999999999999999999d", "36526d", "5300w", "1" * 400 + "s"])
def test_durations_beyond_100_years_are_refused_before_they_are_built(text: str) -> None:
    with pytest.raises(expr.ExpressionError, match=r"duration of at most 36525d \(100 years\), got"):
        expr.parse(text)
    with pytest.raises(expr.ExpressionError, match=r"duration of at most 36525d"):
        expr.duration(text.removeprefix("as_of + "))


def test_the_longest_duration_still_fits_pandas_times() -> None:
    assert expr.duration("36525d") == pd.Timedelta(days=36525)
    as_of = pd.Timestamp("2026-10-01")
    assert ev("as_of + 36525d", as_of=as_of).year == 2126
    assert ev("as_of - 5217w", as_of=as_of).year > 1677


def test_text_is_never_repeated_and_joined_text_is_bounded() -> None:
    for text in ["'a' * 1000000000000", "1000000000000 * 'a'", "2 * (1 + 'ab' * 3)"]:  # refused by the parser
        with pytest.raises(expr.ExpressionError, match="^'\\*' multiplies numbers, got the text 'a(b)?'; text is never"):
            expr.parse(text)
    for plan in (pd.Series(["monthly", "annual"]), "monthly"):  # text that only the data holds
        with pytest.raises(expr.ExpressionError, match="'\\*' multiplies numbers, got text"):
            ev("plan * 3", plan=plan)
    assert ev("plan + '/' + segment", plan=pd.Series(["a"]), segment=pd.Series(["b"])).tolist() == ["a/b"]
    with pytest.raises(expr.ExpressionError, match="would build text of 1200 characters; expected at most 1000"):
        ev("x + x", x=pd.Series(["a" * 600, "b"]))


def test_integers_beyond_64_bits_become_floats() -> None:
    big = ev("999999999999999999 * 999999999999999999")
    assert isinstance(big, float) and big == pytest.approx(1e36)
    assert ev("2 * 3") == 6 and isinstance(ev("2 * 3"), int)
    with pytest.raises(expr.ExpressionError, match="expected a value"):
        expr.parse("10 ** 10 ** 10")  # no power operator at all


def test_backticks_quote_a_column_name_that_is_not_an_identifier() -> None:
    frame = pd.DataFrame({"Churn Label": ["Yes", "No"], "total.charges": [10.0, 4.0], "and": [1, 2]})
    node = expr.parse("`Churn Label` == 'Yes' or `total.charges` / `and` < 3")
    assert expr.names(node) == {"Churn Label", "total.charges", "and"}
    assert expr.evaluate(node, frame).tolist() == [True, True]
    with pytest.raises(expr.ExpressionError, match="not allowed"):
        expr.parse("`__class__`")
