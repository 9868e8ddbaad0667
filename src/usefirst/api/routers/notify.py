"""Events, as delivered by webhook, listed for reconciliation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from usefirst.api.deps import PrincipalDep, RuntimeDep, page, require
from usefirst.notify.service import event_body, list_events

router = APIRouter(tags=["events"])


@router.get("/v1/events")
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
