"""Provider instances: pick the plugin, then its own fields; secrets are write-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from polymorphic.admin import (
    PolymorphicChildModelAdmin,
    PolymorphicChildModelFilter,
    PolymorphicParentModelAdmin,
)

from .forms import ProviderInstanceForm
from .models import ManualInstance, ProviderInstance, WebhookInstance
from .plugins.base import ConnectionResult


def test_connection(instance: ProviderInstance) -> ConnectionResult:
    try:
        return instance.plugin.test_connection(instance)
    except Exception as error:  # noqa: BLE001 - staff should read any failure, not a 500 page
        return ConnectionResult(ok=False, message=f"The test failed: {error}")


class ProviderInstanceChildAdmin(PolymorphicChildModelAdmin):
    base_model = ProviderInstance
    base_form = ProviderInstanceForm

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # Rendered write-only (see ProviderInstanceForm); the model names them.
        form.secret_fields = self.model.secret_fields
        return form

    @admin.display(description="used by")
    def used_by(self, instance: ProviderInstance) -> str:
        names = [package.name for package in instance.packages.all()]
        return ", ".join(names) if names else "no package yet"


@admin.register(ManualInstance)
class ManualInstanceAdmin(ProviderInstanceChildAdmin):
    fields = ["name", "is_active", "instructions", "notify_email", "used_by"]
    readonly_fields = ["used_by"]


@admin.register(WebhookInstance)
class WebhookInstanceAdmin(ProviderInstanceChildAdmin):
    fields = ["name", "is_active", "url", "signing_secret", "timeout_seconds", "used_by"]
    readonly_fields = ["used_by"]


@admin.register(ProviderInstance)
class ProviderInstanceAdmin(PolymorphicParentModelAdmin):
    base_model = ProviderInstance
    child_models = [ManualInstance, WebhookInstance]
    list_display = ["name", "plugin_name", "is_active", "package_count"]
    list_filter = [PolymorphicChildModelFilter, "is_active"]
    search_fields = ["name"]
    actions = ["test_connections"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(package_count=Count("packages"))

    @admin.display(description="plugin")
    def plugin_name(self, instance: ProviderInstance) -> str:
        return instance.plugin.name

    @admin.display(description="packages", ordering="package_count")
    def package_count(self, instance: ProviderInstance) -> int:
        return instance.package_count

    @admin.action(description="Test connection of the selected instances")
    def test_connections(self, request, queryset):
        # The list holds base rows; the plugin needs each instance's own fields.
        instances = list(ProviderInstance.objects.filter(pk__in=queryset.values("pk")))
        for instance in instances:
            result = test_connection(instance)
            if result.ok:
                self.message_user(
                    request, f"“{instance}” connected: {result.message}", messages.SUCCESS
                )
            else:
                self.message_user(request, f"“{instance}” failed: {result.message}", messages.ERROR)
        # The change page's button comes back to the instance it tested.
        if request.POST.get("_from_change_page") and len(instances) == 1:
            return HttpResponseRedirect(
                reverse("admin:provisioning_providerinstance_change", args=[instances[0].pk])
            )
        return None
