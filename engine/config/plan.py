"""The plan: a composed config compiled once into frozen, typed declarations.

    compose (Hydra) -> compile -> Plan -> each stage reads its own part

:func:`compile` is the one place that reads a composed config. It runs the checks of
:mod:`engine.config.validation` in their order (the schemas, the ``_target_`` allowlist, then
the semantic checks), keeps what each check parses instead of throwing it away, and
returns a :class:`Plan`: the sources, the quality rules, the feature spec with its
expressions parsed, the model, the split, the economics and requirements, and the run
settings. ``mlops run`` executes a plan (``plan.data`` to ``data.load``, ``plan.quality``
to ``quality.run``, ...); ``mlops check`` compiles one and runs nothing. So every
declaration is parsed exactly once in a job, and a consumer reads typed fields, not
dict keys.

Each part has a ``from_config`` constructor that takes its group as plain data, without
the checks that need the whole config (a test builds one part that way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from engine.config import targets, validation
from engine.config.business import BusinessSpec
from engine.config.features import ROW_NUMBER, ColumnSpec, FeatureSpec
from engine.config.monitor import MonitorSpec
from engine.config.origin import ConfigOrigin
from engine.config.promotion import PromotionSpec
from engine.config.quality import QualitySpec


@dataclass(frozen=True)
class SourceSpec:
    """One ``data.sources.<name>`` entry.

    Args:
        name: Its key under ``data.sources``.
        type: ``csv``, ``parquet``, ``sql`` or ``demo``: the source type that reads it.
        key: The column that identifies a row; None (``key: null``): the engine adds
            :data:`ROW_NUMBER`, each row's number from 1.
        timestamp: The event-time column, for event sources.
        load_args: Passed through to the pandas reader.
        location: Where the data lives, as declared: the path or URL (relative to the
            project folder), or the demo table.
        columns: The declared columns' types, parsed; columns not declared are inferred.
        infinite: What an infinite or out-of-float64-range number is: ``error`` (the
            run stops) or ``missing``.
        options: Every key but ``type``: the source type's constructor arguments
            (``columns`` parsed).
    """

    name: str
    type: str
    key: str | None = None
    timestamp: str | None = None
    load_args: Mapping[str, Any] = field(default_factory=dict)
    location: str = ""
    columns: Mapping[str, ColumnSpec] = field(default_factory=dict)
    infinite: str = "error"
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, source_cfg: Mapping[str, Any]) -> SourceSpec:
        location = source_cfg.get("path") or source_cfg.get("url") or (
            f"demo generator ({source_cfg['table']})" if source_cfg.get("table") else source_cfg["type"])
        columns = {str(column): ColumnSpec.from_config(value)
                   for column, value in (source_cfg.get("columns") or {}).items()}
        options = {k: v for k, v in source_cfg.items() if k != "type"}
        options["columns"] = columns
        return cls(name=name, type=source_cfg["type"], key=source_cfg.get("key"),
                   timestamp=source_cfg.get("timestamp"), load_args=source_cfg.get("load_args") or {},
                   location=str(location), columns=columns, infinite=source_cfg.get("infinite") or "error",
                   options=options)

    @property
    def key_column(self) -> str:
        """The column that identifies a row: the declared key, or :data:`ROW_NUMBER`."""
        return self.key or ROW_NUMBER


@dataclass(frozen=True)
class DataSpec:
    """The ``data`` group: the sources, and the demo files to generate if asked.

    Args:
        sources: Source name -> its spec, in declaration order.
        dir: The demo files' folder, relative to the project; None: none written.
        generate: The demo generator's settings (``data.generate``), or None.
    """

    sources: Mapping[str, SourceSpec]
    dir: str | None = None
    generate: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, data_cfg: Mapping[str, Any]) -> DataSpec:
        return cls(sources={name: SourceSpec.from_config(name, spec) for name, spec in data_cfg["sources"].items()},
                   dir=data_cfg.get("dir"), generate=data_cfg.get("generate"))

    def timestamps(self) -> dict[str, str | None]:
        """Source name -> its event-time column."""
        return {name: source.timestamp for name, source in self.sources.items()}


@dataclass(frozen=True)
class Preprocess:
    """The root ``preprocess`` keys: what the saved Pipeline does before the estimator."""

    numeric_impute: str = "median"
    scale: bool = True
    categorical_impute: str = "most_frequent"
    min_frequency: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """The ``model`` group and the root ``preprocess``.

    Args:
        target: The estimator's class, as its allowlisted dotted path (``_target_``).
        params: Its hyper-parameters: every other key of the group, in order.
        preprocess: Imputation, scaling and encoding inside the Pipeline.
    """

    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    preprocess: Preprocess = field(default_factory=Preprocess)

    @classmethod
    def from_config(cls, model_cfg: Mapping[str, Any], preprocess_cfg: Mapping[str, Any] | None = None) -> ModelSpec:
        return cls(target=model_cfg["_target_"], params={k: v for k, v in model_cfg.items() if k != "_target_"},
                   preprocess=Preprocess(**(preprocess_cfg or {})))

    @property
    def name(self) -> str:
        """The estimator's class name (``RandomForestClassifier``)."""
        return self.target.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class SplitSpec:
    """The ``split`` group: a hold-out part, stratified on the target when asked."""

    test_size: float
    stratify: bool
    seed: int
    strategy: str = "holdout"

    @classmethod
    def from_config(cls, split_cfg: Mapping[str, Any]) -> SplitSpec:
        return cls(test_size=split_cfg["test_size"], stratify=split_cfg["stratify"], seed=split_cfg["seed"],
                   strategy=split_cfg.get("strategy", "holdout"))


@dataclass(frozen=True)
class RunSettings:
    """The root keys that say how a run goes.

    Args:
        name: The run's name (its folder's last part).
        seed: The one seed for everything random.
        as_of: The cut-off, parsed.
        threads: BLAS/OpenMP threads while fitting and predicting.
        cache: Reuse an earlier run with the same config, data and code.
        report: Write report.html.
    """

    name: str
    seed: int
    as_of: pd.Timestamp
    threads: int = 1
    cache: bool = False
    report: bool = True


@dataclass(frozen=True)
class Plan:
    """A composed config, checked and parsed: one part per config group.

    Args:
        settings: The run settings (root keys).
        data: The sources.
        quality: The quality rules.
        features: The feature spec, expressions parsed.
        model: The estimator, its parameters and the preprocessing.
        split: The hold-out split.
        business: The economics, the decision threshold and the requirements.
        promotion: The champion gate of ``mlops validate`` (no rules when the config
            has no ``promotion`` group).
        config: The resolved config it was compiled from: what the run records
            (``config.resolved.yaml``, the run cache key, the store's params).
        monitor: The rules of ``mlops monitor`` (none when the config has no
            ``monitor`` group).
    """

    settings: RunSettings
    data: DataSpec
    quality: QualitySpec
    features: FeatureSpec
    model: ModelSpec
    split: SplitSpec
    business: BusinessSpec
    promotion: PromotionSpec
    config: Mapping[str, Any]
    monitor: MonitorSpec = field(default_factory=MonitorSpec)


def compile(cfg: DictConfig | Mapping[str, Any], where: ConfigOrigin | None = None) -> Plan:  # noqa: A001
    """Check a composed config and compile it into a :class:`Plan`, reading no data.

    Args:
        cfg: The job config (``hydra`` node removed), or it already resolved to plain
            data (``validation.resolve``).
        where: Where keys came from, for the messages.

    Raises:
        ConfigError: The first problem found, as one line naming the key path, the file
            or override it came from, what was expected and what was given.
    """
    where = where or ConfigOrigin()
    resolved = validation.resolve(cfg) if isinstance(cfg, DictConfig) else cfg
    validation.check_schema(resolved, where)
    validation.check_sources(resolved, where)
    targets.check_targets(resolved, where)
    as_of = validation.check_as_of(resolved, where)
    features = validation.check_features(resolved, where)
    quality = QualitySpec(validation.check_rules(resolved, where))
    requirements = validation.check_requirements(resolved, where)
    validation.check_economics(resolved["business"], where)
    validation.check_model_params(resolved["model"], where)
    promotion = validation.check_promotion(resolved, where)
    monitor = validation.check_monitor(resolved, where)
    return Plan(
        settings=RunSettings(name=resolved["name"], seed=resolved["seed"], as_of=as_of, threads=resolved["threads"],
                             cache=bool(resolved.get("cache", False)), report=bool(resolved.get("report", True))),
        data=DataSpec.from_config(resolved["data"]),
        quality=quality,
        features=features,
        model=ModelSpec.from_config(resolved["model"], resolved["preprocess"]),
        split=SplitSpec.from_config(resolved["split"]),
        business=BusinessSpec.from_config(resolved["business"], requirements),
        promotion=promotion,
        config=resolved,
        monitor=monitor,
    )
