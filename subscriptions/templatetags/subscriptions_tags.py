from __future__ import annotations

import json
from datetime import datetime

from django import template
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from djmoney.money import Money

from catalog.currency import format_money

register = template.Library()


@register.filter
def money(value) -> str:
    """A Money amount in the active language's format: "9.00 USD"."""
    return "" if value is None else format_money(value)


@register.filter
def record_value(value) -> str:
    """One value on an admin record page: money with its currency, dates to the minute."""
    if value is None or value == "":
        return "–"
    if isinstance(value, Money):
        return format_money(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return date_format(localtime(value), "Y-m-d H:i")
    return value


@register.filter
def snapshot(data) -> str:
    """A JSON snapshot as a key/value list; nested values pretty-printed."""
    if not data:
        return format_html('<p class="help">{}</p>', "Nothing recorded.")
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return _rows_table(data)
    if not isinstance(data, dict):
        return format_html("<pre>{}</pre>", json.dumps(data, indent=2, ensure_ascii=False))
    rows = format_html_join(
        "",
        "<dt>{}</dt><dd>{}</dd>",
        (
            (
                key,
                format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))
                if isinstance(value, (dict, list))
                else record_value(value),
            )
            for key, value in data.items()
        ),
    )
    return format_html('<dl class="snapshot">{}</dl>', rows)


def _rows_table(rows: list[dict]) -> str:
    """A list of records (a service's chosen variants) as a table, one column per key."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    head = format_html_join("", '<th scope="col">{}</th>', ((key,) for key in keys))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (format_html_join("", "<td>{}</td>", ((record_value(row.get(key)),) for key in keys)),)
            for row in rows
        ),
    )
    return format_html(
        '<table class="snapshot"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body
    )
