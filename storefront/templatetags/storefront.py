from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from catalog.fields import sanitize_html

from ..currency import format_money

register = template.Library()


@register.filter
def sanitized(value: str) -> str:
    """Staff HTML, cleaned again on output.

    The model cleans it on save, but rows written around the model (a
    QuerySet.update, a raw import) must not reach a page unchecked either.
    """
    return mark_safe(sanitize_html(value or ""))  # noqa: S308 - cleaned against the allowlist


@register.filter
def money(value) -> str:
    return format_money(value) if value is not None else ""
