"""Small wording rules shared by pages, quotes, invoices and emails."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """“1 month”, “3 months”."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def trial_offer(*, period: int, interval: str, inside: bool, then: str) -> str:
    """A trial as a customer reads it at checkout: “Free 14-day trial …, then 10.00 USD / month.”

    Trials count from when the service is ready, not from the order, so it says so.
    `then` is what is charged after it (“10.00 USD / month”).
    """
    length = f"{period}-{interval}"
    if inside:
        return (
            f"Your first period starts with a free {length} trial once your service is ready; "
            f"{then} is due when the trial ends."
        )
    return f"Free {length} trial from when your service is ready, then {then}."


def trial_first_due(*, period: int, interval: str) -> str:
    """When the first payment after a trial falls due, as a checkout can truly say it.

    The trial counts from when the service is ready, which the checkout cannot
    know, so it names no date: “14 days after your service is ready”.
    """
    return f"{plural(period, interval)} after your service is ready"
