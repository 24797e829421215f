from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from catalog.fields import sanitize_html

register = template.Library()


@register.filter
def sanitized(value: str) -> str:
    """Staff HTML, cleaned again on output.

    The model field cleans it whenever Django writes it, but rows written
    around Django (raw SQL, a database import) must not reach a page unchecked.
    """
    return mark_safe(sanitize_html(value or ""))
