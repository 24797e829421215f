"""What every provisioning plugin offers the rest of the platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms


def form_error_messages(form: forms.Form) -> list[str]:
    """A plugin form's errors as sentences, each field's prefixed by its label.

    For places that cannot show errors beside the fields (a stored package
    checked by `clean()`, an order placed by the service).
    """
    return [
        f"{form.fields[name].label or name}: {' '.join(map(str, errors))}"
        if name in form.fields
        else " ".join(map(str, errors))
        for name, errors in form.errors.items()
    ]


class NoOptionsForm(forms.Form):
    """A plugin that asks for nothing."""


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str


@dataclass(frozen=True)
class ProvisionRequest:
    """Everything a lifecycle call needs, as plain data."""

    action: str
    service_id: str
    idempotency_key: str
    package_options: dict[str, Any] = field(default_factory=dict)
    package_settings: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    checkout_fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvisionResult:
    """done=False means the work is waiting on someone (staff, the provider).

    A service keeps the remote id its create gave it until it is terminated;
    another action changes it only when the plugin sets `replaces_remote_id`
    (the provider moved the resource and says so).
    """

    done: bool
    remote_id: str = ""
    message: str = ""
    replaces_remote_id: bool = False


class ProvisioningError(Exception):
    """A provider call failed; the job may retry it."""


class Plugin:
    key: str = ""
    name: str = ""
    service_types: frozenset[str] = frozenset()
    package_options_form: type[forms.Form] = NoOptionsForm
    checkout_form: type[forms.Form] = NoOptionsForm

    def serialize_package_options(self, cleaned_data: dict[str, Any]) -> dict[str, Any]:
        """Options are stored as JSON: keep only JSON-friendly values."""
        return {
            name: value
            if isinstance(value, (str, int, float, bool)) or value is None
            else str(value)
            for name, value in cleaned_data.items()
        }

    def test_connection(self, instance) -> ConnectionResult:
        raise NotImplementedError

    def call_timeout(self, instance) -> int:
        """The longest one lifecycle call may take, in seconds: a job's lease outlasts it."""
        return 0

    def perform(self, instance, request: ProvisionRequest) -> ProvisionResult:
        """Carry out one lifecycle action on the provider.

        Actions: create, suspend, unsuspend, terminate, renew, change_package, and
        limit (a quota with a hard limit is used up; `extra["quotas"]` lists each
        as {code, limit, used}: stop use beyond it until the period renews).
        """
        raise NotImplementedError
