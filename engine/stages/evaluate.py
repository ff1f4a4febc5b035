"""Hold-out evaluation: the data scientist's metrics at a decision threshold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm


def holdout_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of scores on the hold-out set.

    Args:
        y_true: 0/1 labels.
        y_score: Predicted probability of class 1.
        threshold: Scores at or above it are predicted positive.

    Returns:
        accuracy, precision, recall, f1, roc_auc, log_loss and brier, plus the
        confusion counts (tn, fp, fn, tp) and the threshold. A metric that is
        undefined on this data (ROC AUC with one class) is ``None``.
    """
    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    y_pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    out: dict[str, Any] = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0),
        "roc_auc": skm.roc_auc_score(y_true, y_score) if both else None,
        "log_loss": skm.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "brier": skm.brier_score_loss(y_true, y_score),
    }
    out = {k: (None if v is None or math.isnan(v) else round(float(v), 6)) for k, v in out.items()}
    out.update(threshold=threshold, n_test=int(len(y_true)), positives=int(y_true.sum()),
               tn=int(tn), fp=int(fp), fn=int(fn), tp=int(tp))
    return out
