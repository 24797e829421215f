"""What subscriptions does when another app announces something (connected in apps.py)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.http import urlencode

from catalog.models import Package

from .price_changes import price_change_previews


def price_change_confirm_url(
    *, package: Package, changed: list[tuple[int, str]], **kwargs
) -> str | None:
    """Catalog's price_amounts_changed: the page that asks what existing services should do.

    None when no service uses the changed amounts, so the package page just saves.
    """
    if not price_change_previews(package=package, changed=changed):
        return None
    encoded = ",".join(f"{option_id}:{currency}" for option_id, currency in changed)
    query = urlencode({"package": str(package.pk), "changed": encoded})
    return f"{reverse('admin:subscriptions_scheduledpricechange_confirm')}?{query}"
