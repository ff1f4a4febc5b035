"""Hydra's config loader for the jobs of a sweep, parsing each config file once.

Hydra composes every job's config from scratch: each compose opens, parses (PyYAML's
pure-Python loader) and wraps in OmegaConf every file of the defaults list again, its
own ``hydra/*.yaml`` included. On a project config of our size that is about a third
of Hydra's cost per job. The jobs of a sweep read the same files, so
:func:`parse_once` gives the launcher a copy of the config loader whose repository keeps
what its file and package sources load, once per process, and hands out deep copies.
The basic launcher composes every job in the sweeping process; joblib's workers
compose theirs, each worker keeping its own cache across the jobs it runs (the loader
is pickled to them without it).

What is composed does not change: every compose still reads each file's bytes (a few
kB), and a cached result is used only while they are the bytes it was parsed from, so
a config edited while a sweep runs reaches the jobs launched after the edit, as with
Hydra's own loader (package configs too: an editable install is a folder like any).
Structured configs (the ConfigStore) are not cached; Hydra already keeps them in
memory.
"""

from __future__ import annotations

import copy
import os
from importlib import resources

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import ConfigRepository
from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult
from omegaconf import DictConfig


def parse_once(loader: ConfigLoader) -> ConfigLoader:
    """A copy of Hydra's ``loader`` that parses each config file once per process.

    Any other loader than Hydra's own is returned as it is.
    """
    if type(loader) is not ConfigLoaderImpl:
        return loader
    clone = CheckingLoader.__new__(CheckingLoader)
    clone.__dict__.update(loader.__dict__)
    clone.repository = _ParseOnceRepository(loader.config_search_path)
    return clone


class CheckingLoader(ConfigLoaderImpl):
    """Hydra's loader that checks each job's ``hydra.*`` (:func:`engine.config.hydraconf.check`)
    before a launcher acts on it, in whichever process composes the job: a launcher's
    workers unpickle this class, not Hydra's."""

    checks_hydra = True

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        from engine.config import hydraconf

        sweep_config = super().load_sweep_config(master_config, sweep_overrides)
        hydraconf.check(sweep_config, multirun=True)
        return sweep_config


#: (scheme, source path, config path) -> (the file's bytes, what the source loaded from them).
#: One per process: a few dozen small files at most.
_LOADED: dict[tuple[str, str, str], tuple[bytes, ConfigResult]] = {}


class _ParseOnceRepository(ConfigRepository):
    """Hydra's repository, keeping what its file and package sources load for the next compose."""

    def load_config(self, config_path: str) -> ConfigResult | None:
        source = self._find_object_source(config_path=config_path, object_type=ObjectType.CONFIG)
        scheme = source.scheme() if source is not None else None
        if source is None or scheme not in ("file", "pkg"):
            return super().load_config(config_path)
        name = source._normalize_file_name(config_path)
        try:  # a few kB: reading is cheap, parsing is not
            if scheme == "file":
                with open(os.path.join(source.path, name), "rb") as handle:
                    raw = handle.read()
            else:
                raw = resources.files(source.path).joinpath(name).read_bytes()
        except (OSError, ModuleNotFoundError, ValueError, TypeError):
            return super().load_config(config_path)  # Hydra's own error for a missing config
        key = (scheme, source.path, config_path)
        entry = _LOADED.get(key)
        if entry is None or entry[0] != raw:
            entry = (raw, source.load_config(config_path=config_path))
            _LOADED[key] = entry
        # As ConfigRepository.load_config, on a copy: the defaults list is popped off the
        # config, and the loader merges into it.
        cached = entry[1]
        result = ConfigResult(provider=cached.provider, path=cached.path, config=copy.deepcopy(cached.config),
                              header=dict(cached.header))
        raw_defaults = self._extract_defaults_list(config_path, result.config)
        result.defaults_list = self._create_defaults_list(config_path, raw_defaults)
        return result
