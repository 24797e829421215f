"""Staff views of what customers bought; every change goes through a service function."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import jobs, services
from .models import (
    Invoice,
    InvoiceLine,
    Order,
    OrderLine,
    PlanChange,
    ProvisioningJob,
    Service,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RecordAdmin(admin.ModelAdmin):
    """Records staff act on through actions, never add, edit or delete by hand."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


class SnapshotAdmin(RecordAdmin):
    """Orders and invoices: what was sold, as it was sold."""

    def has_change_permission(self, request, obj=None):
        return False


def _run(modeladmin, request, objects, action, done: str):
    ok = 0
    for obj in objects:
        try:
            action(obj)
        except ValidationError as error:
            modeladmin.message_user(request, f"{obj}: {' '.join(error.messages)}", messages.ERROR)
        else:
            ok += 1
    if ok:
        modeladmin.message_user(request, done.format(count=ok), messages.SUCCESS)


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["description", "unit_amount", "quantity", "amount", "recurring", "due_now"]


@admin.register(Order)
class OrderAdmin(SnapshotAdmin):
    list_display = ["number", "customer", "package_name", "price_name", "quantity", "total",
                    "status", "created_at"]  # fmt: skip
    list_filter = ["status", "currency"]
    search_fields = ["customer__email", "package_name"]
    list_select_related = ["customer"]
    inlines = [OrderLineInline]
    actions = ["cancel_orders"]

    @admin.action(description="Cancel selected unpaid orders (gives stock back)")
    def cancel_orders(self, request, queryset):
        _run(self, request, queryset, lambda o: services.order_cancel(order=o),
             "{count} order(s) cancelled.")  # fmt: skip


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["description", "unit_amount", "quantity", "amount"]


@admin.register(Invoice)
class InvoiceAdmin(SnapshotAdmin):
    list_display = ["number", "customer", "kind", "order", "service", "total", "status",
                    "due_at", "paid_at"]  # fmt: skip
    list_filter = ["status", "kind", "currency"]
    search_fields = ["customer__email"]
    list_select_related = ["customer", "order", "service"]
    inlines = [InvoiceLineInline]
    # payments.admin extends this page with payments, refunds and credit notes.


class PlanChangeInline(ReadOnlyInline):
    # Shown on its service only: a plan change means nothing apart from it.
    model = PlanChange
    fk_name = "service"
    fields = ["direction", "status", "from_package_name", "to_package_name", "recurring_amount",
              "charge", "effective_at", "applied_at"]  # fmt: skip
    readonly_fields = fields


class ProvisioningJobInline(ReadOnlyInline):
    model = ProvisioningJob
    fields = ["action", "status", "attempts", "last_error", "result_message", "created_at"]
    readonly_fields = fields
    ordering = ["-created_at"]


@admin.register(Service)
class ServiceAdmin(RecordAdmin):
    list_display = ["__str__", "customer", "status", "needs_attention", "provisioning_error",
                    "remote_id", "next_due_at", "grace_ends_at"]  # fmt: skip
    list_filter = ["needs_attention", "status", "currency"]
    search_fields = ["customer__email", "package_name", "remote_id"]
    list_select_related = ["customer"]
    inlines = [PlanChangeInline, ProvisioningJobInline]
    actions = ["retry_provisioning", "complete_manual", "suspend", "unsuspend", "terminate"]

    @admin.action(description="Retry failed provisioning")
    def retry_provisioning(self, request, queryset):
        failed = ProvisioningJob.objects.filter(
            service__in=queryset, status=ProvisioningJob.Status.FAILED
        )
        _run(self, request, failed, lambda job: jobs.provisioning_job_retry(job=job),
             "{count} job(s) queued again.")  # fmt: skip

    @admin.action(description="Mark waiting manual provisioning as done")
    def complete_manual(self, request, queryset):
        waiting = ProvisioningJob.objects.filter(
            service__in=queryset, status=ProvisioningJob.Status.WAITING
        )
        _run(self, request, waiting, lambda job: jobs.provisioning_job_complete(job=job),
             "{count} job(s) completed.")  # fmt: skip

    @admin.action(description="Suspend selected services")
    def suspend(self, request, queryset):
        _run(self, request, queryset, lambda s: services.service_suspend(service=s),
             "Suspension queued for {count} service(s).")  # fmt: skip

    @admin.action(description="Unsuspend selected services")
    def unsuspend(self, request, queryset):
        _run(self, request, queryset, lambda s: services.service_unsuspend(service=s),
             "Unsuspension queued for {count} service(s).")  # fmt: skip

    @admin.action(description="Terminate selected services")
    def terminate(self, request, queryset):
        _run(self, request, queryset, lambda s: services.service_terminate(service=s),
             "{count} service(s) terminated.")  # fmt: skip


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(RecordAdmin):
    list_display = ["__str__", "status", "attempts", "last_error", "next_attempt_at",
                    "created_at"]  # fmt: skip
    list_filter = ["status", "action"]
    search_fields = ["service__package_name", "service__customer__email", "idempotency_key"]
    list_select_related = ["service"]
    actions = ["retry", "complete"]

    @admin.action(description="Retry selected failed jobs")
    def retry(self, request, queryset):
        _run(self, request, queryset, lambda job: jobs.provisioning_job_retry(job=job),
             "{count} job(s) queued again.")  # fmt: skip

    @admin.action(description="Mark selected waiting (manual) jobs as done")
    def complete(self, request, queryset):
        _run(self, request, queryset, lambda job: jobs.provisioning_job_complete(job=job),
             "{count} job(s) completed.")  # fmt: skip
