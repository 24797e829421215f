"""Builders for the order tests: a package priced in USD and EUR with one variant."""

from __future__ import annotations

from decimal import Decimal

from djmoney.money import Money

from catalog.models import Variant
from subscriptions.invoicing import invoice_record_payment
from subscriptions.ordering import order_place
from tests.factories import (
    PackageFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    VariantOptionFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
    WebhookInstanceFactory,
)


def usd(amount) -> Money:
    return Money(Decimal(str(amount)), "USD")


def shop_package(variant_code="region", **package_kwargs):
    """“Monthly” at 10 USD / 9 EUR, setup 5 USD, signup 3 USD; a region variant (eu +2, us +1)."""
    package = PackageFactory(**package_kwargs)
    monthly = PackagePriceFactory(package=package, name="Monthly")
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


def paid_webhook_services(customer, url: str, *, count: int = 1, timeout_seconds: int = 2):
    """`count` services of one paid order whose package provisions through a Webhook at `url`."""
    package, monthly, options = shop_package(
        provider_instance=WebhookInstanceFactory(url=url, timeout_seconds=timeout_seconds),
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": False},
        allow_quantity="multiple",
    )
    order = order_place(
        customer=customer,
        package=package,
        price=monthly,
        variant_options=[options["eu"]],
        quantity=count,
        currency="USD",
        checkout_fields={"label": "leased"},
    )
    invoice = order.invoices.get()
    invoice_record_payment(invoice=invoice, amount=invoice.total)
    return list(order.services.order_by("id"))
