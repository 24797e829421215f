"""Stock: units taken by orders and plan changes, and given back when a service never starts.

Like django-oscar's `StockRecord.allocate` / `cancel_allocation`, these are the
only writes to `Package.stock_qty` outside the admin. Take stock holding the
package row's lock (`stock_lock`), so concurrent buyers are served one at a time.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router
from django.db.models import Expression, F, QuerySet

from .availability import Reason
from .errors import ErrorCode, refuse
from .models import Package, sold_out_changed
from .selectors import STAND_IN_PK, PreparedRead, PreparedUpdate

RACED_FIELDS = ("stock_qty", "oversell_enabled", "status", "retired")


def stock_lock_query(package_id: int, **also: Expression) -> QuerySet[Package]:
    """The statement `stock_lock` runs: the raced fields, then `also`, under the row's lock."""
    return (
        Package.objects.select_for_update(of=("self",))
        .filter(pk=package_id)
        .annotate(**also)
        .values_list(*RACED_FIELDS, *also)
    )


# Every stock-tracked order runs it, so its SQL is built once per process.
_STOCK_LOCK = PreparedRead(stock_lock_query, STAND_IN_PK)


def stock_lock(package: Package, read: PreparedRead = _STOCK_LOCK, *args: Any) -> tuple[Any, ...]:
    """Re-read the fields orders race on, holding the package row's lock until commit.

    `read`: a PreparedRead of `stock_lock_query(package_id, **also)` with more
    values after the raced fields (what the buyer holds already, for a per-user
    limit), run with the package's id and `args`; those values are returned.
    Such a value is read as of the statement's start, not after a wait for the
    lock: it must be one no other transaction can change meanwhile (the caller
    holds the lock that guards it).
    """
    [row] = read.read(package.pk, *args)
    for name, value in zip(RACED_FIELDS, row, strict=False):
        setattr(package, name, value)
    return row[len(RACED_FIELDS) :]


def stock_take_query(package_id: int, units: int) -> QuerySet[Package]:
    """The row `stock_take_at_once` takes `units` from: the package, if every check of the
    locked path passes at once (active, not retired, `units` left without overselling).
    A caller may filter it further (the per-user limit)."""
    return Package.objects.filter(
        pk=package_id,
        status=Package.Status.ACTIVE,
        retired=False,
        oversell_enabled=False,
        stock_qty__gte=units,
    )


def stock_take_values(package_id: int, units: int, *_: Any) -> dict[str, Expression]:
    """What `stock_take_at_once` writes to the row of `stock_take_query(package_id, units)`."""
    return {"stock_qty": F("stock_qty") - units}


# A stock-tracked order with no per-user limit takes its stock with this.
_STOCK_TAKE = PreparedUpdate(
    stock_take_query, stock_take_values, ["stock_qty"], STAND_IN_PK, STAND_IN_PK - 1
)


def stock_take_at_once(
    package: Package, quantity: int, take: PreparedRead = _STOCK_TAKE, *args: Any
) -> bool:
    """Take `quantity` units in one statement if nothing needs a closer look; whether it did.

    For the common order: it spares the round trip of `stock_lock` before
    `stock_take`. `take`: a PreparedUpdate of `stock_take_query(package_id, units)`,
    maybe filtered further, writing `stock_take_values` and returning the stock
    left; run with the package's id, `quantity` and `args`. When it refuses (too
    few left, oversell, the package withdrawn, the caller's filter), nothing
    changed: take the locked path, whose checks say why. On success the row is
    locked until commit and the package holds its values, as after `stock_lock`.
    """
    if not package.has_stock or package.oversell_enabled:
        return False  # oversold units are counted by the locked path
    rows = take.read(package.pk, quantity, *args)
    if not rows:
        return False
    [(left,)] = rows
    package.stock_qty = left + quantity
    package.status, package.retired, package.oversell_enabled = Package.Status.ACTIVE, False, False
    if left == 0:
        sold_out_changed.send(sender=Package, package_id=package.pk)
    return True


def stock_covers(package: Package, quantity: int) -> bool:
    """Whether `quantity` units can be sold now (oversell sells past zero)."""
    return not package.has_stock or package.oversell_enabled or package.stock_qty >= quantity


def stock_units_to_take(package: Package, quantity: int) -> int:
    """With oversell the stock stops at zero and the rest of the units are oversold."""
    if not package.has_stock:
        return 0
    if package.oversell_enabled:
        return min(quantity, max(package.stock_qty, 0))
    return quantity


def stock_take(package: Package, quantity: int) -> int:
    """Take the units from stock and return how many were taken; hold the package's lock."""
    taken = stock_units_to_take(package, quantity)
    if taken:
        # Conditional even under the row lock: on a database without row locks
        # it still never takes a unit that is not there.
        updated = _stock_decrement(package.pk, taken)
        if not updated:
            raise refuse(ErrorCode.SOLD_OUT, Reason.SOLD_OUT)
        if not package.oversell_enabled and package.stock_qty == taken:
            sold_out_changed.send(sender=Package, package_id=package.pk)
    return taken


def _stock_decrement(package_id: int, units: int) -> int:
    """`units` fewer in stock if that many are left; the number of rows changed (0 or 1).

    Written as SQL: it runs while the package row is locked, and the ORM spent
    more CPU building this one-line UPDATE than the database spent running it.
    """
    connection = connections[router.db_for_write(Package)]
    quote = connection.ops.quote_name
    table = quote(Package._meta.db_table)
    stock = quote(str(Package._meta.get_field("stock_qty").column))
    key = quote(str(Package._meta.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {stock} = {stock} - %s WHERE {key} = %s AND {stock} >= %s",
            [units, package_id, units],
        )
        return cursor.rowcount


def stock_release(*, package_id: int, units: int) -> None:
    """Give units back, once per unit taken; untracked stock (-1) stays untracked."""
    if units:
        released = Package.objects.filter(pk=package_id, stock_qty__gte=0).update(
            stock_qty=F("stock_qty") + units
        )
        # Releases are rare (a service that never started): telling readers the package
        # may be back in stock costs less than a read to find out whether it was sold out.
        if released:
            sold_out_changed.send(sender=Package, package_id=package_id)
