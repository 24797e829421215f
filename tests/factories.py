from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from djmoney.money import Money

from catalog.models import (
    Catalog,
    Feature,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PackageScaling,
    PriceType,
    Quota,
    ServiceType,
    Variant,
    VariantOption,
    VariantPrice,
    VariantPriceAmount,
)
from payments.services import payment_record
from provisioning.models import ManualInstance, WebhookInstance
from subscriptions.models import Order, Service
from subscriptions.ordering import order_place
from tests.support.jobs import run_all_jobs


class CatalogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Catalog

    name = factory.Sequence(lambda n: f"Catalog {n}")


class PackageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Package

    catalog = factory.SubFactory(CatalogFactory)
    name = factory.Sequence(lambda n: f"Package {n}")
    service_type = ServiceType.MEET
    status = Package.Status.ACTIVE
    short_description = "A package for tests."


class PackagePriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackagePrice

    package = factory.SubFactory(PackageFactory)
    name = factory.Sequence(lambda n: f"Option {n}")
    type = PriceType.RECURRING
    time_interval = 1
    billing_period = "month"


class PackagePriceAmountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackagePriceAmount

    package_price = factory.SubFactory(PackagePriceFactory)
    price = Money(Decimal("9.00"), "USD")
    setup_fee = factory.LazyAttribute(lambda o: Money(0, o.price.currency))
    signup_fee = factory.LazyAttribute(lambda o: Money(0, o.price.currency))


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    name = factory.Sequence(lambda n: f"Variant {n}")
    code = factory.Sequence(lambda n: f"variant-{n}")


class VariantOptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VariantOption

    variant = factory.SubFactory(VariantFactory)
    name = factory.Sequence(lambda n: f"Option {n}")
    value = factory.Sequence(lambda n: f"value-{n}")


class VariantPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VariantPrice

    option = factory.SubFactory(VariantOptionFactory)
    name = "Monthly"


class VariantPriceAmountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VariantPriceAmount

    variant_price = factory.SubFactory(VariantPriceFactory)
    price = Money(Decimal("2.00"), "USD")
    setup_fee = factory.LazyAttribute(lambda o: Money(0, o.price.currency))


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature

    code = factory.Sequence(lambda n: f"feature-{n}")
    name = factory.Sequence(lambda n: f"Feature {n}")


class PackageFeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackageFeature

    package = factory.SubFactory(PackageFactory)
    feature = factory.SubFactory(FeatureFactory)
    value = "yes"


class QuotaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Quota

    code = factory.Sequence(lambda n: f"quota-{n}")
    name = factory.Sequence(lambda n: f"Quota {n}")
    unit = "participants"


class PackageQuotaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PackageQuota

    package = factory.SubFactory(PackageFactory)
    quota = factory.SubFactory(QuotaFactory)
    limit = 100


class ManualInstanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ManualInstance

    name = factory.Sequence(lambda n: f"Manual {n}")


class WebhookInstanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookInstance

    name = factory.Sequence(lambda n: f"Webhook {n}")
    url = "http://127.0.0.1:9/hook"
    signing_secret = "s3cret"
    timeout_seconds = 2


# --- builders of whole rows sets ---------------------------------------------


def usd(amount) -> Money:
    return Money(Decimal(str(amount)), "USD")


def priced_package(
    *, price_name="Monthly", amounts=(("USD", "9.00"), ("EUR", "8.00")), **package_kwargs
) -> Package:
    """An active package with one recurring monthly option priced in each currency."""
    package = PackageFactory(**package_kwargs)
    price = PackagePriceFactory(package=package, name=price_name)
    for currency, amount in amounts:
        PackagePriceAmountFactory(package_price=price, price=Money(Decimal(amount), currency))
    return package


def variant_price(option, name: str, **amounts: str) -> None:
    """Give `option` a variant price called `name` with an amount per currency."""
    price = VariantPriceFactory(option=option, name=name)
    for currency, amount in amounts.items():
        VariantPriceAmountFactory(variant_price=price, price=Money(Decimal(amount), currency))


def free_option(package, name="Free trial", **kwargs) -> PackagePrice:
    return PackagePriceFactory(
        package=package,
        name=name,
        type=PriceType.FREE,
        time_interval=None,
        billing_period="",
        **kwargs,
    )


def shop_package(variant_code="region", billing_period="month", **package_kwargs):
    """“Monthly” at 10 USD / 9 EUR, setup 5 USD, signup 3 USD; a region variant (eu +2, us +1).

    `billing_period="year"` bills the same option, still named “Monthly”, every year.
    """
    package = PackageFactory(**package_kwargs)
    monthly = PackagePriceFactory(package=package, name="Monthly", billing_period=billing_period)
    PackagePriceAmountFactory(
        package_price=monthly, price=usd(10), setup_fee=usd(5), signup_fee=usd(3)
    )
    PackagePriceAmountFactory(package_price=monthly, price=Money(Decimal("9"), "EUR"))
    region = VariantOptionFactory(variant__name="Region", variant__code=variant_code).variant
    region.type = Variant.Type.SELECT
    region.save()
    eu = VariantOptionFactory(variant=region, name="Europe", value="eu")
    us = VariantOptionFactory(variant=region, name="America", value="us")
    region.options.exclude(pk__in=[eu.pk, us.pk]).delete()
    VariantPriceAmountFactory(
        variant_price=VariantPriceFactory(option=eu, name="Monthly"),
        price=usd(2),
        setup_fee=usd(1),
    )
    VariantPriceAmountFactory(
        variant_price=VariantPriceFactory(option=us, name="Monthly"), price=usd(1)
    )
    package.variants.add(region)
    return package, monthly, {"eu": eu, "us": us}


def target_of(source: Package, *, tier: int, price="20", name="Monthly", **kwargs) -> Package:
    """A package `source` may change to, at `tier`, sold monthly at `price` USD."""
    target = PackageFactory(tier=tier, catalog=source.catalog, **kwargs)
    monthly = PackagePriceFactory(package=target, name=name)
    PackagePriceAmountFactory(package_price=monthly, price=usd(price))
    PackageScaling.objects.create(from_package=source, to_package=target)
    return target


def customers(count: int):
    User = get_user_model()
    return [
        User.objects.create_user(username=f"c{n}@example.com", email=f"c{n}@example.com")
        for n in range(count)
    ]


def place(customer, package, price, options=(), quantity=1, currency="USD", **kwargs) -> Order:
    """An order through the order service, as the checkout places it."""
    return order_place(
        customer=customer,
        package=package,
        price=price,
        variant_options=list(options),
        quantity=quantity,
        currency=currency,
        checkout_fields=kwargs.pop("checkout_fields", {}),
        **kwargs,
    )


def paid_services(customer, *, quantity=1, checkout_fields=None, **package_kwargs) -> list[Service]:
    """`quantity` services of a shop package in Europe, ordered and paid, not yet provisioned."""
    package, monthly, options = shop_package(**package_kwargs)
    order = place(
        customer, package, monthly, [options["eu"]], quantity=quantity,
        checkout_fields=checkout_fields or {},
    )  # fmt: skip
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    return list(order.services.order_by("id"))


def paid_service(customer, **kwargs) -> Service:
    (service,) = paid_services(customer, **kwargs)
    return service


def paid_webhook_services(
    customer, url: str, count: int = 1, *, timeout_seconds: int = 2, **package_kwargs
) -> list[Service]:
    """`count` services of one paid order whose package provisions through a Webhook at `url`."""
    return paid_services(
        customer,
        quantity=count,
        checkout_fields={"label": "worker"},
        provider_instance=WebhookInstanceFactory(url=url, timeout_seconds=timeout_seconds),
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": True},
        allow_quantity="multiple",
        **package_kwargs,
    )


def active_service(customer, **package_kwargs) -> Service:
    """A paid service whose provisioning has run (staff completed it for Manual)."""
    service = paid_service(customer, **package_kwargs)
    run_all_jobs()
    service.refresh_from_db()
    return service


def with_period(service: Service, days: int = 30) -> Service:
    """A service whose current period is exactly `days` long, for round proration figures."""
    start, old_end = service.current_period_start, service.current_period_end
    end = start + timedelta(days=days)
    # The dates that follow the period end (not a trial's end) move with it: whatever
    # length this month has, the run bills the period when it ends.
    moved = {
        field: end
        for field in ("next_due_at", "next_bill_at")
        if getattr(service, field) == old_end
    }
    Service.objects.filter(pk=service.pk).update(current_period_end=end, **moved)
    service.refresh_from_db()
    return service


_packages = itertools.count()


def place_order(customer, *, quantity=1, stock_qty=5, currency="USD", **package_kwargs):
    """An order of the shop package (America region): its invoice is unpaid, 19 USD a unit."""
    package, monthly, options = shop_package(
        variant_code=f"region{next(_packages)}",
        stock_qty=stock_qty,
        allow_quantity="multiple",
        **package_kwargs,
    )
    return order_place(
        customer=customer,
        package=package,
        price=monthly,
        variant_options=[options["us"]],
        quantity=quantity,
        currency=currency,
        checkout_fields={},
    )


def quota_on(package: Package, *, code="minutes", limit=100, overage_price=None) -> PackageQuota:
    """Give `package` a quota `code` (meeting minutes) with `limit` and an overage price."""
    quota, _ = Quota.objects.get_or_create(
        code=code, defaults={"name": "Meeting minutes", "unit": "minutes"}
    )
    return PackageQuotaFactory(
        package=package, quota=quota, limit=limit, overage_price=overage_price
    )


def metered_service(
    customer,
    *,
    limit=100,
    overage_price=None,
    overages_enabled=False,
    currency="USD",
    activate=True,
    checkout_fields=None,
    **package_kwargs,
) -> Service:
    """A paid service of a shop package with one quota, “minutes” (the snapshot is taken
    when it is ordered); activated through its provisioning job unless `activate` is False."""
    package, monthly, options = shop_package(
        f"region-{uuid.uuid4().hex[:8]}", overages_enabled=overages_enabled, **package_kwargs
    )
    quota_on(package, limit=limit, overage_price=overage_price)
    order = place(
        customer, package, monthly, [options["eu"]] if currency == "USD" else [],
        currency=currency, checkout_fields=checkout_fields or {},
    )  # fmt: skip
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    if activate:
        run_all_jobs()
    return order.services.get()
