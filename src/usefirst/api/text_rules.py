"""What a text input may contain, in one place: the request guard applies it to every path and
query parameter, header, form field and JSON string, and the body models' shapes build on it.

Refused everywhere: NUL and the other C0 controls except tab, line feed and carriage return,
DEL and the C1 controls, the bidirectional embeddings, overrides and isolates (they make a name
read differently from what is stored: "Trojan Source"), and lone surrogates (not encodable in
UTF-8, so PostgreSQL cannot store them). A value that is one line (names, identifiers, parameters,
headers) refuses tab, line feed and carriage return as well.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

# The same character classes in Python, ECMA-262 (the OpenAPI document) and Rust (pydantic-core).
_NEVER = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_NEVER_ON_ONE_LINE = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"

TEXT_PATTERN = f"^[^{_NEVER}]*$"
LINE_PATTERN = f"^[^{_NEVER_ON_ONE_LINE}]*$"

_FORBIDDEN_IN_TEXT = re.compile(f"[{_NEVER}\ud800-\udfff]")
_FORBIDDEN_IN_LINE = re.compile(f"[{_NEVER_ON_ONE_LINE}\ud800-\udfff]")

TEXT_RULE_MESSAGE = (
    "must not contain control characters, bidirectional overrides or unpaired surrogates"
)
LINE_RULE_MESSAGE = "must be one line without control characters or bidirectional overrides"


def breaks_text_rule(value: str) -> bool:
    return _FORBIDDEN_IN_TEXT.search(value) is not None


def breaks_line_rule(value: str) -> bool:
    return _FORBIDDEN_IN_LINE.search(value) is not None


# Shapes of body fields. A plain ``str`` field still gets TEXT_PATTERN (from the guard, and in
# the OpenAPI document); these say more where the value has a known form.
Line = Annotated[str, Field(pattern=LINE_PATTERN)]
# Ids the engine issues: a lower-case prefix, an underscore and the rest (kit.ids).
OBJECT_ID_PATTERN = r"^[a-z]{2,5}_[0-9A-Za-z]{1,40}$"
ObjectId = Annotated[str, Field(min_length=4, max_length=40, pattern=OBJECT_ID_PATTERN)]
CURRENCY_PATTERN = r"^[A-Z]{3}$"
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=CURRENCY_PATTERN)]
# A merchant or item category: a word or a few (letters of any script, digits), no punctuation
# beyond what category names use.
CATEGORY_PATTERN = r"^\w[\w &'./+-]*$"
Category = Annotated[str, Field(min_length=1, max_length=64, pattern=CATEGORY_PATTERN)]
# Carriers print tracking numbers as ASCII letters and digits, sometimes grouped with spaces or
# hyphens, and pasted with spaces around them (orders.tracking drops those).
TRACKING_NUMBER_PATTERN = r"^ *[A-Za-z0-9][A-Za-z0-9 -]*$"
TrackingNumber = Annotated[str, Field(min_length=1, max_length=64, pattern=TRACKING_NUMBER_PATTERN)]

# Printable ASCII: what an HTTP header carries without encoding questions.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e][\x20-\x7e]*$"

# A resident identity card number: 17 digits and a check character (identity.validation checks
# the date and check digit); spaces around it are dropped there.
NATIONAL_ID_PATTERN = r"^ *[0-9]{17}[0-9Xx] *$"
NationalId = Annotated[str, Field(min_length=18, max_length=32, pattern=NATIONAL_ID_PATTERN)]


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


IpAddress = Annotated[
    str,
    AfterValidator(_ip_address),
    WithJsonSchema(
        {"type": "string", "maxLength": 45, "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
    ),
    Field(max_length=45),
]
