"""Small wording rules shared by pages, quotes, invoices and emails."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """“1 month”, “3 months”."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
