"""The mlops_optuna sweeper's search space: Hydra's override grammar to Optuna distributions."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

from engine.errors import ConfigError  # noqa: E402
from hydra_plugins.mlops_optuna_sweeper._search_space import parse  # noqa: E402


@pytest.mark.parametrize(("text", "expected"), [
    ("choice(logistic, random_forest)", CategoricalDistribution(["logistic", "random_forest"])),
    ("50,100,200", CategoricalDistribution([50, 100, 200])),
    ("range(3, 11)", IntDistribution(3, 10)),
    ("range(10, 50, 10)", IntDistribution(10, 40, step=10)),
    ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ("interval(0.1, 0.9)", FloatDistribution(0.1, 0.9)),
    ("int(interval(20, 120))", IntDistribution(20, 120)),
    ("tag(log, interval(0.0001, 1))", FloatDistribution(0.0001, 1.0, log=True)),
    ("tag(log, int(interval(5, 100)))", IntDistribution(5, 100, log=True)),
    ("shuffle(range(1, 4))", None),
])
def test_each_sweep_becomes_a_distribution(text: str, expected: object) -> None:
    space = parse({"model.x": text})
    distribution = space.distributions["model.x"]
    if expected is None:  # a shuffled range has no order to exploit: a choice
        assert isinstance(distribution, CategoricalDistribution) and sorted(distribution.choices) == [1, 2, 3]
    else:
        assert distribution == expected


def test_fixed_overrides_pass_through_and_the_command_line_wins() -> None:
    space = parse({"model.max_depth": "range(2, 5)", "model.n_estimators": "int(interval(10, 20))"},
                  ["model.n_estimators=50", "+model.min_impurity_decrease=0.001", "~split.seed", "seed=3"])
    assert list(space.distributions) == ["model.max_depth"]
    assert space.fixed == ["model.n_estimators=50", "+model.min_impurity_decrease=0.001", "~split.seed", "seed=3"]
    assert space.overrides({"model.max_depth": 3}) == [*space.fixed, "model.max_depth=3"]


def test_an_added_key_keeps_its_plus_and_values_are_written_for_hydra() -> None:
    space = parse({}, ["+model.ccp_alpha=interval(0.0, 0.1)", "model.bootstrap=true,false"])
    assert set(space.distributions) == {"+model.ccp_alpha", "model.bootstrap"}
    assert space.overrides({"+model.ccp_alpha": 0.05, "model.bootstrap": False}) == [
        "+model.ccp_alpha=0.05", "model.bootstrap=false"]


@pytest.mark.parametrize(("params", "args", "where", "says"), [
    ({"model.max_depth": "range(3, 11"}, [], "hydra.sweeper.params.model.max_depth", "cannot parse"),
    ({"model.max_depth": "interval(5, 1)"}, [], "hydra.sweeper.params.model.max_depth", "lower bound below"),
    ({"model.C": "tag(log, interval(0, 1))"}, [], "hydra.sweeper.params.model.C", "above 0"),
    ({"model.max_depth": "range(5, 1)"}, [], "hydra.sweeper.params.model.max_depth", "empty"),
    ({}, ["model=glob(*)"], "command line (model=glob(*))", "not this sweep"),
])
def test_a_bad_search_space_is_a_config_error_naming_the_key(params: dict, args: list, where: str,
                                                             says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(params, args)
    assert caught.value.path == where and says in str(caught.value)
    assert "\n" not in str(caught.value)
