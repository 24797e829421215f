"""Configured connections to providers, one model per plugin."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from polymorphic.models import PolymorphicModel

from .plugins.base import Plugin
from .registry import get_plugin


class ProviderInstance(PolymorphicModel):
    """One configured connection of a provisioning plugin (a panel, a backend)."""

    # Set by each subclass: the registry key of the plugin that drives it.
    plugin_key: str = ""

    name = models.CharField(max_length=120, unique=True)
    is_active = models.BooleanField(
        "active", default=True, help_text="Only active instances can be chosen for packages."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

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
