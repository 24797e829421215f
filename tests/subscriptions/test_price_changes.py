"""Staff change an option's price: the preview, and keeping or moving existing services."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from django.urls import reverse
from djmoney.money import Money

from subscriptions.models import ScheduledPriceChange
from subscriptions.periods import monthly_rate
from subscriptions.price_changes import (
    price_change_notices_due,
    price_change_preview,
    scheduled_price_change_apply,
    scheduled_price_changes_due,
    service_price_for_period,
)
from tests.factories import paid_services, usd
from tests.support.admin_forms import submit
from tests.support.jobs import run_all_jobs, send_queued_notifications

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("amount", "interval", "period", "monthly"),
    [
        ("120", 1, "year", Fraction(10)),
        ("12", 1, "week", Fraction(52)),
        ("1", 1, "day", Fraction(365, 12)),
        ("30", 3, "month", Fraction(10)),
        ("10", 1, "month", Fraction(10)),
    ],
)
def test_a_recurring_amount_is_normalized_to_a_month_exactly(amount, interval, period, monthly):
    assert monthly_rate(Decimal(amount), interval, period) == monthly


def services_of_one_package(customer):
    services = paid_services(customer, quantity=2, allow_quantity="multiple")
    run_all_jobs()
    for service in services:
        service.refresh_from_db()
    return services[0].package, services


def change_usd_price(staff_client, package, amount: str):
    url = reverse("admin:catalog_package_change", args=[package.pk])
    index = list(package.prices.order_by("sort_order", "id")).index(
        package.prices.get(name="Monthly")
    )
    return submit(staff_client, url, {f"prices-{index}-price_USD": amount}, form_id="package_form")


@pytest.fixture
def shop(customer):
    package, services = services_of_one_package(customer)
    return package, services


def test_saving_a_new_amount_used_by_services_asks_what_they_should_do(staff_client, shop):
    package, services = shop
    old = services[0].package_amount
    response = change_usd_price(staff_client, package, str(old.amount + 5))
    assert response.status_code == 302
    assert "/scheduledpricechange/confirm/" in response["Location"]

    page = staff_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    (preview,) = page.context["previews"]
    assert preview.count == 2
    # Two monthly services, each 5 USD more: 10 USD more a month.
    assert preview.mrr_change_display == usd("10.00")
    assert "Existing services keep their price" in html
    assert 'value="keep" checked' in html


def test_existing_services_keep_their_price_by_default(staff_client, shop):
    package, services = shop
    response = change_usd_price(staff_client, package, "99.00")
    confirm = staff_client.post(response["Location"], {"outcome": "keep"})
    assert confirm.status_code == 302
    assert not ScheduledPriceChange.objects.exists()
    for service in services:
        amount = service.recurring_amount
        service.refresh_from_db()
        assert service.recurring_amount == amount
        assert service_price_for_period(service, service.current_period_end) == amount


def test_moved_services_pay_the_new_price_from_a_renewal_after_the_notice(
    staff_client, shop, settings, mailoutbox
):
    settings.BILLING_PRICE_CHANGE_NOTICE_DAYS = 10
    package, services = shop
    service = services[0]
    variant_part = service.recurring_amount - service.package_amount
    response = change_usd_price(staff_client, package, "25.00")
    confirm = staff_client.post(response["Location"], {"outcome": "move"})
    assert confirm.status_code == 302
    assert ScheduledPriceChange.objects.count() == 2
    change = ScheduledPriceChange.objects.get(service=service)
    assert change.recurring_amount == usd("25.00") + variant_part
    assert change.effective_at >= change.created_at + timedelta(days=10)
    # The period running now keeps the old price; the first at the new price charges it.
    assert service_price_for_period(service, service.current_period_start) == (
        service.recurring_amount
    )
    assert service_price_for_period(service, change.effective_at) == change.recurring_amount

    # The notice goes out once, within the notice period before the change.
    too_early = change.effective_at - timedelta(days=11)
    assert price_change_notices_due(too_early) == 0
    # Each service renews at its own moment (activated a few milliseconds apart).
    last = ScheduledPriceChange.objects.latest("effective_at").effective_at
    notice_time = last - timedelta(days=10)
    assert price_change_notices_due(notice_time) == 2
    assert price_change_notices_due(notice_time) == 0
    send_queued_notifications()
    notices = [mail for mail in mailoutbox if mail.subject.startswith("New price from")]
    assert len(notices) == 2
    assert all(f"{change.recurring_amount.amount}" in notice.body for notice in notices)

    assert list(scheduled_price_changes_due(now=too_early)) == []
    due = list(scheduled_price_changes_due(now=change.effective_at))
    assert change in due
    applied = scheduled_price_change_apply(change=change, now=change.effective_at)
    assert applied.recurring_amount == change.recurring_amount
    assert applied.package_amount == usd("25.00")
    assert change not in scheduled_price_changes_due(now=change.effective_at)


def test_a_price_change_no_service_pays_goes_straight_back_to_the_package(staff_client, shop):
    package, services = shop
    response = change_usd_price(staff_client, package, str(services[0].package_amount.amount))
    assert response.status_code == 302
    assert "confirm" not in response["Location"]


def test_the_preview_counts_only_services_paying_another_amount_per_currency(shop):
    package, services = shop
    option = package.prices.get(name="Monthly")
    assert price_change_preview(option=option, currency="USD").count == 0
    amount = option.amounts.get(price_currency="USD")
    amount.price = amount.price + Money("1.00", "USD")
    amount.save()
    option = package.prices.prefetch_related("amounts").get(pk=option.pk)
    preview = price_change_preview(option=option, currency="USD")
    assert preview.count == 2
    assert preview.mrr_change == Fraction(2)
    assert price_change_preview(option=option, currency="EUR").count == 0


@pytest.mark.parametrize("query", ["", "?package=abc", "?package=999999&changed=1:USD",
                                   "?package=1&changed=x:y,:,1"])  # fmt: skip
def test_a_malformed_confirm_address_leads_back_without_an_error(staff_client, query):
    url = reverse("admin:subscriptions_scheduledpricechange_confirm") + query
    assert staff_client.get(url).status_code == 302
    assert staff_client.post(url, {"outcome": "move"}).status_code == 302
