"""Walking a customer through a page's confirm step, as the browser does."""

from __future__ import annotations

from django.urls import reverse

from .html import hidden_inputs


def confirm_plan_change(client, service, target, **extra):
    """Open the change's confirm page, then post its form; returns (preview page, answer)."""
    url = reverse("subscriptions:service_change_package", args=[service.pk])
    preview = client.get(url, {"package": target.pk})
    assert preview.status_code == 200, preview.content.decode()
    answer = client.post(url, hidden_inputs(preview.content.decode(), "confirm-change"), **extra)
    return preview, answer
