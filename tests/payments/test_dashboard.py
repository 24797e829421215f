"""The staff dashboard on the admin index: each figure from known data, in a pinned number of queries."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from payments.dashboard import revenue_history, revenue_this_and_last_month, staff_dashboard
from payments.models import Payment
from payments.services import payment_record
from subscriptions import dashboard
from subscriptions.models import Invoice, Order, ProvisioningJob, Service
from tests.factories import (
    PackageFactory,
    PackagePriceFactory,
    VariantOptionFactory,
    active_service,
    paid_services,
    place_order,
    usd,
)
from tests.support.jobs import run_all_jobs

pytestmark = pytest.mark.django_db

S = Service.Status


def eur(amount) -> Money:
    return Money(Decimal(str(amount)), "EUR")


_codes = itertools.count()


def live_service(customer) -> Service:
    """An active service of its own package (each with its own variant code)."""
    return active_service(customer, variant_code=f"dash-{next(_codes)}")


def set_service(service: Service, **fields) -> None:
    Service.objects.filter(pk=service.pk).update(**fields)


def test_mrr_counts_the_paying_services_per_currency_at_their_monthly_rate(customer):
    monthly, yearly, weekly, trial, suspended = (live_service(customer) for _ in range(5))
    set_service(monthly, recurring_amount=usd(12))
    set_service(yearly, recurring_amount=usd(120), billing_period="year", status=S.GRACE)
    set_service(weekly, recurring_amount=eur(9), recurring_amount_currency="EUR", currency="EUR",
                billing_period="week")  # fmt: skip
    set_service(trial, status=S.TRIAL)
    set_service(suspended, status=S.SUSPENDED)
    assert dashboard.mrr_by_currency() == {"EUR": eur(39), "USD": usd(22)}  # 9 × 52 / 12 = 39


def test_services_are_counted_by_status(customer):
    services = [live_service(customer) for _ in range(4)]
    set_service(services[0], status=S.TRIAL)
    set_service(services[1], status=S.GRACE)
    set_service(services[2], status=S.CANCELLED)
    assert dashboard.service_counts() == {
        S.ACTIVE: 1, S.TRIAL: 1, S.GRACE: 1, S.SUSPENDED: 0,
    }  # fmt: skip


def test_orders_and_revenue_this_month_are_set_against_last_month(customer):
    now = timezone.now()
    last_month = dashboard.month_start(now, 1) + timedelta(hours=1)
    orders = [place_order(customer) for _ in range(3)]
    Order.objects.filter(pk=orders[0].pk).update(created_at=last_month)
    Order.objects.filter(pk=orders[1].pk).update(created_at=dashboard.month_start(now, 2))
    for order in orders:
        invoice = order.invoices.get()
        payment_record(invoice=invoice, amount=invoice.total, method="bank_transfer")
    Payment.objects.filter(invoice__order=orders[0]).update(received_at=last_month)
    Payment.objects.filter(invoice__order=orders[1]).update(received_at=last_month)

    now = timezone.now()
    assert dashboard.orders_this_and_last_month(now) == dashboard.ThisAndLast(1, 1)
    (revenue,) = revenue_this_and_last_month(now)
    total = orders[2].invoices.get().total
    assert (revenue.currency, revenue.this_month, revenue.last_month) == ("USD", total, total * 2)


def test_money_paid_with_account_credit_is_not_counted_again_as_revenue(customer):
    order = place_order(customer)
    invoice = order.invoices.get()
    payment_record(invoice=invoice, amount=usd(1), method=Payment.Method.ACCOUNT_CREDIT)
    assert revenue_this_and_last_month(timezone.now()) == []


def test_churn_is_the_share_of_services_live_at_the_month_start_that_ended_since(customer):
    now = timezone.now()
    before = dashboard.month_start(now) - timedelta(days=3)
    services = [live_service(customer) for _ in range(5)]
    for service in services[:4]:
        set_service(service, created_at=before)
    set_service(services[0], status=S.CANCELLED, cancelled_at=now)
    set_service(services[1], status=S.TERMINATED, terminated_at=now)
    set_service(services[2], status=S.CANCELLED, cancelled_at=before)  # ended last month
    # services[4] was bought this month: not live at its start.
    set_service(services[4], status=S.CANCELLED, cancelled_at=now)
    churn = dashboard.churn_this_month(now)
    assert (churn.ended, churn.live_at_start, churn.rate) == (2, 3, Decimal("66.7"))


def test_overdue_invoices_are_counted_and_totalled_per_currency(customer):
    now = timezone.now()
    due, later, paid = (place_order(customer).invoices.get() for _ in range(3))
    Invoice.objects.filter(pk__in=[due.pk, paid.pk]).update(due_at=now - timedelta(days=2))
    Invoice.objects.filter(pk=later.pk).update(due_at=now + timedelta(days=2))
    payment_record(invoice=paid, amount=paid.total, method="bank_transfer")
    assert dashboard.overdue_invoices(now) == dashboard.Overdue(1, [due.total])


def test_the_history_has_revenue_and_mrr_for_each_of_the_last_twelve_months(customer):
    now = timezone.now()
    old, new = live_service(customer), live_service(customer)
    set_service(old, recurring_amount=usd(12), activated_at=dashboard.month_start(now, 3))
    set_service(new, recurring_amount=usd(30), activated_at=now - timedelta(seconds=1))
    Payment.objects.update(received_at=dashboard.month_start(now, 11) + timedelta(hours=1))

    mrr = dashboard.mrr_history(now)["USD"]
    assert len(mrr) == 12
    assert mrr[:8] == [usd(0)] * 8
    assert mrr[8:11] == [usd(12)] * 3  # from the end of the month it started in
    assert mrr[11] == usd(42)
    revenue = revenue_history(now)["USD"]
    paid = sum((p.amount for p in Payment.objects.all()), usd(0))
    assert revenue == [paid] + [usd(0)] * 11


def test_the_attention_queue_links_each_item_to_its_record(customer, settings):
    now = timezone.now()
    failed, flagged, waiting = (live_service(customer) for _ in range(3))
    job = ProvisioningJob.objects.create(
        service=failed, action="suspend", status="failed", last_error="refused"
    )
    set_service(flagged, needs_attention=True, provisioning_error="no answer")
    ProvisioningJob.objects.create(
        service=waiting, action="unsuspend", status="waiting", result_message="do it by hand"
    )
    overdue = place_order(customer).invoices.get()
    Invoice.objects.filter(pk=overdue.pk).update(due_at=now - timedelta(days=9))
    overdue_service = overdue.order.services.get()
    set_service(overdue_service, grace_ends_at=now - timedelta(days=2))
    overdue.lines.update(service=overdue_service)
    unmatched = PackageFactory(name="Unpriced Region")
    PackagePriceFactory(package=unmatched, name="Monthly")
    unmatched.variants.add(VariantOptionFactory(name="Mars").variant)

    items = {item.kind: item for item in dashboard.needs_attention(now)}
    assert items["Failed provisioning"].url == reverse(
        "admin:subscriptions_provisioningjob_change", args=[job.pk]
    )
    assert items["Service needs attention"].url.endswith(f"/service/{flagged.pk}/change/")
    assert items["Waiting for staff"].url.endswith(f"/service/{waiting.pk}/change/")
    assert items["Overdue past grace"].url.endswith(f"/invoice/{overdue.pk}/change/")
    assert items["Unmatched variant prices"].url.endswith(f"/package/{unmatched.pk}/change/")
    assert "Unpriced Region" in items["Unmatched variant prices"].text


def dashboard_queries() -> int:
    with CaptureQueriesContext(connection) as queries:
        staff_dashboard()
    return len(queries)


# MRR, counts, orders, revenue, churn, overdue, the two histories: one query each; the
# attention queue: failed jobs, flagged services, waiting jobs, invoices past grace, and
# five for packages with their prices, variants, options and option prices.
DASHBOARD_QUERIES = 17


def test_the_dashboard_reads_the_same_number_of_queries_for_1_and_10_services(customer):
    paid_services(customer, quantity=1, allow_quantity="multiple")
    run_all_jobs()
    assert dashboard_queries() == DASHBOARD_QUERIES
    paid_services(customer, quantity=9, allow_quantity="multiple", variant_code="region2")
    run_all_jobs()
    assert Service.objects.count() == 10
    assert dashboard_queries() == DASHBOARD_QUERIES


def test_the_admin_index_shows_the_figures_the_chart_and_the_queue(staff_client, customer):
    service = live_service(customer)
    set_service(service, needs_attention=True, provisioning_error="no answer")
    html = staff_client.get(reverse("admin:index")).content.decode()
    figures = re.search(r'<section[^>]*id="store-dashboard".*?</section>', html, re.S).group(0)
    assert str(dashboard.mrr_by_currency()["USD"]) in figures
    assert re.search(r'id="chart-USD".*?<svg', figures, re.S)
    assert len(re.findall(r'<rect class="chart-bar"', figures)) == 12
    assert "style=" not in figures and "<script" not in figures  # the CSP allows neither
    queue = re.search(r'<section[^>]*id="needs-attention".*?</section>', html, re.S).group(0)
    assert f"/service/{service.pk}/change/" in queue
    assert "app-subscriptions" in html  # the app list is still there below


def test_staff_without_access_to_services_see_the_plain_index(client, django_user_model):
    clerk = django_user_model.objects.create_user(username="clerk", is_staff=True)
    client.force_login(clerk)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "store-dashboard" not in response.content.decode()
