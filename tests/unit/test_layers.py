"""Layers point one way: cli -> run -> report -> stages -> store -> config -> errors.

The contracts are written down once, as import-linter contracts in pyproject.toml
(``[tool.importlinter]``, as Kedro keeps its own); these tests run them and check that
they still cover every folder of ``engine/``, so a new package cannot slip past them.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())"], cwd=cwd, capture_output=True, text=True)


def test_the_layer_contracts_are_kept() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_every_module_of_engine_sits_in_a_layer() -> None:
    children = {f"engine.{p.stem if p.is_file() else p.name}" for p in (ROOT / "engine").iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert children - set(_layers()) == set(), "add the new module to [tool.importlinter] in pyproject.toml"


def test_an_import_against_the_layers_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: a stage that imports the CLI is reported."""
    copy = tmp_path / "project"
    copy.mkdir()
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    engine = copy / "engine"
    subprocess.run(["cp", "-r", str(ROOT / "engine"), str(engine)], check=True)
    bad = engine / "stages" / "split.py"
    bad.write_text(bad.read_text() + "\n\ndef _bad() -> None:\n    from engine.cli import app  # noqa: F401\n")
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.'); "
                           "from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"],
                          cwd=copy, capture_output=True, text=True)
    assert done.returncode != 0
    assert "engine.stages.split -> engine.cli.app" in done.stdout


def test_launching_a_sweep_imports_neither_scikit_learn_nor_pandas() -> None:
    """The task is imported when a job starts: a joblib or submitit sweep's launching
    process stays light and its workers are not kept waiting for it."""
    probe = ("import sys, engine.cli, engine.cli.app, engine.callbacks, engine.config.composecache, "
             "engine.config.hydraconf, engine.config.targets; "
             "import hydra_plugins.mlops_grid_sweeper.mlops_grid_sweeper; "
             "engine.cli.app.lazy_task('task'); engine.cli.command('run'); "
             "print(sorted(m for m in ('sklearn', 'pandas', 'engine.run.job') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
