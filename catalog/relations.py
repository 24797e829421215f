"""A model instance's related objects held in memory, as prefetch_related() holds them.

The checkout reads a package's whole tree in one statement (`catalog.selectors`) and
hands each relation its objects here, without the queryset prefetch_related() would
build for it; the hot paths read them back with `related_objects`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Model


def relation_cache_fill(instance: Model, relation: str, objects: Iterable[Model]) -> None:
    """Fill `instance.<relation>.all()` as prefetch_related() would, without its query.

    The queryset prefetch_related() stores is built when the relation is first
    asked for (`_PrefetchCache`): a checkout reads a package's whole tree, a
    hundred relations for a package with many variants, and uses a few of them,
    while building each one's queryset (its related manager, its filter, and
    django-money's wrapping of every queryset method) cost more than reading the rows.
    """
    cache = instance.__dict__.get("_prefetched_objects_cache")
    if not isinstance(cache, _PrefetchCache):
        cache = instance.__dict__["_prefetched_objects_cache"] = _PrefetchCache(instance, cache)
    cache.fill(relation, list(objects))


def related_objects(instance: object, relation: str) -> Iterable[Any]:
    """The objects `instance.<relation>.all()` gives, in its order.

    Where `relation_cache_fill` filled the relation, its objects as they are: no related
    manager and no queryset is built (on a checkout, building them for the seven relations
    it reads cost about as much CPU as PostgreSQL spent on the order). Anything else is
    `.all()`: prefetch_related()'s queryset, or a query. `relation` is the related
    manager's attribute, which is also its prefetch cache key for the relations filled here.
    """
    cache = instance.__dict__.get("_prefetched_objects_cache")
    if isinstance(cache, _PrefetchCache):
        pending = cache.pending(relation)
        if pending is not None:
            return pending
    return getattr(instance, relation).all()


class _Pending(list):
    """The objects of a relation whose queryset is not built yet."""


class _PrefetchCache(dict):
    """A model instance's `_prefetched_objects_cache` that builds each queryset on first use.

    Django reads the cache by key (its related managers), with `in` and `get`
    (prefetch_related_objects), and pops a key when the relation is written to;
    each of those sees what prefetch_related() would have stored.
    """

    def __init__(self, instance: Model, existing: dict[str, Any] | None = None) -> None:
        super().__init__(existing or {})
        self._instance = instance

    def fill(self, relation: str, objects: list[Model]) -> None:
        super().__setitem__(relation, _Pending(objects))

    def pending(self, relation: str) -> _Pending | None:
        """The relation's objects while its queryset is not built (None once it is, or
        when it was never filled, or was written to since)."""
        value = super().get(relation)
        return value if isinstance(value, _Pending) else None

    def __getitem__(self, relation: str) -> Any:
        value = super().__getitem__(relation)
        if not isinstance(value, _Pending):
            return value
        # Absent from the cache for a moment, so that the manager builds the queryset it
        # would query with; then it holds the objects, as Django's prefetch_one_level does.
        super().__delitem__(relation)
        queryset = getattr(self._instance, relation).get_queryset()
        queryset._result_cache = list(value)
        queryset._prefetch_done = True
        super().__setitem__(relation, queryset)
        return queryset

    def get(self, relation: str, default: Any = None) -> Any:
        return self[relation] if relation in self else default  # noqa: SIM401 (this is get)
