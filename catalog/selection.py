"""What a customer chose on a package page or at checkout, parsed from the request.

Every number a customer sends is parsed here by a Django form field with
bounds, so a value like "²" (which `str.isdigit()` accepts and `int()`
refuses), a 5000-digit number or a NUL byte is just "not a valid choice",
never a server error. The order service then refuses what is not sold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

# Primary keys are positive bigints; anything else names no row.
MAX_ID = 2**63 - 1
# Far above any quantity a package sells; the order service says what the real limit is.
MAX_QUANTITY_PARSED = 1_000_000

_ID = forms.IntegerField(min_value=1, max_value=MAX_ID)
_QUANTITY = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY_PARSED)
_TEXT = forms.CharField(max_length=200)  # rejects NUL bytes, as every CharField does
_TOKEN = forms.CharField(max_length=64)

VARIANT_PREFIX = "variant_"
UNREADABLE = "(unreadable)"


def parse_id(raw: object) -> int | None:
    """A row id, or None when `raw` is not one."""
    return _parse(_ID, raw)


def _parse(form_field: forms.Field, raw: object):
    try:
        return form_field.clean(raw)
    except ValidationError:
        return None


@dataclass(frozen=True)
class Selection:
    """The choices a request carries, each either parsed or left out."""

    price_id: int | None = None
    # None when none was sent; 0 when one was sent that is not a whole number in bounds.
    quantity: int | None = None
    # variant code -> the option ids chosen, in the order sent; raw values that are no
    # id are kept as text, so the order service can name them in its refusal.
    variants: dict[str, list[int | str]] = field(default_factory=dict)
    checkout_token: str = ""


def parse_selection(data: QueryDict) -> Selection:
    raw_quantity = data.get("quantity", "")
    quantity = None
    if raw_quantity not in ("", None):
        quantity = _parse(_QUANTITY, raw_quantity) or 0
    variants: dict[str, list[int | str]] = {}
    for key in data:
        code = _parse(_TEXT, key.removeprefix(VARIANT_PREFIX))
        if not key.startswith(VARIANT_PREFIX) or not code:
            continue
        for raw in data.getlist(key):
            if raw in ("", None):
                continue
            # Text too long or with NUL bytes is still a choice sent, which the order
            # service must refuse rather than silently drop.
            value = parse_id(raw) or _parse(_TEXT, raw) or UNREADABLE
            variants.setdefault(code, []).append(value)
    return Selection(
        price_id=parse_id(data.get("price", "")),
        quantity=quantity,
        variants=variants,
        checkout_token=_parse(_TOKEN, data.get("checkout_token", "")) or "",
    )
