"""Request bodies of the disputes API. Unknown fields are rejected (422)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from usefirst.api.schemas import MAX_MINOR, Strict
from usefirst.api.text_rules import ObjectId


class OpenDisputeIn(Strict):
    order_id: ObjectId
    opened_by: Literal["merchant", "shopper"]
    reason: Literal[
        "unpaid", "suspected_cash_out", "not_received", "not_as_described", "unauthorized"
    ]
    description: str = Field(min_length=1, max_length=4000)


class ResolveDisputeIn(Strict):
    outcome: Literal["for_shopper", "for_merchant", "split"]
    shopper_refund_minor: int | None = Field(default=None, strict=True, ge=1, le=MAX_MINOR)
    note: str = Field(min_length=1, max_length=2000)
