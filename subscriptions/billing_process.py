"""A billing process of its own: the run's bill step in a process started fresh (spawn).

Imports nothing of Django until it is set up, so the process can start from this module.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any


def bill_due_in_process(
    settings_module: str, alias: str, database: dict[str, Any], now: datetime
) -> tuple[int, int]:
    """Bill what is due as `billing.services_bill_due` does, on the database the starting
    process uses (a test database too); (invoices issued, services put in grace)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.db import connections

    connections[alias].settings_dict.update(database)
    from .billing import BillingRun, services_bill_due

    run = BillingRun()
    try:
        services_bill_due(run, now)
    finally:
        connections.close_all()
    return run.invoices, run.grace
