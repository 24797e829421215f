"""Staff views of what customers bought; every change goes through a service function."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from catalog.models import Package

from . import billing, jobs, lifecycle, ordering, price_changes
from .console import ACTIONS, console_action_perform, console_actions
from .forms import StaffUsageForm
from .models import (
    Invoice,
    Order,
    ProvisioningJob,
    ScheduledPriceChange,
    Service,
    ServiceEvent,
    UsageRecord,
)
from .quotas import figure, service_usage
from .usage import usage_record


@dataclass
class RecordTable:
    """Records related to the one shown, as a table whose first cell links to each."""

    id: str
    title: str
    headers: list[str]
    rows: list[list]
    empty: str = "None."


def admin_link(obj, text=None) -> str:
    """A link to obj's admin page; "–" when there is none."""
    if obj is None:
        return "–"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else obj)


def customer_link(customer) -> str:
    return admin_link(customer, customer.email or customer.get_username())


class RecordAdmin(admin.ModelAdmin):
    """Records staff act on through actions, never add, edit or delete by hand.

    Their page reads top down: a summary, the related records as linked tables,
    the snapshots as key/value lists, then every stored field folded away. It
    has no Save buttons: nothing on it can be edited.
    """

    change_form_template = "admin/subscriptions/record_change_form.html"
    # JSON fields: shown formatted as snapshots, not as raw text among the fields.
    snapshot_fields: dict[str, str] = {}

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        return [
            field.name
            for field in self.model._meta.fields
            if field.name not in self.snapshot_fields
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def record_summary(self, obj) -> list[tuple[str, object]]:
        return []

    def record_tables(self, obj) -> list[RecordTable]:
        return []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(
                record_summary=self.record_summary(obj),
                record_tables=self.record_tables(obj),
                record_snapshots=[
                    (label, getattr(obj, name)) for name, label in self.snapshot_fields.items()
                ],
            )
        context.update(show_save=False, show_save_and_continue=False,
                       show_save_and_add_another=False, show_delete=False)  # fmt: skip
        return super().render_change_form(request, context, add, change, form_url, obj)


class SnapshotAdmin(RecordAdmin):
    """Orders and invoices: what was sold, as it was sold."""

    def has_change_permission(self, request, obj=None):
        return False


def line_rows(lines) -> list[list]:
    return [[line.description, line.unit_amount, line.quantity, line.amount] for line in lines]


LINE_HEADERS = ["Item", "Unit amount", "Quantity", "Amount"]


def invoice_rows(invoices) -> list[list]:
    return [
        [admin_link(invoice, invoice.number), invoice.get_kind_display(), invoice.total,
         invoice.get_status_display(), invoice.due_at, invoice.paid_at]
        for invoice in invoices
    ]  # fmt: skip


INVOICE_HEADERS = ["Invoice", "Kind", "Total", "Status", "Due", "Paid"]


def job_rows(jobs_) -> list[list]:
    return [
        [admin_link(job, f"#{job.pk}"), job.get_action_display(), job.get_status_display(),
         job.attempts, job.last_error or job.result_message, job.created_at]
        for job in jobs_
    ]  # fmt: skip


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


@admin.register(Order)
class OrderAdmin(SnapshotAdmin):
    list_display = ["number", "customer", "package_name", "price_name", "quantity", "total",
                    "status", "created_at"]  # fmt: skip
    list_filter = ["status", "currency"]
    search_fields = ["customer__email", "package_name"]
    list_select_related = ["customer"]
    actions = ["cancel_orders"]
    snapshot_fields = {"checkout_fields": "Checkout fields"}

    def record_summary(self, order: Order) -> list[tuple[str, object]]:
        return [
            ("Order", order.number),
            ("Customer", customer_link(order.customer)),
            ("Status", order.get_status_display()),
            ("Package", admin_link(order.package, order.package_name)),
            ("Pricing option", f"{order.price_name} × {order.quantity}"),
            ("Charged on this order", order.total),
            ("Every " + (order.period_label or "period"), order.recurring_total)
            if order.price_type == "recurring" else ("Recurring", "no"),
            ("Placed", order.created_at),
            ("Paid", order.paid_at),
            ("Cancelled", order.cancelled_at),
        ]  # fmt: skip

    def record_tables(self, order: Order) -> list[RecordTable]:
        return [
            RecordTable("lines", "Lines", [*LINE_HEADERS, "Charged"], [
                [line.description, line.unit_amount, line.quantity, line.amount,
                 ("now" if line.due_now else "later") + (", then every period"
                                                         if line.recurring else "")]
                for line in order.lines.all()
            ]),
            RecordTable("invoices", "Invoices", INVOICE_HEADERS,
                        invoice_rows(order.invoices.all())),
            RecordTable("services", "Services", ["Service", "Status", "Remote id", "Next due"], [
                [admin_link(service), service.get_status_display(), service.remote_id,
                 service.next_due_at]
                for service in order.services.all()
            ]),
        ]  # fmt: skip

    @admin.action(description="Cancel selected unpaid orders (gives stock back)")
    def cancel_orders(self, request, queryset):
        _run(self, request, queryset, lambda o: ordering.order_cancel(order=o),
             "{count} order(s) cancelled.")  # fmt: skip


@admin.register(Invoice)
class InvoiceAdmin(SnapshotAdmin):
    # Its own template (blocks for its lines and payments) extends the record page.
    change_form_template = "admin/subscriptions/invoice/change_form.html"
    list_display = ["number", "customer", "kind", "order", "service", "total", "status",
                    "due_at", "paid_at"]  # fmt: skip
    list_filter = ["status", "kind", "currency"]
    search_fields = ["customer__email"]
    list_select_related = ["customer", "order", "service"]
    # payments.admin extends this page with its balance, payments and credit notes.

    def record_summary(self, invoice: Invoice) -> list[tuple[str, object]]:
        period = (
            f"{invoice.period_start:%Y-%m-%d} – {invoice.period_end:%Y-%m-%d}"
            if invoice.period_start and invoice.period_end
            else None
        )
        return [
            ("Invoice", invoice.number),
            ("Customer", customer_link(invoice.customer)),
            ("Kind", invoice.get_kind_display()),
            ("Status", invoice.get_status_display()),
            ("Total", invoice.total),
            ("Order", admin_link(invoice.order, invoice.order and invoice.order.number)),
            ("Service", admin_link(invoice.service)),
            ("Period", period),
            ("Issued", invoice.issued_at),
            ("Due", invoice.due_at),
            ("Paid", invoice.paid_at),
            ("Cancelled", invoice.cancelled_at),
        ]

    def record_tables(self, invoice: Invoice) -> list[RecordTable]:
        return [RecordTable("lines", "Lines", LINE_HEADERS, line_rows(invoice.lines.all()))]


@admin.register(Service)
class ServiceAdmin(RecordAdmin):
    change_form_template = "admin/subscriptions/service/change_form.html"
    list_display = ["__str__", "customer", "status", "needs_attention", "provisioning_error",
                    "remote_id", "next_due_at", "grace_ends_at"]  # fmt: skip
    list_filter = ["needs_attention", "status", "currency"]
    search_fields = ["customer__email", "package_name", "remote_id"]
    list_select_related = ["customer"]
    actions = ["retry_provisioning", "complete_manual", "suspend", "unsuspend", "terminate"]
    snapshot_fields = {
        "variants": "Variants",
        "checkout_fields": "Checkout fields",
        "provisioning_options": "Provisioning options",
        "package_settings": "Package settings",
        "quotas": "Quotas as sold",
    }

    def record_summary(self, service: Service) -> list[tuple[str, object]]:
        return [
            ("Service", str(service)),
            ("Customer", customer_link(service.customer)),
            ("Order", admin_link(service.order, service.order.number)),
            ("Status", service.get_status_display()),
            ("Needs attention", service.needs_attention),
            ("Provisioning error", service.provisioning_error),
            ("Package", admin_link(service.package, service.package_name)),
            ("Pricing option", service.price_name),
            (
                "Variants",
                ", ".join(f"{item['name']}: {item['option']}" for item in service.variants)
                or "none",
            ),
            ("Recurring amount", service.recurring_amount),
            (
                "Overages",
                "billed at the end of each period"
                if service.overages_enabled
                else "off: quota limits are hard",
            ),
            ("Provider instance", admin_link(service.provider_instance)),
            ("Remote id", service.remote_id),
            ("Created", service.created_at),
            ("Active since", service.activated_at),
            ("Trial ends", service.trial_ends_at),
            (
                "Current period",
                f"{service.current_period_start:%Y-%m-%d %H:%M} – "
                f"{service.current_period_end:%Y-%m-%d %H:%M}"
                if service.current_period_start and service.current_period_end
                else None,
            ),
            ("Next due", service.next_due_at),
            ("Grace ends", service.grace_ends_at),
            ("Cancels at", service.cancel_at),
            ("Terminated", service.terminated_at),
        ]

    def record_tables(self, service: Service) -> list[RecordTable]:
        return [
            # Its order's invoice paid for it as well as its own renewals did.
            RecordTable("invoices", "Invoices", INVOICE_HEADERS, invoice_rows(
                Invoice.objects.filter(Q(service=service) | Q(order_id=service.order_id))
            )),
            RecordTable("jobs", "Provisioning jobs",
                        ["Job", "Action", "Status", "Attempts", "Last message", "Created"],
                        job_rows(service.jobs.order_by("-created_at"))),
            RecordTable("plan-changes", "Plan changes",
                        ["Change", "Status", "From", "To", "Recurring amount", "Charge",
                         "Effective", "Applied"], [
                [change.get_direction_display(), change.get_status_display(),
                 change.from_package_name, change.to_package_name, change.recurring_amount,
                 change.charge, change.effective_at, change.applied_at]
                for change in service.plan_changes.order_by("-created_at")
            ]),
            RecordTable("usage-records", "Usage (latest 50)",
                        ["Quota", "Quantity", "Happened", "Source", "Idempotency key",
                         "Recorded by"], [
                [record.quota_code, record.quantity, record.occurred_at,
                 record.get_source_display(), record.idempotency_key, record.recorded_by]
                for record in service.usage_records.select_related("recorded_by")[:50]
            ]),
        ]  # fmt: skip

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            since, usage = service_usage(obj, timezone.now())
            context.update(usage=usage, usage_since=since)
            # Newest first, as written: the append-only record, not rebuilt from other tables.
            context.update(timeline=obj.events.select_related("actor"))
            if self.has_change_permission(request, obj):
                context.update(console_actions=[
                    (action, reverse("admin:subscriptions_service_console",
                                     args=[obj.pk, action.slug]))
                    for action in console_actions(obj)
                ])  # fmt: skip
            if obj.quotas and self.has_change_permission(request, obj):
                context.setdefault("usage_form", self.usage_form(obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def usage_form(self, service: Service, data=None) -> StaffUsageForm:
        return StaffUsageForm(
            data,
            service=service,
            initial={
                "occurred_at": timezone.now().replace(microsecond=0),
                "idempotency_key": f"staff-{uuid.uuid4()}",
            },
        )

    def get_urls(self):
        return [
            path("<int:pk>/usage/", self.admin_site.admin_view(self.add_usage_view),
                 name="subscriptions_service_add_usage"),
            path("run-billing/", self.admin_site.admin_view(self.run_billing_view),
                 name="subscriptions_service_run_billing"),
            path("<int:pk>/console/<slug:action>/", self.admin_site.admin_view(self.console_view),
                 name="subscriptions_service_console"),
            *super().get_urls(),
        ]  # fmt: skip

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_run_billing": request.user.has_perm("subscriptions.run_billing"),
        }
        return super().changelist_view(request, extra_context)

    def run_billing_view(self, request):
        """Staff run the billing now instead of waiting for cron: a page says what it does,
        its button runs it, and a message says what it did."""
        if not request.user.has_perm("subscriptions.run_billing"):
            raise PermissionDenied
        changelist = reverse("admin:subscriptions_service_changelist")
        if request.method == "POST":
            run = billing.services_run_billing()
            self.message_user(request, f"Billing run: {run}", messages.SUCCESS)
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "title": "Run billing now",
            "subtitle": None,
            "opts": self.opts,
            "changelist_url": changelist,
            "terminate_after_days": settings.BILLING_TERMINATE_AFTER_DAYS,
        }
        return TemplateResponse(request, "admin/subscriptions/service/run_billing.html", context)

    def add_usage_view(self, request, pk: int):
        """Staff record usage from the service's page; errors show on its form there."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        service = get_object_or_404(Service, pk=pk)
        if not self.has_change_permission(request, service):
            raise PermissionDenied
        form = self.usage_form(service, request.POST)
        if form.is_valid():
            try:
                outcome = usage_record(
                    service=service,
                    quota_code=form.cleaned_data["quota"],
                    quantity=form.cleaned_data["quantity"],
                    occurred_at=form.cleaned_data["occurred_at"],
                    idempotency_key=form.cleaned_data["idempotency_key"],
                    source=UsageRecord.Source.STAFF,
                    recorded_by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(
                    request,
                    f"Usage of {figure(outcome.record.quantity)} {outcome.record.quota_code} "
                    "recorded."
                    if outcome.created
                    else "This usage was already recorded.",
                    messages.SUCCESS,
                )
                url = reverse("admin:subscriptions_service_change", args=[service.pk])
                return HttpResponseRedirect(f"{url}#usage")
        # The service's page again, with the form's errors: shown as for a GET, since the
        # change view would read this POST as an edit of the service.
        request.method = "GET"
        response = self.change_view(request, str(service.pk), extra_context={"usage_form": form})
        if isinstance(response, TemplateResponse):
            response.status_code = 400
        return response

    def console_view(self, request, pk: int, action: str):
        """A console action: GET confirms what will happen, POST does it and says how it went."""
        service = get_object_or_404(Service.objects.select_related("customer", "package"), pk=pk)
        console_action = ACTIONS.get(action)
        if console_action is None:
            raise Http404("No such action.")
        if not self.has_change_permission(request, service):
            raise PermissionDenied
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        service_url = reverse("admin:subscriptions_service_change", args=[service.pk])
        if request.method == "POST":
            try:
                outcome = console_action_perform(
                    action=console_action, service=service, data=request.POST, user=request.user
                )
            except ValidationError as error:
                self.message_user(
                    request, f"{console_action.label}: {' '.join(error.messages)}", messages.ERROR
                )
            else:
                self.message_user(request, f"{console_action.label}: {outcome}", messages.SUCCESS)
                return HttpResponseRedirect(f"{service_url}#timeline")
            data = request.POST
        else:
            data = request.GET
        context = {
            **self.admin_site.each_context(request),
            "title": f"{console_action.label}: {service}",
            "subtitle": None,
            "opts": self.opts,
            "original": service,
            "service_url": service_url,
            "action": console_action,
            "confirmation": console_action.confirm(service, data),
        }
        return TemplateResponse(
            request,
            "admin/subscriptions/service/console_confirm.html",
            context,
            status=400 if request.method == "POST" else 200,
        )

    @admin.action(description="Retry failed provisioning, or provisioning whose worker stopped")
    def retry_provisioning(self, request, queryset):
        failed = ProvisioningJob.objects.filter(service__in=queryset).filter(
            Q(status=ProvisioningJob.Status.FAILED)
            | Q(pk__in=ProvisioningJob.objects.lost(timezone.now()))
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
        _run(self, request, queryset, lambda s: lifecycle.service_suspend(service=s),
             "Suspension queued for {count} service(s).")  # fmt: skip

    @admin.action(description="Unsuspend selected services")
    def unsuspend(self, request, queryset):
        _run(self, request, queryset, lambda s: lifecycle.service_unsuspend(service=s),
             "Unsuspension queued for {count} service(s).")  # fmt: skip

    @admin.action(description="Terminate selected services")
    def terminate(self, request, queryset):
        _run(self, request, queryset, lambda s: lifecycle.service_terminate(service=s),
             "{count} service(s) terminated.")  # fmt: skip


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only services write (timelines, money): staff read them, never add, edit or delete."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ServiceEvent)
class ServiceEventAdmin(ReadOnlyAdmin):
    """Every service's timeline at once; append-only."""

    list_display = ["created_at", "service", "kind", "message", "actor"]
    # Newest first by id, the order they were written in, which the primary key's index
    # reads a page at a time: created_at has no index of its own (every event a billing run
    # writes would pay for it), and sorted by it the list would sort the whole table.
    ordering = ["-id"]
    list_filter = ["kind"]
    search_fields = ["message", "service__package_name", "service__customer__email"]
    list_select_related = ["service", "actor"]


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(RecordAdmin):
    list_display = ["__str__", "status", "attempts", "last_error", "next_attempt_at",
                    "lease_expires_at", "created_at"]  # fmt: skip
    list_filter = ["status", "action"]
    search_fields = ["service__package_name", "service__customer__email", "idempotency_key"]
    list_select_related = ["service"]
    actions = ["retry", "complete"]
    snapshot_fields = {"payload": "Payload"}

    def record_summary(self, job: ProvisioningJob) -> list[tuple[str, object]]:
        return [
            ("Job", f"#{job.pk}"),
            ("Service", admin_link(job.service)),
            ("Customer", customer_link(job.service.customer)),
            ("Action", job.get_action_display()),
            ("Status", job.get_status_display()),
            ("Attempts", job.attempts),
            ("Next attempt", job.next_attempt_at),
            ("Last error", job.last_error),
            ("Result", job.result_message),
            ("Idempotency key", job.idempotency_key),
            ("Created", job.created_at),
        ]

    def record_tables(self, job: ProvisioningJob) -> list[RecordTable]:
        service = job.service
        return [
            RecordTable("service", "Service", ["Service", "Status", "Remote id",
                                               "Needs attention", "Next due"], [
                [admin_link(service), service.get_status_display(), service.remote_id,
                 service.needs_attention, service.next_due_at],
            ]),
        ]  # fmt: skip

    @admin.action(description="Retry selected failed jobs, or running ones whose worker stopped")
    def retry(self, request, queryset):
        _run(self, request, queryset, lambda job: jobs.provisioning_job_retry(job=job),
             "{count} job(s) queued again.")  # fmt: skip

    @admin.action(description="Mark selected waiting (manual) jobs as done")
    def complete(self, request, queryset):
        _run(self, request, queryset, lambda job: jobs.provisioning_job_complete(job=job),
             "{count} job(s) completed.")  # fmt: skip


# --- price changes ------------------------------------------------------------


def _changed_pairs(changed: str) -> list[tuple[int, str]]:
    """(option id, currency) pairs named "id:CUR,id:CUR" in a URL."""
    pairs = []
    for item in changed.split(","):
        option_id, _, currency = item.partition(":")
        if option_id.isdigit() and currency:
            pairs.append((int(option_id), currency))
    return pairs


KEEP, MOVE = "keep", "move"


@admin.register(ScheduledPriceChange)
class ScheduledPriceChangeAdmin(admin.ModelAdmin):
    list_display = ["service", "recurring_amount", "effective_at", "notice_sent_at", "applied_at",
                    "created_by"]  # fmt: skip
    list_filter = ["applied_at", "currency"]
    list_select_related = ["service", "created_by"]
    readonly_fields = [field.name for field in ScheduledPriceChange._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        confirm = path(
            "confirm/",
            self.admin_site.admin_view(self.confirm_view),
            name="subscriptions_scheduledpricechange_confirm",
        )
        return [confirm, *super().get_urls()]

    def confirm_view(self, request):
        """After a price change: how many services it reaches, and keep or move them."""
        if not request.user.has_perm("subscriptions.add_scheduledpricechange"):
            raise PermissionDenied
        package_id = request.GET.get("package", "")
        package = Package.objects.filter(pk=package_id).first() if package_id.isdigit() else None
        if package is None:
            return HttpResponseRedirect(reverse("admin:catalog_package_changelist"))
        package_url = reverse("admin:catalog_package_change", args=[package.pk])
        previews = price_changes.price_change_previews(
            package=package, changed=_changed_pairs(request.GET.get("changed", ""))
        )
        if not previews:
            return HttpResponseRedirect(package_url)
        if request.method == "POST":
            if request.POST.get("outcome") == MOVE:
                now = timezone.now()
                moved = sum(
                    price_changes.price_change_schedule(preview=preview, now=now, user=request.user)
                    for preview in previews
                )
                self.message_user(
                    request,
                    f"{moved} service(s) move to the new price at their first renewal at least "
                    f"{settings.BILLING_PRICE_CHANGE_NOTICE_DAYS} days from now; each customer "
                    "is emailed before.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, "Existing services keep their price.", messages.INFO)
            return HttpResponseRedirect(package_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Existing services and the new price",
            "subtitle": None,
            "opts": self.opts,
            "package": package,
            "package_url": package_url,
            "previews": previews,
            "notice_days": settings.BILLING_PRICE_CHANGE_NOTICE_DAYS,
            "keep": KEEP,
            "move": MOVE,
        }
        return TemplateResponse(
            request, "admin/subscriptions/scheduledpricechange/confirm.html", context
        )
