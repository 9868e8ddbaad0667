"""The simulator's ground truth never reaches the engine: what it writes into the engine's
tables names no role, and the engine's modules do not import the simulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from sqlalchemy import String, select

from tests.lab.sim.test_fraud_typologies import _simulate
from usefirst.identity.models import Shopper
from usefirst.merchants.models import Merchant
from usefirst.orders.models import Order
from usefirst.runtime import Runtime

ROLE_WORDS = re.compile(
    r"ring|mule|synthetic|bust|big_spender|family|fraud|collud|honest|数码", re.IGNORECASE
)
ENGINE_MODULES = (
    "usefirst.api.app",
    "usefirst.orders.service",
    "usefirst.risk.decision",
    "usefirst.risk.monitors",
    "usefirst.risk.graph",
)


def _text_columns(row: object) -> list[str]:
    table = row.__table__  # type: ignore[attr-defined]
    return [
        value
        for column in table.columns
        if isinstance(column.type, String) and isinstance(value := getattr(row, column.key), str)
    ]


def test_what_the_simulator_writes_names_no_role(runtime: Runtime) -> None:
    summary = _simulate(runtime, seed=5)
    truth = summary.ground_truth
    assert truth is not None
    assert {"ring_mule", "synthetic", "bust_out", "big_spender", "family"} <= set(
        truth.shopper_roles.values()
    )
    with runtime.work(read_only=True) as work:
        shoppers = list(work.session.scalars(select(Shopper)))
        merchants = list(work.session.scalars(select(Merchant).order_by(Merchant.name)))
        orders = list(work.session.scalars(select(Order)))
        assert len(shoppers) == len(truth.shopper_roles) == 4 + 4 + 1 + 3 + 2 + 3
        assert sorted(merchant.name for merchant in merchants) == [
            "模拟商户 1",
            "模拟商户 2",
            "模拟商户 3",
        ]
        assert sorted(truth.merchant_roles.values()) == ["colluding", "honest", "honest"]
        assert all(re.fullmatch(r"sim-5-[0-9a-f]{16}", shopper.external_id) for shopper in shoppers)
        written = [
            *(text for shopper in shoppers for text in _text_columns(shopper)),
            *(text for merchant in merchants for text in _text_columns(merchant)),
            *(
                text
                for order in orders
                for text in (order.device_id, order.ip, order.carrier, order.tracking_number)
                if text is not None
            ),
            *(json.dumps(order.items, ensure_ascii=False) for order in orders),
        ]
    assert len(orders) > 0
    assert [text for text in written if ROLE_WORDS.search(text)] == []


def test_engine_modules_do_not_import_the_simulator() -> None:
    probe = (
        "import importlib, sys\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('usefirst.lab.sim')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
