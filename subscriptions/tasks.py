"""Every background task the worker (`manage.py db_worker`) runs, in one list.

Each task is defined beside the code it runs; they are named here so a
scheduler or an operator finds them in one place.
"""

from __future__ import annotations

from .billing import run_billing
from .jobs import run_provisioning_job
from .notifications import send_notifications

__all__ = ["run_billing", "run_provisioning_job", "send_notifications"]
