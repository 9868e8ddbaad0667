"""What a daily job of the sweep is given: the business date it works for and the engine's tools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from usefirst.kit.crypto import FieldCipher
from usefirst.kit.settings import Settings


@dataclass(frozen=True)
class DailyContext:
    business_on: date
    # The first instant of the business date: the sweep acts then, whenever it actually runs.
    now: datetime
    settings: Settings
    cipher: FieldCipher
