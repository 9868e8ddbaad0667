"""Ledger account kinds and codes. Accounts are created by the ledger, never by callers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AccountKind(StrEnum):
    SHOPPER_RECEIVABLE = "shopper_receivable"  # asset: what a shopper owes
    SHOPPER_UNAPPLIED_CREDIT = "shopper_unapplied_credit"  # liability: overpayments held
    MERCHANT_PAYABLE = "merchant_payable"  # liability: what the platform owes a merchant
    PLATFORM_CASH = "platform_cash"  # asset: money received from / paid to shoppers
    MERCHANT_FEE_INCOME = "merchant_fee_income"
    INSTALMENT_FEE_INCOME = "instalment_fee_income"
    LATE_FEE_INCOME = "late_fee_income"
    WRITE_OFF_EXPENSE = "write_off_expense"
    RECOVERIES = "recoveries"
    SUSPENSE = "suspense"
    MERCHANT_RESERVE = "merchant_reserve"  # liability: payouts withheld as a rolling reserve
    MERCHANT_PENALTY_INCOME = "merchant_penalty_income"  # fines imposed on merchants
    MERCHANT_RECOVERIES = "merchant_recoveries"  # losses recovered from merchants (clawbacks)


OWNED_KINDS = {
    AccountKind.SHOPPER_RECEIVABLE,
    AccountKind.SHOPPER_UNAPPLIED_CREDIT,
    AccountKind.MERCHANT_PAYABLE,
    AccountKind.MERCHANT_RESERVE,
}

# Accounts kept item by item: each posting to one stays an open item (ledger_open_items) until
# the payout that settles its entry clears it.
OPEN_ITEM_KINDS = frozenset({AccountKind.MERCHANT_PAYABLE})


class EntryKind(StrEnum):
    ORDER_ACTIVATION = "order_activation"
    MERCHANT_FEE = "merchant_fee"
    INSTALMENT_FEE = "instalment_fee"
    SHOPPER_PAYMENT = "shopper_payment"
    UNAPPLIED_CREDIT_APPLIED = "unapplied_credit_applied"
    REFUND_REDUCING_DEBT = "refund_reducing_debt"
    REFUND_TO_SHOPPER = "refund_to_shopper"
    FEE_WAIVER = "fee_waiver"
    LATE_FEE = "late_fee"
    LATE_FEE_WAIVER = "late_fee_waiver"
    CHARGE_OFF = "charge_off"
    RECOVERY = "recovery"
    MERCHANT_PAYOUT = "merchant_payout"
    RESERVE_WITHHELD = "reserve_withheld"
    RESERVE_RELEASED = "reserve_released"
    MERCHANT_CLAWBACK = "merchant_clawback"
    MERCHANT_FINE = "merchant_fine"
    MERCHANT_FINE_REVERSAL = "merchant_fine_reversal"
    PAYMENT_REVERSAL = "payment_reversal"  # a provider reversed a charge (chargeback)
    CREDIT_BALANCE_REFUND = "credit_balance_refund"  # held overpayment paid back
    PAYOFF_REBATE = "payoff_rebate"  # unearned plan fee rebated at early payoff
    HARDSHIP_WRITE_OFF = "hardship_write_off"  # the rest of a settlement for less, a loss


@dataclass(frozen=True, slots=True)
class AccountRef:
    kind: AccountKind
    owner_id: str | None = None

    def __post_init__(self) -> None:
        if (self.kind in OWNED_KINDS) != (self.owner_id is not None):
            raise ValueError(f"account kind {self.kind} owner mismatch: {self.owner_id!r}")

    def code(self, currency: str) -> str:
        return f"{self.kind.value}:{self.owner_id or ''}:{currency}"


def code_sql(kind: AccountKind, *, owner_column: str | None, currency_column: str) -> str:
    """SQL building ``AccountRef(kind, owner).code(currency)`` from columns (for entries posted
    on the server from a query; ``kind`` is one of ours, so it is safe to inline)."""
    owner = f" || {owner_column} || " if owner_column is not None else " || "
    return f"'{kind.value}:'{owner}':' || {currency_column}"


def shopper_receivable(shopper_id: str) -> AccountRef:
    return AccountRef(AccountKind.SHOPPER_RECEIVABLE, shopper_id)


def shopper_unapplied_credit(shopper_id: str) -> AccountRef:
    return AccountRef(AccountKind.SHOPPER_UNAPPLIED_CREDIT, shopper_id)


def merchant_payable(merchant_id: str) -> AccountRef:
    return AccountRef(AccountKind.MERCHANT_PAYABLE, merchant_id)


def merchant_reserve(merchant_id: str) -> AccountRef:
    return AccountRef(AccountKind.MERCHANT_RESERVE, merchant_id)


PLATFORM_CASH = AccountRef(AccountKind.PLATFORM_CASH)
MERCHANT_PENALTY_INCOME = AccountRef(AccountKind.MERCHANT_PENALTY_INCOME)
MERCHANT_RECOVERIES = AccountRef(AccountKind.MERCHANT_RECOVERIES)
MERCHANT_FEE_INCOME = AccountRef(AccountKind.MERCHANT_FEE_INCOME)
INSTALMENT_FEE_INCOME = AccountRef(AccountKind.INSTALMENT_FEE_INCOME)
LATE_FEE_INCOME = AccountRef(AccountKind.LATE_FEE_INCOME)
WRITE_OFF_EXPENSE = AccountRef(AccountKind.WRITE_OFF_EXPENSE)
RECOVERIES = AccountRef(AccountKind.RECOVERIES)


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry: ``amount_minor`` > 0 debits the account, < 0 credits it."""

    account: AccountRef
    amount_minor: int


def transfer(*, debit: AccountRef, credit: AccountRef, amount_minor: int) -> list[Leg]:
    if amount_minor <= 0:
        raise ValueError("a transfer moves a positive amount")
    return [Leg(debit, amount_minor), Leg(credit, -amount_minor)]
