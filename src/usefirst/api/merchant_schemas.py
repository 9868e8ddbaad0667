"""Request bodies of the merchant settlement and standing endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from usefirst.api.schemas import Strict
from usefirst.api.text_rules import Currency, Line, ObjectId

EvidenceLinks = list[Annotated[Line, Field(min_length=1, max_length=2048)]]


class StandingChangeIn(Strict):
    status: Literal["active", "on_watch", "suspended", "banned"]
    reason: str = Field(min_length=1, max_length=1000)
    evidence: EvidenceLinks = Field(default_factory=list, max_length=50)


class FineIn(Strict):
    amount_minor: int = Field(strict=True, gt=0, le=10_000_000_00)
    currency: Currency = "CNY"
    reason: str = Field(min_length=1, max_length=1000)
    evidence: EvidenceLinks = Field(min_length=1, max_length=50)


class AppealIn(Strict):
    subject_id: ObjectId
    grounds: str = Field(min_length=1, max_length=4000)
    evidence: EvidenceLinks = Field(default_factory=list, max_length=50)


class AppealDecisionIn(Strict):
    outcome: Literal["granted", "denied"]
    note: str = Field(min_length=1, max_length=2000)
