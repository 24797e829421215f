"""Storefront page cache, keyed by a version token that every catalog edit replaces.

Stock counts are not part of a cached page: pages carry marks where a stock
badge, a "sold out" state or a quantity limit goes, and `storefront.responses`
fills them from the database on every request. So an order taking stock
leaves the token alone; only a package selling out or coming back in stock
(`catalog.models.sold_out_changed`) replaces it, since what may be ordered
(scaling targets, a catalog's "from" price) is part of the pages.

Rendering a catalog of hundreds of packages costs far more than Django's own
request handling, so pages are cached. A cached page is only ever found under
the token that was current when it was built; every catalog edit replaces the
token as its transaction commits (before the editor's response is sent), so
the next request, in any worker on any machine, builds a fresh page.

The token is replaced after the commit rather than inside the transaction:
inside, every order taking stock would hold the one version row locked until
it commits, serializing all orders and risking deadlocks with transactions
that lock several packages.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils.translation import get_language

from catalog import models as catalog_models

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


def catalog_changed() -> None:
    """Invalidate every cached storefront page, now.

    Catalog saves, deletes and package QuerySet.update() (how stock is
    taken) already do it when their transaction commits. Call it after other
    writes that send no signal (bulk_create, update() of prices), preferably
    through `transaction.on_commit(catalog_changed)`.
    """
    token = uuid.uuid4().hex
    if not CatalogVersion.objects.filter(pk=VERSION_PK).update(token=token):
        CatalogVersion.objects.update_or_create(pk=VERSION_PK, defaults={"token": token})


# Package columns a cached page never shows: they are filled in per request.
UNCACHED_FIELDS = frozenset({"stock_qty"})


def catalog_changed_on_commit(**signal_kwargs: Any) -> None:
    """Signal receiver: replace the token once the current transaction commits."""
    action = signal_kwargs.get("action")
    if action is not None and not action.startswith("post_"):  # m2m_changed's pre_* calls
        return
    fields = signal_kwargs.get("fields")  # packages_updated says which columns it wrote
    if fields is not None and fields <= UNCACHED_FIELDS:
        return
    pending = transaction.get_connection().run_on_commit
    # Once per transaction, however many rows it writes (run_on_commit holds
    # (savepoint ids, callback, robust) entries).
    if any(entry[1] is catalog_changed for entry in pending):
        return
    transaction.on_commit(catalog_changed)


def connect_signals() -> None:
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
        post_save.connect(
            catalog_changed_on_commit, sender=sender, dispatch_uid=f"storefront-{sender}-save"
        )
        post_delete.connect(
            catalog_changed_on_commit, sender=sender, dispatch_uid=f"storefront-{sender}-delete"
        )
    catalog_models.packages_updated.connect(
        catalog_changed_on_commit, dispatch_uid="storefront-package-update"
    )
    catalog_models.sold_out_changed.connect(
        catalog_changed_on_commit, dispatch_uid="storefront-sold-out"
    )
    for through in (catalog_models.Package.variants.through, catalog_models.PackageScaling):
        m2m_changed.connect(
            catalog_changed_on_commit, sender=through, dispatch_uid=f"storefront-{through}-m2m"
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
