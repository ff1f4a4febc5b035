"""The churn demo's data: a seeded generator of three sources, as a company has them.

A $10/month subscription. Each customer has a latent engagement that drives how often
and how much they order and how likely they are to cancel; the monthly plan and the
first months after signup carry extra risk, and a customer who is about to cancel
orders less in the ~60 days before. So churn in the month after any cut-off is
learnable from behaviour (order frequency, recency, spend, plan, tenure), but not
perfectly.

Three sources:

* ``customers`` (billing database): customer_id, first_name, last_name, age,
  signup_date, plan, active, cancelled_at.
* ``crm`` (a second system's view): customer_id, active, segment.
* ``orders`` (events): order_id, customer_id, ordered_at, amount.

and the four data-quality defects of the mission, each at a configurable rate:
wrong ages (accuracy), missing last names (completeness), the ``active`` flag
disagreeing between billing and CRM (consistency), and the last day's orders not yet
synchronised (timeliness).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.files import atomic_path, locked, write_json

FIRST_NAMES = np.array(
    ["Ada", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas",
     "Kira", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara"]
)
LAST_NAMES = np.array(
    ["Smith", "Garcia", "Müller", "Okafor", "Rossi", "Nakamura", "Jansen", "Novak",
     "Silva", "Dubois", "Kowalski", "Larsen", "Haddad", "Moreau", "Costa", "Weber"]
)
PLANS = np.array(["monthly", "annual", "family"])
SEGMENTS = np.array(["consumer", "student", "small_business"])
WRONG_AGES = np.array([-1, 0, 3, 130, 199])
DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class DemoSpec:
    """What the generator makes; each field is a key of ``data.generate``.

    Args:
        customers: Rows of the billing table (every customer who ever signed up).
        seed: Seed of the only random generator used.
        start: First signup date.
        snapshot: When the data was extracted: no event or cancellation after it.
        orders_per_month: Mean order rate of an average customer.
        monthly_churn: Target churn rate per month among active customers.
        wrong_age_rate: Share of customers with an impossible age (accuracy defect).
        missing_last_name_rate: Share of customers without a last name (completeness).
        crm_disagree_rate: Share of customers whose CRM ``active`` flag is flipped
            (consistency defect).
        unsynced_last_day_rate: Share of the last day's orders not yet synchronised
            (timeliness defect).
        unsynced_until: The end of that last day: the moment the data was needed
            (the run's ``as_of``); null means the snapshot.
    """

    customers: int = 20_000
    seed: int = 7
    start: str = "2024-01-01"
    snapshot: str = "2026-10-31"
    orders_per_month: float = 0.65
    monthly_churn: float = 0.01
    wrong_age_rate: float = 0.02
    missing_last_name_rate: float = 0.6
    crm_disagree_rate: float = 0.03
    unsynced_last_day_rate: float = 1.0
    unsynced_until: str | None = None

    def digest(self) -> str:
        """A hash of the spec: files made from another spec are made again."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def generate(spec: DemoSpec) -> dict[str, pd.DataFrame]:
    """Generate the three demo tables in memory.

    Args:
        spec: Size, seed and defect rates.

    Returns:
        ``{"customers": ..., "crm": ..., "orders": ...}``.
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.customers
    start = np.datetime64(spec.start, "s")
    snapshot = np.datetime64(spec.snapshot, "s")
    span_days = (snapshot - start) / DAY

    engagement = rng.normal(size=n)
    plan = rng.choice(PLANS, size=n, p=[0.55, 0.3, 0.15])
    signup = start + (rng.uniform(0, span_days, size=n) * 86400).astype("timedelta64[s]")

    # Churn: a constant monthly hazard per customer, higher for low engagement and the
    # monthly plan, plus an early-life bump in the first 90 days.
    plan_risk = np.select([plan == "monthly", plan == "annual"], [0.5, -0.6], -0.2)
    risk = np.exp(-0.9 * engagement + plan_risk)
    hazard = spec.monthly_churn * risk / risk.mean()
    days_to_cancel = rng.exponential(30.0 / hazard)
    early = rng.uniform(size=n) < 0.04 * np.exp(-0.5 * engagement)
    days_to_cancel = np.where(early, rng.uniform(5, 90, size=n), days_to_cancel)
    cancel = signup + (days_to_cancel * 86400).astype("timedelta64[s]")
    cancelled = cancel <= snapshot
    active = ~cancelled

    # Orders: a Poisson process over each customer's life, thinned in the ~60 days
    # before cancelling (the behaviour change a model can learn).
    end = np.where(cancelled, cancel, snapshot)
    life_days = (end - signup) / DAY
    rate = spec.orders_per_month / 30.0 * np.exp(0.6 * engagement - 0.18)
    counts = rng.poisson(rate * life_days)
    owner = np.repeat(np.arange(n), counts)
    offset_days = rng.uniform(0, 1, size=owner.size) * life_days[owner]
    ordered_at = signup[owner] + (offset_days * 86400).astype("timedelta64[s]")
    before_cancel = (end[owner] - ordered_at) / DAY
    winding_down = cancelled[owner] & (before_cancel < 60)
    keep = ~winding_down | (rng.uniform(size=owner.size) < 0.3)
    # Timeliness defect: the last day's orders had not reached the warehouse when the
    # data was needed.
    needed = np.datetime64(spec.unsynced_until, "s") if spec.unsynced_until else snapshot
    before_needed = (needed - ordered_at) / DAY
    unsynced = (before_needed > 0) & (before_needed < 1)
    keep &= ~(unsynced & (rng.uniform(size=owner.size) < spec.unsynced_last_day_rate))
    owner, ordered_at = owner[keep], ordered_at[keep]
    order_sort = np.argsort(ordered_at, kind="stable")
    owner, ordered_at = owner[order_sort], ordered_at[order_sort]
    spend = np.exp(rng.normal(np.log(25) + 0.25 * engagement[owner], 0.5))
    plan_price = np.select([plan[owner] == "family"], [1.4], 1.0)
    amount = np.round(spend * plan_price, 2)

    customer_id = np.arange(100_001, 100_001 + n)
    age = np.clip(np.round(rng.normal(41, 13, size=n)), 18, 90).astype("int64")
    wrong_age = rng.uniform(size=n) < spec.wrong_age_rate
    age[wrong_age] = rng.choice(WRONG_AGES, size=int(wrong_age.sum()))
    last_name = rng.choice(LAST_NAMES, size=n).astype(object)
    last_name[rng.uniform(size=n) < spec.missing_last_name_rate] = None

    customers = pd.DataFrame(
        {
            "customer_id": customer_id,
            "first_name": rng.choice(FIRST_NAMES, size=n),
            "last_name": last_name,
            "age": age,
            "signup_date": pd.to_datetime(signup).floor("D"),
            "plan": plan,
            "active": active,
            "cancelled_at": pd.to_datetime(np.where(cancelled, cancel, np.datetime64("NaT"))),
        }
    )
    segment_logit = np.where(engagement > 0.8, 1, 0) + np.where(plan == "family", 1, 0)
    segment = np.where(
        rng.uniform(size=n) < 0.15,
        "student",
        np.where(segment_logit + rng.normal(0, 1, size=n) > 1.2, "small_business", "consumer"),
    )
    crm_active = active.copy()
    flip = rng.uniform(size=n) < spec.crm_disagree_rate
    crm_active[flip] = ~crm_active[flip]
    crm = pd.DataFrame(
        {"customer_id": customer_id, "active": crm_active, "segment": segment}
    ).sample(frac=1.0, random_state=spec.seed).reset_index(drop=True)
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, owner.size + 1),
            "customer_id": customer_id[owner],
            "ordered_at": pd.to_datetime(ordered_at),
            "amount": amount,
        }
    )
    return {"customers": customers, "crm": crm, "orders": orders}


MANIFEST = "_generated.json"


def write_files(spec: DemoSpec, directory: Path) -> bool:
    """Write the demo tables to ``directory`` once: CSV, SQLite and Parquet.

    Files already made from the same spec are kept, so every run after the first
    reads them as a user's own files would be read. Concurrent callers (a parallel
    sweep) wait on a lock; each file appears atomically.

    Args:
        spec: What to generate.
        directory: Target folder, created if needed.

    Returns:
        True when the files were (re)generated, False when they were up to date.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with locked(directory / ".lock"):
        manifest = directory / MANIFEST
        if manifest.exists():
            try:
                if json.loads(manifest.read_text()).get("digest") == spec.digest():
                    return False
            except (OSError, json.JSONDecodeError):
                pass  # an unreadable manifest means: generate again
        manifest.unlink(missing_ok=True)
        tables = generate(spec)
        with atomic_path(directory / "customers.csv") as tmp:
            tables["customers"].to_csv(tmp, index=False)
        with atomic_path(directory / "crm.db") as tmp:
            _write_sqlite(tables["crm"], tmp)
        with atomic_path(directory / "orders.parquet") as tmp:
            tables["orders"].to_parquet(tmp, index=False)
        # The manifest goes last: its presence says every file above is complete.
        write_json(manifest, {"digest": spec.digest(), "spec": asdict(spec),
                              "rows": {name: len(frame) for name, frame in tables.items()}})
        return True


def _write_sqlite(frame: pd.DataFrame, path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        frame.to_sql("crm", conn, index=False)
        conn.commit()
    finally:
        conn.close()
