"""Storefront page cache, keyed by a version token that every catalog edit replaces.

Rendering a catalog of hundreds of packages costs far more than Django's own
request handling, so pages are cached. A cached page is only ever found under
the token that was current when it was built; an edit replaces the token in
its own transaction, so the next request (in any worker) builds a fresh page.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils.translation import get_language

from .models import CatalogVersion

VERSION_PK = 1
# Pages under a replaced token are unreachable anyway; the timeout only frees memory.
PAGE_TIMEOUT_SECONDS = 24 * 60 * 60


def current_version() -> str | None:
    # Read on every cached request: raw SQL costs a fraction of the ORM here.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT token FROM {CatalogVersion._meta.db_table} WHERE id = %s", [VERSION_PK]
        )
        row = cursor.fetchone()
    return row[0] if row else None


def catalog_changed(**kwargs: Any) -> None:
    """Invalidate every cached storefront page.

    Connected to every catalog model's save and delete signals. Call it after
    writes that send no signals (QuerySet.update, bulk_create) when customers
    should see them at once, e.g. a stock count changed with an F() update.
    """
    if kwargs.get("signal") is m2m_changed and not kwargs.get("action", "").startswith("post_"):
        return
    token = uuid.uuid4().hex
    if not CatalogVersion.objects.filter(pk=VERSION_PK).update(token=token):
        CatalogVersion.objects.update_or_create(pk=VERSION_PK, defaults={"token": token})


def connect_signals() -> None:
    from catalog import models as catalog_models

    senders = [
        catalog_models.Catalog,
        catalog_models.Package,
        catalog_models.PackageScaling,
        catalog_models.PackagePrice,
        catalog_models.PackagePriceAmount,
        catalog_models.Variant,
        catalog_models.VariantOption,
        catalog_models.VariantPrice,
        catalog_models.VariantPriceAmount,
        catalog_models.Feature,
        catalog_models.PackageFeature,
        catalog_models.Quota,
        catalog_models.PackageQuota,
    ]
    for sender in senders:
        post_save.connect(catalog_changed, sender=sender, dispatch_uid=f"storefront-{sender}-save")
        post_delete.connect(
            catalog_changed, sender=sender, dispatch_uid=f"storefront-{sender}-delete"
        )
    for through in (catalog_models.Package.variants.through, catalog_models.PackageScaling):
        m2m_changed.connect(
            catalog_changed, sender=through, dispatch_uid=f"storefront-{through}-m2m"
        )


def page_key(version: str, parts: tuple[str, ...]) -> str:
    """A cache key for a page under `version`, for the active language and `parts`."""
    raw = "\x1f".join((version, get_language() or "", *parts))
    return "storefront:page:" + hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def get_or_build(key: str, build: Callable[[], Any]) -> Any:
    value = cache.get(key)
    if value is None:
        value = build()
        cache.set(key, value, PAGE_TIMEOUT_SECONDS)
    return value
