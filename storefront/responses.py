"""How a storefront page becomes a response, from the cache whenever it can.

A page is built as a dict (title, meta description, canonical path and the
body HTML rendered without the request) and cached under the catalog version.
Around it goes the site's shell (header, currency switcher), which depends on
the request. For the common visit (no signed-in user, no pending message)
the whole page is cached as bytes with two holes, the CSRF token and the
current path, filled in per request: a cached page then costs little more
than Django's own request handling.
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

from .cache import current_version, get_or_build, page_key

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


def _shell_context(request, page: dict) -> dict:
    return {**page, "canonical_url": request.build_absolute_uri(page["canonical_path"])}


def render_page(request, page: dict) -> HttpResponse:
    return render(request, SHELL_TEMPLATE, _shell_context(request, page))


def _is_plain_visit(request) -> bool:
    """No one signed in and no message waiting: the shell is the same for every such visit."""
    if request.user.is_authenticated:
        return False
    messages = getattr(request, "_messages", None)
    return messages is None or len(messages) == 0  # len() reads without consuming them


def _cut_shell(request, page: dict) -> list[bytes | str]:
    """The full page as bytes, split where the CSRF token and the current path go."""
    marks = {CSRF_HOLE: f"csrf{uuid.uuid4().hex}", PATH_HOLE: f"path{uuid.uuid4().hex}"}
    context = {
        **_shell_context(request, page),
        "csrf_token": marks[CSRF_HOLE],
        "current_path": marks[PATH_HOLE],
    }
    html = render_to_string(SHELL_TEMPLATE, context, request)
    holes = {mark: hole for hole, mark in marks.items()}
    pieces = re.split(f"({'|'.join(holes)})", html)
    return [holes[piece] if index % 2 else piece.encode() for index, piece in enumerate(pieces)]


def _fill_shell(request, pieces: list[bytes | str]) -> HttpResponse:
    fills = {
        CSRF_HOLE: get_token(request).encode(),  # also sets the CSRF cookie, as the tag would
        PATH_HOLE: escape(request.get_full_path()).encode(),
    }
    content = b"".join(fills[piece] if isinstance(piece, str) else piece for piece in pieces)
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
