"""Events, as delivered by webhook, listed for reconciliation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from usefirst.api import responses as r
from usefirst.api.credential_schemas import RedeliverEventIn
from usefirst.api.deps import PrincipalDep, RuntimeDep, page, require
from usefirst.notify.service import WEBHOOK_DESTINATIONS, event_body, list_events, redeliver_event

router = APIRouter(tags=["events"])


@router.get("/v1/events", response_model=r.EventPage, response_model_exclude_unset=True)
def get_events(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    type: Annotated[str | None, Query(max_length=64)] = None,
    starting_after: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require(principal, platform=True, merchant=True, roles=("admin", "support"))
    with runtime.work(read_only=True) as work:
        rows = list_events(
            work.session,
            merchant_id=principal.merchant_id,
            event_type=type,
            starting_after=starting_after,
            limit=limit + 1,
        )
        return page(rows, limit, event_body)


@router.post(
    "/v1/events/{event_id}/redeliver",
    status_code=202,
    response_model=r.RedeliveryOut,
    response_model_exclude_unset=True,
)
def redeliver(
    event_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    body: RedeliverEventIn | None = None,
) -> dict[str, Any]:
    """Queue the event's webhook once more, with the same event id. A merchant redelivers its own
    events to itself; the platform and admins choose ``destinations`` (default: every endpoint
    the event has)."""
    require(principal, platform=True, merchant=True, roles=("admin", "support"))
    if principal.kind == "merchant":
        destinations: tuple[str, ...] = ("merchant",)
    elif body is not None and body.destinations is not None:
        destinations = tuple(body.destinations)
    else:
        destinations = WEBHOOK_DESTINATIONS
    with runtime.work() as work:
        queued = redeliver_event(
            work.session,
            event_id=event_id,
            merchant_id=principal.merchant_id,
            destinations=destinations,
            settings=runtime.settings,
            now=work.now,
        )
    return {"event_id": event_id, "destinations": queued}
