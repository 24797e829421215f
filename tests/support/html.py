"""Picking parts out of a rendered page."""

from __future__ import annotations


def order_button(html: str) -> str:
    """The page's order button tag, to check whether it is disabled."""
    start = html.index("data-order-button")
    return html[html.rindex("<button", 0, start) : html.index(">", start)]


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    return html[start : html.find("</section>", start)]
