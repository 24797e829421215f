"""Stock: units taken by orders and plan changes, and given back when a service never starts.

Like django-oscar's `StockRecord.allocate` / `cancel_allocation`, these are the
only writes to `Package.stock_qty` outside the admin. Take stock holding the
package row's lock (`stock_lock`), so concurrent buyers are served one at a time.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Expression, F

from .availability import Reason
from .errors import ErrorCode, refuse
from .models import Package, sold_out_changed

RACED_FIELDS = ("stock_qty", "oversell_enabled", "status", "retired")


def stock_lock(package: Package, **also: Expression) -> dict[str, Any]:
    """Re-read the fields orders race on, holding the package row's lock until commit.

    `also`: more values to read in the same statement (what the buyer holds
    already, for a per-user limit), returned by name. Such a value is read as
    of the statement's start, not after a wait for the lock: it must be one
    no other transaction can change meanwhile (the caller holds the lock that
    guards it).
    """
    row = (
        Package.objects.select_for_update(of=("self",))
        .annotate(**also)
        .values(*RACED_FIELDS, *also)
        .get(pk=package.pk)
    )
    for name in RACED_FIELDS:
        setattr(package, name, row[name])
    return {name: row[name] for name in also}


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
        updated = Package.objects.filter(pk=package.pk, stock_qty__gte=taken).update(
            stock_qty=F("stock_qty") - taken
        )
        if not updated:
            raise refuse(ErrorCode.SOLD_OUT, Reason.SOLD_OUT)
        if not package.oversell_enabled and package.stock_qty == taken:
            sold_out_changed.send(sender=Package, package_id=package.pk)
    return taken


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
