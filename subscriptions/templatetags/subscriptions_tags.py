from __future__ import annotations

from django import template

from catalog.currency import format_money

register = template.Library()


@register.filter
def money(value) -> str:
    """A Money amount in the active language's format: "9.00 USD"."""
    return "" if value is None else format_money(value)
