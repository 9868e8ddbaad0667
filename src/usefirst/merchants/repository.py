"""All SQL of merchants."""

from __future__ import annotations

from sqlalchemy.orm import Session

from usefirst.merchants.models import Merchant


class MerchantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, merchant: Merchant) -> None:
        self.session.add(merchant)

    def get(self, merchant_id: str) -> Merchant | None:
        return self.session.get(Merchant, merchant_id)
