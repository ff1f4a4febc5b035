"""Writes the files of tests/functional/test_bad_data.py: a small good table, and one
file per bad case made from it by one change. Run once; the files are committed.

    python tests/functional/bad_data/_make.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def good(rows: int = 120) -> pd.DataFrame:
    """Customers with a churn label that tenure and the contract explain (ROC AUC ~0.8)."""
    rng = np.random.default_rng(14)
    tenure = rng.integers(1, 72, rows)
    contract = rng.choice(["month", "year", "two_year"], rows, p=[0.5, 0.3, 0.2])
    risk = 1.5 - tenure / 24 + np.where(contract == "month", 1.0, -1.0) + rng.normal(0, 0.8, rows)
    return pd.DataFrame({
        "customer_id": np.arange(1001, 1001 + rows),
        "tenure": tenure,
        "monthly_charges": np.round(rng.uniform(20, 110, rows), 2),
        "contract": contract,
        "paperless": rng.choice(["true", "false"], rows),
        "signed_up": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, rows), unit="D"),
        "churn": np.where(risk > 0.5, "Yes", "No"),
    })


def text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, date_format="%Y-%m-%d")


def main() -> None:
    base = good()
    (HERE / "good.csv").write_text(text(base))
    small = base.head(8)
    (HERE / "empty.csv").write_bytes(b"")
    (HERE / "header_only.csv").write_text(",".join(base.columns) + "\n")
    latin = text(small).replace("month,", "mo\u00eftly,", 1)  # one latin-1 byte on the first data line
    (HERE / "latin1.csv").write_bytes(latin.encode("latin-1"))
    lines = text(small).splitlines()
    lines[3] += ",surplus"  # file line 4: one field too many
    (HERE / "ragged_long.csv").write_text("\n".join(lines) + "\n")
    lines = text(small).splitlines()
    lines[4] = ",".join(lines[4].split(",")[:5])  # file line 5: two fields short
    (HERE / "ragged_short.csv").write_text("\n".join(lines) + "\n")
    (HERE / "duplicated_columns.csv").write_text(text(small).replace("monthly_charges", "tenure", 1))
    (HERE / "single_class.csv").write_text(text(base.assign(churn="No")))
    missing = base.copy()
    missing.loc[[4, 17, 60], "churn"] = None
    (HERE / "missing_target.csv").write_text(text(missing))
    wrong = base.astype({"tenure": object})
    wrong.loc[5, "tenure"] = "twelve"  # file line 7
    (HERE / "wrong_dtype.csv").write_text(text(wrong))
    required = base.astype({"tenure": object})
    required.loc[2, "tenure"] = None  # file line 4
    (HERE / "missing_required.csv").write_text(text(required))
    infinite = base.astype({"monthly_charges": object})
    infinite.loc[3, "monthly_charges"] = "inf"  # file line 5
    infinite.loc[9, "monthly_charges"] = "1e999"  # out of float64's range: read as infinite
    (HERE / "infinite.csv").write_text(text(infinite))
    duplicate = pd.concat([base.head(4), base.iloc[[1]], base.iloc[4:]], ignore_index=True)  # line 6 repeats 1002
    (HERE / "duplicate_keys.csv").write_text(text(duplicate))
    small.to_parquet(HERE / "parquet_named_csv.csv", index=False)


if __name__ == "__main__":
    main()
