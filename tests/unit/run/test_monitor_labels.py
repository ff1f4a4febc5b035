"""Labels joined to logged predictions by key, at each row's own cut-off, once complete: the
project's own, and those of ``--labels`` (read, checked, joined point in time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config.monitor import Labels
from engine.config.plan import Plan
from engine.config.plan import compile as compile_plan
from engine.errors import DataError, UsageError
from engine.run.monitor import Monitored, attach_labels, join_labels, read_labels
from engine.stages import data, features
from engine.stages import monitor as monitoring
from tests.conftest import compose_config


def test_labels_are_joined_by_key_at_each_rows_cut_off_only_once_complete() -> None:
    plan = compile_plan(compose_config("data=demo", "data.generate.customers=1500", "as_of=2026-09-01"))
    table = features.build(plan.features, data.load(plan.data, Path(".")), pd.Timestamp("2026-09-01"), None)
    truth = dict(zip(table.frame[table.key].astype(str), table.frame[table.target].astype(int), strict=True))
    keys = pd.Series([*list(truth)[:300], "no-such-customer", None])
    # three cut-offs: two with labels complete by the data's end (2026-10-31), one without
    cutoffs = pd.Series([pd.Timestamp("2026-09-01")] * 200 + [pd.Timestamp("2026-10-15")] * 100
                        + [pd.Timestamp("2026-09-01")] * 2)
    labels, mask, note = join_labels(plan, Path("."), keys, cutoffs)
    assert mask.tolist() == [True] * 200 + [False] * 100 + [False, False]
    assert labels.tolist() == [truth[k] for k in keys[:200]]
    assert "2026-09-01" in note and "2026-10-15" not in note


def _current(keys: list[object], cutoffs: list[str | None] | None) -> monitoring.Current:
    n = len(keys)
    return monitoring.Current(pd.DataFrame({"x": range(n)}), scores=np.linspace(0, 1, n),
                              keys=pd.Series(keys, dtype=object),
                              cutoffs=pd.Series(pd.to_datetime(cutoffs)) if cutoffs is not None else None)


def test_labels_of_their_own_join_by_key_point_in_time_the_latest_within_the_window() -> None:
    labels = pd.DataFrame({"key": ["a", "a", "a", "b", "b", "c", "d"],
                           "label": [1, 0, 1, 1, 0, 1, 0],
                           "time": pd.to_datetime(["2026-09-30",    # a: before its cut-off, not yet known
                                                   "2026-10-05",    # a: inside
                                                   "2026-10-20",    # a: inside, later: wins
                                                   "2026-10-01",    # b: at the cut-off itself: not after it
                                                   "2026-11-15",    # b: after cut-off + 30 days
                                                   "2026-10-31",    # c: the window's last day: inside
                                                   "2026-10-02"])})  # d: no logged row
    current = _current(["a", "b", "c", "e", None], ["2026-10-01"] * 5)
    attach_labels(current, labels, pd.Timedelta(days=30), "labels.csv")
    assert current.labelled.tolist() == [True, False, True, False, False]
    assert current.labels.tolist() == [1, 1]
    assert "2 of 5 row(s) labelled by key, within 30d after their cut-off" in current.source


def test_labels_without_times_or_rows_without_cut_offs_join_by_key_alone() -> None:
    labels = pd.DataFrame({"key": ["1", "2"], "label": [0, 1], "time": pd.Series([pd.NaT, pd.NaT])})
    current = _current(["2", "3", "1"], None)
    attach_labels(current, labels, pd.Timedelta(days=30), "labels.csv")
    assert current.labelled.tolist() == [True, False, True] and current.labels.tolist() == [1, 0]


def test_current_rows_without_keys_are_a_usage_error() -> None:
    current = monitoring.Current(pd.DataFrame({"x": [1]}), scores=np.zeros(1))
    with pytest.raises(UsageError, match="the current rows have no keys"):
        attach_labels(current, pd.DataFrame({"key": [], "label": [], "time": []}), pd.Timedelta(days=1), "l.csv")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return compile_plan(compose_config())


def _monitored() -> Monitored:
    return Monitored("churn@champion", "churn", 1, "run", Path("."), None, 0.5, {}, None, "churned")


@pytest.mark.parametrize(("text", "overrides", "line"), [
    ("customer_id,churned\n1,1\n2,0\n", {}, None),
    ("customer_id,churned,labelled_at\n1,true,2026-10-02\n1,false,2026-10-03T10:00:00+02:00\n",
     {"time": "labelled_at"}, None),
    ("customer,churned\n1,1\n", {}, "data error at labels.csv: no column 'customer_id' (the key, monitor.labels.key); "
                                    "expected the columns customer_id, churned, got customer, churned"),
    ("customer_id,churned\n1,yes\n", {}, "data error at labels.csv: column 'churned' (the label): expected 0/1 or "
                                         "true/false, got text, e.g. 'yes'"),
    ("customer_id,churned\n1,2\n", {}, "column 'churned' (the label): expected 0/1 or true/false, got 1 other "
                                       "value(s), e.g. 2"),
    ("customer_id,churned\n1,1\n1,0\n", {}, "column 'customer_id' (the key): expected one label per key without a "
                                            "time column (monitor.labels.time), got 1 key(s) more than once, e.g. '1'"),
    ("customer_id,churned,at\n1,1,next week\n", {"time": "at"}, "column 'at' (the label's time): expected dates or "
                                                                "times such as 2026-11-30, got 'next week' (row 1)"),
    ("customer_id,churned\n,1\n", {}, "column 'customer_id' (the key): expected a key in every row, got 1 missing"),
    ("", {}, "data error at labels.csv: cannot read it as CSV"),
])
def test_a_labels_file_is_read_or_refused_in_one_line_naming_the_file_and_column(
        plan: Plan, tmp_path: Path, text: str, overrides: dict[str, str], line: str | None) -> None:
    (tmp_path / "labels.csv").write_text(text)
    declared = replace(plan, monitor=replace(plan.monitor, labels=Labels(**overrides)))
    if line is None:
        frame, what = read_labels("labels.csv", declared, tmp_path, _monitored())
        assert frame["key"].tolist() == (["1", "2"] if "2,0" in text else ["1", "1"])
        assert frame["label"].tolist() == ([1, 0] if "2,0" in text else [1, 0])
        assert what.startswith("labels.csv (")
        if overrides:  # times as naive UTC
            assert frame["time"].tolist() == [pd.Timestamp("2026-10-02"), pd.Timestamp("2026-10-03 08:00")]
        return
    with pytest.raises(DataError) as caught:
        read_labels("labels.csv", declared, tmp_path, _monitored())
    assert line in str(caught.value) and "\n" not in str(caught.value)
