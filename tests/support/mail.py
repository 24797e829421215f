"""Reading the emails the tests sent."""

from __future__ import annotations


def text(value: str) -> str:
    # Amounts are formatted as on the site, with a no-break space before the currency.
    return value.replace("\xa0", " ")


def subjects(mailoutbox) -> list[str]:
    return [text(message.subject) for message in mailoutbox]
