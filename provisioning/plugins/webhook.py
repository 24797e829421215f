"""Webhook: signed JSON events POSTed to any HTTP backend."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any

from django import forms

from ..service_types import ServiceType
from .base import ConnectionResult, Plugin, ProvisioningError, ProvisionRequest, ProvisionResult

SIGNATURE_HEADER = "X-Billing-Signature"
REPLAY_WINDOW_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; the time is signed too."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    window: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiving backend runs: right secret, untouched body, fresh timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        received = parts["v1"]
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > window:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, received)


class WebhookPackageOptionsForm(forms.Form):
    plan_code = forms.SlugField(
        label="Remote plan code",
        max_length=64,
        help_text="The backend's identifier for what this package sells.",
    )
    region = forms.CharField(label="Region", max_length=64, required=False)
    send_settings = forms.BooleanField(
        label="Send package settings",
        required=False,
        initial=True,
        help_text="Include the package settings key/values in every event.",
    )


class WebhookCheckoutForm(forms.Form):
    """What the customer tells the backend when ordering."""

    label = forms.RegexField(
        label="Service label",
        max_length=63,
        regex=r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$",
        error_messages={
            "invalid": "Use letters, digits and hyphens only, not at the start or end."
        },
        help_text="A name for your service on the provider, e.g. “team-room”.",
    )


class WebhookPlugin(Plugin):
    key = "webhook"
    name = "Webhook"
    service_types = frozenset(ServiceType.values)
    package_options_form = WebhookPackageOptionsForm
    checkout_form = WebhookCheckoutForm

    def post(self, instance, event: str, data: dict[str, Any], idempotency_key: str = ""):
        """POST one signed event; returns (status, decoded JSON body or {})."""
        body = json.dumps({"event": event, "data": data}, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "billing-webhook/1",
            SIGNATURE_HEADER: sign(instance.signing_secret, body, int(time.time())),
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(instance.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=instance.timeout_seconds) as response:
                raw = response.read(1_000_000)
                status = response.status
        except urllib.error.HTTPError as error:
            raise ProvisioningError(f"{instance.url} answered HTTP {error.code}.") from error
        except TimeoutError as error:
            raise ProvisioningError(
                f"{instance.url} did not answer within {instance.timeout_seconds} s."
            ) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ProvisioningError(f"Could not reach {instance.url}: {reason}.") from error
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        return status, payload if isinstance(payload, dict) else {}

    def test_connection(self, instance) -> ConnectionResult:
        started = time.monotonic()
        try:
            status, _ = self.post(instance, "ping", {"instance": instance.name})
        except ProvisioningError as error:
            return ConnectionResult(ok=False, message=str(error))
        elapsed = (time.monotonic() - started) * 1000
        return ConnectionResult(
            ok=True, message=f"{instance.url} answered HTTP {status} in {elapsed:.0f} ms."
        )

    def call_timeout(self, instance) -> int:
        return instance.timeout_seconds

    def perform(self, instance, request: ProvisionRequest) -> ProvisionResult:
        data = {
            "service_id": request.service_id,
            "package_options": request.package_options,
            "variants": request.variants,
            "checkout_fields": request.checkout_fields,
            **request.extra,
        }
        if request.package_options.get("send_settings", True):
            data["package_settings"] = request.package_settings
        _, payload = self.post(
            instance, f"service.{request.action}", data, idempotency_key=request.idempotency_key
        )
        return ProvisionResult(
            done=True,
            remote_id=str(payload.get("remote_id", "")),
            replaces_remote_id=payload.get("replaces_remote_id") is True,
        )
