"""The order service: what it writes, and every refusal (after which nothing is written)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django_tasks_db.models import DBTaskResult
from djmoney.money import Money

from catalog.models import Package, PriceType, Variant
from subscriptions.models import Invoice, Order, OrderLine, ProvisioningJob, Service
from subscriptions.quotes import order_quote
from tests.factories import (
    PackagePriceAmountFactory,
    PackagePriceFactory,
    VariantOptionFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
    WebhookInstanceFactory,
    place,
    priced_package,
    shop_package,
    usd,
)

pytestmark = pytest.mark.django_db


def written() -> tuple[int, ...]:
    return (
        Order.objects.count(),
        OrderLine.objects.count(),
        Invoice.objects.count(),
        Service.objects.count(),
        ProvisioningJob.objects.count(),
        DBTaskResult.objects.count(),
    )


def assert_refused(code, customer, package, price, options=(), quantity=1, **kwargs):
    before = written()
    stock = Package.objects.get(pk=package.pk).stock_qty
    with pytest.raises(ValidationError) as refusal:
        place(customer, package, price, options, quantity, **kwargs)
    assert refusal.value.code == code, refusal.value.messages
    assert refusal.value.messages[0]
    assert written() == before
    assert Package.objects.get(pk=package.pk).stock_qty == stock
    return refusal.value.messages[0]


# --- what an order writes ----------------------------------------------------


def test_it_snapshots_every_charge_into_order_lines_and_the_invoice(customer):
    package, monthly, options = shop_package(allow_quantity="multiple")

    order = place(customer, package, monthly, [options["eu"]], quantity=2)

    lines = [
        (line.kind, line.unit_amount, line.quantity, line.amount) for line in order.lines.all()
    ]
    assert lines == [
        ("price", usd(10), 2, usd(20)),
        ("variant", usd(2), 2, usd(4)),
        ("setup_fee", usd(5), 2, usd(10)),
        ("setup_fee", usd(1), 2, usd(2)),
        ("signup_fee", usd(3), 1, usd(3)),
    ]
    assert order.total == usd(39)
    assert order.recurring_total == usd(24)
    assert (order.package_name, order.price_name, order.currency) == (
        package.name,
        "Monthly",
        "USD",
    )
    invoice = order.invoices.get()
    assert invoice.total == usd(39)
    assert invoice.status == Invoice.Status.UNPAID
    assert invoice.lines.count() == 5


def test_it_creates_one_pending_service_per_unit_with_the_choices(customer):
    package, monthly, options = shop_package(allow_quantity="multiple")

    order = place(customer, package, monthly, [options["us"]], quantity=3)

    services = list(order.services.all())
    assert len(services) == 3
    assert {service.status for service in services} == {Service.Status.PENDING}
    service = services[0]
    assert service.recurring_amount == usd(11)
    assert service.variants_map == {"region": "us"}
    # Nothing is provisioned before the invoice is paid.
    assert not ProvisioningJob.objects.exists()


def test_a_zero_total_is_paid_at_once_and_provisioning_is_queued_with_it(customer):
    package = priced_package(amounts=())
    free = package.prices.get()
    free.type, free.time_interval, free.billing_period = PriceType.FREE, None, ""
    free.save()

    order = place(customer, package, free)

    invoice = order.invoices.get()
    assert invoice.total == usd(0)
    assert invoice.status == Invoice.Status.PAID
    assert order.status == Order.Status.PAID
    job = ProvisioningJob.objects.get()
    assert job.action == "create"
    assert DBTaskResult.objects.get(id=job.task_id).task_path.endswith("run_provisioning_job")


def test_the_signup_fee_is_charged_once_whatever_the_quantity(customer):
    package, monthly, options = shop_package(allow_quantity="multiple")

    order = place(customer, package, monthly, [options["us"]], quantity=4)

    signup = order.lines.get(kind="signup_fee")
    assert (signup.quantity, signup.amount) == (1, usd(3))


def test_it_charges_in_the_order_currency_only(customer):
    package, monthly, _ = shop_package()
    eu = VariantOptionFactory(variant__code="plan-eu-only")
    VariantPriceAmountFactory(
        variant_price=VariantPriceFactory(option=eu, name="Monthly"),
        price=Money(Decimal("1.50"), "EUR"),
    )
    package.variants.set([eu.variant])

    order = place(customer, package, monthly, [eu], currency="EUR")

    assert order.total == Money(Decimal("10.50"), "EUR")
    assert order.invoices.get().currency == "EUR"


def test_a_trial_puts_the_recurring_charges_on_the_first_due_date(customer):
    package, monthly, options = shop_package(trial_period=14, trial_interval="day")

    order = place(customer, package, monthly, [options["us"]])

    assert order.total == usd(5 + 3)  # setup and signup fees only
    assert order.recurring_total == usd(11)
    assert set(order.lines.filter(recurring=True).values_list("due_now", flat=True)) == {False}
    assert order.services.get().trial_period == 14


def test_the_quote_shows_trial_and_first_due_date(customer):
    package, monthly, options = shop_package(trial_period=1, trial_interval="week")

    quote = order_quote(
        package=package, price=monthly, variant_options=[options["eu"]], quantity=1,
        currency="USD", customer=customer,
    )  # fmt: skip

    assert quote.trial_applies
    # In words a customer understands (it read "1 week (Outside: free trial before …)").
    assert quote.trial_label == (
        "Free 1-week trial from when your service is ready, then 12.00\xa0USD / month."
    )
    # The trial counts from when the service is ready, so the quote names no date
    # the service would contradict.
    assert quote.first_due_at is None
    assert quote.first_due_label == "1 week after your service is ready"


def test_an_inside_trial_is_worded_as_part_of_the_first_period(customer):
    package, monthly, options = shop_package(
        trial_period=14, trial_interval="day", trial_mode="inside"
    )

    quote = order_quote(
        package=package, price=monthly, variant_options=[options["eu"]], quantity=1,
        currency="USD", customer=customer,
    )  # fmt: skip

    assert quote.trial_label == (
        "Your first period starts with a free 14-day trial once your service is ready; "
        "12.00\xa0USD / month is due when the trial ends."
    )


def test_a_repeated_checkout_token_returns_the_order_already_placed(customer):
    package, monthly, options = shop_package()

    first = place(customer, package, monthly, [options["eu"]], checkout_token="abc")
    again = place(customer, package, monthly, [options["eu"]], checkout_token="abc")

    assert again.pk == first.pk
    assert Order.objects.count() == 1


# --- stock -------------------------------------------------------------------


def test_it_takes_stock(customer):
    package, monthly, options = shop_package(stock_qty=5, allow_quantity="multiple")

    order = place(customer, package, monthly, [options["eu"]], quantity=3)

    package.refresh_from_db()
    assert package.stock_qty == 2
    assert order.stock_taken == 3


def test_unlimited_stock_is_not_counted(customer):
    package, monthly, options = shop_package(stock_qty=-1)

    place(customer, package, monthly, [options["eu"]])

    package.refresh_from_db()
    assert package.stock_qty == -1


def test_with_oversell_the_stock_stops_at_zero(customer):
    package, monthly, options = shop_package(
        stock_qty=1, oversell_enabled=True, allow_quantity="multiple"
    )

    order = place(customer, package, monthly, [options["eu"]], quantity=3)

    package.refresh_from_db()
    assert package.stock_qty == 0
    assert order.stock_taken == 1
    assert [s.took_stock for s in order.services.order_by("id")] == [True, False, False]
    place(customer, package, monthly, [options["eu"]])  # still orderable


# --- refusals ------------------------------------------------------------------


@pytest.mark.parametrize("status", [Package.Status.DRAFT, Package.Status.DISABLED])
def test_it_refuses_a_package_that_is_not_active(customer, status):
    package, monthly, options = shop_package(status=status)
    assert_refused("not_available", customer, package, monthly, [options["eu"]])


def test_it_refuses_a_retired_package(customer):
    package, monthly, options = shop_package(retired=True)
    message = assert_refused("retired", customer, package, monthly, [options["eu"]])
    assert "no longer sold" in message


def test_it_accepts_a_hidden_package_reached_by_its_link(customer):
    package, monthly, options = shop_package(hidden=True)
    assert place(customer, package, monthly, [options["eu"]]).pk


def test_it_refuses_a_sold_out_package(customer):
    package, monthly, options = shop_package(stock_qty=0)
    assert_refused("sold_out", customer, package, monthly, [options["eu"]])


def test_it_refuses_more_units_than_are_left(customer):
    package, monthly, options = shop_package(stock_qty=2, allow_quantity="multiple")
    message = assert_refused(
        "not_enough_stock", customer, package, monthly, [options["eu"]], quantity=3
    )
    assert "Only 2" in message


def test_it_refuses_a_missing_pricing_option(customer):
    package, _, options = shop_package()
    assert_refused("price_required", customer, package, None, [options["eu"]])


def test_it_refuses_a_pricing_option_of_another_package(customer):
    package, _, options = shop_package()
    other = priced_package()
    assert_refused("price_not_of_package", customer, package, other.prices.get(), [options["eu"]])


def test_it_refuses_a_disabled_pricing_option(customer):
    package, monthly, options = shop_package()
    PackagePriceFactory(package=package, name="Spare")  # keeps the package valid
    monthly.enabled = False
    monthly.save()
    assert_refused("price_disabled", customer, package, monthly, [options["eu"]])


def test_it_refuses_a_pricing_option_without_an_amount_in_the_currency(customer):
    package, _, _ = shop_package()
    annual = PackagePriceFactory(package=package, name="Annual", billing_period="year")
    PackagePriceAmountFactory(package_price=annual, price=usd(100))
    package.variants.clear()
    assert_refused("price_not_in_currency", customer, package, annual, currency="EUR")


def test_it_refuses_a_currency_the_store_does_not_sell_in(customer):
    package, monthly, options = shop_package()
    assert_refused("currency_invalid", customer, package, monthly, [options["eu"]], currency="GBP")


def test_it_refuses_a_variant_option_of_another_package(customer):
    package, monthly, options = shop_package()
    stranger = VariantOptionFactory()
    VariantPriceAmountFactory(variant_price=VariantPriceFactory(option=stranger, name="Monthly"))
    assert_refused("variant_not_of_package", customer, package, monthly, [options["eu"], stranger])


def test_it_refuses_a_hidden_variant(customer):
    package, monthly, options = shop_package()
    Variant.objects.filter(code="region").update(visibility=Variant.Visibility.HIDDEN)
    assert_refused("variant_hidden", customer, package, monthly, [options["eu"]])


def test_it_refuses_a_variant_option_without_a_price_of_the_pricing_options_name(customer):
    package, monthly, options = shop_package()
    options["eu"].prices.update(name="monthly")  # case matters: the names must match exactly
    message = assert_refused("variant_no_price", customer, package, monthly, [options["eu"]])
    assert "Europe" in message and "Monthly" in message


def test_it_refuses_a_variant_option_without_an_amount_in_the_currency(customer):
    package, monthly, options = shop_package()
    assert_refused(
        "variant_not_in_currency", customer, package, monthly, [options["eu"]], currency="EUR"
    )


def test_it_refuses_an_order_without_a_choice_for_a_drop_down_variant(customer):
    package, monthly, _ = shop_package()
    assert_refused("variant_required", customer, package, monthly, [])


def test_it_refuses_two_options_of_one_drop_down_variant(customer):
    package, monthly, options = shop_package()
    assert_refused("variant_duplicate", customer, package, monthly, [options["eu"], options["us"]])


def test_it_refuses_a_quantity_where_the_package_sells_single_units(customer):
    package, monthly, options = shop_package(allow_quantity="single")
    assert_refused("quantity_not_allowed", customer, package, monthly, [options["eu"]], 2)


@pytest.mark.parametrize("quantity", [0, -1])
def test_it_refuses_a_quantity_below_one(customer, quantity):
    package, monthly, options = shop_package(allow_quantity="multiple")
    assert_refused("quantity_invalid", customer, package, monthly, [options["eu"]], quantity)


def test_it_refuses_an_order_past_the_per_user_limit(customer, other_customer):
    package, monthly, options = shop_package(per_user_limit=2, allow_quantity="multiple")
    place(customer, package, monthly, [options["eu"]], quantity=2)

    message = assert_refused("per_user_limit", customer, package, monthly, [options["eu"]])

    assert "at most 2" in message
    place(other_customer, package, monthly, [options["eu"]])  # the limit is per customer


def test_a_package_with_stock_refuses_an_order_past_the_per_user_limit_and_keeps_its_stock(
    customer, other_customer
):
    # The stock is taken in one statement that also counts what the customer holds; when
    # it refuses, the locked path says why (the limit, not the stock).
    package, monthly, options = shop_package(
        stock_qty=10, per_user_limit=2, allow_quantity="multiple"
    )
    place(customer, package, monthly, [options["eu"]])
    place(customer, package, monthly, [options["eu"]])

    message = assert_refused("per_user_limit", customer, package, monthly, [options["eu"]])

    assert "at most 2" in message
    place(other_customer, package, monthly, [options["eu"]], quantity=2)
    assert Package.objects.get(pk=package.pk).stock_qty == 6


def test_ended_services_do_not_count_against_the_per_user_limit(customer):
    package, monthly, options = shop_package(per_user_limit=1)
    order = place(customer, package, monthly, [options["eu"]])
    order.services.update(status=Service.Status.CANCELLED)

    assert place(customer, package, monthly, [options["eu"]]).pk


def test_it_refuses_invalid_checkout_fields_of_the_plugin(customer):
    package, monthly, options = shop_package(
        provider_instance=WebhookInstanceFactory(),
        provisioning_options={"plan_code": "basic", "region": "", "send_settings": True},
    )
    message = assert_refused(
        "checkout_fields_invalid",
        customer,
        package,
        monthly,
        [options["eu"]],
        checkout_fields={"label": "-bad label-"},
    )
    assert "Service label" in message

    order = place(customer, package, monthly, [options["eu"]], checkout_fields={"label": "room-1"})
    assert order.services.get().checkout_fields == {"label": "room-1"}


def test_several_options_of_a_checkbox_variant_may_be_chosen(customer):
    package, monthly, options = shop_package()
    addons = VariantOptionFactory(variant__code="addons", variant__type=Variant.Type.CHECKBOX)
    second = VariantOptionFactory(variant=addons.variant)
    for option in (addons, second):
        VariantPriceAmountFactory(variant_price=VariantPriceFactory(option=option, name="Monthly"))
    package.variants.add(addons.variant)

    order = place(customer, package, monthly, [options["eu"], addons, second])

    assert order.lines.filter(kind="variant").count() == 3
    # and a checkbox variant may be left empty
    assert place(customer, package, monthly, [options["us"]]).pk
