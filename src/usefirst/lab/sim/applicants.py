"""Simulated applicants: marketplace facts the platform sends at enrolment, and a latent default
propensity that the simulator keeps to itself.

Each applicant is drawn from its own random stream (seed, index), so adding applicants never shifts
the rest of the simulation. The propensity decides the applicant's repayment behaviour; the engine
only ever sees the application facts and, later, how the shopper actually repays. Training data
(``export_applications``) labels shoppers by that observed history, not by the propensity.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from usefirst.credit.application import APPLICATION_FIELDS, Application
from usefirst.identity.validation import age_on, birth_date_of
from usefirst.lab.sim.identities import draw_shopper_national_id
from usefirst.orders import service as order_service
from usefirst.repayment import service as repayment_service
from usefirst.runtime import Runtime

# A shopper counts as defaulted once an instalment is unpaid this many days after its due date.
# Only shoppers whose first instalment fell due at least this long ago can have shown a default:
# younger ones are left out of the training data rather than labelled good too early.
DEFAULT_DAYS_PAST_DUE = 30
NOT_BORROWING_STATUSES = frozenset({"declined", "cancelled"})


@dataclass(frozen=True)
class SimulatedApplicant:
    application: Application
    age_years: int
    default_propensity: float  # ground truth: never shown to the engine
    behaviour: str  # early | on_time | late | never


def draw_applicant(*, seed: int, index: int, national_id: str, today: date) -> SimulatedApplicant:
    rng = random.Random(f"applicant:{seed}:{index}")
    age_years = age_on(birth_date_of(national_id), today)
    engagement = rng.lognormvariate(0.0, 0.8)
    account_age_days = int(min(3650, rng.expovariate(1 / 700) + rng.choice([3, 20, 60])))
    orders_12m = min(400, _poisson(rng, 6 * engagement * min(1.0, account_age_days / 365 + 0.1)))
    average_ticket_minor = int(rng.lognormvariate(math.log(15_000), 0.6))
    spend_12m_minor = orders_12m * average_ticket_minor
    return_rate = min(0.9, rng.betavariate(1.2, 12))
    returns_12m = sum(1 for _ in range(orders_12m) if rng.random() < return_rate)
    failed_payments_12m = _poisson(rng, 0.15 + 0.6 * rng.random() ** 6)
    has_verified_bank_card = rng.random() < 0.65

    logit = (
        -2.6
        + 0.9 * (account_age_days < 90)
        + 0.4 * (account_age_days < 365)
        - 0.35 * math.log1p(orders_12m)
        + 2.5 * (returns_12m / orders_12m if orders_12m else 0.0)
        + 0.55 * min(failed_payments_12m, 4)
        - 0.6 * has_verified_bank_card
        + 0.035 * max(0, 30 - age_years)
        + rng.gauss(0.0, 0.6)
    )
    propensity = 1.0 / (1.0 + math.exp(-logit))
    draw = rng.random()
    if draw < propensity:
        behaviour = "never"
    elif draw < propensity + min(0.5, 0.12 + 1.5 * propensity):
        behaviour = "late"
    else:
        behaviour = "early" if rng.random() < 1 / 3 else "on_time"
    return SimulatedApplicant(
        application=Application(
            marketplace_account_age_days=account_age_days,
            orders_12m=orders_12m,
            spend_12m_minor=spend_12m_minor,
            returns_12m=returns_12m,
            failed_payments_12m=failed_payments_12m,
            has_verified_bank_card=has_verified_bank_card,
        ),
        age_years=age_years,
        default_propensity=propensity,
        behaviour=behaviour,
    )


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method is exact and fast for the small means used here.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass(frozen=True)
class ExportSummary:
    applicants: int
    exported: int
    defaulted: int
    immature: int
    without_orders: int


def export_applications(
    runtime: Runtime,
    *,
    applicants: Iterable[tuple[str, SimulatedApplicant]],
    path: Path,
) -> ExportSummary:
    """Write one CSV row per shopper whose history is long enough to label.

    Columns: the application facts, ``age_years`` and ``defaulted``: 1 when any instalment reached
    ``DEFAULT_DAYS_PAST_DUE`` days past due or an order was charged off, as the engine recorded it.
    """
    counted = exported = defaulted = immature = without_orders = 0
    columns = ["age_years", *APPLICATION_FIELDS, "defaulted"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with runtime.work(read_only=True) as work, path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for shopper_id, applicant in applicants:
            counted += 1
            orders = [
                order
                for order in order_service.orders_of_shopper(work.session, shopper_id=shopper_id)
                if order.status not in NOT_BORROWING_STATUSES
            ]
            if not orders:
                without_orders += 1
                continue
            # (due date, amount still due) of every instalment that has a due date yet
            due: list[tuple[date, int]] = [
                (line["due_on"], line["amount_due_minor"])
                for order_lines in repayment_service.statement_lines(
                    work.session,
                    shopper_id=shopper_id,
                    order_ids=[order.id for order in orders],
                    today=work.today,
                ).values()
                for line in order_lines
                if line["due_on"] is not None
            ]
            if not due or (work.today - min(due_on for due_on, _ in due)).days < (
                DEFAULT_DAYS_PAST_DUE
            ):
                immature += 1
                continue
            worst_days_past_due = max(
                ((work.today - due_on).days for due_on, unpaid_minor in due if unpaid_minor > 0),
                default=0,
            )
            is_defaulted = worst_days_past_due >= DEFAULT_DAYS_PAST_DUE or any(
                order.status == "charged_off" for order in orders
            )
            row = {"age_years": applicant.age_years, **applicant.application.as_dict()}
            writer.writerow([_csv_value(row[name]) for name in columns[:-1]] + [int(is_defaulted)])
            exported += 1
            defaulted += int(is_defaulted)
    return ExportSummary(
        applicants=counted,
        exported=exported,
        defaulted=defaulted,
        immature=immature,
        without_orders=without_orders,
    )


def _csv_value(value: int | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def write_drawn_applicants(*, path: Path, count: int, seed: int, today: date) -> ExportSummary:
    """Draw applicants without running the marketplace and label each by the repayment behaviour
    the simulator gives it (``defaulted`` = it never pays).

    A quick stand-in for :func:`export_applications` when there is no time to simulate a history
    long enough to observe defaults: the label is the simulator's own outcome, not one the engine
    recorded, so every drawn applicant is "mature".
    """
    rng = random.Random(seed)
    defaulted = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["age_years", *APPLICATION_FIELDS, "defaulted"])
        for index in range(count):
            applicant = draw_applicant(
                seed=seed, index=index, national_id=draw_shopper_national_id(rng), today=today
            )
            is_defaulted = applicant.behaviour == "never"
            row = applicant.application.as_dict()
            values = [_csv_value(row[name]) for name in APPLICATION_FIELDS]
            writer.writerow([applicant.age_years, *values, int(is_defaulted)])
            defaulted += int(is_defaulted)
    return ExportSummary(
        applicants=count, exported=count, defaulted=defaulted, immature=0, without_orders=0
    )
