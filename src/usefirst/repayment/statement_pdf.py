"""A shopper's monthly statement as PDF (zh and en labels side by side, amounts in yuan with the
currency code): what fell due, what was paid and how, every auto-debit attempt, and where the
account stands. Pure rendering: the flow gathers the facts (``flows.shopper_statement``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

FONT_NAME = "STSong-Light"


@dataclass(frozen=True)
class StatementFacts:
    shopper_id: str
    period: str  # YYYY-MM
    currency: str
    lender_name: str
    generated_on: date
    due: list[tuple[str, int, date, int, str]]  # order id, seq, due on, amount due, status
    payments: list[tuple[date, str, int, str]]  # paid on, payment id, amount, method
    charges: list[tuple[date, str, int, int, str]]  # charged on, order id, attempt, amount, status
    outstanding_minor: int
    overdue_minor: int
    held_credit_minor: int


def money(amount_minor: int, currency: str) -> str:
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def render_statement_pdf(facts: StatementFacts) -> bytes:
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT_NAME))
    title = ParagraphStyle("title", fontName=FONT_NAME, fontSize=15, leading=20)
    body = ParagraphStyle("body", fontName=FONT_NAME, fontSize=9.5, leading=13)
    heading = ParagraphStyle("heading", fontName=FONT_NAME, fontSize=11, leading=16)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Statement {facts.period}",
        author=facts.lender_name,
    )
    currency = facts.currency

    def table(header: list[str], rows: list[list[str]]) -> Table:
        if not rows:
            rows = [["—"] + [""] * (len(header) - 1)]
        built = Table([header, *rows], repeatRows=1, hAlign="LEFT")
        built.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), FONT_NAME),
                    ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ]
            )
        )
        return built

    story = [
        Paragraph(f"{facts.lender_name} 月度账单 / Monthly statement {facts.period}", title),
        Paragraph(
            f"客户 / Shopper: {facts.shopper_id} · 生成日期 / Issued: {facts.generated_on}", body
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            f"未还总额 / Outstanding: {money(facts.outstanding_minor, currency)} · "
            f"其中逾期 / of which overdue: {money(facts.overdue_minor, currency)} · "
            f"账户余额 / Credit held: {money(facts.held_credit_minor, currency)}",
            body,
        ),
        Spacer(1, 4 * mm),
        Paragraph("本月到期 / Due this month", heading),
        table(
            ["订单 / Order", "期数 / No.", "到期日 / Due on", "应还 / Amount due", "状态 / Status"],
            [
                [order_id, str(seq), str(due_on), money(amount, currency), status]
                for order_id, seq, due_on, amount, status in facts.due
            ],
        ),
        Spacer(1, 4 * mm),
        Paragraph("本月还款 / Payments received", heading),
        table(
            ["日期 / Date", "付款 / Payment", "金额 / Amount", "方式 / Method"],
            [
                [str(paid_on), payment_id, money(amount, currency), method]
                for paid_on, payment_id, amount, method in facts.payments
            ],
        ),
        Spacer(1, 4 * mm),
        Paragraph("自动扣款 / Automatic charges", heading),
        table(
            ["日期 / Date", "订单 / Order", "次数 / Attempt", "金额 / Amount", "结果 / Result"],
            [
                [str(on), order_id, str(attempt), money(amount, currency), status]
                for on, order_id, attempt, amount, status in facts.charges
            ],
        ),
    ]
    document.build(story)
    return buffer.getvalue()
