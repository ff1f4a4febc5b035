"""Labels joined to logged predictions by key, at each row's own cut-off, once complete."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.config.plan import compile as compile_plan
from engine.run.monitor import join_labels
from engine.stages import data, features
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
