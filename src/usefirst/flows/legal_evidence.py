"""The evidence pack of a legal case: what the lender can show a court about the debt (who the
shopper is and what they consented to, the order and its delivery, the schedule, every payment and
every reminder, the claim and the fee caps), gathered from the domains that hold it and rendered
as a PDF."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from usefirst.collections import evidence
from usefirst.collections import service as collections_service
from usefirst.identity import service as identity_service
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict
from usefirst.kit.settings import Settings
from usefirst.merchants import service as merchant_service
from usefirst.orders import service as order_service
from usefirst.repayment import service as repayment_service


def evidence_pdf(
    session: Session, *, case_id: str, cipher: FieldCipher, settings: Settings, now: datetime
) -> bytes:
    case = collections_service.get_legal_case(session, case_id=case_id)
    order = order_service.find_order(session, order_id=case.order_id)
    merchant = merchant_service.get_merchant(session, merchant_id=order.merchant_id)
    identity = identity_service.legal_identity(session, shopper_id=order.shopper_id, cipher=cipher)
    consent = identity_service.latest_consent(session, shopper_id=order.shopper_id)
    if consent is None:
        raise Conflict("The shopper has no consent record; the pack cannot be made.")
    rows = repayment_service.instalments_of(session, shopper_id=order.shopper_id, order_id=order.id)
    delivered_event = order_service.delivery_confirmation(session, order=order)
    pack = evidence.EvidencePack(
        case_id=case.id,
        generated_at=now,
        lender_name=settings.lender_name,
        shopper=evidence.ShopperFacts(
            shopper_id=identity.shopper_id,
            name=identity.name,
            national_id_masked=identity.national_id_masked,
            phone_masked=identity.phone_masked,
            enrolled_at=identity.enrolled_at,
        ),
        consent=evidence.ConsentFacts(
            privacy_policy_version=consent.privacy_policy_version,
            credit_report_authorized=consent.credit_report_authorized,
            recorded_at=consent.recorded_at,
            source=consent.source,
        ),
        order=evidence.OrderFacts(
            order_id=order.id,
            merchant_name=merchant.name,
            created_at=order.created_at,
            plan=order.plan,
            amount_minor=order.amount_minor,
            currency=order.currency,
            items=[
                evidence.ItemFacts(
                    name=str(item["name"]),
                    quantity=int(item["quantity"]),
                    unit_price_minor=int(item["unit_price_minor"]),
                )
                for item in order.items
            ],
        ),
        shipment=evidence.ShipmentFacts(
            carrier=order.carrier or "",
            tracking_number=order.tracking_number or "",
            shipped_at=order.shipped_at,
            delivered_at=order.delivered_at,
            confirmation=delivered_event,
        )
        if order.shipped_at is not None
        else None,
        instalments=[
            evidence.InstalmentFacts(
                seq=row.seq,
                due_on=row.due_on,
                principal_minor=row.principal_minor,
                fees_minor=row.all_fees_minor,
                paid_minor=row.paid_principal_minor + row.paid_fees_minor,
                status=row.status,
            )
            for row in rows
        ],
        payments=[
            evidence.PaymentFacts(
                payment_id=payment_id, paid_at=paid_at, amount_minor=amount, method=method
            )
            for payment_id, paid_at, amount, method in repayment_service.payments_to_order(
                session, shopper_id=order.shopper_id, order_id=order.id
            )
        ],
        reminders=[
            evidence.ReminderFacts(
                sent_at=attempt.sent_at or attempt.scheduled_at,
                channel=attempt.channel,
                template=attempt.template or attempt.step,
                status=attempt.status,
            )
            for attempt in collections_service.contacts_of(session, shopper_id=order.shopper_id)
            if attempt.order_id == order.id
        ],
        claimed_principal_minor=case.claimed_principal_minor,
        claimed_fees_minor=case.claimed_fees_minor,
        fee_cap_note=(
            f"Late fees: {settings.late_fee_bps_per_day / 100:g}% of overdue principal per day, "
            f"capped at {settings.late_fee_cap_bps_of_principal / 100:g}% of the principal; all "
            f"fees within an annualised {settings.apr_cap_bps / 100:g}%."
        ),
    )
    return evidence.render_evidence_pdf(pack, time_zone=settings.time_zone)
