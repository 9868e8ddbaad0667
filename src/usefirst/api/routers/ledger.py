"""The trial balance, for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from usefirst.api import responses as r
from usefirst.api.deps import PrincipalDep, RuntimeDep, require
from usefirst.ledger.service import trial_balance

router = APIRouter(tags=["ledger"])


@router.get(
    "/v1/ledger/trial-balance", response_model=r.TrialBalanceOut, response_model_exclude_unset=True
)
def get_trial_balance(runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, roles=("admin",))
    with runtime.work(read_only=True) as work:
        balance = trial_balance(work.session)
        return {
            "accounts": [
                {
                    "account": line.account,
                    "kind": line.kind,
                    "currency": line.currency,
                    "debits_minor": line.debits_minor,
                    "credits_minor": line.credits_minor,
                    "balance_minor": line.balance_minor,
                }
                for line in balance.lines
            ],
            "debits_minor": balance.debits_minor,
            "credits_minor": balance.credits_minor,
        }
