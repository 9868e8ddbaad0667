"""Enrolment: identity records the shopper, then credit reviews them and opens their line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from usefirst.credit import service as credit_service
from usefirst.credit.application import Application
from usefirst.credit.models import CreditLine
from usefirst.credit.policy import Applicant, CreditPolicy
from usefirst.identity import service as identity_service
from usefirst.identity.models import Shopper
from usefirst.kit.crypto import FieldCipher


@dataclass(frozen=True)
class EnrolmentRequest(identity_service.ShopperDetails):
    # Marketplace facts for the scorecard; without them the cold-start policy decides.
    application: Application | None = None


def enrol_shopper(
    session: Session,
    *,
    request: EnrolmentRequest,
    cipher: FieldCipher,
    policy: CreditPolicy,
    currency: str,
    default_time_zone: str,
    today: date,
    now: datetime,
) -> tuple[Shopper, CreditLine]:
    registered = identity_service.register_shopper(
        session,
        details=request,
        cipher=cipher,
        default_time_zone=default_time_zone,
        today=today,
        now=now,
    )
    applicant = Applicant(
        identity_verified=True,
        privacy_policy_version=request.privacy_policy_version,
        credit_report_authorized=request.credit_report_authorized,
        age_years=registered.age_years,
        application=request.application,
    )
    line, assessment = credit_service.open_credit_line(
        session,
        shopper_id=registered.shopper.id,
        applicant=applicant,
        policy=policy,
        currency=currency,
        now=now,
    )
    if not assessment.is_approved:
        identity_service.reject_enrolment(registered.shopper)
    session.flush()
    return registered.shopper, line
