"""Walking a customer through a page's confirm step, as the browser does."""

from __future__ import annotations

from datetime import date

from django.urls import reverse

from .html import hidden_inputs

# A card expiry two years ahead, valid whenever the tests run.
EXPIRY = f"12/{date.today().year % 100 + 2:02d}"


def confirm_plan_change(client, service, target, **extra):
    """Open the change's confirm page, then post its form; returns (preview page, answer)."""
    url = reverse("subscriptions:service_change_package", args=[service.pk])
    preview = client.get(url, {"package": target.pk})
    assert preview.status_code == 200, preview.content.decode()
    answer = client.post(url, hidden_inputs(preview.content.decode(), "confirm-change"), **extra)
    return preview, answer


def pay(client, invoice, gateway, number, **extra):
    """Pay the invoice from its page with the card `number`, as the customer's form posts it."""
    prefix = f"gateway{gateway.pk}"
    return client.post(
        reverse("payments:pay", args=[invoice.pk, gateway.pk]),
        {
            f"{prefix}-number": number,
            f"{prefix}-expiry": EXPIRY,
            f"{prefix}-cvc": "123",
            "attempt_key": extra.get("attempt_key", "a1"),
        },  # fmt: skip
    )
