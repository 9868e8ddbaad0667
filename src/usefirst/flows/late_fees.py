"""The day's late fees (a step of the daily sweep): repayment charges them on the instalments,
the ledger posts them, both set-based."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.kit.errors import InvariantViolated
from usefirst.kit.settings import Settings
from usefirst.ledger import accounts
from usefirst.ledger.accounts import EntryKind
from usefirst.ledger.service import post_receivable_charges
from usefirst.repayment import service as repayment_service
from usefirst.repayment.service import LateFeeRun


def charge_daily_late_fees(
    session: Session, *, business_on: date, settings: Settings, now: datetime
) -> LateFeeRun:
    """Charge one day of late fees for ``business_on``, set-based, and post them.

    The fee is ``late_fee_bps_per_day`` of an overdue instalment's unpaid principal, once the
    grace days have passed. Per order it is capped twice: all late fees ever charged (waived ones
    included) stay within ``late_fee_cap_bps_of_principal`` of the principal, and plan fee plus
    late fees never exceed the APR cap on the principal over the days since delivery; the order's
    instalments take the room left lowest seq first. Disputed and undelivered orders accrue
    nothing. Each charged order gets one ``late_fee`` journal entry for the day (the order's id on
    the entry), posted in one batch.
    """
    owing = repayment_service.shoppers_owing_late_fees(
        session, business_on=business_on, settings=settings
    )
    if owing is None:
        return LateFeeRun(total_minor=0, orders=0, instalments=0)
    # Lock order: credit lines first, as payments and checkouts take them.
    credit_service.lock_credit_lines_selected(session, shopper_ids=owing)
    charged = repayment_service.charge_late_fees(
        session, business_on=business_on, settings=settings
    )
    posted = post_receivable_charges(
        session,
        kind=EntryKind.LATE_FEE,
        charges_sql=repayment_service.LATE_FEE_CHARGES_SQL,
        credit=accounts.LATE_FEE_INCOME,
        memo="daily late fee",
        now=now,
    )
    repayment_service.end_late_fee_run(session)
    if (posted.entries, posted.total_minor) != (charged.orders, charged.total_minor):
        raise InvariantViolated(
            f"late fees posted {posted} differ from those charged "
            f"({charged.orders}, {charged.total_minor})"
        )
    return charged
