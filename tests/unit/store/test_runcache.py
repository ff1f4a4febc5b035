"""The run cache's key: what changes a result changes the key, nothing else does."""

from __future__ import annotations

from engine.store import runcache

CONFIG = {"name": "churn", "seed": 7, "model": {"_target_": "x.Y", "C": 1.0}, "tracking": {"uri": "sqlite:///a.db"}}
DATA = {"customers": "sha256:aa", "orders": "sha256:bb"}
CODE = {"git": {"commit": "c1", "diff_sha256": None}, "engine": {"git": {"commit": "e1", "diff_sha256": None}},
        "packages": {"scikit-learn": "1.9.1"}, "command": ["mlops", "run"], "overrides": []}


def test_where_and_why_a_run_is_recorded_do_not_change_its_key() -> None:
    base = runcache.key(CONFIG, DATA, CODE)
    assert base.startswith("sha256:")
    moved = {**CONFIG, "name": "other", "tracking": {"uri": "sqlite:///b.db"}, "hypothesis": "h", "cache": True}
    assert runcache.key(moved, dict(reversed(DATA.items())), {**CODE, "command": ["x"], "overrides": ["a=b"]}) == base


def test_config_data_and_code_each_change_the_key() -> None:
    base = runcache.key(CONFIG, DATA, CODE)
    assert runcache.key({**CONFIG, "model": {"_target_": "x.Y", "C": 0.5}}, DATA, CODE) != base
    assert runcache.key(CONFIG, {**DATA, "orders": "sha256:cc"}, CODE) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "git": {"commit": "c2", "diff_sha256": None}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "git": {"commit": "c1", "diff_sha256": "d"}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "engine": {"git": {"commit": "e2"}}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "packages": {"scikit-learn": "1.9.2"}}) != base
    assert runcache.key(CONFIG, DATA, {**CODE, "git": {"commit": "c1", "diff_sha256": None, "untracked_py": "u"}}) \
        != base


def test_an_untracked_python_file_changes_the_projects_code_state(tmp_path) -> None:
    import subprocess

    from engine.run import provenance
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    assert provenance.git_state(tmp_path)["untracked_py"] is None
    (tmp_path / "my_estimators.py").write_text("class Model: pass\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    first = provenance.git_state(tmp_path)["untracked_py"]
    assert first is not None
    (tmp_path / "my_estimators.py").write_text("class Model: n = 2\n")
    assert provenance.git_state(tmp_path)["untracked_py"] not in (None, first)
    (tmp_path / "café.py").write_text("a = 1\n")  # git quotes such names unless asked for -z
    with_cafe = provenance.git_state(tmp_path)["untracked_py"]
    (tmp_path / "café.py").write_text("a = 2\n")
    assert provenance.git_state(tmp_path)["untracked_py"] != with_cafe
    (tmp_path / "café.py").unlink()
    (tmp_path / ".gitignore").write_text("my_estimators.py\n")
    assert provenance.git_state(tmp_path)["untracked_py"] is None  # ignored files are not the project's code
