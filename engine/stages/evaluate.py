"""Hold-out evaluation: the data scientist's metrics at a decision threshold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm


def holdout_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5,
                    ranking: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Metrics of scores on the hold-out set.

    Args:
        y_true: 0/1 labels.
        y_score: Predicted probability of class 1.
        threshold: Scores at or above it are predicted positive.
        ranking: :func:`ranking_metrics` of the same labels and scores, when already
            computed (they do not depend on the threshold).

    Returns:
        accuracy, precision, recall, f1, roc_auc, log_loss and brier, plus the
        confusion counts (tn, fp, fn, tp) and the threshold. A metric that is
        undefined on this data (ROC AUC with one class) is ``None``; precision, recall
        and F1 with nothing to divide by are 0, as scikit-learn's ``zero_division=0``.
    """
    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    y_pred = y_score >= threshold
    positive = y_true == 1
    tp = int(np.count_nonzero(y_pred & positive))
    fp = int(np.count_nonzero(y_pred & ~positive))
    fn = int(np.count_nonzero(~y_pred & positive))
    tn = len(y_true) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out: dict[str, Any] = {
        "accuracy": (tp + tn) / len(y_true) if len(y_true) else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        **(ranking if ranking is not None else ranking_metrics(y_true, y_score)),
    }
    out = {k: (None if v is None or math.isnan(v) else round(float(v), 6)) for k, v in out.items()}
    out.update(threshold=threshold, n_test=int(len(y_true)), positives=int(positive.sum()),
               tn=int(tn), fp=fp, fn=fn, tp=tp)
    return out


def ranking_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float | None]:
    """The metrics of the scores themselves, whatever the threshold: ROC AUC, log loss, Brier."""
    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    both = len(np.unique(y_true)) == 2
    return {
        "roc_auc": skm.roc_auc_score(y_true, y_score) if both else None,
        "log_loss": skm.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier": skm.brier_score_loss(y_true, y_score),
    }
