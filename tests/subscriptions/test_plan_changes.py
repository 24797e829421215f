"""Plan changes: an upgrade applies now with a prorated charge, a downgrade at period end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from djmoney.money import Money

from catalog.models import Package
from subscriptions.billing import services_run_billing
from subscriptions.lifecycle import service_request_cancellation
from subscriptions.models import Invoice, PlanChange, ProvisioningJob, Service
from subscriptions.plan_changes import plan_change_cancel, prorated_charge, service_change_package
from tests.factories import (
    PackageFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    active_service,
    target_of,
    usd,
    with_period,
)
from tests.support.pages import confirm_plan_change

pytestmark = pytest.mark.django_db


def written() -> tuple[int, ...]:
    return (
        PlanChange.objects.count(),
        Invoice.objects.count(),
        ProvisioningJob.objects.count(),
        *Package.objects.order_by("pk").values_list("stock_qty", flat=True),
    )


def test_the_prorated_charge_is_the_difference_for_the_rest_of_the_period():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    charge = prorated_charge(
        difference=usd(10), start=start, end=end, now=start + timedelta(days=10)
    )
    assert charge == usd("6.67")  # 10 × 20/30
    half = prorated_charge(
        difference=usd("0.05"), start=start, end=end, now=start + timedelta(days=15)
    )
    assert half == usd("0.03")  # 0.025 rounds half up, not to even
    assert prorated_charge(difference=usd(10), start=start, end=end, now=end) == usd(0)
    assert prorated_charge(difference=Money(9, "EUR"), start=start, end=end, now=start) == Money(
        9, "EUR"
    )


def test_an_upgrade_applies_now_and_invoices_the_prorated_difference(customer):
    service = with_period(active_service(customer, tier=2))
    target = target_of(service.package, tier=3, price="20")
    now = service.current_period_start + timedelta(days=10)

    change = service_change_package(service=service, customer=customer, package=target, now=now)

    service.refresh_from_db()
    assert change.direction == PlanChange.Direction.UPGRADE
    assert change.status == PlanChange.Status.APPLIED
    assert service.package == target and service.package_name == target.name
    # Monthly 10 → 20; the Europe option's 2 stays as sold.
    assert service.recurring_amount == usd(22)
    assert change.charge == usd("6.67")
    invoice = change.invoice
    assert (invoice.kind, invoice.total, invoice.service) == ("plan_change", usd("6.67"), service)
    job = service.jobs.get(action="change_package")
    assert job.payload["to_package"] == target.name


def test_the_renewal_after_an_upgrade_bills_the_new_amount(customer):
    service = with_period(active_service(customer, tier=2))
    target = target_of(service.package, tier=3, price="20")
    service_change_package(service=service, customer=customer, package=target)

    services_run_billing(now=service.current_period_end)

    renewal = Invoice.objects.of_service(service.pk).get(kind="renewal")
    assert renewal.total == usd(22)


def test_a_downgrade_waits_for_the_period_end_then_applies(customer):
    service = with_period(active_service(customer, tier=2))
    source = service.package
    target = target_of(source, tier=1, price="5")

    change = service_change_package(service=service, customer=customer, package=target)

    service.refresh_from_db()
    assert change.status == PlanChange.Status.SCHEDULED
    assert change.effective_at == service.current_period_end
    assert (change.charge, change.invoice) == (usd(0), None)
    assert service.package == source
    assert not service.jobs.filter(action="change_package").exists()

    assert (
        services_run_billing(now=service.current_period_end - timedelta(seconds=1)).plan_changes
        == 0
    )
    run = services_run_billing(now=service.current_period_end)

    service.refresh_from_db()
    change.refresh_from_db()
    assert run.plan_changes == 1
    assert change.status == PlanChange.Status.APPLIED
    assert service.package == target and service.recurring_amount == usd(7)
    assert service.jobs.filter(action="change_package", status="queued").exists()
    assert Invoice.objects.of_service(service.pk).get(kind="renewal").total == usd(7)


def test_an_equal_tier_is_a_downgrade(customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=2, price="30")
    change = service_change_package(service=service, customer=customer, package=target)
    assert change.direction == PlanChange.Direction.DOWNGRADE


def test_the_change_takes_the_targets_stock_and_gives_back_the_old_unit(customer):
    service = active_service(customer, tier=2, stock_qty=5)
    source = service.package
    target = target_of(source, tier=3, stock_qty=3)
    source.refresh_from_db()
    assert source.stock_qty == 4

    service_change_package(service=service, customer=customer, package=target)

    source.refresh_from_db()
    target.refresh_from_db()
    service.refresh_from_db()
    assert (source.stock_qty, target.stock_qty) == (5, 2)
    assert service.took_stock


def test_a_scheduled_downgrade_holds_its_unit_until_the_service_is_cancelled(customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=1, stock_qty=1)
    change = service_change_package(service=service, customer=customer, package=target)
    target.refresh_from_db()
    assert target.stock_qty == 0

    service_request_cancellation(service=service, customer=customer, mode="immediate")

    target.refresh_from_db()
    change.refresh_from_db()
    assert target.stock_qty == 1
    assert change.status == PlanChange.Status.CANCELLED


def test_a_customer_may_drop_a_scheduled_downgrade(customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=1, stock_qty=1)
    change = service_change_package(service=service, customer=customer, package=target)

    plan_change_cancel(change=change, customer=customer)

    target.refresh_from_db()
    assert target.stock_qty == 1
    assert services_run_billing(now=service.current_period_end).plan_changes == 0


def refused(code, service, customer, package) -> None:
    before = written()
    with pytest.raises(ValidationError) as refusal:
        service_change_package(service=service, customer=customer, package=package)
    assert refusal.value.code == code
    assert written() == before


def test_it_refuses_a_package_that_is_not_a_scaling_target(customer):
    service = active_service(customer, tier=2)
    stranger = PackageFactory(tier=3)
    PackagePriceAmountFactory(
        package_price=PackagePriceFactory(package=stranger, name="Monthly"), price=usd(20)
    )
    refused("not_a_target", service, customer, stranger)


def test_it_refuses_a_retired_target(customer):
    service = active_service(customer, tier=2)
    refused("retired", service, customer, target_of(service.package, tier=3, retired=True))


def test_it_refuses_a_sold_out_target_unless_it_oversells(customer):
    service = active_service(customer, tier=2)
    refused("sold_out", service, customer, target_of(service.package, tier=3, stock_qty=0))
    oversold = target_of(service.package, tier=3, stock_qty=0, oversell_enabled=True)
    change = service_change_package(service=service, customer=customer, package=oversold)
    assert not change.took_stock


def test_it_refuses_a_target_without_a_pricing_option_of_the_same_name(customer):
    service = active_service(customer, tier=2)
    refused("no_same_price", service, customer, target_of(service.package, tier=3, name="Yearly"))


def test_it_refuses_a_target_not_priced_in_the_services_currency(customer):
    service = active_service(customer, tier=2)
    Service.objects.filter(pk=service.pk).update(
        currency="EUR", recurring_amount=Decimal("11"), recurring_amount_currency="EUR"
    )
    service.refresh_from_db()
    refused("price_not_in_currency", service, customer, target_of(service.package, tier=3))


def test_it_refuses_another_customers_service(customer, other_customer):
    service = active_service(customer, tier=2)
    refused("not_owner", service, other_customer, target_of(service.package, tier=3))


def test_it_refuses_a_second_change_while_one_is_scheduled(customer):
    service = active_service(customer, tier=2)
    service_change_package(
        service=service, customer=customer, package=target_of(service.package, tier=1)
    )
    refused("change_scheduled", service, customer, target_of(service.package, tier=3))


def test_it_refuses_a_service_that_is_not_active(customer):
    service = active_service(customer, tier=2, grace_period=3)
    services_run_billing(now=service.current_period_end)
    service.refresh_from_db()
    assert service.status == Service.Status.GRACE
    refused("bad_status", service, customer, target_of(service.package, tier=3))


# --- the service page -----------------------------------------------------------


def test_the_service_page_offers_the_targets_a_customer_may_move_to(customer_client, customer):
    service = active_service(customer, tier=2)
    open_target = target_of(service.package, tier=3)
    retired = target_of(service.package, tier=3, retired=True)
    other_name = target_of(service.package, tier=3, name="Yearly")

    page = customer_client.get(reverse("subscriptions:service", args=[service.pk]))

    html = page.content.decode()
    assert 'id="change-package"' in html
    assert f'value="{open_target.pk}"' in html
    assert f'value="{retired.pk}"' not in html
    assert f'value="{other_name.pk}"' not in html


def test_the_service_page_offers_no_target_the_server_would_refuse(customer_client, customer):
    # Found by a customer: a same-name option billed over another period was
    # offered on the page, then refused with 409 when chosen.
    service = active_service(customer, tier=2)
    quarterly = target_of(service.package, tier=3)
    quarterly.prices.update(time_interval=3)

    page = customer_client.get(reverse("subscriptions:service", args=[service.pk]))
    response = customer_client.post(
        reverse("subscriptions:service_change_package", args=[service.pk]),
        {"package": quarterly.pk},
    )

    assert f'value="{quarterly.pk}"' not in page.content.decode()
    assert response.status_code == 409
    assert "over another period" in response.content.decode()


def test_a_customer_upgrades_from_the_service_page(customer_client, customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3)
    _, response = confirm_plan_change(customer_client, service, target, follow=True)

    assert response.redirect_chain[-1][0] == reverse("subscriptions:service", args=[service.pk])
    assert f"Your service is now {target.name}" in response.content.decode()
    service.refresh_from_db()
    assert service.package == target


def test_a_refused_change_says_why_on_the_page_and_writes_nothing(customer_client, customer):
    service = active_service(customer, tier=2)
    retired = target_of(service.package, tier=3, retired=True)
    before = written()

    response = customer_client.post(
        reverse("subscriptions:service_change_package", args=[service.pk]),
        {"package": retired.pk},
    )

    assert response.status_code == 409
    assert "no longer sold" in response.content.decode()
    assert written() == before


def test_a_posted_garbage_target_is_refused_clearly(customer_client, customer):
    service = active_service(customer, tier=2)
    response = customer_client.post(
        reverse("subscriptions:service_change_package", args=[service.pk]), {"package": "x"}
    )
    assert response.status_code == 409
    assert "Choose the package" in response.content.decode()


def test_another_customers_service_cannot_be_changed(client, customer, other_customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3)
    client.force_login(other_customer)

    response = client.post(
        reverse("subscriptions:service_change_package", args=[service.pk]), {"package": target.pk}
    )

    assert response.status_code == 404
    assert not PlanChange.objects.exists()


def test_the_page_shows_a_scheduled_downgrade_and_the_customer_may_drop_it(
    customer_client, customer
):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=1, price="5", stock_qty=1)
    confirm_plan_change(customer_client, service, target)

    page = customer_client.get(reverse("subscriptions:service", args=[service.pk])).content
    assert f"moves to {target.name}" in page.decode()
    assert b'id="change-package"' not in page  # one change at a time

    response = customer_client.post(
        reverse("subscriptions:service_drop_change", args=[service.pk]), follow=True
    )

    assert "Your service stays" in response.content.decode()
    assert PlanChange.objects.get().status == PlanChange.Status.CANCELLED
    target.refresh_from_db()
    assert target.stock_qty == 1
