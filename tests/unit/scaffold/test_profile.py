"""Reading and profiling a user's table: types, roles, the binary target, bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import DataError, UsageError
from engine.scaffold import profile as profiling
from engine.scaffold.profile import Loaded
from tests.datasets import customers


def profiled(frame: pd.DataFrame, target: str = "y", **kw: str) -> profiling.Profile:
    return profiling.profile(Loaded(frame, "csv", "x.csv"), target, **kw)[0]


def test_types_and_roles_of_a_realistic_export(tmp_path: Path) -> None:
    customers().to_csv(tmp_path / "c.csv", index=False)
    loaded = profiling.read(str(tmp_path / "c.csv"))
    observed, loaded = profiling.profile(loaded, "Churn")
    kinds = {c.name: (c.type, c.role) for c in observed.columns}
    assert kinds == {
        "customer id": ("string", "identifier"), "tenure": ("int", "feature"),
        "Monthly.Charges": ("float", "feature"), "total charges": ("float", "feature"),
        "contract": ("category", "feature"), "région": ("category", "feature"), "senior": ("int", "feature"),
        "paperless": ("bool", "feature"), "country": ("category", "constant"), "notes": ("float", "empty"),
        "signed_up": ("datetime", "date"), "Churn": ("category", "target")}
    # the blanks of a numeric column are read as missing, and the run is told to do the same
    assert loaded.load_args == {"na_values": {"total charges": [" "]}}
    assert observed.column("total charges").missing == 11
    again = pd.read_csv(tmp_path / "c.csv", **loaded.load_args)
    pd.testing.assert_series_equal(again["total charges"], loaded.frame["total charges"])
    assert observed.target == profiling.Target("Churn", "Yes", "No", 0)


@pytest.mark.parametrize(("values", "positive"), [
    ([1, 0, 1], 1), ([1.0, 0.0, np.nan], 1.0), ([True, False, True], True), (["yes", "no", "no"], "yes"), (["No", "Yes", "No"], "Yes"),
    (["N", "Y", "N"], "Y"), (["TRUE", "FALSE", "FALSE"], "TRUE"),
])
def test_an_obvious_positive_class_needs_no_flag(values: list[object], positive: object) -> None:
    assert profiled(pd.DataFrame({"y": values, "x": range(3)})).target.positive == positive


def test_other_values_need_positive_and_it_must_be_one_of_them() -> None:
    frame = pd.DataFrame({"y": ["M", "B", "B", "M"], "x": range(4)})
    with pytest.raises(UsageError, match=r"--target 'y' has the values 'B' and 'M'; say which .* --positive"):
        profiled(frame)
    assert profiled(frame, positive="m").target == profiling.Target("y", "M", "B", 0)  # case-insensitive
    with pytest.raises(UsageError, match=r"--positive 'X' is not a value of --target 'y'; expected 'B' or 'M'"):
        profiled(frame, positive="X")
    assert profiled(pd.DataFrame({"y": [2, 4, 4]}), positive="4").target.positive == 4


@pytest.mark.parametrize(("values", "message"), [
    (["a", "b", "c", "a"], r"is multi-class: 3 values \(.a., .b., .c.\); expected two classes"),
    (list(np.linspace(0, 1, 40)), r"is continuous: 40 values; expected two classes \(the engine does binary classification\)"),
    (["a", "a", None], r"has only 'a'; expected two classes"),
])
def test_a_target_that_is_not_binary_is_refused(values: list[object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        profiled(pd.DataFrame({"y": values}))


def test_missing_target_values_are_counted() -> None:
    assert profiled(pd.DataFrame({"y": [1, 0, None, 1]})).target.missing == 1


def test_unknown_columns_and_a_bad_key_are_usage_errors() -> None:
    frame = pd.DataFrame({"y": [1, 0, 1], "id": [1, 1, 2], "gap": [1.0, None, 2.0]})
    with pytest.raises(UsageError, match=r"--target 'churn' is not a column; columns are: y, id, gap"):
        profiled(frame, target="churn")
    with pytest.raises(UsageError, match=r"--key 'id' is not unique: 1 rows repeat a value"):
        profiled(frame, key="id")
    with pytest.raises(UsageError, match=r"--key 'gap' is missing in 1 rows"):
        profiled(frame, key="gap")
    with pytest.raises(UsageError, match=r"--timestamp 'id' must hold dates"):
        profiled(frame, timestamp="id")


def test_integer_identifiers_by_range_or_name_but_not_measurements() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"y": rng.integers(0, 2, 200), "row": np.arange(200) + 10,
                          "customerID": rng.permutation(10**6)[:200], "cents": rng.permutation(10**6)[:200]})
    roles = {c.name: c.role for c in profiled(frame).columns}
    assert roles == {"y": "target", "row": "identifier", "customerID": "identifier", "cents": "feature"}


def test_reading_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--data 'nope.csv': file not found"):
        profiling.read("nope.csv")
    with pytest.raises(UsageError, match=r"is a database URL; give the table or SQL with --query"):
        profiling.read("sqlite:///x.db")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"the file is empty"):
        profiling.read(str(tmp_path / "empty.csv"))
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "really.csv")
    with pytest.raises(DataError, match=r"this is a Parquet file"):
        profiling.read(str(tmp_path / "really.csv"))
    (tmp_path / "bad.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"cannot read it as Parquet"):
        profiling.read(str(tmp_path / "bad.parquet"))


def test_a_semicolon_export_in_latin_1_is_read_and_said_so(tmp_path: Path) -> None:
    (tmp_path / "eu.csv").write_bytes("âge;ville;y\n30;Orléans;oui\n41;Nîmes;non\n".encode("latin-1"))
    loaded = profiling.read(str(tmp_path / "eu.csv"))
    assert loaded.load_args == {"sep": ";"} and loaded.encoding == "latin-1"
    assert list(loaded.frame.columns) == ["âge", "ville", "y"] and loaded.frame["ville"].tolist() == ["Orléans", "Nîmes"]
