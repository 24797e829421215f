"""Configured connections to providers, one model per plugin."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.dispatch import receiver
from django.utils.crypto import salted_hmac
from polymorphic.models import PolymorphicModel
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

from .plugins.base import Plugin
from .registry import get_plugin


class ProviderInstance(PolymorphicModel):
    """One configured connection of a provisioning plugin (a panel, a backend)."""

    # Set by each subclass: the registry key of the plugin that drives it.
    plugin_key: str = ""
    # Fields written but never shown: the admin renders them write-only and the
    # history keeps a keyed fingerprint instead of the value (catalog.history).
    secret_fields: tuple[str, ...] = ()

    name = models.CharField(max_length=120, unique=True)
    is_active = models.BooleanField(
        "active", default=True, help_text="Only active instances can be chosen for packages."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Each subclass gets its own history too (inherit=True), with its own fields.
    history = HistoricalRecords(inherit=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def plugin(self) -> Plugin:
        # A base row (admin list, non-polymorphic query) names its subclass
        # by content type, read from Django's cache rather than the database.
        return get_plugin((self.get_real_instance_class() or type(self)).plugin_key)


class ManualInstance(ProviderInstance):
    """Staff carry out orders by hand; services wait for them."""

    plugin_key = "manual"

    instructions = models.TextField(
        blank=True, help_text="What staff do to set up a service of this provider."
    )
    notify_email = models.EmailField(blank=True, help_text="Where new work for staff is announced.")

    class Meta:
        verbose_name = "manual provider instance"


class WebhookInstance(ProviderInstance):
    """Any HTTP backend that accepts signed JSON events."""

    plugin_key = "webhook"
    secret_fields = ("signing_secret",)

    url = models.URLField("endpoint URL", max_length=500)
    signing_secret = models.CharField(
        max_length=200, help_text="Shared secret for the HMAC-SHA256 signature of every event."
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=10,
        validators=[
            MinValueValidator(1, "The timeout must be at least 1 second."),
            MaxValueValidator(120, "The timeout must be at most 120 seconds."),
        ],
    )

    class Meta:
        verbose_name = "webhook provider instance"


def secret_fingerprint(value: str) -> str:
    """A keyed digest that tells two values apart without revealing either."""
    return salted_hmac("provisioning.history.secret", value or "", algorithm="sha256").hexdigest()


@receiver(pre_create_historical_record)
def mask_secrets_in_history(sender, instance, history_instance, **kwargs) -> None:
    # The history row is saved after this signal: it keeps a fingerprint, so
    # the trail can say the secret changed, never what it is.
    for name in getattr(instance, "secret_fields", ()):
        setattr(history_instance, name, secret_fingerprint(getattr(instance, name)))
