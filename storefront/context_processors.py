from __future__ import annotations

from catalog.currency import get_currency, store_currencies


def store(request) -> dict:
    """The currency switcher in the page header, on every page."""
    return {"store_currency": get_currency(request), "store_currencies": store_currencies()}
