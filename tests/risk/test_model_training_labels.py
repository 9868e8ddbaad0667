"""Production training rows: the features each checkout decision recorded, labelled by analysts'
case resolutions first, then by charge-off (fraud or loss) and repayment (legitimate)."""

from __future__ import annotations

from sqlalchemy import select, update

from tests.factories import checkout_in_work, enrol_in_work, merchant_in_work
from usefirst.collections.models import DelinquentOrder
from usefirst.flows import case_resolution
from usefirst.lab.fraud_model_training import labelled_rows, production_labels
from usefirst.orders.models import Order
from usefirst.risk import cases
from usefirst.risk.features import FEATURE_NAMES
from usefirst.runtime import Runtime


def _checkout(runtime: Runtime, shopper_id: str, merchant_id: str, amount_minor: int) -> str:
    with runtime.work() as work:
        return checkout_in_work(
            runtime, work, shopper_id=shopper_id, merchant_id=merchant_id, amount_minor=amount_minor
        ).id


def test_labels_come_from_cases_then_repayments_and_never_from_charge_offs_alone(
    runtime: Runtime,
) -> None:
    with runtime.work() as work:
        shopper, _ = enrol_in_work(runtime, work, external_id="label-1")
        merchant = merchant_in_work(runtime, work)
        operator_id = "op_analyst"
    confirmed, charged_off, repaid, open_order = (
        _checkout(runtime, shopper.id, merchant.id, amount)
        for amount in (12_000, 13_000, 14_000, 15_000)
    )
    with runtime.work() as work:
        case = cases.open_or_update_case(
            work.session,
            case_type="order",
            subject_ids=[confirmed],
            amount_at_risk_minor=12_000,
            evidence={},
            reason="crafted",
            now=work.now,
        )
        case_resolution.resolve_case(
            work.session,
            case_id=case.id,
            outcome="confirmed_fraud",
            note="crafted",
            resolved_by=operator_id,
            settings=runtime.settings,
            now=work.now,
        )
        # Outcomes the lifecycle would reach weeks later, set directly for this test.
        charged_off_order = work.session.scalars(select(Order).where(Order.id == charged_off)).one()
        work.session.add(
            DelinquentOrder(
                shopper_id=charged_off_order.shopper_id,
                order_id=charged_off,
                charged_off_on=work.today,
                charged_off_minor=0,
                updated_at=work.now,
            )
        )
        work.session.execute(update(Order).where(Order.id == repaid).values(status="repaid"))

    with runtime.work(read_only=True) as work:
        labels = production_labels(work.session)
        rows = labelled_rows(work.session, labels=labels, label_source="crafted")

    # A charged-off order may be an honest default: only an analyst makes it fraud.
    assert labels == {confirmed: 1, repaid: 0}
    assert open_order not in labels
    assert rows.order_ids == [confirmed, repaid]
    assert rows.labels.tolist() == [1, 0]
    assert rows.feature_names == FEATURE_NAMES
    amount = FEATURE_NAMES.index("order_amount_minor")
    assert rows.matrix[:, amount].tolist() == [12_000.0, 14_000.0]
    assert rows.summary() == {
        "rows": 2,
        "fraud_rows": 1,
        "legitimate_rows": 1,
        "label_source": "crafted",
    }
