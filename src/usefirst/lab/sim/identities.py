"""National ID numbers for the simulator's people: valid mainland resident ID numbers (with their
check character), drawn from the caller's seeded generator so that a seed always gives the same
people."""

from __future__ import annotations

import random
from datetime import date, timedelta

from usefirst.identity.validation import national_id_check_character

_DISTRICT_CODES = ("110105", "310104", "440305", "330106", "510107")


def draw_national_id(rng: random.Random, *, born_from: date, born_within_years: int) -> str:
    """The ID number of someone born within ``born_within_years`` (of 365 days) from ``born_from``
    in one of a few large districts."""
    birth = born_from + timedelta(days=rng.randrange(0, 365 * born_within_years))
    first = f"{rng.choice(_DISTRICT_CODES)}{birth:%Y%m%d}"
    first += f"{rng.randrange(0, 1000):03d}"
    return first + national_id_check_character(first)


def draw_shopper_national_id(rng: random.Random) -> str:
    """The ID number of an ordinary shopper (or applicant), born 1960 to 1999."""
    return draw_national_id(rng, born_from=date(1960, 1, 1), born_within_years=40)
