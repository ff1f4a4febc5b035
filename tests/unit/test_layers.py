"""Layers point one way: cli -> run -> stages -> store/registry -> errors.

Parses the imports of every module (no import side effects) and checks the contracts
that keep the architecture readable.
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("engine")}


def modules(pattern: str) -> list[Path]:
    return sorted(ENGINE.glob(pattern))


def test_validation_never_imports_a_stage() -> None:
    for path in [ENGINE / "validation.py", ENGINE / "specs.py", ENGINE / "plan.py", ENGINE / "rules.py",
                 ENGINE / "kpis.py"]:
        assert not {m for m in imports_of(path) if m.startswith("engine.stages")}, path


def test_stages_never_import_the_cli_or_the_orchestration() -> None:
    for path in modules("stages/*.py"):
        bad = {m for m in imports_of(path) if m.startswith(("engine.cli", "engine.run"))}
        assert not bad, f"{path.name} imports {bad}"


def test_only_the_cli_imports_the_cli() -> None:
    for path in modules("**/*.py"):
        if path.name != "cli.py":
            assert "engine.cli" not in imports_of(path), path


def test_errors_import_nothing_from_the_engine() -> None:
    assert imports_of(ENGINE / "errors.py") == set()


def test_launching_a_sweep_imports_neither_scikit_learn_nor_pandas() -> None:
    """The task is imported when a job starts: a joblib or submitit sweep's launching
    process stays light and its workers are not kept waiting for it."""
    import subprocess
    import sys

    probe = ("import sys, engine.cli, engine.callbacks, engine.composecache, engine.hydraconf, engine.targets; "
             "import hydra_plugins.mlops_grid_sweeper.mlops_grid_sweeper; "
             "engine.cli._task('task'); "
             "print(sorted(m for m in ('sklearn', 'pandas', 'engine.run') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
