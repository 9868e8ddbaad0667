"""Tables of the fraud model registry and the link graph: trained model versions, graph runs, and
the rings the graph keeps track of across runs (so a ring found again is updated, not duplicated).
All three are small reference tables (Citus: replicated)."""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from usefirst.kit.db import Base, JSONDocument, UTCDateTime


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
