"""Hold-out split (``conf/split/``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from engine.config.plan import SplitSpec
from engine.errors import DataError


@dataclass(frozen=True)
class Split:
    """Index labels of the train and test rows of the feature table."""

    train: pd.Index
    test: pd.Index


def holdout(y: pd.Series, spec: SplitSpec) -> Split:
    """Split rows into train and hold-out, stratified on the target when asked.

    Raises:
        DataError: Too few rows, or a single class, to split as configured.
    """
    classes = y.value_counts()
    if len(classes) < 2:
        raise DataError(
            f"data error at features.target: the target has one class only ({classes.to_dict()}); "
            "expected both 0 and 1, check as_of and the target expression"
        )
    stratify = y if spec.stratify else None
    try:
        train, test = train_test_split(
            y.index, test_size=spec.test_size, stratify=stratify, random_state=spec.seed
        )
    except ValueError as exc:
        raise DataError(
            f"data error at split: cannot split {len(y)} rows with classes {classes.to_dict()}: {exc}"
        ) from exc
    for part, rows in (("training", train), ("hold-out", test)):
        if y.loc[rows].nunique() < 2:
            raise DataError(
                f"data error at split: the {part} part has one class only ({y.loc[rows].value_counts().to_dict()}); "
                "expected both 0 and 1: use split.stratify=true, more data, or another test_size"
            )
    return Split(pd.Index(train), pd.Index(test))
