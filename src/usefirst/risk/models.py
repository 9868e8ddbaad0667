"""Risk tables: checkout decision records, link observations, cases, training labels, step-up
challenges and the log of every risk action; and the small reference tables (Citus: replicated)
of the fraud model registry and the link graph: trained model versions, graph runs, and the rings
the graph keeps track of across runs (so a ring found again is updated, not duplicated)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, BigIntegerKey, JSONDocument, UTCDateTime


class RiskDecision(Base):
    """Everything a checkout decision was made from, kept so analysts can see why and rule
    changes can be replayed (``usefirst risk backtest``)."""

    __tablename__ = "risk_decisions"
    __table_args__ = (
        Index("ix_risk_decisions_order_id", "order_id"),
        Index("ix_risk_decisions_decided_at", "decided_at"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(16))  # approved | step_up | review | declined
    risk_outcome: Mapped[str] = mapped_column(String(16))  # what risk alone decided
    risk_score: Mapped[int] = mapped_column(Integer)
    credit_score: Mapped[int | None] = mapped_column(Integer)
    model_score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(64))
    rule_set_version: Mapped[str] = mapped_column(String(64))
    rule_hits: Mapped[Any] = mapped_column(JSONDocument)
    reasons: Mapped[Any] = mapped_column(JSONDocument)
    features: Mapped[Any] = mapped_column(JSONDocument)
    links: Mapped[Any] = mapped_column(JSONDocument)
    latency_micros: Mapped[int] = mapped_column(Integer)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LinkObservation(Base):
    """One identifier (device, IP, phone, shipping address; keyed hashes, never raw values) seen
    at one checkout. The checkout links and the nightly graph both read these."""

    __tablename__ = "risk_link_observations"
    __table_args__ = (
        # With the shopper and time on PostgreSQL: the nightly graph's reads of an identifier's
        # holders in the window are index-only (migration 0049).
        Index(
            "ix_risk_link_observations_value",
            "kind",
            "value_hash",
            postgresql_include=["shopper_id", "observed_at"],
        ),
        # The incremental graph reads what was observed since its last run and what left the window.
        Index("ix_risk_link_observations_observed_at", "observed_at"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # device|ip|phone|address
    value_hash: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[str] = mapped_column(String(40))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LinkValue(Base):
    """One identifier (device, IP, phone, shipping address; a keyed hash) and one shopper seen
    with it, however many orders: the distinct ``(kind, value_hash, shopper_id)`` of the link
    observations, kept by the checkout's own write. The checkout reads the other shoppers of
    its identifiers as one primary-key range each, whatever the identifier's history (a hot key:
    a carrier NAT address, a household device). ``last_observed_on`` (the UTC day of the latest
    observation) moves on at most once a day, so that a checkout seen again the same day writes
    nothing; it is what a windowed read (the link graph's) needs, exact to the day (the window's
    edge day is for the observations to settle)."""

    __tablename__ = "risk_link_values"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # device|ip|phone|address
    value_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_observed_on: Mapped[date] = mapped_column(Date)


class RiskCase(Base):
    """An analyst's unit of work. ``subject_key`` (type and primary subject) lets a new signal
    about the same subject join the open case instead of opening another."""

    __tablename__ = "risk_cases"
    __table_args__ = (
        Index("ix_risk_cases_status_type", "status", "case_type", "id"),
        Index("ix_risk_cases_subject_key", "subject_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_type: Mapped[str] = mapped_column(String(16))  # order | shopper | merchant | ring
    status: Mapped[str] = mapped_column(String(16))  # open | assigned | resolved
    subject_key: Mapped[str] = mapped_column(String(80))
    subject_ids: Mapped[Any] = mapped_column(JSONDocument)
    amount_at_risk_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[Any] = mapped_column(JSONDocument)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    assignee: Mapped[str | None] = mapped_column(String(40))
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(String(24))  # confirmed_fraud | legitimate
    note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(40))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KnownFraudSubject(Base):
    """Shoppers and merchants in confirmed-fraud cases: links to them are a checkout signal."""

    __tablename__ = "risk_known_fraud"

    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RiskLabel(Base):
    """Training labels for the fraud model: an order an analyst confirmed or cleared."""

    __tablename__ = "risk_labels"
    __table_args__ = (Index("ix_risk_labels_decided_at", "decided_at"),)

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(16))  # fraud | legitimate
    case_id: Mapped[str] = mapped_column(String(40))
    decided_by: Mapped[str] = mapped_column(String(40))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StepUpChallenge(Base):
    """A one-time code the shopper must enter before a step-up order proceeds. Only a keyed
    hash of the code is kept."""

    __tablename__ = "risk_step_up_challenges"

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | verified | failed | expired
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivery_status: Mapped[str] = mapped_column(String(16))  # queued | sent | failed
    delivery_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RiskAction(Base):
    """Every risk action with who or what decided it (``rules:<version>``, ``monitor:<name>``,
    ``operator:<id>``)."""

    __tablename__ = "risk_actions"
    __table_args__ = (
        Index("ix_risk_actions_subject", "subject_id", "id"),
        Index("ix_risk_actions_case_id", "case_id"),
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    case_id: Mapped[str | None] = mapped_column(String(40))
    decided_by: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(500))
    details: Mapped[Any] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FraudModelVersion(Base):
    """A fraud model trained by ``usefirst risk train``: what it is and the artefact itself, so
    that every process can serve it once promoted (``usefirst risk model promote``; the
    promotions are versions of the ``fraud_model`` configuration). ``artefact_path`` is where
    the training run also wrote it, for the operator's reference only."""

    __tablename__ = "risk_model_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    artefact_path: Mapped[str] = mapped_column(String(1024))
    feature_names: Mapped[Any] = mapped_column(JSONDocument)
    training_summary: Mapped[Any] = mapped_column(JSONDocument)
    auc: Mapped[float] = mapped_column(Float)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # None on rows registered before the artefact was kept in the database: not servable.
    onnx_model: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    onnx_sha256: Mapped[str | None] = mapped_column(String(64))
    artefact_metadata: Mapped[Any] = mapped_column(JSONDocument, nullable=True)


class GraphRun(Base):
    """One pass of link analysis, nightly (one per business date) or on demand."""

    __tablename__ = "risk_graph_runs"
    __table_args__ = (
        UniqueConstraint("trigger", "business_on", name="uq_risk_graph_runs_nightly"),
        Index("ix_risk_graph_runs_started_at", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # nightly | on_demand
    # The business date of a nightly run (one per date); NULL for on-demand runs.
    business_on: Mapped[date | None] = mapped_column(Date)
    shoppers: Mapped[int] = mapped_column(Integer)
    link_values: Mapped[int] = mapped_column(Integer)
    edges: Mapped[int] = mapped_column(Integer)
    components: Mapped[int] = mapped_column(Integer)
    communities: Mapped[int] = mapped_column(Integer)
    rings_scored: Mapped[int] = mapped_column(Integer)
    rings_flagged: Mapped[int] = mapped_column(Integer)
    cases_opened: Mapped[int] = mapped_column(Integer)
    cases_updated: Mapped[int] = mapped_column(Integer)
    parameters: Mapped[Any] = mapped_column(JSONDocument)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GraphMember(Base):
    """A shopper of a connected component with at least ``min_ring_members`` shoppers at the last
    graph run: where the next incremental run starts from (``risk.graph``)."""

    __tablename__ = "risk_graph_members"

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))


class Ring(Base):
    """A group of linked shoppers (and the merchant they gather around) scored above the ring
    threshold at least once. Later runs match their groups to these by shared members."""

    __tablename__ = "risk_rings"
    __table_args__ = (Index("ix_risk_rings_anchor", "anchor_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The ring's first subject in its case (its merchant, or its first member): stays fixed.
    anchor_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str | None] = mapped_column(String(40))
    members: Mapped[Any] = mapped_column(JSONDocument)
    member_count: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[Any] = mapped_column(JSONDocument)
    amount_at_risk_minor: Mapped[int] = mapped_column(BigInteger)
    case_id: Mapped[str | None] = mapped_column(String(40))
    first_run_id: Mapped[str] = mapped_column(String(40))
    last_run_id: Mapped[str] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- checkout counters (risk/counters.py) -----------------------------------------------------


class OrderFact(Base):
    """What the checkout features need of one order, kept by risk as the order changes: the
    per-shopper event list the shopper's features are read from, the edge day of a merchant's
    window, and the snapshot each change is diffed against to move the counters below by the
    difference. Flags are 0/1 so that sums count them."""

    __tablename__ = "risk_order_facts"
    __table_args__ = (
        Index("ix_risk_order_facts_merchant_created", "merchant_id", "created_at"),
        Index("ix_risk_order_facts_merchant_shopper", "merchant_id", "shopper_id", "created_at"),
    )

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    device_id: Mapped[str | None] = mapped_column(String(128))
    is_lent: Mapped[int] = mapped_column(Integer)
    is_amount_counted: Mapped[int] = mapped_column(Integer)  # neither declined nor cancelled
    is_shipped: Mapped[int] = mapped_column(Integer)
    is_delivered: Mapped[int] = mapped_column(Integer)
    is_defaulted: Mapped[int] = mapped_column(Integer)
    is_refunded: Mapped[int] = mapped_column(Integer)


class MerchantDayCounter(Base):
    """A merchant's orders created on one UTC day, by what became of them (sums of the
    ``OrderFact`` flags). ``stripe`` spreads one merchant's day over a few rows (by shopper) so
    concurrent checkouts at one merchant do not queue on one row lock."""

    __tablename__ = "risk_merchant_days"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    stripe: Mapped[int] = mapped_column(Integer, primary_key=True)
    lent_orders: Mapped[int] = mapped_column(Integer)
    lent_amount_minor: Mapped[int] = mapped_column(BigInteger)
    shipped_orders: Mapped[int] = mapped_column(Integer)
    delivered_orders: Mapped[int] = mapped_column(Integer)
    defaulted_orders: Mapped[int] = mapped_column(Integer)
    refunded_orders: Mapped[int] = mapped_column(Integer)


class MerchantBuyerCounter(Base):
    """One shopper's orders at one merchant: an upper bound of the lent orders created in the
    merchant window (the sweep sets it exact each night; between nights
    orders only age out of the window, so it never falls below the truth). The merchant's top
    buyer is found among the few highest bounds."""

    __tablename__ = "risk_merchant_buyers"
    __table_args__ = (
        Index("ix_risk_merchant_buyers_window_bound", "merchant_id", "window_lent_bound"),
    )

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    window_lent_bound: Mapped[int] = mapped_column(Integer)


class MerchantBuyerDayCounter(Base):
    """One shopper's lent orders at one merchant created on one UTC day: with the facts of the
    window's edge day, the exact count of the shopper's lent orders in the merchant window, read
    in O(days) rows instead of one row per order (the top buyer's candidates, ``risk/features``).
    Only days inside a window are kept: changes to orders created before the window's start
    are not counted, and the nightly refresh of the bounds deletes the days the window left."""

    __tablename__ = "risk_merchant_buyer_days"

    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    lent_orders: Mapped[int] = mapped_column(Integer)


class ShopperMerchantHourCounter(Base):
    """One shopper's orders at one merchant created in one clock hour (UTC), and their amount:
    with the facts of the window's two edge hours, the shopper's own orders at the merchant in
    the last 6 hours (the splitting signal, ``risk/signals.py``), read in O(7 hour rows) instead
    of one row per order. Every order counts (as its fact does, whatever became of it); the
    signals' nightly prune deletes the hours no window reads."""

    __tablename__ = "risk_shopper_merchant_hours"

    shopper_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class SignalEvent(Base):
    """One checkout seen under one key of the online signals (``risk/signals.py``): its device,
    its IP block (/24, /48) or its address cluster, keyed hashes only. A key's recent rows are
    one range of the primary key: the checkout reads the neighbourhood by key, never by scan.
    The nightly graph links shoppers by their address clusters: a shopper's keys are read through
    ``ix_risk_signal_events_shopper`` (migration 0052), a cluster's holders by primary key."""

    __tablename__ = "risk_signal_events"
    __table_args__ = (
        Index(
            "ix_risk_signal_events_shopper",
            "shopper_id",
            "kind",
            postgresql_include=["key_hash", "created_at"],
        ),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # device|ip_block|cluster
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    shopper_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    is_held: Mapped[int] = mapped_column(Integer)  # review, step-up or declined at checkout


class HourCounter(Base):
    """Orders and their amount per clock hour (UTC), for one merchant (``scope`` 'merchant',
    ``key`` its id) or the whole platform (``scope`` 'market', ``key`` ''). ``stripe`` spreads a
    busy key's hour over a few rows (by shopper), as the merchant day counters do."""

    __tablename__ = "risk_hour_counts"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    stripe: Mapped[int] = mapped_column(Integer, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
