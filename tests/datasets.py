"""Small realistic tables for ``mlops init``: the kinds of columns real exports have."""

from __future__ import annotations

import numpy as np
import pandas as pd


def customers(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A subscription table with a signal: mixed numbers and categories, missing values,
    a text id, a constant, an empty column, a date, odd column names, a bool, and a
    numeric column with blanks (' ') as an export writes them.

    The target ``Churn`` is ``Yes``/``No``; it depends on contract, tenure, charges,
    seniority and paperless billing.
    """
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)
    monthly = np.round(rng.uniform(18, 120, rows), 2)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.25, 0.2])
    senior = rng.integers(0, 2, rows)
    paperless = rng.choice([True, False], rows)
    logit = (-1.0 + 1.2 * (contract == "Month-to-month") - 0.03 * tenure + 0.01 * monthly + 0.3 * senior
             + 0.3 * paperless)
    churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "customer id": [f"C{i:06d}" for i in rng.permutation(rows)],
        "tenure": tenure,
        "Monthly.Charges": monthly,
        "total charges": np.round(monthly * tenure + rng.normal(0, 20, rows), 2).astype(object),
        "contract": contract,
        "région": rng.choice(["nord", "sud", "est", "ouest"], rows),
        "senior": senior,
        "paperless": paperless,
        "country": "FR",
        "notes": np.nan,
        "signed_up": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, rows), unit="D")
                      ).strftime("%Y-%m-%d"),
        "Churn": np.where(churn, "Yes", "No"),
    })
    frame.loc[rng.choice(rows, 11, replace=False), "total charges"] = " "
    frame.loc[rng.choice(rows, rows // 20, replace=False), "Monthly.Charges"] = np.nan
    frame.loc[rng.choice(rows, rows // 30, replace=False), "contract"] = np.nan
    return frame
