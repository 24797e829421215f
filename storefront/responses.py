"""How a storefront page becomes a response, from the cache whenever it can.

A page is built as a dict (title, meta description, canonical path and the
body HTML rendered without the request) and cached under the catalog version.
Around it goes the site's shell (header, currency switcher), which depends on
the request. For the common visit (no signed-in user, no pending message)
the whole page is cached as bytes with two holes, the CSRF token and the
current path, filled in per request: a cached page then costs little more
than Django's own request handling.

Stock is never cached. A page body carries `StockMarks` where a package's
stock badge, its "sold out" state and its quantity limit go; every response,
cached or not, fills them from one query (`selectors.stock_levels`), so a
sale changing stock on every order leaves the cached pages valid.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import mark_safe

from catalog.availability import Reason

from . import display
from .cache import current_version, get_or_build, page_key
from .selectors import StockLevel, stock_levels

SHELL_TEMPLATE = "storefront/page.html"
CSRF_HOLE = "csrf"
PATH_HOLE = "path"
_PRE_BLOCK = re.compile(r"(<pre\b.*?</pre>)", re.IGNORECASE | re.DOTALL)
_INDENTATION = re.compile(r"\n\s+")


def compact_html(html: str) -> str:
    """Drop template indentation and blank lines (not inside <pre>): pages get much lighter."""
    pieces = _PRE_BLOCK.split(html)
    return "".join(
        piece if index % 2 else _INDENTATION.sub("\n", piece) for index, piece in enumerate(pieces)
    )


class StockMarks:
    """Marks for a page body where per-request stock goes; the page keeps `nonce`.

    A fresh random nonce per build: no catalog text can pass for a mark.
    """

    def __init__(self) -> None:
        self.nonce = f"stock{uuid.uuid4().hex}"

    def _mark(self, kind: str, package_id: int, extra: int = 0) -> str:
        return f"{self.nonce}:{kind}:{package_id}:{extra}"

    def badge(self, package_id: int) -> str:
        """The “Sold out” / “3 left” badge, a whole `<li>`, or nothing."""
        return self._mark("badge", package_id)

    def order_button(self, package_id: int) -> str:
        """Attributes that disable an order button while the package is sold out."""
        return self._mark("button", package_id)

    def order_reason(self, package_id: int) -> str:
        return self._mark("reason", package_id)

    def quantity_max(self, package_id: int, per_user_limit: int | None) -> str:
        """A quantity input's ` max="..."`: the per-user limit and the stock left."""
        return self._mark("max", package_id, per_user_limit or 0)


def _stock_pattern(nonce: str) -> re.Pattern:
    return re.compile(f"({re.escape(nonce)}:[a-z]+:[0-9]+:-?[0-9]+)")


def _stock_hole(mark: str) -> tuple[str, int, int]:
    _, kind, package_id, extra = mark.split(":")
    return kind, int(package_id), int(extra)


SOLD_OUT_REASON = escape(Reason.SOLD_OUT)
SOLD_OUT_BADGE = (
    f'<li class="badge badge-sold-out">{escape(display.stock_badge_text(0, sold_out=True))}</li>'
)
# data-sold-out tells the page's script not to enable the button again.
SOLD_OUT_BUTTON = f' disabled aria-describedby="order-reason" data-sold-out="{SOLD_OUT_REASON}"'


def _stock_text(hole: tuple[str, int, int], levels: dict[int, StockLevel]) -> str:
    kind, package_id, extra = hole
    level = levels.get(package_id)
    if level is None:  # deleted since: the next request rebuilds the page without it
        return ""
    sold_out = level.sold_out
    if kind == "badge":  # the common hole: one per package on a catalog page
        if sold_out:
            return SOLD_OUT_BADGE
        text = display.stock_badge_text(level.stock_qty, sold_out=False)
        return f'<li class="badge badge-stock">{text}</li>' if text else ""  # “3 left”: no HTML
    if kind == "button":
        return SOLD_OUT_BUTTON if sold_out else ""
    if kind == "reason":
        return SOLD_OUT_REASON if sold_out else ""
    limits = [extra] if extra > 0 else []  # kind "max"
    if level.has_stock and not level.oversell_enabled:
        limits.append(max(level.stock_qty, 1))
    return f' max="{min(limits)}"' if limits else ""


def _stock_levels_for(holes: list[tuple[str, int, int]]) -> dict[int, StockLevel]:
    return stock_levels({hole[1] for hole in holes}) if holes else {}


def with_stock(page: dict) -> dict:
    """The page with its stock marks filled in from the database, now."""
    nonce = page.get("stock_nonce")
    if not nonce:
        return page
    pieces = _stock_pattern(nonce).split(page["body"])
    holes = [_stock_hole(piece) for piece in pieces[1::2]]
    levels = _stock_levels_for(holes)
    pieces[1::2] = [_stock_text(hole, levels) for hole in holes]
    return {**page, "body": mark_safe("".join(pieces))}


def _shell_context(request, page: dict) -> dict:
    return {**page, "canonical_url": request.build_absolute_uri(page["canonical_path"])}


def render_page(request, page: dict) -> HttpResponse:
    return render(request, SHELL_TEMPLATE, _shell_context(request, with_stock(page)))


def _is_plain_visit(request) -> bool:
    """No one signed in and no message waiting: the shell is the same for every such visit."""
    if request.user.is_authenticated:
        return False
    messages = getattr(request, "_messages", None)
    return messages is None or len(messages) == 0  # len() reads without consuming them


Piece = bytes | str | tuple[str, int, int]


def _cut_shell(request, page: dict) -> list[Piece]:
    """The full page as bytes, split where the CSRF token, the current path and stock go."""
    marks = {CSRF_HOLE: f"csrf{uuid.uuid4().hex}", PATH_HOLE: f"path{uuid.uuid4().hex}"}
    context = {
        **_shell_context(request, page),
        "csrf_token": marks[CSRF_HOLE],
        "current_path": marks[PATH_HOLE],
    }
    html = render_to_string(SHELL_TEMPLATE, context, request)
    holes = {mark: hole for hole, mark in marks.items()}
    alternatives = list(holes)
    if page.get("stock_nonce"):
        alternatives.append(_stock_pattern(page["stock_nonce"]).pattern[1:-1])
    pieces = re.split(f"({'|'.join(alternatives)})", html)
    return [
        (holes.get(piece) or _stock_hole(piece)) if index % 2 else piece.encode()
        for index, piece in enumerate(pieces)
    ]


def _fill_shell(request, pieces: list[Piece]) -> HttpResponse:
    fills = {
        CSRF_HOLE: get_token(request).encode(),  # also sets the CSRF cookie, as the tag would
        PATH_HOLE: escape(request.get_full_path()).encode(),
    }
    levels = _stock_levels_for([piece for piece in pieces if type(piece) is tuple])
    # Cut pieces alternate: bytes, a hole, bytes... (re.split with one group)
    content = b"".join(
        piece
        if index % 2 == 0
        else fills[piece]
        if type(piece) is str
        else _stock_text(piece, levels).encode()
        for index, piece in enumerate(pieces)
    )
    return HttpResponse(content, content_type="text/html; charset=utf-8")


def storefront_response(request, parts: tuple[str, ...], build: Callable[[], dict]):
    """The page `build()` makes, served from the cache while the catalog is unchanged.

    `parts` must name everything the page depends on besides the catalog and
    the active language (currency, chosen pricing option...). Staff always
    get a fresh page: they may be previewing what customers cannot see.
    """
    if request.user.is_staff:
        return render_page(request, build())
    version = current_version()
    if version is None:  # no catalog edit recorded yet: nothing to key a cache by
        return render_page(request, build())
    key = page_key(version, parts)
    if not _is_plain_visit(request):
        return render_page(request, get_or_build(key, build))
    shell_key = page_key(version, (*parts, "shell", request.scheme, request.get_host()))
    pieces = get_or_build(shell_key, lambda: _cut_shell(request, get_or_build(key, build)))
    return _fill_shell(request, pieces)
