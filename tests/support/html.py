"""Picking parts out of a rendered page."""

from __future__ import annotations

from html import unescape


def order_button(html: str) -> str:
    """The page's order button tag, to check whether it is disabled."""
    start = html.index("data-order-button")
    return html[html.rindex("<button", 0, start) : html.index(">", start)]


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    return html[start : html.find("</section>", start)]


def hidden_inputs(html: str, form_id: str) -> dict[str, str]:
    """The hidden fields of one form on the page, as the browser would post them."""
    start = html.index(f'id="{form_id}"')
    form = html[start : html.index("</form>", start)]
    fields = {}
    for tag in form.split("<input")[1:]:
        tag = tag[: tag.index(">")]
        if 'type="hidden"' not in tag:
            continue
        name = tag.split('name="', 1)[1].split('"', 1)[0]
        value = tag.split('value="', 1)[1].split('"', 1)[0] if 'value="' in tag else ""
        fields[name] = unescape(value)
    return fields
