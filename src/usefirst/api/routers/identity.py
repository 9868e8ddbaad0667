"""Shopper enrolment and look-ups (platform)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from usefirst.api import responses as r
from usefirst.api.deps import IdempotentCallDep, PrincipalDep, RuntimeDep, require
from usefirst.api.schemas import ContactPreferencesIn, EnrolShopperIn
from usefirst.credit import service as credit_service
from usefirst.credit.application import Application
from usefirst.credit.service import policy_from_settings
from usefirst.flows import enrolment
from usefirst.flows.shopper_statement import shopper_statement
from usefirst.identity import service as identity_service
from usefirst.identity.models import Shopper
from usefirst.privacy.audit import record_access
from usefirst.runtime import Work

router = APIRouter(prefix="/v1/shoppers", tags=["shoppers"])


def shopper_view(shopper: Shopper, credit: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": shopper.id,
        "external_id": shopper.external_id,
        "status": shopper.status,
        "name_masked": shopper.name_masked,
        "national_id_masked": shopper.national_id_masked,
        "phone_masked": shopper.phone_masked,
        "email_masked": shopper.email_masked,
        "language": shopper.language,
        "time_zone": shopper.time_zone,
        "credit": credit,
        "created_at": shopper.created_at,
    }


@router.post("", status_code=201, response_model=r.ShopperOut)
def enrol_shopper(
    body: EnrolShopperIn,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    call: IdempotentCallDep,
) -> JSONResponse:
    require(principal, platform=True)

    def respond(work: Work) -> tuple[int, Any]:
        shopper, line = enrolment.enrol_shopper(
            work.session,
            request=enrolment.EnrolmentRequest(
                external_id=body.external_id,
                name=body.name,
                national_id=body.national_id,
                phone=body.phone,
                email=body.email,
                privacy_policy_version=body.consent.privacy_policy_version,
                credit_report_authorized=body.consent.credit_report_authorized,
                device_id=body.device_id,
                ip=body.ip,
                application=Application(**body.application.model_dump())
                if body.application is not None
                else None,
                language=body.language,
                time_zone=body.time_zone,
            ),
            cipher=runtime.cipher,
            policy=policy_from_settings(runtime.settings),
            currency=runtime.settings.currency,
            default_time_zone=runtime.settings.time_zone,
            today=work.today,
            now=work.now,
        )
        return 201, shopper_view(shopper, credit_service.credit_view(line))

    return call.run(body, respond)


# Unmasked PII goes only to these operator roles, and every such read is audited.
UNMASKED_PII_ROLES = ("admin", "compliance")


@router.get("/{shopper_id}", response_model=r.ShopperOut, response_model_exclude_unset=True)
def get_shopper(
    shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep, unmasked: bool = False
) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support", "compliance"))
    if unmasked:
        require(principal, roles=UNMASKED_PII_ROLES)
        assert principal.operator_id is not None
        # A write transaction: the read is recorded in the audit chain with the response.
        with runtime.work() as work:
            shopper = identity_service.get_shopper(work.session, shopper_id=shopper_id)
            line = credit_service.get_credit_line(work.session, shopper_id=shopper_id)
            view = shopper_view(shopper, credit_service.credit_view(line))
            view["unmasked"] = identity_service.unmasked_identity(
                work.session, shopper_id=shopper_id, cipher=runtime.cipher
            )
            record_access(
                work.session,
                actor=principal.operator_id,
                action="shopper.read_unmasked",
                subject_shopper_id=shopper_id,
                fields=[name for name, value in view["unmasked"].items() if value is not None],
                purpose=f"GET /v1/shoppers/{shopper_id}?unmasked=true by a {principal.role}",
                now=work.now,
            )
            return view
    with runtime.work(read_only=True) as work:
        shopper = identity_service.get_shopper(work.session, shopper_id=shopper_id)
        line = credit_service.get_credit_line(work.session, shopper_id=shopper_id)
        return shopper_view(shopper, credit_service.credit_view(line))


@router.patch(
    "/{shopper_id}/preferences", response_model=r.ShopperOut, response_model_exclude_unset=True
)
def change_preferences(
    shopper_id: str, body: ContactPreferencesIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support"))
    with runtime.work() as work:
        shopper = identity_service.change_contact_preferences(
            work.session, shopper_id=shopper_id, language=body.language, time_zone=body.time_zone
        )
        line = credit_service.get_credit_line(work.session, shopper_id=shopper_id)
        return shopper_view(shopper, credit_service.credit_view(line))


@router.get("/{shopper_id}/credit", response_model=r.CreditOut, response_model_exclude_unset=True)
def get_credit(shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support", "risk_analyst"))
    with runtime.work(read_only=True) as work:
        identity_service.get_shopper(work.session, shopper_id=shopper_id)
        line = credit_service.get_credit_line(work.session, shopper_id=shopper_id)
        return credit_service.credit_view(line)


@router.get(
    "/{shopper_id}/statement",
    response_model=r.ShopperStatementOut,
    response_model_exclude_unset=True,
)
def get_statement(shopper_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, platform=True, roles=("admin", "support", "collector"))
    with runtime.work(read_only=True) as work:
        return shopper_statement(work.session, shopper_id=shopper_id, today=work.today)
