"""The search space of ``hydra.sweeper.params``, in Hydra's override grammar, as Optuna distributions.

=================================  =========================================
``a,b,c`` / ``choice(a, b, c)``    categorical
``range(1, 10, 2)``                integers 1, 3, 5, 7, 9 (the stop is excluded, as in Hydra)
``range(0.1, 0.5, 0.1)``           floats on that grid
``interval(0.1, 1.0)``             floats, uniform
``int(interval(10, 200))``         integers, uniform (both ends included)
``tag(log, interval(1e-4, 1))``    floats, log-uniform (``int(...)`` inside for integers)
=================================  =========================================

Anything that is not a sweep (``seed=3``, ``+model.x=1``, ``~key``) is passed to every
trial unchanged. The command line wins over ``hydra.sweeper.params`` for the same key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import HydraException

from engine.errors import ConfigError


@dataclass
class SearchSpace:
    """What each trial samples (``distributions``) and what it gets as is (``fixed``)."""

    distributions: dict[str, Any] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The overrides of one trial: the fixed ones, then ``key=value`` per sampled parameter."""
        return [*self.fixed, *(f"{key}={_format(value)}" for key, value in params.items())]


def parse(params: Mapping[str, Any] | None, arguments: Sequence[str] = ()) -> SearchSpace:
    """Parse ``hydra.sweeper.params`` and the command line's overrides into a search space.

    Raises:
        ConfigError: An override that does not parse, a sweep Optuna cannot sample
            (``glob``), or bounds that make no distribution.
    """
    parser = OverridesParser.create()
    by_key: dict[str, tuple[str, Override]] = {}
    lines = [(f"hydra.sweeper.params.{key}", f"{key}={value}") for key, value in (params or {}).items()]
    lines += [(f"command line ({arg})", arg) for arg in arguments]
    for where, line in lines:
        try:
            override = parser.parse_override(line)
        except HydraException as exc:
            raise ConfigError(where, f"cannot parse {line!r}: {_first_line(exc)}") from exc
        by_key[override.get_key_element()] = (where, override)
    space = SearchSpace()
    for key, (where, override) in by_key.items():
        if not override.is_sweep_override():
            space.fixed.append(override.input_line or f"{key}={override.get_value_element_as_str()}")
            continue
        space.distributions[key] = _distribution(where, override)
    return space


def _distribution(where: str, override: Override) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    line = override.input_line
    try:
        if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
            choices = list(override.sweep_iterator(transformer=Transformer.encode))
            if any(not isinstance(c, str | int | float | bool) for c in choices):
                raise ConfigError(where, f"{line!r}: a choice can only hold numbers, strings and booleans")
            return CategoricalDistribution(choices)
        if isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
            if not values:
                raise ConfigError(where, f"{line!r}: the range is empty")
            if all(isinstance(v, int) for v in values):
                return IntDistribution(values[0], values[-1], step=int(value.step))
            return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
        if isinstance(value, IntervalSweep):
            log = "log" in value.tags
            if value.start is None or value.end is None or not value.start < value.end:
                raise ConfigError(where, f"{line!r}: an interval needs a lower bound below its upper bound")
            if log and value.start <= 0:
                raise ConfigError(where, f"{line!r}: a log interval needs a lower bound above 0")
            if isinstance(value.start, int) and isinstance(value.end, int):
                return IntDistribution(value.start, value.end, log=log)
            return FloatDistribution(float(value.start), float(value.end), log=log)
    except ValueError as exc:  # Optuna's own checks of a distribution's bounds
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(where, f"{line!r}: {_first_line(exc)}") from exc
    raise ConfigError(where, f"{line!r}: the Optuna sweeper samples choice(...), range(...) and "
                      "interval(...) (with int(...) and tag(log, ...)); not this sweep")


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
