"""The input checks of POST /predict: bodies in, typed rows or one RequestError out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.errors import RequestError
from engine.serve import inputs

DOMAIN: dict[str, Any] = {
    "format": 1,
    "key": {"name": "customer_id", "type": "integer"},
    "columns": {
        "plan": {"type": "string", "missing_share": 0.0, "categories": ["annual", "monthly"]},
        "n_orders": {"type": "integer", "missing_share": 0.0, "min": 0, "max": 9},
        "amount": {"type": "number", "missing_share": 0.1, "min": 0.0, "max": 9.5},
        "vip": {"type": "boolean", "missing_share": 0.0, "categories": ["False", "True"]},
    },
}
ROW = {"customer_id": 7, "plan": "annual", "n_orders": 3, "amount": 2.5, "vip": False}


def checked(body: Any, content_type: str = "application/json", max_rows: int = 100) -> inputs.Rows:
    # 1e999 stands for a number JSON parses to infinity (json.dumps would write Infinity)
    raw = body if isinstance(body, bytes) else json.dumps(body).replace("Infinity", "1e999").encode()
    return inputs.check(inputs.parse(raw, content_type), DOMAIN, max_rows)


@pytest.mark.parametrize("body", [
    [ROW, ROW], {"records": [ROW, ROW]}, {"dataframe_records": [ROW, ROW]},
    {"columns": {k: [v, v] for k, v in ROW.items()}},
    {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())] * 2}},
], ids=["records", "records-key", "mlflow-records", "columns", "mlflow-split"])
def test_every_json_shape_gives_the_same_typed_rows(body: Any) -> None:
    rows = checked(body)
    assert rows.n == 2 and rows.keys == [7, 7] and rows.by_key == []
    assert list(rows.features.columns) == list(DOMAIN["columns"])
    assert rows.features["n_orders"].dtype == np.float64 and rows.features["amount"].tolist() == [2.5, 2.5]
    assert rows.features["plan"].tolist() == ["annual", "annual"] and rows.features["vip"].tolist() == ["False", "False"]


def test_csv_cells_are_converted_to_the_column_types() -> None:
    body = b"customer_id,plan,n_orders,amount,vip\n7,annual,3,2.5,false\n8,monthly,4,,TRUE\n"
    rows = checked(body, "text/csv; charset=utf-8")
    assert rows.features["n_orders"].tolist() == [3.0, 4.0]
    assert rows.features["amount"].iloc[0] == 2.5 and np.isnan(rows.features["amount"].iloc[1])
    assert rows.features["vip"].tolist() == ["False", "True"] and rows.keys == [7, 8]


def test_a_row_with_only_its_key_is_served_by_key() -> None:
    rows = checked([ROW, {"customer_id": "12"}, {"customer_id": 13.0}])
    assert rows.by_key == [1, 2] and rows.keys == [7, 12, 13] and rows.features.index.tolist() == [0]


def test_by_key_without_a_feature_store_names_what_is_expected() -> None:
    with pytest.raises(RequestError, match="no feature store") as caught:
        inputs.check([{"customer_id": 1}], DOMAIN, 10, by_key_allowed=False)
    assert caught.value.status == 422 and caught.value.row == 0


@pytest.mark.parametrize(("row", "column", "words"), [
    ({**ROW, "n_orders": 2.5}, "n_orders", "expected an integer"),
    ({**ROW, "n_orders": "3"}, "n_orders", "expected an integer or null, got string"),
    ({**ROW, "amount": 1e999}, "amount", "finite"),
    ({**ROW, "vip": "yes"}, "vip", "expected true, false or null"),
    ({**ROW, "plan": 1}, "plan", "expected a string or null, got number 1"),
    ({k: v for k, v in ROW.items() if k != "amount"}, "amount", "missing"),
    ({"customer_id": [1]}, "customer_id", "expected an integer key (64-bit)"),
    ({**ROW, "amount": True}, "amount", "expected a number or null, got"),  # Arrow would read it as 1.0
    ({**ROW, "vip": 1}, "vip", "expected true, false or null"),
    ({**ROW, "plan": ["annual"]}, "plan", "expected a string or null"),
    ({**ROW, "amount": 10**400}, "amount", "expected a number or null, got number 1000"),  # beyond float64
    ({**ROW, "n_orders": -10**309}, "n_orders", "expected an integer or null, got number -1000"),
], ids=["fraction", "text-number", "infinite", "text-bool", "number-category", "missing", "list-key", "bool-number",
        "number-bool", "list-category", "huge-number", "huge-integer"])
def test_a_value_of_the_wrong_type_is_422_at_its_row_and_column(row: dict[str, Any], column: str,
                                                                words: str) -> None:
    with pytest.raises(RequestError) as caught:
        checked([ROW, row])
    error = caught.value
    assert (error.status, error.row, error.column) == (422, 1, column)
    assert words in str(error) and f"row 1 column {column!r}" in str(error)


def test_more_rows_than_allowed_is_422() -> None:
    with pytest.raises(RequestError, match="holds 3 rows; expected at most 2") as caught:
        checked([ROW] * 3, max_rows=2)
    assert caught.value.status == 422


@pytest.mark.parametrize(("body", "content_type", "words"), [
    (b"[", "application/json", "not valid JSON"),
    (b"[Infinity]", "application/json", "Infinity is not a JSON value"),
    (b"<xml/>", "application/xml", "expected a body of Content-Type"),
    (b'"text"', None, "expected a JSON object or list"),
    (b"", "text/csv", "no header line"),
    (b"a,b\n1\n", "text/csv", "has 1 cells; expected 2"),
    (b"\xff\xfe", "text/csv", "not UTF-8"),
    (b'{"columns": {"a": [1], "b": [1, 2]}}', "application/json", "one length"),
], ids=["broken", "infinity", "xml", "scalar", "empty-csv", "ragged-csv", "latin-csv", "ragged-columns"])
def test_a_body_that_is_not_json_or_csv_is_400(body: bytes, content_type: str | None, words: str) -> None:
    with pytest.raises(RequestError, match=words) as caught:
        inputs.parse(body, content_type)
    assert caught.value.status == 400


def test_extra_columns_are_ignored_and_nothing_is_evaluated() -> None:
    rows = checked([{**ROW, "__import__('os').system('x')": 1, "plan": "__import__('os')"}])
    assert rows.features["plan"].tolist() == ["__import__('os')"]


def test_checked_rows_are_what_the_pipeline_takes_without_another_conversion() -> None:
    """The serving shortcut (model_input skips typed columns) equals the training conversion."""
    import pandas as pd

    from engine.serve.model import model_input
    from engine.stages.model import as_model_input

    rows = checked([ROW, {**ROW, "plan": None, "vip": None, "amount": None}, {**ROW, "vip": True}])
    ready = model_input(rows.features)
    pd.testing.assert_frame_equal(ready, as_model_input(rows.features))
    assert ready["plan"].iloc[1] != ready["plan"].iloc[1]  # NaN, SimpleImputer's missing marker
    store_like = rows.features.astype({"plan": "str"})
    pd.testing.assert_frame_equal(model_input(store_like), as_model_input(store_like))


@pytest.mark.parametrize("n", [1, 3, 1500])
def test_json_columns_typed_at_once_equal_csv_cells_typed_one_by_one(n: int) -> None:
    """JSON values of their column's exact type take numpy's one-call path; CSV cells are
    converted value by value; the same rows come out typed the same either way."""
    rows = [{**ROW, "n_orders": i % 7, "amount": None if i % 3 == 0 else i / 4, "plan": None if i % 5 == 0
             else "annual", "vip": None if i % 4 == 0 else bool(i % 2)} for i in range(n)]
    fast = checked(rows, max_rows=n).features
    names = list(DOMAIN["columns"])
    lines = [",".join(names)] + [",".join("" if r[c] is None else str(r[c]) for c in names) for r in rows]
    slow = inputs.check(inputs.parse("\n".join(lines).encode(), "text/csv"), DOMAIN, n).features
    pd.testing.assert_frame_equal(fast, slow)
    assert [fast[c].dtype for c in names] == [np.dtype(float) if DOMAIN["columns"][c]["type"] in ("number", "integer")
                                             else np.dtype(object) for c in names]
    assert fast["n_orders"].dtype == np.float64 and np.isnan(fast["amount"].iloc[0])


def test_flags_from_the_checked_arrays_equal_flags_from_the_frame() -> None:
    """The server hands the domain flags the arrays the checks typed; pandas' frame gives the same flags."""
    from engine.stages import domain

    rows = checked([ROW, {**ROW, "plan": "weekly", "n_orders": 12, "amount": None, "vip": None},
                    {**ROW, "plan": None, "n_orders": -1, "amount": 9.75}, {**ROW, "amount": None}])
    fast = domain.flags(rows.features, DOMAIN, rows.arrays)
    assert fast == domain.flags(rows.features, DOMAIN)
    assert [sorted(f"{f['column']}:{f['flag']}" for f in row) for row in fast] == [
        [], ["n_orders:above_range", "plan:unseen_category", "vip:missing"],  # amount may be missing
        ["amount:above_range", "n_orders:below_range", "plan:missing"], []]
