"""The feature store through the real mlops command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import read_json, run_dirs, run_mlops

# Several trained runs against one feature store: slow, run by `pytest -m slow` and CI.
pytestmark = pytest.mark.slow


def tables(run: Path) -> dict[str, str]:
    return {t.get("group", t.get("table")): t["status"] for t in read_json(run / "run.json")["features"]["tables"]}


def test_a_second_run_reuses_every_table_and_gets_the_same_metrics(project: Path) -> None:
    assert run_mlops(project, "run").returncode == 0
    done = run_mlops(project, "run")
    assert done.returncode == 0
    first, second = run_dirs(project)
    assert set(tables(first).values()) == {"built"}
    assert tables(second) == {"order_behaviour": "reused", "support_contacts": "reused", "features": "reused"}
    assert "feature table features reused" in done.stdout
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()


def test_changing_one_expression_rebuilds_only_what_depends_on_it(project: Path) -> None:
    assert run_mlops(project, "run").returncode == 0
    done = run_mlops(project, "run", "features.derived.recent_share='orders_30d / (orders_90d + 1)'")
    assert done.returncode == 0
    assert tables(run_dirs(project)[-1]) == {"order_behaviour": "reused", "support_contacts": "reused",
                                             "features": "built"}
    done = run_mlops(project, "run", "features.groups.order_behaviour.aggregations.orders_30d.window=45d")
    assert tables(run_dirs(project)[-1]) == {"order_behaviour": "built", "support_contacts": "reused",
                                             "features": "built"}
    assert "shared feature group order_behaviour changed since it was last used" in done.stdout
    assert "LogisticRegression" in done.stdout


def test_two_projects_pointing_at_one_store_share_tables(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(project / "conf", other / "conf")
    shared = tmp_path / "shared-store"
    assert run_mlops(project, "run", f"features.store.path={shared}").returncode == 0
    # The other project has its own copy of the same data: same fingerprints, same keys.
    assert run_mlops(other, "run", f"features.store.path={shared}").returncode == 0
    assert set(tables(run_dirs(other)[0]).values()) == {"reused"}


def test_gc_keeps_tables_another_project_sharing_the_store_uses(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(project / "conf", other / "conf")
    shared = tmp_path / "shared-store"
    assert run_mlops(other, "run", f"features.store.path={shared}").returncode == 0
    done = run_mlops(project, "features", "gc", "--store", str(shared), "--keep-recent", "0")
    assert "removed 0 table(s)" in done.stdout
    shutil.rmtree(other / "outputs" / "runs")  # the only run that used them is gone
    done = run_mlops(project, "features", "gc", "--store", str(shared), "--keep-recent", "0")
    assert "removed 3 table(s)" in done.stdout


def test_materialize_list_show_and_gc(project: Path) -> None:
    done = run_mlops(project, "features", "materialize")
    assert done.returncode == 0, done.stderr
    assert "materialized (order_behaviour built, support_contacts built, features built)" in done.stdout
    assert not (project / "outputs" / "runs").exists()
    listed = run_mlops(project, "features", "list")
    assert listed.returncode == 0 and "3 table(s)" in listed.stdout
    shown = run_mlops(project, "features", "show", "order_behaviour")
    assert "feature group order_behaviour: 1 definition(s)" in shown.stdout
    # Drop the only run that references the tables: gc may now remove them.
    shutil.rmtree(project / "outputs" / "features")
    dry = run_mlops(project, "features", "gc", "--dry-run", "--keep-recent", "0")
    assert "would remove 3 table(s)" in dry.stdout
    assert "3 table(s)" in run_mlops(project, "features", "list").stdout
    assert "removed 3 table(s)" in run_mlops(project, "features", "gc", "--keep-recent", "0").stdout
    assert "0 table(s)" in run_mlops(project, "features", "list").stdout


@pytest.mark.parametrize("text", ["__import__('os')", "().__class__", "n_orders.__class__"])
def test_code_in_a_feature_config_is_refused_before_any_data_is_read(project: Path, text: str) -> None:
    bad = project / "conf" / "features" / "churn.yaml"
    bad.write_text(bad.read_text().replace("avg_expenditure: total_expenditure / n_orders",
                                           f'avg_expenditure: "{text}"'))
    done = run_mlops(project, "run")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at features.derived.avg_expenditure (conf/features/churn.yaml)")
    assert not (project / "data").exists()  # refused before the demo data was even generated
    record = read_json(run_dirs(project)[0] / "run.json")
    assert set(record["stages"]) == {"validate"}
