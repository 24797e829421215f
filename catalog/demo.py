"""A realistic demo store: video services and VPS hosting."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from djmoney.money import Money

from provisioning.models import ManualInstance, WebhookInstance

from .models import (
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
from .services import package_set_scaling_targets

VIDEO_FEATURES = [
    ("recording", "Cloud recording", Feature.ValueType.BOOLEAN),
    ("breakout-rooms", "Breakout rooms", Feature.ValueType.BOOLEAN),
    ("custom-branding", "Custom branding", Feature.ValueType.BOOLEAN),
    ("stream-quality", "Stream quality", Feature.ValueType.TEXT),
]
VIDEO_QUOTAS = [
    ("participants", "Participants per session", "participants", Quota.Reset.NEVER),
    ("storage", "Recording storage", "GB", Quota.Reset.NEVER),
    ("streaming-hours", "Streaming hours", "hours", Quota.Reset.MONTH),
]


def _amounts(price: PackagePrice, **by_currency: tuple[str, str, str]) -> None:
    for currency, (amount, setup, signup) in by_currency.items():
        PackagePriceAmount.objects.create(
            package_price=price,
            price=Money(Decimal(amount), currency),
            setup_fee=Money(Decimal(setup), currency),
            signup_fee=Money(Decimal(signup), currency),
        )


def _recurring(package, name, period, interval=1, sort=0, **amounts) -> PackagePrice:
    price = PackagePrice.objects.create(
        package=package,
        name=name,
        type=PriceType.RECURRING,
        time_interval=interval,
        billing_period=period,
        sort_order=sort,
    )
    _amounts(price, **amounts)
    return price


def _video_catalog(manual: ManualInstance) -> None:
    catalog = Catalog.objects.create(
        name="Video services",
        slug="video",
        description="<p>Web meetings, webinars and live streaming for teams of any size.</p>",
        sort_order=1,
    )
    features = {
        code: Feature.objects.create(code=code, name=name, value_type=kind, sort_order=i)
        for i, (code, name, kind) in enumerate(VIDEO_FEATURES)
    }
    quotas = {
        code: Quota.objects.create(
            code=code, name=name, unit=unit, reset_period=reset, sort_order=i
        )
        for i, (code, name, unit, reset) in enumerate(VIDEO_QUOTAS)
    }
    offers = [
        # service type, name, Standard monthly USD and EUR (Premium is twice), participants
        (ServiceType.MEET, "Meet", "12.00", "11.00", 50, 300),
        (ServiceType.WEBINAR, "Webinar", "39.00", "36.00", 500, 1000),
        (ServiceType.LIVE, "Live", "59.00", "54.00", 1000, 5000),
    ]
    sort = 0
    for service_type, label, std_usd, std_eur, participants, premium_participants in offers:
        for tier, level in ((1, "Standard"), (2, "Premium")):
            premium = tier == 2
            usd = Decimal(std_usd) * (2 if premium else 1)
            eur = Decimal(std_eur) * (2 if premium else 1)
            package = Package.objects.create(
                catalog=catalog,
                name=f"{label} {level}",
                service_type=service_type,
                tier=tier,
                sort_order=sort,
                status=Package.Status.ACTIVE,
                short_description=(
                    f"{label} for up to {premium_participants if premium else participants} "
                    "participants" + (", with recording and branding." if premium else ".")
                ),
                description=(
                    f"<p><strong>{label} {level}</strong> runs on our own video platform.</p>"
                    "<ul><li>Browser based, no download</li><li>Encrypted in transit</li></ul>"
                ),
                trial_period=14,
                trial_interval="day",
                trial_mode=Package.TrialMode.OUTSIDE,
                grace_period=7,
                grace_interval="day",
                overages_enabled=premium,
                provider_instance=manual,
                provisioning_options={"checklist": "Create the tenant.", "target_hours": 4},
                package_metadata={"crm_product_id": f"VID-{service_type.upper()}-{tier}"},
            )
            sort += 1
            _recurring(
                package, "Monthly", "month", USD=(f"{usd}", "0", "0"), EUR=(f"{eur}", "0", "0")
            )
            _recurring(
                package,
                "Annual",
                "year",
                sort=1,
                USD=(f"{usd * 10}", "0", "0"),
                EUR=(f"{eur * 10}", "0", "0"),
            )
            PackageFeature.objects.bulk_create(
                [
                    PackageFeature(
                        package=package,
                        feature=features["recording"],
                        value="yes" if premium else "no",
                    ),
                    PackageFeature(
                        package=package, feature=features["breakout-rooms"], value="yes"
                    ),
                    PackageFeature(
                        package=package,
                        feature=features["custom-branding"],
                        value="yes" if premium else "no",
                    ),
                    PackageFeature(
                        package=package,
                        feature=features["stream-quality"],
                        value="1080p" if premium else "720p",
                    ),
                ]
            )
            PackageQuota.objects.create(
                package=package,
                quota=quotas["participants"],
                limit=premium_participants if premium else participants,
                overage_price=Money("0.50", "USD") if premium else None,
            )
            PackageQuota.objects.create(
                package=package,
                quota=quotas["storage"],
                limit=100 if premium else 10,
                overage_price=Money("0.10", "USD") if premium else None,
            )
            PackageQuota.objects.create(
                package=package,
                quota=quotas["streaming-hours"],
                limit=None if premium else 40,
            )


def _vps_catalog(webhook: WebhookInstance) -> None:
    catalog = Catalog.objects.create(
        name="VPS hosting",
        slug="vps",
        description="<p>Virtual private servers on NVMe storage, billed monthly or yearly.</p>",
        sort_order=2,
    )
    os_variant = Variant.objects.create(
        name="Operating system",
        code="os",
        type=Variant.Type.SELECT,
        description="Images are maintained by the platform team.",
    )
    os_choices = [
        ("Debian 12", "debian-12", "0", "0"),
        ("Ubuntu 24.04", "ubuntu-24.04", "0", "0"),
        ("Windows Server 2022", "windows-2022", "15.00", "14.00"),
    ]
    for sort, (name, value, usd, eur) in enumerate(os_choices):
        option = VariantOption.objects.create(
            variant=os_variant, name=name, value=value, sort_order=sort
        )
        for price_name, factor in (("Monthly", 1), ("Annual", 10)):
            variant_price = VariantPrice.objects.create(option=option, name=price_name)
            for currency, amount in (("USD", usd), ("EUR", eur)):
                VariantPriceAmount.objects.create(
                    variant_price=variant_price,
                    price=Money(Decimal(amount) * factor, currency),
                    setup_fee=Money(0, currency),
                )
        # Windows needs a licence per period; no free-trial price is set on purpose,
        # so the storefront hides Windows with the free trial.
        if value != "windows-2022":
            variant_price = VariantPrice.objects.create(option=option, name="Free trial")
            for currency in ("USD", "EUR"):
                VariantPriceAmount.objects.create(
                    variant_price=variant_price,
                    price=Money(0, currency),
                    setup_fee=Money(0, currency),
                )

    sizes = [
        # name, tier, vCPU, RAM GB, disk GB, USD, EUR, stock, hidden, retired
        ("VPS S", 1, 1, 2, 40, "6.00", "5.50", -1, False, False),
        ("VPS M", 2, 2, 4, 80, "12.00", "11.00", 25, False, False),
        ("VPS L", 3, 4, 8, 160, "24.00", "22.00", 3, False, False),
        ("VPS XL", 4, 8, 16, 320, "48.00", "44.00", 0, False, False),
        ("VPS Partner", 3, 4, 8, 160, "18.00", "16.50", -1, True, False),
        ("VPS Classic", 2, 2, 2, 50, "9.00", "8.00", -1, False, True),
    ]
    packages = {}
    for sort, (name, tier, cpu, ram, disk, usd, eur, stock, hidden, retired) in enumerate(sizes):
        package = Package.objects.create(
            catalog=catalog,
            name=name,
            service_type=ServiceType.EXTENSIBLE,
            tier=tier,
            sort_order=sort,
            status=Package.Status.ACTIVE,
            hidden=hidden,
            retired=retired,
            stock_qty=stock,
            per_user_limit=3,
            allow_quantity=Package.Quantity.MULTIPLE,
            short_description=f"{cpu} vCPU, {ram} GB RAM, {disk} GB NVMe.",
            description=(
                f"<p>{cpu} dedicated vCPU, {ram} GB memory and {disk} GB NVMe storage.</p>"
                "<p>Root access, IPv4 and IPv6, weekly snapshots.</p>"
            ),
            grace_period=3,
            grace_interval="day",
            provider_instance=webhook,
            provisioning_options={"plan_code": name.lower().replace(" ", "-"), "region": "eu-1"},
            package_settings={"cpu": cpu, "ram_gb": ram, "disk_gb": disk},
        )
        packages[name] = package
        package.variants.add(os_variant)
        _recurring(package, "Monthly", "month", USD=(usd, "5.00", "0"), EUR=(eur, "5.00", "0"))
        _recurring(
            package,
            "Annual",
            "year",
            sort=1,
            USD=(f"{Decimal(usd) * 10}", "0", "0"),
            EUR=(f"{Decimal(eur) * 10}", "0", "0"),
        )
        if name == "VPS S":
            PackagePrice.objects.create(
                package=package, name="Free trial", type=PriceType.FREE, sort_order=2
            )
    ladder = ["VPS S", "VPS M", "VPS L", "VPS XL"]
    for name in ladder:
        package_set_scaling_targets(
            package=packages[name], targets=[packages[n] for n in ladder if n != name]
        )


@transaction.atomic
def load_demo() -> bool:
    """Loads the demo store once; returns False when it is already there."""
    if Catalog.objects.filter(slug__in=["video", "vps"]).exists():
        return False
    manual = ManualInstance.objects.create(
        name="Video platform team",
        instructions="Create the tenant in the video platform console, then mark it done.",
        notify_email="ops@example.com",
    )
    webhook = WebhookInstance.objects.create(
        name="VPS panel (webhook)",
        url="http://127.0.0.1:8081/hooks/billing",
        signing_secret="demo-signing-secret",
        timeout_seconds=10,
    )
    _video_catalog(manual)
    _vps_catalog(webhook)
    return True


LARGE_CATALOG_PRICE_NAMES = ["Monthly", "Quarterly", "Annual"]


def load_large_catalog(*, packages: int) -> tuple[Catalog, Package]:
    """`packages` packages in one catalog, more catalogs, and every related row there can be.

    For query-count tests and benchmarks; returns the main catalog and a package
    that uses every feature (prices, variants, scaling targets).

    Written with bulk_create: building 200 packages one save at a time would
    make tests and benchmarks slow, not more telling.
    """
    catalogs = Catalog.objects.bulk_create(
        Catalog(name=f"Catalog {i}", slug=f"catalog-{i}", sort_order=i)
        for i in range(max(2, packages // 20))
    )
    main = catalogs[0]
    rows = Package.objects.bulk_create(
        Package(
            catalog=catalogs[0] if i < packages else catalogs[i - packages + 1],
            name=f"Package {i}",
            slug=f"package-{i}",
            service_type=ServiceType.MEET,
            status=Package.Status.ACTIVE,
            short_description=f"Package number {i}.",
            tier=i % 5,
            stock_qty=[-1, 3, 0][i % 3],
            trial_period=14 if i % 2 else 0,
            overages_enabled=bool(i % 2),
            sort_order=i,
        )
        for i in range(packages + len(catalogs) - 1)
    )
    prices = PackagePrice.objects.bulk_create(
        PackagePrice(
            package=package,
            name=name,
            time_interval=1 + n,
            billing_period="month",
            sort_order=n,
            enabled=n < 2 or package.pk % 2 == 0,
        )
        for package in rows
        for n, name in enumerate(LARGE_CATALOG_PRICE_NAMES)
    )
    PackagePriceAmount.objects.bulk_create(
        PackagePriceAmount(
            package_price=price,
            price=Money(Decimal(5 + price.pk % 50), currency),
            setup_fee=Money(Decimal(price.pk % 3), currency),
            signup_fee=Money(0, currency),
        )
        for price in prices
        for currency in ("USD", "EUR")
    )
    features = Feature.objects.bulk_create(
        Feature(code=f"feature-{i}", name=f"Feature {i}", sort_order=i) for i in range(4)
    )
    quotas = Quota.objects.bulk_create(
        Quota(code=f"quota-{i}", name=f"Quota {i}", unit="GB", sort_order=i) for i in range(3)
    )
    PackageFeature.objects.bulk_create(
        PackageFeature(package=package, feature=feature, value="yes" if package.pk % 2 else "no")
        for package in rows
        for feature in features
    )
    PackageQuota.objects.bulk_create(
        PackageQuota(
            package=package,
            quota=quota,
            limit=None if quota.sort_order == 0 else 100,
            overage_price=Money("0.10", "USD") if package.overages_enabled else None,
        )
        for package in rows
        for quota in quotas
    )
    variants = Variant.objects.bulk_create(
        Variant(name=f"Variant {i}", code=f"variant-{i}", type=list(Variant.Type)[i % 3])
        for i in range(5)
    )
    options = VariantOption.objects.bulk_create(
        VariantOption(variant=variant, name=f"Option {i}", value=f"value-{i}")
        for variant in variants
        for i in range(4)
    )
    variant_prices = VariantPrice.objects.bulk_create(
        VariantPrice(option=option, name=name)
        for option in options
        for name in LARGE_CATALOG_PRICE_NAMES
    )
    VariantPriceAmount.objects.bulk_create(
        VariantPriceAmount(
            variant_price=variant_price,
            price=Money(Decimal(variant_price.pk % 4), currency),
            setup_fee=Money(0, currency),
        )
        for variant_price in variant_prices
        for currency in ("USD", "EUR")
    )
    featured = rows[1]
    Package.variants.through.objects.bulk_create(
        Package.variants.through(package_id=package.pk, variant_id=variant.pk)
        for package in rows
        for variant in variants
    )
    PackageScaling.objects.bulk_create(
        PackageScaling(from_package=featured, to_package=target)
        for target in rows
        if target != featured
    )
    return main, featured
