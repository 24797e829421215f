"""Manual: staff set up each service by hand and mark it done in the admin."""

from __future__ import annotations

from django import forms

from ..service_types import ServiceType
from .base import ConnectionResult, Plugin, ProvisionRequest, ProvisionResult


class ManualPackageOptionsForm(forms.Form):
    checklist = forms.CharField(
        label="Set-up checklist",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Steps staff follow for a service of this package.",
    )
    target_hours = forms.IntegerField(
        label="Target hours to deliver",
        min_value=1,
        max_value=720,
        initial=24,
        help_text="How soon staff should finish a new service (1–720 hours).",
    )


class ManualCheckoutForm(forms.Form):
    notes = forms.CharField(
        label="Notes for our staff",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ManualPlugin(Plugin):
    key = "manual"
    name = "Manual"
    service_types = frozenset(ServiceType.values)
    package_options_form = ManualPackageOptionsForm
    checkout_form = ManualCheckoutForm

    def test_connection(self, instance) -> ConnectionResult:
        return ConnectionResult(
            ok=True, message="Manual instances have nothing to connect to; staff do the work."
        )

    def perform(self, instance, request: ProvisionRequest) -> ProvisionResult:
        # Nothing happens on a provider: the service waits until staff complete it.
        if request.action == "limit":
            quotas = ", ".join(str(item.get("code")) for item in request.extra.get("quotas", []))
            return ProvisionResult(
                done=False, message=f"Waiting for staff to stop use beyond the quota: {quotas}."
            )
        return ProvisionResult(done=False, message=f"Waiting for staff to {request.action}.")
