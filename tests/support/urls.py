"""Storefront addresses, as a customer's browser asks for them."""

from __future__ import annotations

from django.urls import reverse


def catalog_url(catalog) -> str:
    return reverse("storefront:catalog", args=[catalog.slug])


def package_url(package, **query) -> str:
    # Joined by hand, not urlencoded: tests pass raw values a browser could send.
    url = package.get_absolute_url()
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
