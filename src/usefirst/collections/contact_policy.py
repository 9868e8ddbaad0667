"""The contact policy every reminder and call obeys, on every channel: only the shopper's own
verified phone, email and app; never between the quiet hours (deferred to the next allowed time,
never dropped); at most ``max_contacts_per_day`` contacts and ``max_calls_per_day`` calls per
shopper per day, both on the shopper's own clock (their time zone); never again to a phone a
collector found to be someone else's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from usefirst.collections.repository import CollectionsRepository
from usefirst.identity.models import Shopper
from usefirst.kit.clock import as_utc, business_day_start
from usefirst.kit.settings import Settings


@dataclass(frozen=True)
class ContactPolicy:
    time_zone: str
    quiet_start: time
    quiet_end: time
    max_contacts_per_day: int
    max_calls_per_day: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ContactPolicy:
        return cls(
            time_zone=settings.time_zone,
            quiet_start=settings.quiet_hours_start,
            quiet_end=settings.quiet_hours_end,
            max_contacts_per_day=settings.max_contacts_per_day,
            max_calls_per_day=settings.max_calls_per_day,
        )

    def in_zone(self, time_zone: str) -> ContactPolicy:
        """The same policy on another clock: the shopper's (see ``policy_for_shopper``)."""
        return dataclasses.replace(self, time_zone=time_zone)

    def local(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(ZoneInfo(self.time_zone))

    def at(self, day: date, clock_time: time) -> datetime:
        return as_utc(datetime.combine(day, clock_time, tzinfo=ZoneInfo(self.time_zone)))

    def is_quiet(self, moment: datetime) -> bool:
        local_time = self.local(moment).time()
        if self.quiet_start > self.quiet_end:  # the quiet hours span midnight
            return local_time >= self.quiet_start or local_time < self.quiet_end
        return self.quiet_start <= local_time < self.quiet_end

    def next_allowed(self, moment: datetime) -> datetime:
        if not self.is_quiet(moment):
            return moment
        local = self.local(moment)
        day = local.date()
        if self.quiet_start > self.quiet_end and local.time() >= self.quiet_start:
            day += timedelta(days=1)
        return self.at(day, self.quiet_end)

    def day_bounds(self, moment: datetime) -> tuple[datetime, datetime]:
        day = self.local(moment).date()
        return (
            business_day_start(day, self.time_zone),
            business_day_start(day + timedelta(days=1), self.time_zone),
        )

    def next_day_opening(self, moment: datetime) -> datetime:
        return self.at(self.local(moment).date() + timedelta(days=1), self.quiet_end)


def refusal_to_contact(
    session: Session, *, policy: ContactPolicy, shopper_id: str, channel: str, now: datetime
) -> str | None:
    """Why the policy forbids contacting the shopper on ``channel`` right now, or None."""
    if policy.is_quiet(now):
        return "quiet_hours"
    repository = CollectionsRepository(session)
    start, end = policy.day_bounds(now)
    if repository.contacts_between(shopper_id, start, end) >= policy.max_contacts_per_day:
        return "daily_contact_limit"
    if (
        channel == "call"
        and repository.contacts_between(shopper_id, start, end, channel="call")
        >= policy.max_calls_per_day
    ):
        return "daily_call_limit"
    return None


PHONE_REPORTED_WRONG = "phone_reported_wrong"


def phone_reported_wrong(session: Session, shopper: Shopper) -> bool:
    """A number a collector found to be someone else's is not used again: SMS and calls to it
    stop. The report is matched by the phone's mask, the only form the call log keeps."""
    return CollectionsRepository(session).phone_reported_wrong(shopper.id, shopper.phone_masked)
