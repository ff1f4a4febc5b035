"""What the model is worth (``conf/business/``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def simple_estimate(churners_per_month: float, share_caught: float, retention_effect: float,
                    discounted_price: float) -> float:
    """The mission's back-of-the-envelope value per month.

    churners caught x share who stay after the offer x what they then pay:
    1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month.
    """
    return churners_per_month * share_caught * retention_effect * discounted_price


def value(business_cfg: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The added value of a model, from its hold-out recall."""
    recall = metrics.get("recall") or 0.0
    caught = business_cfg["churners_per_month"] * recall
    retained = caught * business_cfg["retention_effect"]
    return {
        "churners_per_month": business_cfg["churners_per_month"],
        "share_caught": recall,
        "churners_caught_per_month": round(caught, 2),
        "customers_retained_per_month": round(retained, 2),
        "simple_estimate_per_month": round(
            simple_estimate(business_cfg["churners_per_month"], recall, business_cfg["retention_effect"],
                            business_cfg["discounted_price"]), 2),
    }
