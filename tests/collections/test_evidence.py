"""The legal-referral evidence pack: rendered to PDF, read back with pypdf."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from usefirst.collections.evidence import (
    ConsentFacts,
    EvidencePack,
    InstalmentFacts,
    ItemFacts,
    OrderFacts,
    PaymentFacts,
    ReminderFacts,
    ShipmentFacts,
    ShopperFacts,
    format_amount_minor,
    render_evidence_pdf,
)
from usefirst.identity.validation import mask_national_id

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

# Only for checking the masked field: the full ID is never put into the pack.
FULL_NATIONAL_ID = "110105199003071234"
MASKED_NATIONAL_ID = "110***********1234"

GENERATED_AT = datetime(2025, 3, 20, 2, 30, tzinfo=UTC)
REMINDER_CHANNELS = ("push", "sms", "email", "call")


def sample_pack(*, reminder_count: int = 5) -> EvidencePack:
    delivered_at = datetime(2024, 11, 4, 9, 15, tzinfo=UTC)
    return EvidencePack(
        case_id="lc_01JD5ZQ8K7",
        generated_at=GENERATED_AT,
        lender_name="优先用科技（上海）有限公司",
        shopper=ShopperFacts(
            shopper_id="sh_01JC9X2M4A",
            name="张晓明",
            national_id_masked=mask_national_id(FULL_NATIONAL_ID),
            phone_masked="+86 138****5678",
            enrolled_at=datetime(2024, 10, 28, 12, 0, tzinfo=UTC),
        ),
        consent=ConsentFacts(
            privacy_policy_version="2024-09",
            credit_report_authorized=True,
            recorded_at=datetime(2024, 10, 28, 12, 0, 5, tzinfo=UTC),
            source="app:enrolment",
        ),
        order=OrderFacts(
            order_id="or_01JCA7TQ3N",
            merchant_name="杭州优选数码专营店 & Co",
            created_at=datetime(2024, 11, 1, 6, 45, tzinfo=UTC),
            plan="instalments_3",
            amount_minor=359_700,
            currency="CNY",
            items=[
                ItemFacts(name="华为 MatePad 11 平板电脑", quantity=1, unit_price_minor=299_900),
                ItemFacts(name="原装手写笔 <第二代>", quantity=2, unit_price_minor=29_900),
            ],
        ),
        shipment=ShipmentFacts(
            carrier="顺丰速运",
            tracking_number="SF1432987650123",
            shipped_at=datetime(2024, 11, 2, 3, 0, tzinfo=UTC),
            delivered_at=delivered_at,
            confirmation="shopper",
        ),
        instalments=[
            InstalmentFacts(
                seq=1,
                due_on=date(2024, 12, 4),
                principal_minor=119_900,
                fees_minor=0,
                paid_minor=119_900,
                status="paid",
            ),
            InstalmentFacts(
                seq=2,
                due_on=date(2025, 1, 4),
                principal_minor=119_900,
                fees_minor=4_796,
                paid_minor=20_000,
                status="overdue",
            ),
            InstalmentFacts(
                seq=3,
                due_on=date(2025, 2, 4),
                principal_minor=119_900,
                fees_minor=2_398,
                paid_minor=0,
                status="overdue",
            ),
        ],
        payments=[
            PaymentFacts(
                payment_id="pay_01JE1",
                paid_at=datetime(2024, 12, 3, 11, 0, tzinfo=UTC),
                amount_minor=119_900,
                method="alipay",
            ),
            PaymentFacts(
                payment_id="pay_01JH7",
                paid_at=datetime(2025, 1, 20, 8, 30, tzinfo=UTC),
                amount_minor=20_000,
                method="wechat",
            ),
        ],
        reminders=[
            ReminderFacts(
                sent_at=datetime(2025, 1, 5, 2, 0, tzinfo=UTC) + timedelta(hours=6 * index),
                channel=REMINDER_CHANNELS[index % len(REMINDER_CHANNELS)],
                template=f"overdue_day_{index + 1}",
                status="sent" if index % 3 else "delivered",
            )
            for index in range(reminder_count)
        ],
        claimed_principal_minor=219_800,
        claimed_fees_minor=7_194,
        fee_cap_note="late fees capped at 25% of principal and 24% APR",
    )


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def rendered() -> bytes:
    return render_evidence_pdf(sample_pack())


@pytest.fixture(scope="module")
def rendered_text(rendered: bytes) -> str:
    return pdf_text(rendered)


# format_amount_minor


@pytest.mark.parametrize(
    ("amount_minor", "expected"),
    [
        (0, "¥0.00"),
        (5, "¥0.05"),
        (10, "¥0.10"),
        (123_456, "¥1,234.56"),
        (100_000_000_000_01, "¥100,000,000,000.01"),
        (-123_456, "-¥1,234.56"),
    ],
)
def test_amounts_are_formatted_exactly_from_minor_units(amount_minor: int, expected: str) -> None:
    assert format_amount_minor(amount_minor, "CNY") == expected


def test_an_amount_in_a_currency_without_a_symbol_shows_its_code() -> None:
    assert format_amount_minor(123_456, "USD") == "USD 1,234.56"


# the rendered document


def test_is_a_pdf_in_chinese_with_english_subtitles(rendered: bytes, rendered_text: str) -> None:
    assert rendered.startswith(b"%PDF")
    assert "催收法律移交证据包" in rendered_text
    assert "Evidence pack for legal referral" in rendered_text
    assert "lc_01JD5ZQ8K7" in rendered_text
    assert "优先用科技（上海）有限公司" in rendered_text
    # generated_at is 02:30 UTC, printed in Asia/Shanghai.
    assert "2025-03-20 10:30:00" in rendered_text


def test_sections_appear_in_order(rendered_text: str) -> None:
    headings = [
        "1. 用户（债务人）身份信息",
        "2. 授权与同意记录",
        "3. 订单及商品信息",
        "4. 发货及签收证明",
        "5. 还款计划",
        "6. 还款记录",
        "7. 催收提醒记录",
        "8. 主张金额",
    ]
    positions = [rendered_text.index(heading) for heading in headings]
    assert positions == sorted(positions)


def test_shows_the_masked_national_id_and_never_the_full_one(
    rendered: bytes, rendered_text: str
) -> None:
    pack = sample_pack()
    assert pack.shopper.national_id_masked == MASKED_NATIONAL_ID
    assert MASKED_NATIONAL_ID in rendered_text
    assert FULL_NATIONAL_ID not in rendered_text
    assert FULL_NATIONAL_ID.encode() not in rendered
    assert "张晓明" in rendered_text
    assert "+86 138****5678" in rendered_text


def test_shows_consent_order_items_and_shipment(rendered_text: str) -> None:
    assert "2024-09" in rendered_text
    assert "app:enrolment" in rendered_text
    assert "or_01JCA7TQ3N" in rendered_text
    assert "杭州优选数码专营店 & Co" in rendered_text
    assert "原装手写笔 <第二代>" in rendered_text
    assert "¥359,700.00" not in rendered_text  # minor units are never printed as yuan
    assert "¥3,597.00" in rendered_text
    assert "¥598.00" in rendered_text  # 2 × ¥299.00
    assert "顺丰速运" in rendered_text
    assert "SF1432987650123" in rendered_text
    assert "用户确认收货" in rendered_text


def test_shows_schedule_and_every_payment(rendered_text: str) -> None:
    assert "2025-01-04" in rendered_text
    assert "逾期 (overdue)" in rendered_text
    assert "pay_01JE1" in rendered_text
    assert "pay_01JH7" in rendered_text
    assert "支付宝 (alipay)" in rendered_text
    assert "¥1,399.00" in rendered_text  # total paid


def test_lists_every_reminder_with_its_channel_time_and_status(rendered_text: str) -> None:
    pack = sample_pack()
    for reminder in pack.reminders:
        assert reminder.template in rendered_text
    for channel in REMINDER_CHANNELS:
        assert f"({channel})" in rendered_text
    assert "2025-01-05 10:00:00" in rendered_text  # first reminder, 02:00 UTC
    assert "已发送 (sent)" in rendered_text
    assert "delivered" in rendered_text  # a status without a label is printed as stored
    assert "共 5 条提醒" in rendered_text


def test_states_the_claim_split_into_principal_and_fees_with_total(rendered_text: str) -> None:
    claim = rendered_text[rendered_text.index("8. 主张金额") :]
    assert "¥2,198.00" in claim
    assert "¥71.94" in claim
    assert "¥2,269.94" in claim
    assert "late fees capped at 25% of principal and 24% APR" in claim


def test_the_same_pack_renders_to_the_same_bytes(rendered: bytes) -> None:
    assert render_evidence_pdf(sample_pack()) == rendered


def test_the_same_pack_renders_to_the_same_bytes_in_another_process(rendered: bytes) -> None:
    script = (
        "import sys\n"
        "from tests.collections.test_evidence import sample_pack\n"
        "from usefirst.collections.evidence import render_evidence_pdf\n"
        "sys.stdout.buffer.write(render_evidence_pdf(sample_pack()))\n"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "America/New_York"}
    environment.pop("SOURCE_DATE_EPOCH", None)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert completed.stdout == rendered


def test_a_different_pack_renders_differently(rendered: bytes) -> None:
    pack = dataclasses.replace(sample_pack(), claimed_fees_minor=7_195)
    assert render_evidence_pdf(pack) != rendered


def test_metadata_carries_generated_at_as_creation_date(rendered: bytes) -> None:
    metadata = PdfReader(io.BytesIO(rendered)).metadata
    assert metadata is not None
    assert metadata.creation_date == GENERATED_AT
    assert metadata.title is not None and "lc_01JD5ZQ8K7" in metadata.title


def test_a_pack_without_shipment_says_so() -> None:
    text = pdf_text(render_evidence_pdf(dataclasses.replace(sample_pack(), shipment=None)))
    assert "无发货记录" in text
    assert "No shipment recorded" in text


def test_a_pack_without_payments_or_reminders_says_so() -> None:
    pack = dataclasses.replace(sample_pack(), payments=[], reminders=[])
    text = pdf_text(render_evidence_pdf(pack))
    assert "No payments received" in text
    assert "No reminders were sent" in text


def test_200_reminders_run_over_several_numbered_pages() -> None:
    pdf = render_evidence_pdf(sample_pack(reminder_count=200))
    pages = PdfReader(io.BytesIO(pdf)).pages
    page_count = len(pages)
    assert page_count > 2
    for number, page in enumerate(pages, start=1):
        text = page.extract_text()
        assert f"Page {number} of {page_count}" in text
        assert f"第 {number} 页 / 共 {page_count} 页" in text
    text = pdf_text(pdf)
    assert "共 200 条提醒" in text
    assert {int(number) for number in re.findall(r"overdue_day_(\d+)", text)} == set(range(1, 201))
    assert text.index("overdue_day_200") < text.index("8. 主张金额") < text.rindex("¥2,269.94")


@pytest.mark.parametrize(
    "national_id", [FULL_NATIONAL_ID, "11010519900307123X", "110105****03071234"]
)
def test_shopper_facts_refuse_an_unmasked_national_id(national_id: str) -> None:
    with pytest.raises(ValueError, match="masked"):
        ShopperFacts(
            shopper_id="sh_1",
            name="张晓明",
            national_id_masked=national_id,
            phone_masked="+86 138****5678",
            enrolled_at=GENERATED_AT,
        )
