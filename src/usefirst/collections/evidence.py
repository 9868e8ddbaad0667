"""The evidence pack a lender sends with the legal referral of a long-unpaid debt, as a PDF.

The pack is a frozen snapshot of facts gathered by the services (identity, consent, order, shipment,
schedule, payments, reminders, claim); this module only lays them out. The document is in Chinese
with English subtitles, for a Chinese court and for the lender's counsel alike.

The shopper's national ID only ever reaches this module masked: ``ShopperFacts`` refuses a value
that shows more than the seven characters a mask keeps, so a full ID cannot be printed by mistake.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, NamedTuple
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from usefirst.kit.clock import as_utc
from usefirst.kit.money import SUPPORTED_CURRENCIES

DeliveryConfirmation = Literal["shopper", "automatic"]

# A mask such as 110***********1234 keeps the first three and last four characters visible.
MAXIMUM_VISIBLE_NATIONAL_ID_CHARACTERS = 7

DEFAULT_TIME_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class ShopperFacts:
    shopper_id: str
    name: str  # plaintext: the court must know whom the claim is against
    national_id_masked: str
    phone_masked: str
    enrolled_at: datetime

    def __post_init__(self) -> None:
        visible_characters = sum(1 for character in self.national_id_masked if character != "*")
        if "*" not in self.national_id_masked or (
            visible_characters > MAXIMUM_VISIBLE_NATIONAL_ID_CHARACTERS
        ):
            raise ValueError(
                "national_id_masked must be a masked national ID (e.g. 110***********1234), "
                "never the full number"
            )
        if "*" not in self.phone_masked:
            raise ValueError("phone_masked must be a masked phone number")


@dataclass(frozen=True)
class ConsentFacts:
    privacy_policy_version: str
    credit_report_authorized: bool
    recorded_at: datetime
    source: str


@dataclass(frozen=True)
class ItemFacts:
    name: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    merchant_name: str
    created_at: datetime
    plan: str
    amount_minor: int
    currency: str
    items: list[ItemFacts]


@dataclass(frozen=True)
class ShipmentFacts:
    carrier: str
    tracking_number: str
    shipped_at: datetime
    delivered_at: datetime | None
    confirmation: DeliveryConfirmation


@dataclass(frozen=True)
class InstalmentFacts:
    seq: int
    due_on: date | None
    principal_minor: int
    fees_minor: int
    paid_minor: int
    status: str


@dataclass(frozen=True)
class PaymentFacts:
    payment_id: str
    paid_at: datetime
    amount_minor: int
    method: str


@dataclass(frozen=True)
class ReminderFacts:
    sent_at: datetime
    channel: str
    template: str
    status: str


@dataclass(frozen=True)
class EvidencePack:
    case_id: str
    generated_at: datetime
    lender_name: str
    shopper: ShopperFacts
    consent: ConsentFacts
    order: OrderFacts
    shipment: ShipmentFacts | None
    instalments: list[InstalmentFacts]
    payments: list[PaymentFacts]
    reminders: list[ReminderFacts]
    claimed_principal_minor: int
    claimed_fees_minor: int
    fee_cap_note: str

    def __post_init__(self) -> None:
        if self.claimed_principal_minor < 0 or self.claimed_fees_minor < 0:
            raise ValueError("claimed amounts must not be negative")

    @property
    def claimed_total_minor(self) -> int:
        return self.claimed_principal_minor + self.claimed_fees_minor


CURRENCY_SYMBOLS: dict[str, str] = {"CNY": "¥"}


def format_amount_minor(amount_minor: int, currency: str) -> str:
    """``123456, "CNY"`` → ``"¥1,234.56"``, by integer arithmetic only."""
    digits = SUPPORTED_CURRENCIES.get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    prefix = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    return f"{sign}{prefix}{whole:,}.{fraction:0{digits}d}"


# Chinese labels for the codes the engine stores; an unknown code is printed as it is.
PLAN_LABELS: dict[str, str] = {
    "pay_after_delivery": "确认收货后付款",
    "instalments_3": "分 3 期",
    "instalments_6": "分 6 期",
}
INSTALMENT_STATUS_LABELS: dict[str, str] = {
    "scheduled": "待生效",
    "pending": "待还款",
    "overdue": "逾期",
    "paid": "已结清",
    "cancelled": "已取消",
}
PAYMENT_METHOD_LABELS: dict[str, str] = {
    "alipay": "支付宝",
    "wechat": "微信支付",
    "bank_card": "银行卡",
    "other": "其他",
}
REMINDER_CHANNEL_LABELS: dict[str, str] = {
    "push": "App 推送",
    "sms": "短信",
    "email": "电子邮件",
    "call": "电话",
}
REMINDER_STATUS_LABELS: dict[str, str] = {
    "sent": "已发送",
    "deferred": "已延后",
    "suppressed": "未发送（受限）",
    "failed": "发送失败",
}
CONFIRMATION_LABELS: dict[DeliveryConfirmation, str] = {
    "shopper": "用户确认收货 / Confirmed by the shopper",
    "automatic": "超期系统自动确认收货 / Confirmed automatically after the confirmation period",
}

# One of Adobe's standard CJK fonts: the reader supplies the glyphs (Acrobat's Asian font pack,
# poppler with CJK fonts installed), so nothing is embedded and nothing has to be downloaded here.
FONT_NAME = "STSong-Light"
PAGE_MARGIN = 18 * mm
CONTENT_WIDTH = A4[0] - 2 * PAGE_MARGIN
HEADER_BACKGROUND = colors.HexColor("#E8EDF3")
RULE_COLOUR = colors.HexColor("#9AA5B1")
SUBTITLE_COLOUR = colors.HexColor("#555555")


def render_evidence_pdf(pack: EvidencePack, *, time_zone: str = DEFAULT_TIME_ZONE) -> bytes:
    """Render ``pack`` as an A4 PDF; the same pack always gives the same bytes.

    Times are printed in ``time_zone`` (the operator's business time zone); a naive datetime is
    taken as UTC, as everywhere in the engine.
    """
    _register_font()
    zone = ZoneInfo(time_zone)
    # The footer says "page N of M", and M is known only once the pages are laid out: lay out
    # once to count, then again to print.
    page_count = _build(pack, zone, page_count=None).page_count
    rendered = _build(pack, zone, page_count=page_count)
    if rendered.page_count != page_count:
        raise AssertionError("the evidence pack paginated differently on its second layout")
    return rendered.pdf


@dataclass(frozen=True)
class _Rendered:
    pdf: bytes
    page_count: int


def _register_font() -> None:
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT_NAME))


def _build(pack: EvidencePack, zone: ZoneInfo, *, page_count: int | None) -> _Rendered:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=PAGE_MARGIN,
        rightMargin=PAGE_MARGIN,
        topMargin=PAGE_MARGIN,
        bottomMargin=PAGE_MARGIN + 6 * mm,
        title=f"催收法律移交证据包 Evidence pack for legal referral {pack.case_id}",
        author=pack.lender_name,
        subject=f"Case {pack.case_id}, order {pack.order.order_id}",
        creator="usefirst",
        # Invariant mode fixes the document id and the internal timestamp, so equal packs give
        # equal bytes; the creation date is then set from generated_at below.
        invariant=1,
        lang="zh-CN",
    )
    pages_drawn: list[int] = []
    decorate_page = _page_decorator(pack, page_count=page_count, pages_drawn=pages_drawn)
    document.build(_story(pack, zone), onFirstPage=decorate_page, onLaterPages=decorate_page)
    return _Rendered(pdf=buffer.getvalue(), page_count=len(pages_drawn))


def _page_decorator(
    pack: EvidencePack, *, page_count: int | None, pages_drawn: list[int]
) -> Callable[[Canvas, Any], None]:
    creation_date = _pdf_date(pack.generated_at)

    def decorate(canvas: Canvas, _document: Any) -> None:
        page_number = canvas.getPageNumber()
        pages_drawn.append(page_number)
        canvas.setDateFormatter(lambda *_ignored: creation_date)
        canvas.saveState()
        canvas.setFont(FONT_NAME, 8)
        canvas.setFillColor(SUBTITLE_COLOUR)
        canvas.setStrokeColor(RULE_COLOUR)
        footer_y = PAGE_MARGIN
        canvas.line(PAGE_MARGIN, footer_y + 4 * mm, A4[0] - PAGE_MARGIN, footer_y + 4 * mm)
        canvas.drawString(
            PAGE_MARGIN, footer_y, f"案件编号 Case {pack.case_id}  |  机密 Confidential"
        )
        total = page_count if page_count is not None else page_number
        canvas.drawRightString(
            A4[0] - PAGE_MARGIN,
            footer_y,
            f"第 {page_number} 页 / 共 {total} 页  |  Page {page_number} of {total}",
        )
        canvas.restoreState()

    return decorate


def _pdf_date(moment: datetime) -> str:
    return as_utc(moment).strftime("D:%Y%m%d%H%M%S+00'00'")


# -- content ------------------------------------------------------------------------------------


def _style(name: str, *, size: float, **overrides: Any) -> ParagraphStyle:
    return ParagraphStyle(
        name,
        fontName=FONT_NAME,
        fontSize=size,
        leading=size * 1.35,
        wordWrap="CJK",  # Chinese has no spaces: break between any two characters
        **overrides,
    )


TITLE_STYLE = _style("EvidenceTitle", size=18, alignment=TA_CENTER, spaceAfter=2)
TITLE_SUBTITLE_STYLE = _style(
    "EvidenceTitleSubtitle", size=11, alignment=TA_CENTER, textColor=SUBTITLE_COLOUR, spaceAfter=8
)
SECTION_STYLE = _style("EvidenceSection", size=12.5, spaceBefore=10, spaceAfter=4)
BODY_STYLE = _style("EvidenceBody", size=9.5, spaceAfter=3)
NOTE_STYLE = _style("EvidenceNote", size=8.5, textColor=SUBTITLE_COLOUR, spaceAfter=3)
CELL_STYLE = _style("EvidenceCell", size=8.5)
CELL_RIGHT_STYLE = _style("EvidenceCellRight", size=8.5, alignment=TA_RIGHT)
HEADER_CELL_STYLE = _style("EvidenceHeaderCell", size=8.5)
HEADER_CELL_RIGHT_STYLE = _style("EvidenceHeaderCellRight", size=8.5, alignment=TA_RIGHT)


def _story(pack: EvidencePack, zone: ZoneInfo) -> list[Flowable]:
    currency = pack.order.currency
    story: list[Flowable] = [
        Paragraph("催收法律移交证据包", TITLE_STYLE),
        Paragraph("Evidence pack for legal referral", TITLE_SUBTITLE_STYLE),
        _key_value_table(
            [
                ("案件编号", "Case ID", pack.case_id),
                ("出借方", "Lender", pack.lender_name),
                ("生成时间", "Generated at", _moment(pack.generated_at, zone)),
                ("时区", "Time zone", f"{zone.key}（下文时间均为此时区 / all times below)"),
            ]
        ),
    ]
    story += _identity_section(pack.shopper, zone)
    story += _consent_section(pack.consent, zone)
    story += _order_section(pack.order, zone)
    story += _shipment_section(pack.shipment, zone)
    story += _schedule_section(pack.instalments, currency)
    story += _payments_section(pack.payments, currency, zone)
    story += _reminders_section(pack.reminders, zone)
    story += _claim_section(pack, currency)
    story.append(
        KeepTogether(
            [
                Spacer(1, 10 * mm),
                _key_value_table(
                    [("出具方盖章", "Seal of the lender", ""), ("日期", "Date", "")],
                    value_height=14 * mm,
                ),
            ]
        )
    )
    return story


def _identity_section(shopper: ShopperFacts, zone: ZoneInfo) -> list[Flowable]:
    return [
        _section_heading(1, "用户（债务人）身份信息", "Shopper (debtor) identity"),
        _key_value_table(
            [
                ("用户编号", "Shopper ID", shopper.shopper_id),
                ("姓名", "Name", shopper.name),
                ("身份证号（脱敏）", "National ID (masked)", shopper.national_id_masked),
                ("手机号（脱敏）", "Phone (masked)", shopper.phone_masked),
                ("开通时间", "Enrolled at", _moment(shopper.enrolled_at, zone)),
            ]
        ),
        Paragraph(
            "身份证号与手机号按个人信息保护要求脱敏显示；完整信息可依法定程序另行提供。"
            "<br/>National ID and phone are masked; the full values are available on lawful "
            "request.",
            NOTE_STYLE,
        ),
    ]


def _consent_section(consent: ConsentFacts, zone: ZoneInfo) -> list[Flowable]:
    authorized = "是 / Yes" if consent.credit_report_authorized else "否 / No"
    return [
        _section_heading(2, "授权与同意记录", "Consent record"),
        _key_value_table(
            [
                ("隐私政策版本", "Privacy policy version", consent.privacy_policy_version),
                ("征信查询及报送授权", "Credit report authorised", authorized),
                ("记录时间", "Recorded at", _moment(consent.recorded_at, zone)),
                ("记录来源", "Source", consent.source),
            ]
        ),
    ]


def _order_section(order: OrderFacts, zone: ZoneInfo) -> list[Flowable]:
    currency = order.currency
    rows = [
        [
            _cell(str(index)),
            _cell(item.name),
            _cell(str(item.quantity), right=True),
            _cell(format_amount_minor(item.unit_price_minor, currency), right=True),
            _cell(format_amount_minor(item.quantity * item.unit_price_minor, currency), right=True),
        ]
        for index, item in enumerate(order.items, start=1)
    ]
    items_total_minor = sum(item.quantity * item.unit_price_minor for item in order.items)
    rows.append(
        [
            _cell(""),
            _cell("商品合计 Items total"),
            _cell(str(sum(item.quantity for item in order.items)), right=True),
            _cell(""),
            _cell(format_amount_minor(items_total_minor, currency), right=True),
        ]
    )
    return [
        _section_heading(3, "订单及商品信息", "Order and items"),
        _key_value_table(
            [
                ("订单编号", "Order ID", order.order_id),
                ("商户", "Merchant", order.merchant_name),
                ("下单时间", "Ordered at", _moment(order.created_at, zone)),
                ("付款方式", "Plan", _labelled(order.plan, PLAN_LABELS)),
                ("订单金额", "Order amount", format_amount_minor(order.amount_minor, currency)),
            ]
        ),
        Spacer(1, 3 * mm),
        _list_table(
            header=[
                _Column("序号", "No."),
                _Column("商品名称", "Item"),
                _Column("数量", "Qty", is_amount=True),
                _Column("单价", "Unit price", is_amount=True),
                _Column("小计", "Line total", is_amount=True),
            ],
            rows=rows,
            widths=[12 * mm, None, 16 * mm, 30 * mm, 32 * mm],
            has_total_row=True,
        ),
    ]


def _shipment_section(shipment: ShipmentFacts | None, zone: ZoneInfo) -> list[Flowable]:
    heading = _section_heading(4, "发货及签收证明", "Shipment and delivery proof")
    if shipment is None:
        return [
            heading,
            Paragraph(
                "无发货记录：本订单未登记任何物流发货信息。"
                "<br/>No shipment recorded: no shipment was registered for this order.",
                BODY_STYLE,
            ),
        ]
    delivered = (
        _moment(shipment.delivered_at, zone)
        if shipment.delivered_at is not None
        else "未签收 / Not delivered"
    )
    return [
        heading,
        _key_value_table(
            [
                ("承运商", "Carrier", shipment.carrier),
                ("运单号", "Tracking number", shipment.tracking_number),
                ("发货时间", "Shipped at", _moment(shipment.shipped_at, zone)),
                ("签收时间", "Delivered at", delivered),
                ("收货确认", "Receipt confirmed", CONFIRMATION_LABELS[shipment.confirmation]),
            ]
        ),
    ]


def _schedule_section(instalments: Sequence[InstalmentFacts], currency: str) -> list[Flowable]:
    heading = _section_heading(5, "还款计划", "Repayment schedule")
    if not instalments:
        return [heading, Paragraph("无还款计划。<br/>No repayment schedule.", BODY_STYLE)]
    ordered = sorted(instalments, key=lambda instalment: instalment.seq)
    rows = [
        [
            _cell(str(instalment.seq)),
            _cell(instalment.due_on.isoformat() if instalment.due_on is not None else "—"),
            _cell(format_amount_minor(instalment.principal_minor, currency), right=True),
            _cell(format_amount_minor(instalment.fees_minor, currency), right=True),
            _cell(format_amount_minor(instalment.paid_minor, currency), right=True),
            _cell(format_amount_minor(_outstanding_minor(instalment), currency), right=True),
            _cell(_labelled(instalment.status, INSTALMENT_STATUS_LABELS)),
        ]
        for instalment in ordered
    ]
    rows.append(
        [
            _cell("合计 Total"),
            _cell(""),
            _cell(
                format_amount_minor(
                    sum(instalment.principal_minor for instalment in ordered), currency
                ),
                right=True,
            ),
            _cell(
                format_amount_minor(sum(instalment.fees_minor for instalment in ordered), currency),
                right=True,
            ),
            _cell(
                format_amount_minor(sum(instalment.paid_minor for instalment in ordered), currency),
                right=True,
            ),
            _cell(
                format_amount_minor(
                    sum(_outstanding_minor(instalment) for instalment in ordered), currency
                ),
                right=True,
            ),
            _cell(""),
        ]
    )
    return [
        heading,
        _list_table(
            header=[
                _Column("期数", "No."),
                _Column("到期日", "Due on"),
                _Column("本金", "Principal", is_amount=True),
                _Column("费用", "Fees", is_amount=True),
                _Column("已还", "Paid", is_amount=True),
                _Column("未还", "Outstanding", is_amount=True),
                _Column("状态", "Status"),
            ],
            rows=rows,
            widths=[18 * mm, 24 * mm, None, 22 * mm, 24 * mm, 24 * mm, 28 * mm],
            has_total_row=True,
        ),
    ]


def _outstanding_minor(instalment: InstalmentFacts) -> int:
    return instalment.principal_minor + instalment.fees_minor - instalment.paid_minor


def _payments_section(
    payments: Sequence[PaymentFacts], currency: str, zone: ZoneInfo
) -> list[Flowable]:
    heading = _section_heading(6, "还款记录", "Payment history")
    if not payments:
        return [heading, Paragraph("无还款记录。<br/>No payments received.", BODY_STYLE)]
    ordered = sorted(payments, key=lambda payment: (as_utc(payment.paid_at), payment.payment_id))
    rows = [
        [
            _cell(str(index)),
            _cell(payment.payment_id),
            _cell(_moment(payment.paid_at, zone)),
            _cell(_labelled(payment.method, PAYMENT_METHOD_LABELS)),
            _cell(format_amount_minor(payment.amount_minor, currency), right=True),
        ]
        for index, payment in enumerate(ordered, start=1)
    ]
    rows.append(
        [
            _cell(""),
            _cell("已还合计 Total paid"),
            _cell(""),
            _cell(""),
            _cell(
                format_amount_minor(sum(payment.amount_minor for payment in ordered), currency),
                right=True,
            ),
        ]
    )
    return [
        heading,
        _list_table(
            header=[
                _Column("序号", "No."),
                _Column("支付编号", "Payment ID"),
                _Column("支付时间", "Paid at"),
                _Column("支付方式", "Method"),
                _Column("金额", "Amount", is_amount=True),
            ],
            rows=rows,
            widths=[12 * mm, None, 38 * mm, 32 * mm, 30 * mm],
            has_total_row=True,
        ),
    ]


def _reminders_section(reminders: Sequence[ReminderFacts], zone: ZoneInfo) -> list[Flowable]:
    heading = _section_heading(7, "催收提醒记录", "Reminders sent")
    if not reminders:
        return [heading, Paragraph("未发送任何提醒。<br/>No reminders were sent.", BODY_STYLE)]
    ordered = sorted(reminders, key=lambda reminder: as_utc(reminder.sent_at))
    rows = [
        [
            _cell(str(index)),
            _cell(_moment(reminder.sent_at, zone)),
            _cell(_labelled(reminder.channel, REMINDER_CHANNEL_LABELS)),
            _cell(reminder.template),
            _cell(_labelled(reminder.status, REMINDER_STATUS_LABELS)),
        ]
        for index, reminder in enumerate(ordered, start=1)
    ]
    return [
        heading,
        Paragraph(
            f"共 {len(ordered)} 条提醒，仅发送至用户本人已验证的联系方式。"
            f"<br/>{len(ordered)} reminders in total, sent only to the shopper's own verified "
            "channels.",
            NOTE_STYLE,
        ),
        _list_table(
            header=[
                _Column("序号", "No."),
                _Column("发送时间", "Sent at"),
                _Column("渠道", "Channel"),
                _Column("模板", "Template"),
                _Column("状态", "Status"),
            ],
            rows=rows,
            widths=[12 * mm, 38 * mm, 32 * mm, None, 36 * mm],
        ),
    ]


def _claim_section(pack: EvidencePack, currency: str) -> list[Flowable]:
    rows = [
        [
            _cell("本金 Principal"),
            _cell(format_amount_minor(pack.claimed_principal_minor, currency), right=True),
        ],
        [
            _cell("费用 Fees"),
            _cell(format_amount_minor(pack.claimed_fees_minor, currency), right=True),
        ],
        [
            _cell("合计 Total"),
            _cell(format_amount_minor(pack.claimed_total_minor, currency), right=True),
        ],
    ]
    return [
        KeepTogether(
            [
                _section_heading(8, "主张金额", "Amount claimed"),
                _list_table(
                    header=[_Column("项目", "Item"), _Column("金额", "Amount", is_amount=True)],
                    rows=rows,
                    widths=[None, 50 * mm],
                    has_total_row=True,
                ),
                Spacer(1, 3 * mm),
                Paragraph(
                    "费用上限说明 / Fee cap: " + escape(pack.fee_cap_note),
                    BODY_STYLE,
                ),
            ]
        )
    ]


# -- building blocks ----------------------------------------------------------------------------


class _Column(NamedTuple):
    chinese: str
    english: str
    is_amount: bool = False  # amounts are right-aligned so their digits line up


def _section_heading(number: int, chinese: str, english: str) -> Paragraph:
    return Paragraph(
        f'{number}. {escape(chinese)} <font size="9.5" color="#555555">/ {escape(english)}</font>',
        SECTION_STYLE,
    )


def _cell(text: str, *, right: bool = False) -> Paragraph:
    return Paragraph(escape(text), CELL_RIGHT_STYLE if right else CELL_STYLE)


def _header_cell(chinese: str, english: str, *, right: bool = False) -> Paragraph:
    return Paragraph(
        f'{escape(chinese)}<br/><font size="7.5" color="#555555">{escape(english)}</font>',
        HEADER_CELL_RIGHT_STYLE if right else HEADER_CELL_STYLE,
    )


def _key_value_table(
    rows: Sequence[tuple[str, str, str]], *, value_height: float | None = None
) -> Table:
    table = Table(
        [[_header_cell(chinese, english), _cell(value)] for chinese, english, value in rows],
        colWidths=[48 * mm, CONTENT_WIDTH - 48 * mm],
        rowHeights=[value_height] * len(rows) if value_height is not None else None,
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (0, -1), HEADER_BACKGROUND),
                ("GRID", (0, 0), (-1, -1), 0.5, RULE_COLOUR),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _list_table(
    *,
    header: Sequence[_Column],
    rows: list[list[Paragraph]],
    widths: Sequence[float | None],
    has_total_row: bool = False,
) -> Table:
    flexible_columns = sum(1 for width in widths if width is None)
    fixed_width = sum(width for width in widths if width is not None)
    flexible_width = (CONTENT_WIDTH - fixed_width) / max(flexible_columns, 1)
    table = Table(
        [
            [
                _header_cell(column.chinese, column.english, right=column.is_amount)
                for column in header
            ],
            *rows,
        ],
        colWidths=[width if width is not None else flexible_width for width in widths],
        repeatRows=1,  # a table split across pages repeats its header
        hAlign="LEFT",
    )
    commands: list[tuple[Any, ...]] = [
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_BACKGROUND),
        ("GRID", (0, 0), (-1, -1), 0.5, RULE_COLOUR),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
    if has_total_row:
        commands.append(("BACKGROUND", (0, -1), (-1, -1), HEADER_BACKGROUND))
    table.setStyle(TableStyle(commands))
    return table


def _moment(moment: datetime, zone: ZoneInfo) -> str:
    return as_utc(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _labelled(code: str, labels: dict[str, str]) -> str:
    label = labels.get(code)
    return f"{label} ({code})" if label is not None else code


__all__ = [
    "ConsentFacts",
    "EvidencePack",
    "InstalmentFacts",
    "ItemFacts",
    "OrderFacts",
    "PaymentFacts",
    "ReminderFacts",
    "ShipmentFacts",
    "ShopperFacts",
    "format_amount_minor",
    "render_evidence_pdf",
]
