"""The sandbox test clock. Outside sandbox mode these paths are 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from usefirst.api import responses as r
from usefirst.api.deps import PrincipalDep, RuntimeDep, require
from usefirst.api.schemas import AdvanceClockIn
from usefirst.kit.errors import NotFound

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"])


def _require_sandbox(runtime: RuntimeDep) -> None:
    if not runtime.settings.sandbox:
        raise NotFound("Not found.")


@router.get("/clock", response_model=r.ClockOut, response_model_exclude_unset=True)
def get_clock(runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    _require_sandbox(runtime)
    require(principal, platform=True, roles=("admin",))
    with runtime.work() as work:
        return {"now": work.now, "business_on": work.today}


@router.post("/clock/advance", response_model=r.ClockOut, response_model_exclude_unset=True)
def advance_clock(
    body: AdvanceClockIn, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    _require_sandbox(runtime)
    require(principal, platform=True, roles=("admin",))
    now = runtime.advance_test_clock(days=body.days, seconds=body.seconds)
    with runtime.work(read_only=True) as work:
        return {"now": now, "business_on": work.today}
