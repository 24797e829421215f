from __future__ import annotations

from decimal import Decimal

import factory
from djmoney.money import Money

from catalog.models import (
    Catalog,
    Feature,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PriceType,
    Quota,
    ServiceType,
    Variant,
    VariantOption,
    VariantPrice,
    VariantPriceAmount,
)
from provisioning.models import ManualInstance, WebhookInstance


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


def priced_package(
    *, amounts=(("USD", "9.00"), ("EUR", "8.00")), name="Monthly", **package_kwargs
) -> Package:
    """An active package with one recurring monthly option priced in each currency."""
    package = PackageFactory(**package_kwargs)
    price = PackagePriceFactory(package=package, name=name)
    for currency, amount in amounts:
        PackagePriceAmountFactory(package_price=price, price=Money(Decimal(amount), currency))
    return package


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
