"""What every console list shares: keyset pages (as the API pages), a named sort, the count of
what the filters match, links to the next and the first page, and the search box.

A list is a query over one table with the page's filters as conditions and a sort made of
columns whose last one is unique (the id), so that "after this row" is a strict order. The cursor
is the id of the previous page's last row: a page costs the same however deep it is, and a row
added meanwhile neither repeats nor hides another.

The search box takes an id (the list's own or a related order's, shopper's or merchant's), a
phone number (looked up through identity's keyed hash, never by decrypting phones) or a
merchant's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from usefirst.identity import service as identity_service
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import ValidationFailed
from usefirst.merchants.models import Merchant

Row = TypeVar("Row")
PAGE_SIZE = 25
SEARCH_MAX_CHARS = 60
MERCHANT_MATCHES = 50


@dataclass(frozen=True)
class SortKey:
    column: InstrumentedAttribute[Any] | ColumnElement[Any]
    descending: bool = False


@dataclass(frozen=True)
class ListPage(Generic[Row]):
    rows: list[Row]
    next_cursor: str | None
    total: int


def keyset_page(
    session: Session,
    model: type[Row],
    *,
    conditions: Sequence[ColumnElement[bool]],
    sort: Sequence[SortKey],
    after: str | int | None,
    limit: int,
) -> ListPage[Row]:
    """One page of ``model`` rows matching ``conditions`` in ``sort`` order, after the row whose
    id is ``after``. The last sort key must be the row's unique id."""
    id_column = sort[-1].column
    assert isinstance(id_column, InstrumentedAttribute)  # the row's own unique column
    total = int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)
    query = select(model).where(*conditions)
    if after is not None and after != "":
        last = session.execute(
            select(*(key.column for key in sort)).where(id_column == after)
        ).first()
        if last is not None:
            query = query.where(_after(sort, tuple(last)))
    ordering = [key.column.desc() if key.descending else key.column.asc() for key in sort]
    rows = list(session.scalars(query.order_by(*ordering).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = str(getattr(rows[-1], id_column.key)) if more and rows else None
    return ListPage(rows=rows, next_cursor=cursor, total=total)


def _after(sort: Sequence[SortKey], values: tuple[Any, ...]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the sort order: the tuple comparison written out, since
    sorts mix ascending and descending keys."""
    alternatives = []
    for index, key in enumerate(sort):
        equal_before = [sort[j].column == values[j] for j in range(index)]
        beyond = key.column < values[index] if key.descending else key.column > values[index]
        alternatives.append(and_(*equal_before, beyond))
    return or_(*alternatives)


def sorted_page(
    rows: Sequence[Row], *, id_of: Callable[[Row], str], after: str | None, limit: int
) -> ListPage[Row]:
    """The same page for a list computed in Python and already filtered and sorted (the call
    queue, whose order depends on what each account owes today)."""
    start = 0
    if after:
        ids = [id_of(row) for row in rows]
        start = ids.index(after) + 1 if after in ids else 0
    chunk = list(rows[start : start + limit])
    more = start + limit < len(rows)
    return ListPage(
        rows=chunk, next_cursor=id_of(chunk[-1]) if more and chunk else None, total=len(rows)
    )


@dataclass(frozen=True)
class Pager:
    """Links for a list page: the next page, back to the first, and the filters in force."""

    total: int
    next_page: str | None
    first_page: str | None
    chosen: dict[str, str] = field(default_factory=dict)


def pager(
    path: str,
    page: ListPage[Any],
    *,
    chosen: dict[str, str],
    after: str | int | None,
    cursor_name: str = "after",
) -> Pager:
    kept = {name: value for name, value in chosen.items() if value}
    return Pager(
        total=page.total,
        next_page=f"{path}?{urlencode({**kept, cursor_name: page.next_cursor})}"
        if page.next_cursor
        else None,
        first_page=f"{path}?{urlencode(kept)}" if after else None,
        chosen=kept,
    )


def whole_yuan(text: str, *, field: str) -> int | None:
    """A minimum-amount box: empty means none; otherwise whole yuan, returned in fen."""
    cleaned = text.strip().replace(",", "")
    if not cleaned:
        return None
    if not cleaned.isdigit():
        raise ValidationFailed(f"{field} must be a whole number of yuan.", field=field)
    return int(cleaned) * 100


def yuan_to_minor(text: str) -> int | None:
    """A form's amount in yuan: '1,234.5' → 123450; None for an empty field; ValueError for
    anything that is not a positive amount with at most two decimals."""
    cleaned = text.replace(",", "").replace("¥", "").strip()
    if not cleaned:
        return None
    try:
        amount = Decimal(cleaned)
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise ValueError(cleaned)
    except InvalidOperation:  # not a number, or more digits than an amount has
        raise ValueError(cleaned) from None
    return int(amount * 100)


def whole_days(text: str, *, field: str) -> int | None:
    cleaned = text.strip()
    if not cleaned:
        return None
    if not cleaned.isdigit():
        raise ValidationFailed(f"{field} must be a whole number of days.", field=field)
    return int(cleaned)


@dataclass(frozen=True)
class Search:
    """What the search box matched: the text itself (an id), the shoppers whose phone it is and
    the merchants it names."""

    text: str
    shopper_ids: tuple[str, ...] = ()
    merchant_ids: tuple[str, ...] = ()

    def condition(
        self,
        *,
        ids: Sequence[InstrumentedAttribute[Any]] = (),
        shopper: InstrumentedAttribute[Any] | None = None,
        merchant: InstrumentedAttribute[Any] | None = None,
    ) -> ColumnElement[bool]:
        alternatives: list[ColumnElement[bool]] = [column == self.text for column in ids]
        if shopper is not None:
            alternatives.append(shopper == self.text)
            if self.shopper_ids:
                alternatives.append(shopper.in_(self.shopper_ids))
        if merchant is not None:
            alternatives.append(merchant == self.text)
            if self.merchant_ids:
                alternatives.append(merchant.in_(self.merchant_ids))
        return or_(*alternatives) if alternatives else false()

    def matches(self, *, ids: Sequence[str], shopper_id: str, merchant_id: str) -> bool:
        """The same test for a row computed in Python."""
        return (
            self.text in ids
            or shopper_id == self.text
            or shopper_id in self.shopper_ids
            or merchant_id == self.text
            or merchant_id in self.merchant_ids
        )


def search_of(session: Session, text: str, *, cipher: FieldCipher) -> Search | None:
    """The search box's text resolved once per page: a phone number through the blind index, a
    merchant by name (any part of it) or id."""
    needle = text.strip()
    if not needle:
        return None
    shopper_ids = tuple(identity_service.shoppers_with_phone(session, phone=needle, cipher=cipher))
    merchant_ids = tuple(
        session.scalars(
            select(Merchant.id)
            .where(or_(Merchant.id == needle, Merchant.name.contains(needle, autoescape=True)))
            .order_by(Merchant.id)
            .limit(MERCHANT_MATCHES)
        )
    )
    return Search(text=needle, shopper_ids=shopper_ids, merchant_ids=merchant_ids)
