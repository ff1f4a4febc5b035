"""The churn demo's data: a seeded generator of the sources a company has.

A $10/month subscription. Each customer has a latent engagement that drives how often
and how much they order, how often they contact support, and how likely they are to
cancel; the monthly plan and the first months after signup carry extra risk. A
customer who is about to cancel orders less in the ~60 days before, and most churners
(``signal``) go through an unhappy spell first: in the weeks before cancelling they
contact support more, complain, and order even less, as in real churn data. So churn
in the month after any cut-off is learnable from behaviour (order frequency, recency,
support contacts and complaints, plan, tenure), well but not perfectly: with the
default ``signal: 1`` a logistic regression reaches a hold-out ROC AUC of about 0.85
to 0.9, and its best customers to contact are churners often enough for a retention
offer to pay. With ``signal: 0`` only the drop in orders is left (ROC AUC about 0.75)
and at 1% churn no offer pays.

What happens before a cancellation is placed back from its time, and every event lies
in the customer's life, up to the cancellation or the snapshot: the contact in which a
customer cancels is at the cancellation itself, so a cut-off before it never sees it
(features read events strictly before ``as_of``).

Four sources, in three files:

* ``customers`` (billing database, CSV): customer_id, first_name, last_name, age,
  signup_date, plan, active, cancelled_at.
* ``crm`` (a second system's view, SQLite table ``crm``): customer_id, active, segment.
* ``contacts`` (the CRM's support log, SQLite table ``contacts``): contact_id,
  customer_id, contacted_at, channel, topic, complaint (1 when the agent tagged the
  contact as a complaint, else 0).
* ``orders`` (events, Parquet): order_id, customer_id, ordered_at, amount.

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
CHANNELS = np.array(["phone", "email", "chat"])
TOPICS = np.array(["billing", "delivery", "product", "account", "cancellation"])
SEGMENTS = np.array(["consumer", "student", "small_business"])
WRONG_AGES = np.array([-1, 0, 3, 130, 199])
DAY = np.timedelta64(1, "D")
#: The share of churners with an unhappy spell before cancelling, at ``signal: 1``.
SPELL_SHARE = 0.6


@dataclass(frozen=True)
class DemoSpec:
    """What the generator makes; each field is a key of ``data.generate``.

    Args:
        customers: Rows of the billing table (every customer who ever signed up).
        seed: Seed of the only random generator used.
        start: First signup date.
        snapshot: When the data was extracted: no event or cancellation after it.
        orders_per_month: Mean order rate of an average customer.
        contacts_per_month: Mean rate of support contacts of an average customer,
            outside the spells before cancelling.
        monthly_churn: Target churn rate per month among active customers.
        signal: How clearly churners show it beforehand, in [0, 1]: the share of
            churners who go through an unhappy spell (support contacts, complaints,
            fewer orders) before cancelling is ``0.6 * signal``. 1: as in real churn
            data; 0: only a slight drop in orders, too little for any offer to pay.
        wrong_age_rate: Share of customers with an impossible age (accuracy defect).
        missing_last_name_rate: Share of customers without a last name (completeness).
        crm_disagree_rate: Share of customers whose CRM ``active`` flag is flipped
            (consistency defect).
        unsynced_last_day_rate: Share of the last day's orders not yet synchronised
            (timeliness defect).
        unsynced_until: The end of that last day: the moment the data was needed
            (the run's ``as_of``); null means the snapshot.
        drift_after: The declared drift (null: none): from this date on, prices rise
            (order amounts x ``drift_price_factor``), customers order less (each order
            kept with probability ``drift_order_rate``), and a new contract type
            appears: ``drift_new_plan``, taken by ``drift_new_plan_share`` of the monthly
            customers still active then and of the customers who sign up after it.
        drift_price_factor: The price rise.
        drift_order_rate: The share of orders still placed after the drift.
        drift_new_plan: The new contract type.
        drift_new_plan_share: How many customers take it.
        drift_new_plan_churn: The monthly churn rate of the new plan's customers: a new
            risk a model trained before the drift has never seen (their cancellation,
            when it comes sooner than it would have, ends their orders and contacts).
    """

    customers: int = 20_000
    seed: int = 7
    start: str = "2024-01-01"
    snapshot: str = "2026-10-31"
    orders_per_month: float = 0.65
    contacts_per_month: float = 0.1
    monthly_churn: float = 0.01
    signal: float = 1.0
    wrong_age_rate: float = 0.02
    missing_last_name_rate: float = 0.6
    crm_disagree_rate: float = 0.03
    unsynced_last_day_rate: float = 1.0
    unsynced_until: str | None = None
    drift_after: str | None = None
    drift_price_factor: float = 1.3
    drift_order_rate: float = 0.5
    drift_new_plan: str = "weekly"
    drift_new_plan_share: float = 0.4
    drift_new_plan_churn: float = 0.1

    def digest(self) -> str:
        """A hash of the spec: files made from another spec are made again. Without a
        drift, the drift's settings are left out: files made before it existed stay valid."""
        fields = asdict(self)
        if self.drift_after is None:
            fields = {k: v for k, v in fields.items() if not k.startswith("drift_")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def generate(spec: DemoSpec) -> dict[str, pd.DataFrame]:
    """Generate the four demo tables in memory.

    Args:
        spec: Size, seed, signal and defect rates.

    Returns:
        ``{"customers": ..., "crm": ..., "contacts": ..., "orders": ...}``.
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.customers
    start = np.datetime64(spec.start, "s")
    snapshot = np.datetime64(spec.snapshot, "s")
    span_days = (snapshot - start) / DAY

    engagement = rng.normal(size=n)
    plan = rng.choice(PLANS, size=n, p=[0.55, 0.3, 0.15])
    signup = start + _seconds(rng.uniform(0, span_days, size=n))

    # Churn: a constant monthly hazard per customer, higher for low engagement and the
    # monthly plan, plus an early-life bump in the first 90 days. Every customer has a
    # cancellation time; those after the snapshot have not happened yet.
    plan_risk = np.select([plan == "monthly", plan == "annual"], [0.5, -0.6], -0.2)
    risk = np.exp(-0.9 * engagement + plan_risk)
    hazard = spec.monthly_churn * risk / risk.mean()
    days_to_cancel = rng.exponential(30.0 / hazard)
    early = rng.uniform(size=n) < 0.04 * np.exp(-0.5 * engagement)
    days_to_cancel = np.where(early, rng.uniform(5, 90, size=n), days_to_cancel)
    cancel = signup + _seconds(days_to_cancel)
    cancelled = cancel <= snapshot
    active = ~cancelled
    end = np.where(cancelled, cancel, snapshot)
    life_days = (end - signup) / DAY

    # The unhappy spell: a share of churners (SPELL_SHARE x signal) spend the 20-90 days
    # before cancelling contacting support, complaining and ordering even less.
    signal = min(max(spec.signal, 0.0), 1.0)
    spell = rng.uniform(size=n) < SPELL_SHARE * signal
    spell_days = rng.uniform(20, 90, size=n)

    # Orders: a Poisson process over each customer's life, thinned in the ~60 days
    # before cancelling (to 30% of the usual rate; 50% at signal 0), and to 15% in an
    # unhappy spell: the behaviour change a model can learn.
    rate = spec.orders_per_month / 30.0 * np.exp(0.6 * engagement - 0.18)
    counts = rng.poisson(rate * life_days)
    owner = np.repeat(np.arange(n), counts)
    ordered_at = signup[owner] + _seconds(rng.uniform(0, 1, size=owner.size) * life_days[owner])
    before_cancel = (cancel[owner] - ordered_at) / DAY
    kept_share = np.where(spell[owner] & (before_cancel < spell_days[owner]), 0.15,
                          np.where(before_cancel < 60, 0.5 - 0.2 * signal, 1.0))
    keep = rng.uniform(size=owner.size) < kept_share
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

    contacts = _contacts(rng, spec, engagement, signup, cancel, end, life_days, spell, spell_days)

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
    contacts.insert(1, "customer_id", customer_id[contacts.pop("owner").to_numpy()])
    tables = {"customers": customers, "crm": crm, "contacts": contacts, "orders": orders}
    if spec.drift_after is not None:
        _drift(spec, tables)
    return tables


def _drift(spec: DemoSpec, tables: dict[str, pd.DataFrame]) -> None:
    """Apply the declared drift after ``spec.drift_after``, in place.

    With its own random generator, after everything else is drawn: the data before the
    drift is the data without it, value for value.
    """
    rng = np.random.default_rng([spec.seed, 17])
    after = pd.Timestamp(spec.drift_after)
    orders, customers = tables["orders"], tables["customers"]
    late = (orders["ordered_at"] >= after).to_numpy()
    kept = ~late | (rng.uniform(size=len(orders)) < spec.drift_order_rate)
    orders.loc[late, "amount"] = np.round(orders.loc[late, "amount"] * spec.drift_price_factor, 2)
    tables["orders"] = orders.loc[kept].reset_index(drop=True)
    still_active = (customers["signup_date"] < after) & (customers["cancelled_at"].isna()
                                                         | (customers["cancelled_at"] > after))
    eligible = (still_active & (customers["plan"] == "monthly")) | (customers["signup_date"] >= after)
    switch = eligible.to_numpy() & (rng.uniform(size=len(customers)) < spec.drift_new_plan_share)
    customers.loc[switch, "plan"] = spec.drift_new_plan
    # The new plan's churn: from the drift (or the signup, if later) on, a monthly hazard of
    # drift_new_plan_churn; a cancellation sooner than the one drawn before replaces it.
    start = np.maximum(customers["signup_date"].to_numpy(), np.datetime64(after))
    hazard = -np.log1p(-min(max(spec.drift_new_plan_churn, 0.0), 0.999)) / 30.0
    sooner = start + _seconds(rng.exponential(1 / hazard if hazard > 0 else np.inf, size=len(customers)))
    snapshot = np.datetime64(spec.snapshot, "s")
    before = customers["cancelled_at"].to_numpy(dtype="datetime64[s]")
    earlier = switch & (sooner <= snapshot) & (np.isnat(before) | (sooner < before))
    if earlier.any():
        ends = pd.Series(pd.to_datetime(sooner[earlier]), index=customers.loc[earlier, "customer_id"].to_numpy())
        customers.loc[earlier, "cancelled_at"] = pd.to_datetime(sooner[earlier])
        customers.loc[earlier, "active"] = False
        crm = tables["crm"]
        crm.loc[crm["customer_id"].isin(ends.index), "active"] = False
        for name, column in (("orders", "ordered_at"), ("contacts", "contacted_at")):
            frame = tables[name]
            end = frame["customer_id"].map(ends)
            tables[name] = frame[end.isna() | (frame[column] < end)].reset_index(drop=True)


def _contacts(rng: np.random.Generator, spec: DemoSpec, engagement: np.ndarray, signup: np.ndarray,
              cancel: np.ndarray, end: np.ndarray, life_days: np.ndarray, spell: np.ndarray,
              spell_days: np.ndarray) -> pd.DataFrame:
    """The support log: contacts over each customer's life, a burst of them (mostly
    complaints) in an unhappy spell, and the contact in which a customer cancels.

    Every contact lies in ``[signup, end)`` except the cancellation itself, which is at
    the cancellation time: at any cut-off before it, nobody can see it.

    Returns:
        contact_id, owner (the customer's row), contacted_at, channel, topic, complaint,
        sorted by time.
    """
    n = engagement.size
    # Everyday contacts: more often when disengaged (exp(-0.5 z) averages exp(0.125)).
    rate = spec.contacts_per_month / 30.0 * np.exp(-0.5 * engagement - 0.125)
    everyday = np.repeat(np.arange(n), rng.poisson(rate * life_days))
    everyday_at = signup[everyday] + _seconds(rng.uniform(size=everyday.size) * life_days[everyday])
    # The spell: 1 + Poisson(2) contacts, denser towards the cancellation, of which only
    # those before the snapshot (and after signup) exist yet.
    unhappy = np.flatnonzero(spell)
    burst = np.repeat(unhappy, 1 + rng.poisson(2.0, size=unhappy.size))
    burst_before = np.sqrt(1 - rng.uniform(size=burst.size)) * spell_days[burst]
    burst_at = cancel[burst] - _seconds(burst_before)
    seen = (burst_at >= signup[burst]) & (burst_at < end[burst])
    burst, burst_at = burst[seen], burst_at[seen]
    # The cancellation: the contact in which the customer cancels, at that very moment.
    leaving = np.flatnonzero(cancel <= end)

    owner = np.concatenate([everyday, burst, leaving])
    contacted_at = np.concatenate([everyday_at, burst_at, cancel[leaving]])
    kind = np.repeat([0, 1, 2], [everyday.size, burst.size, leaving.size])
    topic = np.where(
        kind == 2, TOPICS.size - 1,
        np.where(kind == 1, rng.choice(4, size=owner.size, p=[0.4, 0.3, 0.15, 0.15]),
                 rng.choice(4, size=owner.size, p=[0.3, 0.3, 0.25, 0.15])))
    complaint_share = np.select([kind == 0, kind == 1], [0.08, 0.6], 0.25)
    complaint = (rng.uniform(size=owner.size) < complaint_share).astype("int64")
    channel = rng.choice(CHANNELS, size=owner.size, p=[0.4, 0.35, 0.25])
    order = np.argsort(contacted_at, kind="stable")
    return pd.DataFrame(
        {
            "contact_id": np.arange(1, owner.size + 1),
            "owner": owner[order],
            "contacted_at": pd.to_datetime(contacted_at[order]),
            "channel": channel[order],
            "topic": TOPICS[topic[order]],
            "complaint": complaint[order],
        }
    )


def _seconds(days: np.ndarray) -> np.ndarray:
    """Days (floats) as a timedelta in whole seconds."""
    return (days * 86400).astype("timedelta64[s]")


MANIFEST = "_generated.json"


def write_files(spec: DemoSpec, directory: Path) -> bool:
    """Write the demo tables to ``directory`` once: CSV, SQLite (the CRM and its
    support log) and Parquet.

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
            _write_sqlite({"crm": tables["crm"], "contacts": tables["contacts"]}, tmp)
        with atomic_path(directory / "orders.parquet") as tmp:
            tables["orders"].to_parquet(tmp, index=False)
        # The manifest goes last: its presence says every file above is complete.
        write_json(manifest, {"digest": spec.digest(), "spec": asdict(spec),
                              "rows": {name: len(frame) for name, frame in tables.items()}})
        return True


def _write_sqlite(frames: dict[str, pd.DataFrame], path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        for name, frame in frames.items():
            frame.to_sql(name, conn, index=False)
        conn.commit()
    finally:
        conn.close()
