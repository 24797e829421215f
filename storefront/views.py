"""Storefront pages: the store index, a catalog, a package.

Each view builds its page from the selectors; `storefront_response` serves
it from the cache while the catalog is unchanged.
"""

from __future__ import annotations

import copy

from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.html import strip_tags
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_POST, require_safe

from catalog import availability
from catalog.currency import get_currency, set_currency, store_currencies
from catalog.fields import sanitize_html
from catalog.models import UNLIMITED, Package, Variant
from catalog.selection import parse_selection

from . import display, selectors
from .responses import StockMarks, compact_html, render_page, storefront_response

STORE_NAME = "Store"
INDEX_DESCRIPTION = "Browse our catalogs of services and compare every package side by side."


def _meta_description(html: str) -> str:
    # Cleaned first: nh3 drops script and style contents, which strip_tags would keep as text.
    return Truncator(" ".join(strip_tags(sanitize_html(html or "")).split())).chars(160)


def _body(template: str, context: dict) -> str:
    # Rendered without the request, so nothing personal can reach a cached page.
    return mark_safe(compact_html(render_to_string(template, context)))


# --- index ------------------------------------------------------------------


@require_safe
def store_index(request):
    currency = get_currency(request)
    return storefront_response(request, ("index", currency), lambda: _index_page(currency))


def _index_page(currency: str) -> dict:
    catalogs = selectors.index_catalogs()
    entries = [
        {
            "catalog": catalog,
            "package_count": len(catalog.listed_packages),
            "from_price": display.starting_price_text(
                availability.cheapest_offer(catalog.listed_packages, currency), currency
            )
            if catalog.listed_packages
            else "",
        }
        for catalog in catalogs
    ]
    return {
        "title": STORE_NAME,
        "meta_description": INDEX_DESCRIPTION,
        "canonical_path": reverse("storefront:index"),
        "robots": "",
        "body": _body("storefront/index.html", {"entries": entries}),
    }


# --- catalog ----------------------------------------------------------------


def _page_number(request) -> int:
    """`?page=N`, 1 without it; anything else is a page that does not exist."""
    raw = request.GET.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or int(raw) < 1:
        raise Http404("No such page.")
    return int(raw)


@require_safe
def catalog_detail(request, catalog_slug):
    currency = get_currency(request)
    number = _page_number(request)
    return storefront_response(
        request,
        ("catalog", catalog_slug, currency, str(number)),
        lambda: _catalog_page(catalog_slug, currency, number),
    )


def _catalog_page(catalog_slug: str, currency: str, number: int = 1) -> dict:
    catalog = selectors.visible_catalog_or_404(catalog_slug)
    page = selectors.catalog_packages(catalog, number)
    packages = page.object_list
    marks = StockMarks()
    cards = [
        {
            "package": package,
            "url": reverse("storefront:package", args=[catalog.slug, package.slug]),
            "price": display.starting_price_text(
                availability.starting_offer(package, currency), currency
            ),
            "trial": display.trial_badge(package),
            "stock_badge": marks.badge(package.pk),
        }
        for package in packages
    ]
    rows = [
        {
            "label": row.label,
            "unit": row.definition.unit if row.kind == "quota" else "",
            "cells": [
                _comparison_cell(row.kind, value, package)
                for value, package in zip(row.cells, packages, strict=True)
            ],
        }
        for row in selectors.comparison_rows(packages)
    ]
    path = reverse("storefront:catalog", args=[catalog.slug])
    body = _body(
        "storefront/catalog.html",
        {
            "catalog": catalog,
            "cards": cards,
            "rows": rows,
            "currency": currency,
            "page": page,
            "page_links": [
                {"number": n, "url": _catalog_page_url(path, n), "current": n == page.number}
                for n in page.paginator.page_range
            ],
            "previous_url": _catalog_page_url(path, page.number - 1) if page.has_previous() else "",
            "next_url": _catalog_page_url(path, page.number + 1) if page.has_next() else "",
        },
    )
    title = f"{catalog.name} – {STORE_NAME}"
    if page.number > 1:
        title = f"{catalog.name}, page {page.number} – {STORE_NAME}"
    return {
        "title": title,
        "meta_description": _meta_description(catalog.description) or INDEX_DESCRIPTION,
        "canonical_path": _catalog_page_url(path, page.number),
        "robots": "noindex" if catalog.status == catalog.Status.HIDDEN else "",
        "body": body,
        "stock_nonce": marks.nonce,
    }


def _catalog_page_url(path: str, number: int) -> str:
    return path if number == 1 else f"{path}?page={number}"


def _comparison_cell(kind: str, value, package: Package) -> dict:
    if value is None:
        return {"text": "Not included", "mark": "no", "note": ""}
    if kind == "feature":
        if value.feature.value_type == value.feature.ValueType.BOOLEAN:
            return {
                "text": display.feature_value(value),
                "mark": "yes" if value.is_enabled else "no",
                "note": "",
            }
        return {"text": value.value, "mark": "", "note": ""}
    return {
        "text": display.quota_text(value),
        "mark": "",
        "note": display.overage_text(value, package),
    }


# --- package ----------------------------------------------------------------


@require_safe
def package_detail(request, catalog_slug, package_slug):
    currency = get_currency(request)
    selection = parse_selection(request.GET)
    requested = str(selection.price_id or "")
    chosen = {
        code: {str(value) for value in values if isinstance(value, int)}
        for code, values in selection.variants.items()
    }
    chosen = {code: ids for code, ids in chosen.items() if ids}
    quantity = selection.quantity or None

    def build() -> dict:
        return _package_page(
            catalog_slug, package_slug, currency, requested, chosen, quantity, request.user
        )

    if chosen or quantity:  # echoing a customer's own choices back: not worth a cache entry
        return render_page(request, build())
    return storefront_response(
        request, ("package", catalog_slug, package_slug, currency, requested), build
    )


def _checkout_url(catalog_slug: str, package_slug: str) -> str:
    """The checkout's URL, or this package's page while no checkout is installed."""
    try:
        return reverse("subscriptions:checkout", args=[catalog_slug, package_slug])
    except NoReverseMatch:
        return reverse("storefront:package", args=[catalog_slug, package_slug])


def _admin_url(package: Package) -> str:
    try:
        return reverse("admin:catalog_package_change", args=[package.pk])
    except NoReverseMatch:
        return ""


def _preview_note(package: Package) -> str:
    if not package.is_active:
        return (
            f"Preview: this package is {package.get_status_display().lower()}. "
            "Customers get a “page not found” here."
        )
    if package.retired:
        return "Staff note: this package is retired; customers see that it is no longer sold."
    if package.hidden:
        return "Staff note: this package is hidden; only customers with its link see it."
    return ""


def _without_stock(package: Package) -> Package:
    """The package as if its stock were not tracked: what a cached page may say.

    The stock itself reaches the page through `StockMarks`, read per request.
    """
    stock_free = copy.copy(package)
    stock_free.stock_qty = UNLIMITED
    return stock_free


def _package_page(
    catalog_slug: str,
    package_slug: str,
    currency: str,
    requested: str,
    chosen: dict[str, set[str]],
    quantity: int | None,
    user,
) -> dict:
    package = selectors.package_for_customer_or_404(catalog_slug, package_slug, user)
    catalog = package.catalog
    marks = StockMarks()
    selected = selectors.selected_price(package, currency, requested)
    offers = availability.package_offers(package, currency)
    orderability = availability.package_orderability(_without_stock(package), currency, selected)
    variants = availability.offered_variants(package, selected, currency)
    per_user_limit = package.per_user_limit if package.has_per_user_limit else None
    quantity = min(quantity or 1, per_user_limit or quantity or 1)
    scaling_targets = selectors.customer_scaling_targets(package)
    context = {
        "catalog": catalog,
        "package": package,
        "currency": currency,
        "preview": _preview_note(package) if selectors.can_preview(user) else "",
        "admin_url": _admin_url(package) if selectors.can_preview(user) else "",
        "offers": [
            {
                "offer": item,
                "price": display.price_text(item),
                "fees": display.fees_text(item),
                "selected": selected is not None and item.option.pk == selected.pk,
            }
            for item in offers
        ],
        "selected": selected,
        "trial": display.trial_text(package),
        "trial_badge": display.trial_badge(package),
        "service_type": display.service_type_text(package),
        "stock_badge": marks.badge(package.pk),
        "features": [
            {"name": value.feature.name, "text": display.feature_value(value), "value": value}
            for value in package.features.all()
        ],
        "quotas": [
            {
                "name": value.quota.name,
                "text": display.quota_text(value),
                "overage": display.overage_text(value, package),
            }
            for value in package.quotas.all()
        ],
        "variants": [_variant_field(item, selected, chosen) for item in variants],
        "quantity": quantity,
        "quantity_max": marks.quantity_max(package.pk, per_user_limit),
        "order_button_stock": marks.order_button(package.pk),
        "order_reason_stock": marks.order_reason(package.pk),
        "allows_quantity": package.allow_quantity == Package.Quantity.MULTIPLE,
        "orderability": orderability,
        "scaling_targets": [
            {
                "package": target,
                "url": reverse("storefront:package", args=[target.catalog.slug, target.slug]),
                "direction": "Upgrade"
                if target.tier > package.tier
                else "Downgrade"
                if target.tier < package.tier
                else "Same tier",
                "price": display.starting_price_text(
                    availability.starting_offer(target, currency), currency
                ),
            }
            for target in scaling_targets
        ],
        "checkout_url": _checkout_url(catalog.slug, package.slug),
        "page_url": reverse("storefront:package", args=[catalog.slug, package.slug]),
        "script_data": _script_data(_without_stock(package), selected, currency, scaling_targets),
    }
    return {
        "title": f"{package.name} – {catalog.name} – {STORE_NAME}",
        "meta_description": package.short_description or _meta_description(package.description),
        "canonical_path": context["page_url"],
        "robots": "" if package.is_listed else "noindex",
        "body": _body("storefront/package.html", context),
        "stock_nonce": marks.nonce,
    }


def _variant_field(item: availability.OfferedVariant, selected, chosen: dict) -> dict:
    wanted = chosen.get(item.variant.code, ())
    choices = [
        {
            "option": choice.option,
            "text": display.variant_choice_text(choice, selected),
            "checked": str(choice.option.pk) in wanted,
        }
        for choice in item.choices
    ]
    # A radio group needs one choice made; a select shows its first option anyway.
    if item.variant.type == Variant.Type.RADIO and not any(c["checked"] for c in choices):
        choices[0]["checked"] = True
    return {"variant": item.variant, "field": f"variant_{item.variant.code}", "choices": choices}


def _script_data(package: Package, selected, currency: str, scaling_targets: list) -> dict:
    """Every price in every store currency, so the page's script can switch in place.

    Figures are formatted here, as the page formats them, for the active locale.
    Variant descriptions are staff-only and are never included.
    """
    currencies = store_currencies()
    prices = package.enabled_prices()
    data_prices = []
    for price in prices:
        per_currency = {}
        for code in currencies:
            item = availability.offer(price, code)
            ok, reason = availability.package_orderability(package, code, price)
            per_currency[code] = {
                "available": item.is_available,
                "price": display.price_text(item),
                "fees": display.fees_text(item),
                "orderable": ok,
                "reason": reason,
            }
        data_prices.append({"id": price.pk, "name": price.name, "currencies": per_currency})
    data_variants = []
    for variant in availability.customer_variants(package):
        options = []
        for option in variant.options.all():
            labels: dict[str, dict[str, str]] = {}
            for price in prices:
                for code in currencies:
                    choice = availability.variant_choice(option, price.name, code)
                    if choice is not None:
                        labels.setdefault(price.name, {})[code] = display.variant_choice_text(
                            choice, price
                        )
            if labels:
                options.append({"id": option.pk, "name": option.name, "labels": labels})
        if options:
            data_variants.append(
                {
                    "code": variant.code,
                    "name": variant.name,
                    "type": variant.type,
                    "options": options,
                }
            )
    no_price = availability.package_orderability(package, currency)
    scaling = {
        str(target.pk): {
            code: display.starting_price_text(availability.starting_offer(target, code), code)
            for code in currencies
        }
        for target in scaling_targets
    }
    return {
        "scaling": scaling,
        "currency": currency,
        "selected": selected.pk if selected else None,
        "prices": data_prices,
        "variants": data_variants,
        "checkbox": Variant.Type.CHECKBOX,
        "fallback_reason": "" if no_price.orderable else no_price.reason,
    }


# --- currency and the bench floor -------------------------------------------


@require_POST
def set_currency_view(request):
    """Remember the customer's currency, then go back where they were."""
    changed = set_currency(request, request.POST.get("currency", ""))
    if request.accepts("application/json") and not request.accepts("text/html"):
        return JsonResponse({"currency": get_currency(request)}, status=200 if changed else 400)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("storefront:index")
    return redirect(target)


def ping(request):
    """The cheapest page Django serves: the benchmark's floor, and a health check."""
    return HttpResponse("ok", content_type="text/plain")
