"""Credit-bureau files: each month's file of every order collections reported, made on demand or
by the daily sweep on the first day of the next month. Each account is built from what the
domains know of the order at the period's end (its schedule and payments, the shopper's identity
and credit line); making the file decrypts each reported shopper's identity, so it is written to
the PII audit log as a system read."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from usefirst.collections import bureau
from usefirst.collections.bureau_format import BureauAccount
from usefirst.collections.models import BureauFile
from usefirst.credit import service as credit_service
from usefirst.identity import service as identity_service
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.settings import Settings
from usefirst.ledger import service as ledger_service
from usefirst.privacy.audit import record_accesses
from usefirst.repayment import service as repayment_service


def create_bureau_file(
    session: Session,
    *,
    period: str,
    file_format: str,
    cipher: FieldCipher,
    settings: Settings,
    today: date,
    now: datetime,
) -> BureauFile:
    bureau.check_file_format(file_format)
    period_end = bureau.period_end_of(period, today=today)
    accounts = bureau_accounts(
        session,
        period=bureau.BureauPeriod(end_on=period_end, time_zone=settings.time_zone),
        cipher=cipher,
    )
    row = bureau.store_file(
        session,
        period=period,
        file_format=file_format,
        accounts=accounts,
        period_end=period_end,
        cipher=cipher,
        settings=settings,
        today=today,
        now=now,
    )
    # Making the file decrypted each reported shopper's identity: a system read, audited.
    record_accesses(
        session,
        actor="system:bureau-file",
        action="bureau_file.create",
        subject_shopper_ids=[account.shopper_id for account in accounts],
        fields=["name", "national_id", "phone"],
        purpose=f"credit-bureau file {row.id} for {period} ({file_format})",
        now=now,
        reference_id=row.id,
    )
    return row


def bureau_accounts(
    session: Session, *, period: bureau.BureauPeriod, cipher: FieldCipher
) -> list[BureauAccount]:
    """The accounts of the period's file, as the book stood at the period's end however late
    the file is made: balances from the ledger entries made by then (one statement for the whole
    file) less the payments applied by then, and the credit limits of then (one statement)."""
    reported_orders = bureau.orders_reported_to_bureau(
        session, reported_by=period.end_on, disputes_before=period.ends_at
    )
    debts = ledger_service.order_receivables(
        session,
        order_ids=[reported.order.id for reported in reported_orders],
        before=period.ends_at,
    )
    limits_then = credit_service.limits_changed_since(session, since=period.ends_at)
    accounts = []
    for reported in reported_orders:
        order = reported.order
        shopper = identity_service.get_shopper(session, shopper_id=order.shopper_id)
        if identity_service.is_erased(shopper):
            # Erasure needs every account settled; an erased shopper is no longer reported.
            continue
        identity = identity_service.legal_identity(session, shopper_id=shopper.id, cipher=cipher)
        debt = debts.get(order.id)
        credit_limit_minor = limits_then.get(shopper.id)
        if credit_limit_minor is None:
            credit_limit_minor = credit_service.get_credit_line(
                session, shopper_id=shopper.id
            ).limit_minor
        accounts.append(
            bureau.bureau_account(
                reported,
                identity=bureau.ReportedIdentity(
                    name=identity.name,
                    national_id=identity.national_id,
                    phone_e164=identity.phone_e164,
                ),
                credit_limit_minor=credit_limit_minor,
                instalments=repayment_service.instalments_of(
                    session, shopper_id=shopper.id, order_id=order.id
                ),
                applied=repayment_service.allocations_to_order(
                    session, shopper_id=shopper.id, order_id=order.id
                ),
                debt=bureau.OrderDebt(
                    charged_minor=debt.charged_minor if debt else 0,
                    cut_since_minor=debt.cut_since_minor if debt else 0,
                ),
                period=period,
                changes=repayment_service.changes_of(
                    session, shopper_id=shopper.id, order_id=order.id
                ),
            )
        )
    return accounts


def monthly_bureau_files(
    session: Session, *, business_on: date, cipher: FieldCipher, settings: Settings, now: datetime
) -> int:
    """On the first day of a month, report the month just ended (once per period and format)."""
    if business_on.day != 1:
        return 0
    last_month_end = business_on - timedelta(days=1)
    period = f"{last_month_end:%Y-%m}"
    made = 0
    for file_format in bureau.FILE_FORMATS:
        if bureau.has_month_end_file(session, period=period, file_format=file_format, now=now):
            continue
        create_bureau_file(
            session,
            period=period,
            file_format=file_format,
            cipher=cipher,
            settings=settings,
            today=last_month_end,
            now=now,
        )
        made += 1
    return made
