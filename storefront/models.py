"""The storefront's own state: one token that changes with every catalog edit."""

from __future__ import annotations

from django.db import models


class CatalogVersion(models.Model):
    """A single row whose token is replaced as every catalog edit commits (see cache.py).

    Cached storefront pages are keyed by the token, so an edit shows on the
    very next request in every worker process and on every machine, without
    a shared cache or timeouts.
    """

    token = models.CharField(max_length=32)

    def __str__(self) -> str:
        return self.token
