"""``mlops check [--all]``: compile composed configs into plans without running them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from engine.cli.app import composition_error, missing_option, one_line
from engine.errors import EXIT_BAD_INPUT, ConfigError, UsageError

CHECK_USAGE = """\
usage: mlops check [OVERRIDE ...]         compose conf/ with the overrides and validate it
       mlops check --all [OVERRIDE ...]   the same for every option of every config group,
                                         each chosen in turn on top of the overrides

Validation is what `mlops run` does before reading any data: the schemas of every group,
the _target_ allowlist, feature expressions and lineage, quality rules, business inputs
and requirements, the promotion policy and monitoring rules, and the estimator's parameters. Exit 0 when every config is valid; 2
with one line per invalid config on stderr.
"""


#: The config groups ``mlops check --all`` walks: every option is composed in turn.
CHECKED_GROUPS = ("data", "quality", "features", "model", "split", "business", "promotion", "monitor",
                  "experiment")


def check_command(args: list[str]) -> int:
    """``mlops check [--all] [overrides]``: validate composed configs without running them."""
    if "-h" in args or "--help" in args:
        print(CHECK_USAGE, end="")
        return 0
    conf = Path.cwd() / "conf"
    if not (conf / "config.yaml").is_file():
        raise UsageError(f"usage error: no conf/config.yaml in {Path.cwd()}; run mlops check from a project folder")
    every = "--all" in args
    overrides = [a for a in args if a != "--all"]
    flags = [a for a in overrides if a.startswith("-")]
    if flags:
        raise UsageError(f"usage error: unknown option {flags[0]!r} (see mlops check --help)")
    configs = [overrides]
    if every:
        configs = [[*overrides, f"{group}={path.stem}"] for group in CHECKED_GROUPS
                   for path in sorted((conf / group).glob("*.yaml"))]
    problems = []
    for chosen in configs:
        try:
            _check(conf, chosen)
        except ConfigError as exc:
            problems.append((chosen, exc))
    label = " ".join(overrides) or "the defaults"
    if not every and not problems:
        print(f"config valid: {label}")
    elif every:
        print(f"checked {len(configs)} configs ({label}, then each option of {', '.join(CHECKED_GROUPS)}): "
              f"{len(configs) - len(problems)} valid, {len(problems)} invalid")
    for chosen, exc in problems:
        where = f" [with {chosen[-1]}]" if every else ""
        print(f"mlops: {exc}{where}", file=sys.stderr)
    return EXIT_BAD_INPUT if problems else 0


def _check(conf: Path, overrides: list[str]) -> Any:
    """Compose ``conf/`` with ``overrides`` as ``mlops run`` would and compile its plan
    (returned: ``mlops monitor`` reads its rules from it)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from engine.config import hydraconf, plan
    from engine.config.validation import ConfigOrigin, resolve

    def composed(chosen: list[str]) -> Any:
        return compose(config_name="config", overrides=chosen, return_hydra_config=True)

    try:
        # hydra.* as mlops run would act on it, and each option a sweep names
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"), hydraconf.guarded():
            cfg = composed(overrides)
            hydraconf.check_sweep(cfg, composed, conf.parent)
    except MissingConfigException as exc:
        raise missing_option(exc, overrides) from exc
    except OverrideParseException as exc:
        raise ConfigError("command line", one_line(exc)) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise composition_error(exc, overrides) from exc
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return plan.compile(resolve(cfg), ConfigOrigin(choices=choices, overrides=overrides, conf_dir="conf"))
