from __future__ import annotations

import json
import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordChangeView
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from catalog.currency import format_money, get_currency
from catalog.errors import ErrorCode
from catalog.models import Package
from catalog.relations import related_objects
from catalog.selection import parse_id, parse_selection
from provisioning.models import ProviderInstance
from provisioning.plugins.webhook import SIGNATURE_HEADER, verify

from . import accounts, lifecycle, ordering, plan_changes, quotes, selectors
from .forms import (
    CancelServiceForm,
    CloseAccountForm,
    EmailChangeForm,
    ProfileForm,
    ProviderUsageForm,
    SignUpForm,
)
from .models import Invoice, PlanChange, Service, UsageRecord
from .quotas import service_usage
from .throttling import sign_up_attempt_allowed
from .usage import usage_record


def _selection_fields(data) -> list[tuple[str, str]]:
    """The order choices to carry from the package page's GET form into the POST."""
    fields = []
    for key in data:
        if key in ("price", "quantity") or key.startswith("variant_"):
            fields.extend((key, value) for value in data.getlist(key))
    return fields


@login_required
def checkout(request, catalog_slug: str, package_slug: str):
    package = selectors.package_for_checkout_or_404(
        catalog_slug=catalog_slug, package_slug=package_slug
    )
    posted = request.method == "POST"
    data = request.POST if posted else request.GET
    currency = get_currency(request)
    price, options, quantity = selectors.selection_from_data(package=package, data=data)
    form = quotes.package_plugin(package).checkout_form(
        data=request.POST if posted else None, prefix="checkout"
    )
    quote, errors = None, []
    if posted and form.is_valid():
        # The order service checks everything again under its locks.
        try:
            order = ordering.order_place(
                customer=request.user,
                package=package,
                price=price,
                variant_options=options,
                quantity=quantity,
                currency=currency,
                checkout_fields=form.cleaned_data,
                checkout_token=parse_selection(request.POST).checkout_token,
            )
        except ValidationError as error:
            errors = error.messages
        else:
            messages.success(request, f"Thank you: order {order.number} is placed.")
            # order_place hands the order over with its invoice read.
            unpaid = next(
                (
                    i
                    for i in related_objects(order, "invoices")
                    if i.status == Invoice.Status.UNPAID
                ),
                None,
            )
            if unpaid is not None:
                # Straight to paying it (the payments app's page, found by URL name).
                return redirect("payments:invoice", pk=unpaid.pk)
            return redirect("subscriptions:order", pk=order.pk)
    if not errors:
        try:
            quote = quotes.order_quote(
                package=package,
                price=price,
                variant_options=options,
                quantity=quantity,
                currency=currency,
                customer=request.user,
            )
        except ValidationError as error:
            errors = error.messages
    return render(
        request,
        "subscriptions/checkout.html",
        {
            "package": package,
            "quote": quote,
            "errors": errors,
            "form": form,
            "currency": currency,
            "selection": _selection_fields(data),
            "checkout_token": parse_selection(request.POST).checkout_token or uuid.uuid4().hex,
        },
        status=409 if posted and errors else 200,
    )


@login_required
def account(request):
    customer = request.user
    return render(
        request,
        "subscriptions/account.html",
        {
            "orders": selectors.customer_orders(customer=customer)[:50],
            "services": selectors.customer_services(customer=customer)[:50],
            "invoices": selectors.customer_invoices(customer=customer)[:50],
        },
    )


@login_required
def order_detail(request, pk: int):
    order = selectors.customer_order_or_404(customer=request.user, pk=pk)
    return render(request, "subscriptions/order.html", {"order": order})


@login_required
@require_POST
def order_cancel(request, pk: int):
    order = selectors.customer_order_or_404(customer=request.user, pk=pk)
    try:
        ordering.order_cancel(order=order)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Order {order.number} is cancelled.")
    return redirect("subscriptions:order", pk=order.pk)


@login_required
def service_detail(request, pk: int):
    service = selectors.customer_service_or_404(customer=request.user, pk=pk)
    return render(
        request,
        "subscriptions/service.html",
        {"service": service, "cancel_form": CancelServiceForm(), **_service_context(service)},
    )


def _service_context(service: Service) -> dict:
    now = timezone.now()
    scheduled = selectors.service_scheduled_change(service=service)
    changeable = service.package_change_refusal(now) is None and scheduled is None
    usage_since, usage = service_usage(service, now)
    return {
        "state": selectors.service_state(service=service),
        "usage": usage,
        "usage_since": usage_since,
        "can_cancel": service.cancellation_refusal() is None,
        "can_undo_cancellation": service.is_live
        and service.cancel_mode == Service.CancelMode.PERIOD_END
        and service.cancel_at is not None
        and service.cancel_at > now,
        "scheduled_change": scheduled,
        "change_targets": selectors.service_change_targets(service=service) if changeable else [],
    }


# A plan-change preview is good for this long; then the customer looks at fresh figures.


def _target_from(data) -> Package | None:
    # Any id is passed on: the service refuses what is not a target, with its message.
    target_id = parse_id(data.get("package", ""))
    return Package.objects.filter(pk=target_id).first() if target_id else None


def _change_refused(request, service: Service, error: ValidationError):
    return render(
        request,
        "subscriptions/service.html",
        {
            "service": service,
            "cancel_form": CancelServiceForm(),
            "change_errors": error.messages,
            **_service_context(service),
        },
        status=409,
    )


def _change_preview_page(request, service: Service, target: Package | None, notice: str = ""):
    """The confirm page: what the change costs, from the function that will bill it."""
    try:
        preview = plan_changes.service_change_preview(
            service=service, customer=request.user, package=target, now=timezone.now()
        )
    except ValidationError as error:
        return _change_refused(request, service, error)
    return render(
        request,
        "subscriptions/plan_change_confirm.html",
        {
            "service": service,
            "preview": preview,
            "notice": notice,
            "token": plan_changes.preview_token(preview),
        },
        status=409 if notice else 200,
    )


@login_required
def service_change_package(request, pk: int):
    """GET: the confirm page of a change. POST (from it): the change, billed as previewed."""
    service = selectors.customer_service_or_404(customer=request.user, pk=pk)
    if request.method != "POST":
        return _change_preview_page(request, service, _target_from(request.GET))
    target = _target_from(request.POST)
    again = "Review the change, then confirm it."
    try:
        confirmed = plan_changes.preview_token_read(request.POST.get("preview", ""), target)
    except signing.SignatureExpired:
        return _change_preview_page(
            request, service, target, "That preview is over 30 minutes old; here it is again."
        )
    except signing.BadSignature:
        return _change_preview_page(request, service, target, again)
    try:
        change = plan_changes.service_change_package(
            service=service, customer=request.user, package=target, confirmed=confirmed
        )
    except ValidationError as error:
        if getattr(error, "code", None) == ErrorCode.PREVIEW_OUTDATED:
            return _change_preview_page(request, service, target, " ".join(error.messages))
        return _change_refused(request, service, error)
    if change.direction == PlanChange.Direction.UPGRADE:
        charged = (
            f" A prorated {format_money(change.charge)} is invoiced."
            if change.charge.amount
            else ""
        )
        messages.success(request, f"Your service is now {change.to_package_name}.{charged}")
    else:
        messages.success(
            request,
            f"Your service moves to {change.to_package_name} on {change.effective_at:%Y-%m-%d}.",
        )
    return redirect("subscriptions:service", pk=service.pk)


@login_required
def service_cancel(request, pk: int):
    """GET: the confirm page for the chosen mode. POST (from it): the cancellation."""
    service = selectors.customer_service_or_404(customer=request.user, pk=pk)
    posted = request.method == "POST"
    form = CancelServiceForm(request.POST if posted else request.GET)
    if not form.is_valid():
        return render(
            request,
            "subscriptions/service.html",
            {"service": service, "cancel_form": form, **_service_context(service)},
            status=400,
        )
    mode = form.cleaned_data["mode"]
    if not posted:
        refusal = service.cancellation_refusal()
        if refusal is not None:
            messages.error(request, refusal.message)
            return redirect("subscriptions:service", pk=service.pk)
        return render(
            request,
            "subscriptions/service_cancel_confirm.html",
            {
                "service": service,
                "mode": mode,
                "immediate": mode == Service.CancelMode.IMMEDIATE,
                "ends_at": service.trial_ends_at
                if service.status == Service.Status.TRIAL
                else service.current_period_end,
            },
        )
    try:
        service = lifecycle.service_request_cancellation(
            service=service, customer=request.user, mode=mode
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        if service.status == Service.Status.CANCELLED:
            messages.success(request, "Your service is cancelled.")
        else:
            messages.success(request, f"Your service will end on {service.cancel_at:%Y-%m-%d}.")
    return redirect("subscriptions:service", pk=service.pk)


@login_required
@require_POST
def service_cancel_undo(request, pk: int):
    service = selectors.customer_service_or_404(customer=request.user, pk=pk)
    try:
        lifecycle.service_cancellation_undo(service=service, customer=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Your service carries on; it is no longer set to end.")
    return redirect("subscriptions:service", pk=service.pk)


@login_required
@require_POST
def service_drop_change(request, pk: int):
    service = selectors.customer_service_or_404(customer=request.user, pk=pk)
    change = selectors.service_scheduled_change(service=service)
    if change is None:
        messages.error(request, "No change of package is scheduled.")
    else:
        plan_changes.plan_change_cancel(change=change, customer=request.user)
        messages.success(request, f"Your service stays {service.package_name}.")
    return redirect("subscriptions:service", pk=service.pk)


@login_required
def account_profile(request):
    form = ProfileForm(
        request.POST or None, instance=accounts.customer_profile(customer=request.user)
    )
    if request.method == "POST" and form.is_valid():
        accounts.customer_profile_update(
            customer=request.user, **{name: form.cleaned_data[name] for name in form.fields}
        )
        messages.success(request, "Your billing details are saved; new invoices show them.")
        return redirect("subscriptions:account")
    return render(request, "subscriptions/account_profile.html", {"form": form})


@login_required
def account_email(request):
    form = EmailChangeForm(request.POST or None, customer=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            accounts.email_change_request(
                customer=request.user,
                new_email=form.cleaned_data["email"],
                site_url=request.build_absolute_uri("/"),
            )
        except ValidationError as error:
            form.add_error("email", error.messages)
        else:
            messages.success(
                request,
                f"We sent a link to {form.cleaned_data['email']}. Your address changes when "
                "you open it; until then you sign in with this one.",
            )
            return redirect("subscriptions:account")
    return render(request, "subscriptions/account_email.html", {"form": form})


def email_confirm(request, token: str):
    """The link sent to a new address: opening it changes the account's address."""
    try:
        customer = accounts.email_change_confirm(token=token)
    except ValidationError as error:
        return render(
            request, "subscriptions/email_confirm.html", {"errors": error.messages}, status=400
        )
    if request.user.is_authenticated and request.user.pk == customer.pk:
        messages.success(request, f"Your email address is now {customer.email}.")
        return redirect("subscriptions:account")
    return render(request, "subscriptions/email_confirm.html", {"email": customer.email})


class AccountPasswordChangeView(PasswordChangeView):
    template_name = "subscriptions/account_password.html"
    success_url = reverse_lazy("subscriptions:account")

    def form_valid(self, form):
        messages.success(self.request, "Your password is changed.")
        return super().form_valid(form)


@login_required
def account_close(request):
    refusal = ordering.account_close_refusal(customer=request.user)
    form = CloseAccountForm(request.POST or None, customer=request.user)
    if request.method == "POST" and refusal is None and form.is_valid():
        try:
            ordering.customer_close_account(customer=request.user)
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            logout(request)
            messages.success(
                request,
                "Your account is closed. Your services end on the dates shown before; "
                "we keep your orders and invoices, as the law requires.",
            )
            return redirect("storefront:index")
    now = timezone.now()
    services = [
        (service, service.cancel_at or service.paid_until(now))
        for service in selectors.customer_services(customer=request.user).live()
    ]
    return render(
        request,
        "subscriptions/account_close.html",
        {"form": form, "refusal": refusal, "services": services},
        status=409 if refusal is not None and request.method == "POST" else 200,
    )


def signup(request):
    if request.user.is_authenticated:
        return redirect("subscriptions:account")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and not sign_up_attempt_allowed(request):
        context = {"form": SignUpForm(), "throttled_minutes": settings.SIGNUP_THROTTLE_MINUTES}
        return render(request, "registration/signup.html", context, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            user = accounts.customer_sign_up(
                email=form.cleaned_data["email"], password=form.cleaned_data["password1"]
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            login(request, user, backend="subscriptions.backends.EmailBackend")
            messages.success(request, "Welcome! Your account is ready.")
            next_url = request.POST.get("next", "")
            if next_url and url_has_allowed_host_and_scheme(
                next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            ):
                return redirect(next_url)
            return redirect("subscriptions:account")
    return render(
        request, "registration/signup.html", {"form": form, "next": request.GET.get("next", "")}
    )


# A usage report is a few hundred bytes; anything far larger is not one.
USAGE_BODY_LIMIT = 16 * 1024


def _usage_answer(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"status": code, "message": message, **extra}, status=status)


@csrf_exempt
@require_POST
def provider_usage(request, instance_pk: int):
    """A provider plugin reports usage of one of its services' quotas.

    The body is JSON signed like the webhook plugin's events, with the
    instance's signing secret: `X-Billing-Signature: t=<unix time>,v1=<hex
    HMAC-SHA256 of "<t>.<body>">`, refused outside the replay window. A report
    sent again (a retry, a replay inside the window) is answered with the
    record already written, never counted twice.
    """
    instance = ProviderInstance.objects.filter(pk=instance_pk).first()
    secret = getattr(instance, "signing_secret", "") if instance is not None else ""
    if not secret:
        return _usage_answer(404, "unknown_provider", "No provider instance takes usage here.")
    body = request.body  # Django refuses one past DATA_UPLOAD_MAX_MEMORY_SIZE with a 400
    if len(body) > USAGE_BODY_LIMIT:
        return _usage_answer(413, "too_large", "A usage report is at most 16 KB.")
    if not verify(secret, body, request.headers.get(SIGNATURE_HEADER, "")):
        return _usage_answer(
            401, "bad_signature", "The signature is missing, wrong or outside the replay window."
        )
    try:
        data = json.loads(body, parse_float=Decimal)
    except ValueError:  # also a body that is not UTF-8
        return _usage_answer(400, "bad_json", "The body must be a JSON object.")
    if not isinstance(data, dict):
        return _usage_answer(400, "bad_json", "The body must be a JSON object.")
    fields = {}
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            return _usage_answer(
                400, ErrorCode.USAGE_INVALID, f"{name}: give a string or a number."
            )
        fields[name] = str(value)
    form = ProviderUsageForm(fields)
    if not form.is_valid():
        return _usage_answer(400, ErrorCode.USAGE_INVALID, form.error_text())
    service = Service.objects.filter(
        uuid=form.cleaned_data["service"], provider_instance_id=instance.pk
    ).first()
    if service is None:
        return _usage_answer(404, "unknown_service", "This provider has no such service.")
    try:
        outcome = usage_record(
            service=service,
            quota_code=form.cleaned_data["quota"],
            quantity=form.cleaned_data["quantity"],
            occurred_at=form.cleaned_data["occurred_at"],
            idempotency_key=form.cleaned_data["idempotency_key"],
            source=UsageRecord.Source.PROVIDER,
        )
    except ValidationError as error:
        code = getattr(error, "code", None) or ErrorCode.USAGE_INVALID
        status = 409 if code == ErrorCode.USAGE_KEY_REUSED else 400
        return _usage_answer(status, str(code), " ".join(error.messages))
    return _usage_answer(
        201 if outcome.created else 200,
        "recorded" if outcome.created else "duplicate",
        "Usage recorded." if outcome.created else "This usage was already recorded.",
        id=outcome.record.pk,
    )
