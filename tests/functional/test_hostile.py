"""Hostile and careless input, case by case: one line on stderr, a documented status, and
nothing written or executed outside the project.

Each case runs the real ``mlops`` in a subprocess on a copy of a small project. A case
may first change the project (``setup``): write a hostile experiment file, tamper with a
registry file, truncate the store. Paths outside the project are written as ``{outside}``:
a folder beside the project that must stay empty, so a case that writes, copies or
executes anything there fails. ``{project}`` is the project folder itself.

Cases marked ``trained`` start from a project that has already run once and registered
its model as ``churn`` (alias ``champion``): built once per test session, copied per case.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import CONF, SMALL_DATA, run_mlops, without_local

# Each case runs the real command on a project of its own (~100 cases, minutes of CPU):
# slow, run by `pytest -m slow` and CI.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Args:
        id: The test id.
        args: The ``mlops`` arguments; ``{outside}`` and ``{project}`` are filled in.
        status: The exit status expected.
        line: A regular expression the one stderr line must match (``re.search``).
        setup: Changes the project before the command: ``setup(project, outside)``.
        trained: Start from a project that has run and registered ``churn@champion``.
        stdout: A regular expression stdout must match, if given.
        leaves_run: The refusal comes from the data, inside the run: the run is recorded,
            as failed (never as succeeded). Otherwise no run folder may be left.
        notes: What the case did before it was fixed.
    """

    id: str
    args: tuple[str, ...]
    status: int
    line: str
    setup: Callable[[Path, Path], None] | None = None
    trained: bool = False
    stdout: str | None = None
    leaves_run: bool = False
    notes: str = field(default="", compare=False)


def experiment(text: str) -> Callable[[Path, Path], None]:
    """A setup that writes ``conf/experiment/hostile.yaml`` (``{outside}`` filled in)."""

    def write(project: Path, outside: Path) -> None:
        (project / "conf" / "experiment" / "hostile.yaml").write_text(
            "# @package _global_\n" + text.format(outside=outside, project=project))

    return write


# ---------------------------------------------------------------------------------------
# Configs that try to run code or write outside the project (hydra.* and the job config)
# ---------------------------------------------------------------------------------------

def git_repo_with_a_change(project: Path, outside: Path) -> None:
    """The project as a git work tree with a changed tracked file: ``git diff`` has work."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run([*git, *args], cwd=project, check=True, capture_output=True)
    with (project / "conf" / "config.yaml").open("a") as handle:
        handle.write("# changed\n")


def pickle_in_data(project: Path, outside: Path) -> None:
    """A pickle shipped in data/ that creates {outside}/pwned when it is loaded."""
    (project / "data").mkdir(exist_ok=True)
    (project / "data" / "model.pkl").write_bytes(pickle.dumps(_Creates(outside / "pwned")))


class _Creates:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (self.path,))


def both(*setups: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def run(project: Path, outside: Path) -> None:
        for setup in setups:
            setup(project, outside)

    return run


def _refused_both_ways(id: str, text: str, line: str, setup: Callable[[Path, Path], None] | None = None,
                       check_all: bool = False, check: bool = False) -> list[Case]:
    """An experiment file refused by mlops run (and mlops check, check --all, if asked: they
    share engine.config.hydraconf with run, and tests/unit/test_hydraconf.py covers each rule)."""
    write = both(setup, experiment(text)) if setup else experiment(text)
    cases = [Case(f"{id}-run", ("run", "experiment=hostile"), 2, line, write)]
    if check or check_all:
        cases.append(Case(f"{id}-check", ("check", "experiment=hostile"), 2, line, write))
    if check_all:
        cases.append(Case(f"{id}-check-all", ("check", "--all"), 2, line + r".*\[with experiment=hostile\]$", write))
    return cases


def config_yaml(old: str, new: str) -> Callable[[Path, Path], None]:
    """A setup that edits the shared conf/config.yaml (its hydra.run and hydra.sweep win over experiments)."""

    def edit(project: Path, outside: Path) -> None:
        path = project / "conf" / "config.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new.format(outside=outside)))

    return edit


def _refused_in_config_yaml(id: str, old: str, new: str, line: str) -> list[Case]:
    return [Case(f"{id}-run", ("run",), 2, line, config_yaml(old, new))]


RUN_DIR = "dir: outputs/runs/${{now:%Y-%m-%d}}/${{now:%H-%M-%S-%f}}-${{name}}"
SWEEP_DIR = "dir: outputs/sweeps/${{now:%Y-%m-%d}}/${{now:%H-%M-%S-%f}}-${{name}}"
OUTSIDE_ROOT = r"must be a folder inside the outputs root"


CALLBACK = "hydra:\n  callbacks:\n    x:\n      _target_: {target}\n{args}"
REFUSED_CALLBACK = r"^mlops: config error at hydra\.callbacks\.x\._target_: callback '{}' is not on the allowlist"

CONFIG_CASES: list[Case] = [
    # Hole 1: hydra.job.env_set makes git diff (provenance) run a shell command.
    *_refused_both_ways(
        "env-set-git-external-diff",
        "hydra:\n  job:\n    env_set:\n      GIT_EXTERNAL_DIFF: 'touch {outside}/pwned; true'\n",
        r"^mlops: config error at hydra\.job\.env_set\.GIT_EXTERNAL_DIFF: may not set GIT_EXTERNAL_DIFF",
        git_repo_with_a_change, check_all=True),
    *_refused_both_ways("env-set-ld-preload", "hydra:\n  job:\n    env_set:\n      LD_PRELOAD: data/evil.so\n",
                        r"^mlops: config error at hydra\.job\.env_set\.LD_PRELOAD: may not set LD_PRELOAD"),
    *_refused_both_ways("env-copy-pythonpath", "hydra:\n  job:\n    env_copy: [PYTHONPATH]\n",
                        r"^mlops: config error at hydra\.job\.env_copy(\.0)?: may not set PYTHONPATH"),
    *_refused_both_ways("env-set-home", "hydra:\n  job:\n    env_set:\n      HOME: data\n",
                        r"^mlops: config error at hydra\.job\.env_set\.HOME: may not set HOME"),
    *_refused_both_ways("env-set-tracking-uri",
                        "hydra:\n  job:\n    env_set:\n      MLOPS_TRACKING_URI: sqlite:///{outside}/x.db\n",
                        r"^mlops: config error at hydra\.job\.env_set\.MLOPS_TRACKING_URI: may not set"),
    # Hole 1: hydra.callbacks unpickle a file shipped in data/, or write outside the project.
    *[case for target, args, setup in (
        ("joblib.load", "      filename: data/model.pkl\n", pickle_in_data),
        ("pandas.read_pickle", "      filepath_or_buffer: data/model.pkl\n", pickle_in_data),
        ("numpy.load", "      file: data/model.pkl\n      allow_pickle: true\n", pickle_in_data),
        ("builtins.open", "      file: '{outside}/x'\n      mode: w\n", None),
        ("shutil.copyfile", "      src: conf/config.yaml\n      dst: '{outside}/x'\n", None),
        ("os.makedirs", "      name: '{outside}/x'\n", None),
        ("sqlite3.connect", "      database: '{outside}/x.db'\n", None))
       for case in _refused_both_ways(f"callback-{target}", CALLBACK.format(target=target, args=args),
                                      REFUSED_CALLBACK.format(re.escape(target)), setup,
                                      check=True, check_all=target == "joblib.load")],
    *_refused_both_ways(
        "callback-nested-target",
        "hydra:\n  callbacks:\n    x:\n      _target_: engine.callbacks.SweepSummary\n"
        "      poll_s:\n        _target_: os.makedirs\n        name: '{outside}/x'\n",
        r"^mlops: config error at hydra\.callbacks\.x\.poll_s\._target_: a callback's arguments may not"),
    # Logging config: dictConfig imports classes, calls () factories and resolves ext:// names.
    *_refused_both_ways(
        "logging-factory",
        "hydra:\n  job_logging:\n    handlers:\n      evil:\n        (): os.makedirs\n        name: '{outside}/x'\n",
        r"^mlops: config error at hydra\.job_logging\.handlers\.evil\.\(\): logging may use only"),
    *_refused_both_ways(
        "logging-class",
        "hydra:\n  hydra_logging:\n    handlers:\n      console:\n        class: shutil.rmtree\n",
        r"^mlops: config error at hydra\.hydra_logging\.handlers\.console\.class: logging may use only"),
    *_refused_both_ways(
        "logging-ext",
        "hydra:\n  job_logging:\n    handlers:\n      console:\n        stream: ext://os.system\n",
        r"^mlops: config error at hydra\.job_logging\.handlers\.console\.stream: expected one of"),
    *_refused_both_ways(
        "logging-file-outside",
        "hydra:\n  job_logging:\n    handlers:\n      file:\n        filename: '{outside}/run.log'\n",
        r"^mlops: config error at hydra\.job_logging\.handlers\.file\.filename: must be a folder inside the run"),
    # Where Hydra writes: the run and sweep folders, .hydra/ and a launcher's folders.
    *_refused_in_config_yaml("run-dir-outside", RUN_DIR.format(), "dir: '{outside}/run'",
                             rf"^mlops: config error at hydra\.run\.dir: {OUTSIDE_ROOT}"),
    *_refused_in_config_yaml("run-dir-dotdot", RUN_DIR.format(), "dir: outputs/../../outside/run",
                             rf"^mlops: config error at hydra\.run\.dir: {OUTSIDE_ROOT}"),
    Case("sweep-dir-outside", ("run", "-m", "model=logistic"), 2,
         rf"^mlops: config error at hydra\.sweep\.dir: {OUTSIDE_ROOT}", config_yaml(SWEEP_DIR.format(), "dir: '{outside}'")),
    Case("sweep-subdir-dotdot", ("run", "-m", "model=logistic"), 2,
         rf"^mlops: config error at hydra\.sweep\.subdir: {OUTSIDE_ROOT}",
         config_yaml("subdir: ${hydra.job.num}", "subdir: ../../../../outside/x")),
    *_refused_both_ways("output-subdir-dotdot", "hydra:\n  output_subdir: ../../../../../outside\n",
                        r"^mlops: config error at hydra\.output_subdir: must be a folder inside the run directory"),
    *_refused_both_ways(
        "submitit-folder-outside",
        "defaults:\n  - override /hydra/launcher: submitit_local\nhydra:\n  launcher:\n"
        "    submitit_folder: '{outside}/%j'\n",
        r"^mlops: config error at hydra\.launcher\.submitit_folder: must be a folder inside the outputs root"),
    *_refused_both_ways(
        "launcher-setup-commands",
        "defaults:\n  - override /hydra/launcher: submitit_slurm\nhydra:\n  launcher:\n"
        "    setup: ['touch {outside}/pwned']\n",
        r"^mlops: config error at hydra\.launcher\.setup: shell commands run before every job"),
    # Files a run writes besides its run folder: only inside the project, unless typed.
    *_refused_both_ways("feature-store-outside", "features:\n  store:\n    path: '{outside}/store'\n",
                        r"^mlops: config error at features\.store\.path: must name a place inside the project"),
    *_refused_both_ways("demo-data-outside", "data:\n  dir: '{outside}/data'\n",
                        r"^mlops: config error at data\.dir: must name a place inside the project"),
    *_refused_both_ways(
        "optuna-storage-outside",
        "defaults:\n  - override /hydra/sweeper: mlops_optuna\nhydra:\n  sweeper:\n"
        "    storage: 'sqlite:///{outside}/optuna.db'\n",
        r"^mlops: config error at hydra\.sweeper\.storage: must name a place inside the project"),
    # A SQL source's query may only read: ATTACH would create and write another file.
    Case("sql-query-attaches-a-file-outside",
         ("run", "data.sources.crm.query=\"ATTACH DATABASE '{outside}/x.db' AS x\""), 2,
         r"^mlops: data error at data\.sources\.crm .*not authorized", leaves_run=True),
    # Plugins: only installed launchers and sweepers.
    *_refused_both_ways("launcher-target", "hydra:\n  launcher:\n    _target_: os.system\n",
                        r"^mlops: config error at hydra\.launcher\._target_: 'os\.system' is not an installed Hydra "
                        r"launcher plugin"),
    *_refused_both_ways("sweeper-target", "hydra:\n  sweeper:\n    _target_: subprocess.Popen\n",
                        r"^mlops: config error at hydra\.sweeper\._target_: 'subprocess\.Popen' is not an installed"),
    Case("multirun-launcher-target-override", ("run", "-m", "hydra.launcher._target_=os.system"), 2,
         r"^mlops: config error at hydra\.launcher\._target_: 'os\.system' is not an installed Hydra launcher"),
    # Sweeps: over Hydra's settings (refused), over experiments one of which is hostile.
    *_refused_both_ways(
        "sweep-over-hydra-key",
        "hydra:\n  sweeper:\n    params:\n      hydra.run.dir: outputs/a,'{outside}'\n",
        r"^mlops: config error at hydra\.sweeper\.params\.hydra\.run\.dir: a sweep may not vary Hydra's own"),
    Case("sweep-over-a-hostile-experiment", ("run", "-m", "experiment=compare_models,hostile"), 2,
         REFUSED_CALLBACK.format("os.makedirs"),
         experiment(CALLBACK.format(target="os.makedirs", args="      name: '{outside}/x'\n"))),
    Case("sweep-over-a-hostile-experiment-joblib",
         ("run", "-m", "experiment=compare_models,hostile", "hydra/launcher=joblib"), 2,
         r"^mlops: config error at hydra\.job\.env_set\.GIT_EXTERNAL_DIFF: may not set",
         both(git_repo_with_a_change, experiment(
             "hydra:\n  job:\n    env_set:\n      GIT_EXTERNAL_DIFF: 'touch {outside}/pwned; true'\n"))),
    # Hole 3: a refused name is refused before Hydra creates its run folder.
    Case("name-escapes", ("run", "name=/../../../{outside}/x"), 2,
         r"^mlops: config error at name: must be a name of letters, digits"),
    Case("name-escapes-check", ("check", "name=../../x"), 2, r"^mlops: config error at name: must be a name"),
    Case("run-dir-override-outside", ("run", "hydra.run.dir={outside}/run"), 2,
         r"^mlops: config error at hydra\.run\.dir: must be a folder inside the outputs root"),
    Case("quality-run-dir-outside", ("quality", "hydra.run.dir={outside}/q"), 2,
         r"^mlops: config error at hydra\.run\.dir: must be a folder inside the outputs root"),
    # The job config's own _target_ (the allowlist of estimators), as before.
    Case("model-target", ("run", "model._target_=os.system"), 2,
         r"^mlops: config error at model\._target_ \(override model\._target_=os\.system\): _target_ 'os\.system' "
         r"is not on the allowlist"),
    Case("model-target-check", ("check", "+model.extra._target_=builtins.exec"), 2,
         r"^mlops: config error at model\.extra"),
    # the serving, monitoring and store surfaces of issues 15 to 18
    Case("serve-quality-not-a-mode", ("check", "serve.quality=strict"), 2,
         r"^mlops: config error at serve\.quality .*must be one of: enforce, flag, off, got 'strict'"),
    Case("serve-quality-flag-not-a-mode", ("serve", "churn@champion", "--quality", "strict"), 2,
         r"^mlops: usage error: argument --quality: expected one of enforce, flag, off, got 'strict'"),
    Case("predict-quality-shell-text", ("predict", "churn@champion", "--input", "x.csv", "--output", "o.parquet",
                                        "--quality", "off;rm -rf {outside}"), 2,
         r"^mlops: usage error: argument --quality: expected one of enforce, flag, off"),
    Case("monitor-since-not-a-duration", ("monitor", "churn@champion", "--since", "7parsecs"), 2,
         r"^mlops: usage error: --since must be a duration such as 7d"),
    # mlops monitor --labels: a labels file of the wrong shape, named with its column
    Case("monitor-labels-no-such-file", ("monitor", "churn@champion", "--labels", "nosuch.csv"), 2,
         r"^mlops: usage error: --labels nosuch\.csv: no such file or source; expected a CSV or Parquet file, or one "
         r"of the sources of conf/data/: customers, ", trained=True),
    Case("monitor-labels-missing-column", ("monitor", "churn@champion", "--labels", "labels.csv"), 2,
         r"^mlops: data error at labels\.csv: no column 'churned' \(the label, monitor\.labels\.label\); expected "
         r"the columns customer_id, churned, got customer_id, label$", trained=True,
         setup=lambda project, outside: (project / "labels.csv").write_text("customer_id,label\n1,1\n")),
    Case("monitor-labels-text-labels", ("monitor", "churn@champion", "--labels", "labels.csv"), 2,
         r"^mlops: data error at labels\.csv: column 'churned' \(the label\): expected 0/1 or true/false, got text, "
         r"e\.g\. 'yes'$", trained=True,
         setup=lambda project, outside: (project / "labels.csv").write_text("customer_id,churned\n1,yes\n")),
    Case("monitor-labels-time-not-a-date", ("monitor", "churn@champion", "--labels", "labels.csv",
                                            "monitor.labels.time=at"), 2,
         r"^mlops: data error at labels\.csv: column 'at' \(the label's time\): expected dates or times such as "
         r"2026-11-30, got '\$\(touch pwned\)' \(row 1\)$", trained=True,
         setup=lambda project, outside: (project / "labels.csv").write_text(
             "customer_id,churned,at\n1,1,$(touch pwned)\n")),
    Case("monitor-labels-a-parquet-that-is-not", ("monitor", "churn@champion", "--labels", "labels.parquet"), 2,
         r"^mlops: data error at labels\.parquet: cannot read it as Parquet: ", trained=True,
         setup=lambda project, outside: (project / "labels.parquet").write_bytes(b"customer_id,churned\n1,1\n")),
    Case("monitor-labels-one-key-twice", ("monitor", "churn@champion", "--labels", "labels.csv"), 2,
         r"^mlops: data error at labels\.csv: column 'customer_id' \(the key\): expected one label per key without "
         r"a time column \(monitor\.labels\.time\), got 1 key\(s\) more than once, e\.g\. '7'$", trained=True,
         setup=lambda project, outside: (project / "labels.csv").write_text("customer_id,churned\n7,1\n7,0\n")),
    Case("monitor-chunks-not-a-way", ("monitor", "churn@champion", "monitor.chunks.current.by=fortnight"), 2,
         r"^mlops: config error at monitor\.chunks\.current\.by .*must be one of: month, rows, got 'fortnight'"),
    Case("monitor-sigma-negative", ("check", "monitor.rules.roc_auc.sigma=-3"), 2,
         r"^mlops: config error at monitor\.rules\.roc_auc\.sigma .*> 0, got -3"),
    Case("db-copy-unknown-scheme", ("db", "copy", "sqlite:///outputs/mlops.db", "ftp://{outside}/x"), 2,
         r"^mlops: usage error: no run store for 'ftp' URIs .*expected one of: sqlite:///PATH, postgresql"),
]

# ---------------------------------------------------------------------------------------
# Model files: tampered, substituted, or pickles that run code
# ---------------------------------------------------------------------------------------

MODEL_CASES: list[Case] = [
    # No mlops command loads a registered model: engine.load_model's attacks (hashes edited
    # in the registry, run.json and store; legacy pickles; untrusted types) are in
    # tests/functional/test_registry.py and tests/unit/test_registry.py. Here: registering
    # a tampered model, registry names that are paths, registry files of the wrong shape.
    Case("register-a-model-replaced-by-a-pickle", ("registry", "register", "latest", "--name", "churn"), 2,
         r"^mlops: registry error: .*/model/model\.skops does not match the sha256 in its run\.json; refusing to "
         r"register a model that changed after its run$",
         setup=lambda project, outside: (run_mlops(project, "run", "report=false").check_returncode(), next(
             (project / "outputs" / "runs").glob("*/*/model/model.skops")).write_bytes(
             pickle.dumps(_Creates(outside / "pwned"))))),
    *[Case(f"registry-{args[1]}-a-path-{i}", args, 2,
           r"^mlops: usage error at model name: expected 1 to 236 bytes of letters, digits, '_', '\.', '-' starting "
           r"with a letter or digit, without '\.\.' or '/', got '(\.\./\.\./etc/passwd|/etc/passwd)'$",
           notes="history read any <path>.json as a registry file")
      for i, args in enumerate([("registry", "history", "../../etc/passwd"), ("registry", "history", "/etc/passwd")])],
    Case("registry-show-a-path", ("registry", "show", "../../etc/passwd"), 2,
         r"^mlops: usage error: '\.\./\.\./etc/passwd' is not NAME, NAME@ALIAS or NAME/VERSION$"),
    *[Case(f"registry-register-name-{kind}", ("registry", "register", "latest", "--name", name), 2,
           r"^mlops: usage error at model name: expected 1 to 236 bytes .*, got '" + shown + "$",
           trained=True,
           notes="a name over the file system's limit left the model file behind, then an OSError traceback")
      for kind, name, shown in [("300-bytes", "m" * 300, r"m{40}'\.\.\. \(300 bytes\)"),
                                ("with-a-slash", "a/b", r"a/b'"), ("dotdot", "a..b", r"a\.\.b'")]],
    *[Case(f"registry-file-of-the-wrong-shape-{args[1]}", args, 2,
           r"^mlops: registry error: outputs/registry/churn\.json at versions: expected a list, got dict \{\}$",
           notes="a KeyError or TypeError traceback",
           setup=lambda project, outside: ((project / "outputs" / "registry").mkdir(parents=True),
                                           (project / "outputs" / "registry" / "churn.json").write_text(
                                               '{"name": "churn", "versions": {}, "aliases": {}, '
                                               '"alias_history": []}')))
      for args in [("registry", "show", "churn@champion"), ("registry", "list"), ("registry", "history", "churn"),
                   ("registry", "promote", "churn/1", "--alias", "champion")]],
    Case("registry-file-a-list", ("registry", "show", "churn"), 2,
         r"^mlops: registry error: outputs/registry/churn\.json at the top level: expected an object with name, "
         r"versions, aliases, alias_history, got list \[1, 2\]$",
         setup=lambda project, outside: ((project / "outputs" / "registry").mkdir(parents=True),
                                         (project / "outputs" / "registry" / "churn.json").write_text("[1, 2]"))),
    Case("registry-file-pointing-outside", ("registry", "show", "churn"), 2,
         r"^mlops: registry error: outputs/registry/churn\.json at versions\[0\]\.model: expected a path inside "
         r"the registry ending in model\.skops or model\.joblib, got str \"\.\./\.\./\.\./outside/model\.skops\"$",
         setup=lambda project, outside: ((project / "outputs" / "registry").mkdir(parents=True),
                                         (project / "outputs" / "registry" / "churn.json").write_text(
                                             '{"name": "churn", "aliases": {}, "alias_history": [], "versions": '
                                             '[{"version": 1, "run_id": "r", "run_dir": "d", "model_sha256": "'
                                             + "0" * 64 + '", "model": "../../../outside/model.skops"}]}'))),
]

# ---------------------------------------------------------------------------------------
# Expressions, durations, data and load_args
# ---------------------------------------------------------------------------------------

EXPRESSION_CASES: list[Case] = [
    # Caught by mlops check, before any data is read. Refusals that depend on the data (a
    # derived feature missing on every row, text repeated from a column) fail a run, which is
    # recorded: they are tested in tests/unit/test_expr.py and tests/unit/stages/.
    Case("expr-parentheses-60-deep",
         ("check", "features.derived.avg_expenditure='" + "(" * 60 + "n_orders" + ")" * 60 + "'"), 2,
         r"^mlops: config error at features\.derived\.avg_expenditure .*parentheses nested at most 50 deep, "
         r"got 60$"),
    Case("expr-minus-1500-deep", ("check", "features.derived.avg_expenditure='" + "-" * 1500 + "n_orders'"), 2,
         r"^mlops: config error at features\.derived\.avg_expenditure .*expected at most 100 operations nested in "
         r"one another, got 1500; split it"),
    Case("expr-not-480-deep", ("check", "features.population='" + "not " * 480 + "n_orders'"), 2,
         r"^mlops: config error at features\.population .*at most 100 operations nested in one another, got 480"),
    Case("expr-sum-of-990-terms", ("check", "features.derived.avg_expenditure='" + "+".join(["a"] * 990) + "'"), 2,
         r"at most 100 operations nested in one another, got 989", notes="was a RecursionError traceback"),
    Case("expr-3000-characters",
         ("check", "features.derived.avg_expenditure='" + "+".join(["n_orders"] * 333) + "'"), 2,
         r"^mlops: config error at features\.derived\.avg_expenditure .*expected at most 2000 characters, got 2996$"),
    Case("duration-overflow-target", ("check", "features.target.expr='cancelled_at > as_of and cancelled_at <= "
                                               "as_of + 9999999999999999999999d'"), 2,
         r"^mlops: config error at features\.target\.expr .*expected a duration of at most 36525d \(100 years\), "
         r"got 9999999999999999999999d at position 49$", notes="was an OutOfBoundsTimedelta traceback"),
    Case("duration-overflow-window", ("check", "features.groups.order_behaviour.aggregations.orders_30d.window="
                                               "9999999999999999999999d"), 2,
         r"^mlops: config error at features\.groups\.order_behaviour\.aggregations\.orders_30d\.window .*expected "
         r"a duration of at most 36525d \(100 years\), got 9999999999999999999999d$",
         notes="mlops check called it valid and the run crashed"),
    Case("duration-overflow-window-weeks", ("check", "features.groups.order_behaviour.aggregations.orders_90d.window="
                                                     "99999999w"), 2, r"orders_90d\.window .*got 99999999w$"),
    Case("duration-overflow-ttl", ("check", "features.attributes.segment={{from: crm.segment, ttl: 99999999w}}"), 2,
         r"^mlops: config error at features\.attributes\.segment\.ttl .*at most 36525d \(100 years\), got 99999999w$"),
    Case("duration-overflow-max-age", ("check", "quality.rules.orders_fresh.max_age=9999999999999999999999d"), 2,
         r"^mlops: config error at quality\.rules\.orders_fresh\.max_age .*at most 36525d \(100 years\)"),
    Case("duration-overflow-quality-filter", ("check", "+quality.rules.plausible_age.filter='signup_date < as_of - "
                                                       "9999999999999999999999d'"), 2,
         r"^mlops: config error at quality\.rules\.plausible_age\.filter .*duration of at most 36525d"),
    Case("text-repeated-10-to-the-12", ("check", "features.derived.avg_expenditure=\"'a' * 1000000000000\""), 2,
         r"^mlops: config error at features\.derived\.avg_expenditure .*'\*' multiplies numbers, got the text 'a'; "
         r"text is never repeated$", notes="was a MemoryError traceback in the run"),
    Case("power-operator", ("check", "features.derived.avg_expenditure='10 ** 10 ** 10'"), 2,
         r"^mlops: config error at features\.derived\.avg_expenditure .*expected a value at position 4, got '\*'$"),
    Case("load-args-chunksize", ("check", "+data.sources.customers.load_args.chunksize=100"), 2,
         r"^mlops: config error at data\.sources\.customers\.load_args\.chunksize \(override "
         r"\+data\.sources\.customers\.load_args\.chunksize=100\): must be absent: chunksize makes pandas return "
         r"an iterator of pieces, not one DataFrame, got 100$",
         notes="the run was an AttributeError traceback ('TextFileReader' has no attribute 'columns')"),
    Case("load-args-iterator", ("check", "+data.sources.customers.load_args.iterator=true"), 2,
         r"^mlops: config error at data\.sources\.customers\.load_args\.iterator .*must be absent"),
    Case("load-args-sql-chunksize", ("check", "+data.sources.crm.load_args.chunksize=10"), 2,
         r"^mlops: config error at data\.sources\.crm\.load_args\.chunksize .*must be absent"),
]

# ---------------------------------------------------------------------------------------
# The plain commands and the stores: runs, registry, features
# ---------------------------------------------------------------------------------------

STORE_CASES: list[Case] = [
    # Cases that need runs in the store start from the trained project (trained=True);
    # a store file or feature store of the wrong shape is written directly.
    Case("features-show-dotdot", ("features", "show", "../../etc"), 2,
         r"^mlops: usage error: features show takes a feature group or table name \(letters, digits, '_'\), "
         r"got '\.\./\.\./etc'$"),
    Case("features-show-absolute-path", ("features", "show", "/etc/passwd"), 2,
         r"^mlops: usage error: features show takes a feature group or table name .*got '/etc/passwd'$",
         notes="an absolute path read any JSON file as a group history"),
    Case("where-parentheses-400-deep", ("runs", "--where", "(" * 400 + "status = x" + ")" * 400), 2,
         r"^mlops: usage error: --where: expected parentheses nested at most 20 deep, got 400$",
         notes="was a RecursionError traceback"),
    Case("where-2100-characters", ("runs", "--where", " or ".join(["status = x"] * 150)), 2,
         r"^mlops: usage error: --where: expected at most 2000 characters, got 2096$"),
    Case("where-regex-backtracking", ("runs", "--where", "id ~ '([0-9a-f]+)+g'"), 2,
         r"^mlops: usage error: --where: the regular expression '\(\[0-9a-f\]\+\)\+g' took more than 1 s on one "
         r"id value of 32 characters", notes="2**32 backtracking steps: hours without the clock", trained=True),
    Case("sort-on-a-field-no-run-has", ("runs", "--sort", "metrics.nope"), 2,
         r"^mlops: usage error: --sort: no run has the field 'metrics\.nope'; expected one of: .*\bstatus\b.*"
         r"metrics\.roc_auc", notes="the runs were listed unsorted, exit 0", trained=True),
    Case("reindex-a-folder-without-runs", ("runs", "reindex", "--outputs", "{outside}"), 2,
         r"^mlops: usage error: runs reindex --outputs .*/outside: no run directories \(folders with a run\.json\); "
         r".*the index is left as it is\)$", notes="the index was emptied"),
    Case("reindex-a-missing-folder", ("runs", "reindex", "--outputs", "{project}/nope"), 2,
         r"^mlops: usage error: runs reindex --outputs .*/nope: no such folder"),
    Case("reindex-skips-a-garbage-run-json", ("runs", "reindex"), 0,
         r"^mlops: skipped outputs/runs/.*/run\.json: expected a run record \(an object with an id and a "
         r"status\), got \[1, 2\]$", stdout=r"indexed 0 run\(s\)",
         trained=True,
         setup=lambda project, outside: next((project / "outputs" / "runs").glob("*/*/run.json")).write_text("[1, 2]")),
    *[Case(f"zero-byte-store-{args[0]}", args, 2,
           r"^mlops: data error at run store .*/outputs/mlops\.db: the file is empty \(0 bytes\), expected an SQLite "
           r"database; rebuild it from the run directories with: mlops runs reindex$",
           setup=lambda project, outside: ((project / "outputs").mkdir(),
                                           (project / "outputs" / "mlops.db").write_bytes(b"")),
           notes="a zero-byte store silently became an empty index")
      for args in [("runs",), ("show", "latest"), ("compare", "latest", "latest"), ("report", "latest"),
                   ("reproduce", "latest"), ("registry", "register", "latest", "--name", "other")]],
    Case("show-latest-without-a-store", ("show", "latest"), 2,
         r"^mlops: usage error: no training run in the store yet", notes="reading no longer creates outputs/mlops.db"),
    Case("features-list-a-manifest-of-the-wrong-shape", ("features", "list"), 0,
         r"^mlops: warning: feature store table [0-9a-f]{12} is ignored: its manifest .*\.json is a list; expected "
         r"a JSON object with bytes and crc32 or sha256, as the store writes it; mlops features gc removes it$",
         stdout=r"table\(s\) in outputs/feature_store",
         trained=True,
         setup=lambda project, outside: next(
             (project / "outputs" / "feature_store" / "tables").glob("*.json")).write_text("[]")),
    *[Case(f"garbage-group-history-{args[1]}", args, 2,
           r"^mlops: data error at feature group history .*/groups/order_behaviour\.json: expected an object whose "
           r"definitions are objects with a hash and a used_by list, got definitions: a number; restore it",
           notes="show raised a KeyError; a run reset the history",
           setup=lambda project, outside: ((project / "outputs" / "feature_store" / "groups").mkdir(parents=True),
                                           (project / "outputs" / "feature_store" / "groups" / "order_behaviour.json")
                                           .write_text('{"definitions": 5}')))
      for args in [("features", "show", "order_behaviour"), ("features", "gc")]],
]

#: The inputs of the commands and config groups added with issues 14 and 16: validate, diff,
#: init, typed source columns and the promotion policy.
COMMAND_CASES: list[Case] = [
    Case("validate-against-without-alias", ("validate", "--against", "churn"), 2,
         r"^mlops: usage error: --against takes NAME@ALIAS, got 'churn'"),
    Case("validate-against-a-path", ("validate", "--against", "../../outside@champion"), 2,
         r"^mlops: usage error at model name: .* without '\.\.' or '/'"),
    Case("validate-candidate-not-a-run", ("validate", "--candidate", "{outside}", "--against", "churn@champion"), 2,
         r"^mlops: usage error: .* has no config\.resolved\.yaml; expected a training run"),
    Case("validate-policy-unknown-metric",
         ("validate", "+promotion.metrics.auc.min_change=0", "--against", "churn@champion"), 2,
         r"^mlops: config error at promotion\.metrics\.auc .*unknown metric; expected one of: roc_auc"),
    Case("validate-policy-negative-resamples",
         ("validate", "promotion.bootstrap.resamples=-1", "--against", "churn@champion"), 2,
         r"^mlops: config error at promotion\.bootstrap\.resamples .*must be an integer >= 0"),
    Case("validate-policy-bad-as-of", ("validate", "promotion.evaluation.as_of=soon", "--against", "churn@champion"), 2,
         r"^mlops: config error at promotion\.evaluation\.as_of .*must be null or an ISO date"),
    Case("diff-outside-a-git-repository", ("diff", "HEAD"), 2,
         r"^mlops: usage error: .* is not inside a git repository"),
    Case("diff-ref-is-a-git-option", ("diff", "--", "--git-dir={outside}"), 2,
         r"^mlops: usage error: unknown git ref '--git-dir="),
    Case("init-data-not-found", ("init", "newproject", "--data", "{outside}/nope.csv", "--target", "y"), 2,
         r"^mlops: usage error: --data '.*nope\.csv': file not found"),
    Case("init-over-an-existing-conf", ("init", ".", "--data", "{outside}/nope.csv", "--target", "y"), 2,
         r"^mlops: usage error: .*conf already exists; --force overwrites its files"),
    Case("typed-column-unknown-type", ("check", "++data.sources.customers.columns={{age: integer}}"), 2,
         r"^mlops: config error at data\.sources\.customers\.columns\.age .*must be one of: int, float"),
    Case("typed-column-unknown-key", ("check", "++data.sources.customers.columns={{age: {{type: int, nulable: true}}}}"),
         2, r"^mlops: config error at data\.sources\.customers\.columns\.age\.nulable .*unknown key"),
]

CASES = [*CONFIG_CASES, *MODEL_CASES, *EXPRESSION_CASES, *STORE_CASES, *COMMAND_CASES]


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that has run once and registered its model as churn@champion."""
    root = tmp_path_factory.mktemp("trained") / "project"
    _make_project(root)
    done = run_mlops(root, "run")
    assert done.returncode == 0, done.stderr
    registered = run_mlops(root, "registry", "register", "latest", "--name", "churn")
    assert registered.returncode == 0, registered.stderr
    promoted = run_mlops(root, "registry", "promote", "churn/1", "--alias", "champion")
    assert promoted.returncode == 0, promoted.stderr
    return root


def _make_project(root: Path) -> None:
    shutil.copytree(CONF, root / "conf", ignore=without_local)
    (root / "conf" / "local" / "default.yaml").write_text(SMALL_DATA)


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_and_touches_nothing_outside(case: Case, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    outside.mkdir()
    if case.trained:
        shutil.copytree(request.getfixturevalue("trained_project"), project, symlinks=True)
    else:
        _make_project(project)
    if case.setup:
        case.setup(project, outside)
    before = _tree(project)
    args = [a.format(outside=outside, project=project) for a in case.args]

    done = run_mlops(project, *args)

    lines = done.stderr.strip().splitlines()
    assert done.returncode == case.status, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, lines
    assert re.search(case.line, lines[0]), lines[0]
    if case.stdout is not None:
        assert re.search(case.stdout, done.stdout), done.stdout
    assert not any(outside.iterdir()), sorted(outside.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "project"]
    after = _tree(project)
    lost = sorted(set(before) - set(after))
    assert not lost, f"the refused command removed {lost}"
    runs = sorted(p for p in set(after) - set(before) if p.split(os.sep)[:2] in (
        ["outputs", "runs"], ["outputs", "sweeps"], ["outputs", "quality"], ["outputs", "features"]))
    if case.leaves_run:
        records = [json.loads((project / p).read_text()) for p in runs if p.endswith("run.json")]
        assert records and all(r["status"] == "failed" for r in records), records
    else:
        assert not runs, f"the refused command left a run behind: {runs[:5]}"
