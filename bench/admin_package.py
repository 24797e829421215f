#!/usr/bin/env python
"""The admin package change page with 20 pricing options and 20 variants: GET and POST times.

    .venv/bin/python bench/admin_package.py [--runs 15] [--size 20] [--profile get|post]

Builds, in a throwaway in-memory SQLite database (test settings, DEBUG off),
a package with --size pricing options (each priced in every store currency,
with setup and signup fees) and --size variants (each with options priced
per pricing option), a feature, a quota and scaling targets; logs a staff
user in and, through the whole Django stack (middleware, admin, templates):

- GETs the change page --runs times;
- POSTs the page back unchanged --runs times, as staff do when they press
  Save (the form's own fields, read from the page as a browser sends them).

Prints the median, min and max of each (the process's CPU time, which is the
whole request's cost as SQLite runs in this process, and wall-clock time
beside it), the HTML size and each request's query count. Target: GET under
300 ms. --profile prints the costliest functions of one request instead.

With DATABASE_URL pointing at PostgreSQL the same runs use a throwaway test
database there (the CPU figure is then this process's share only; the wall
time includes PostgreSQL's).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

from machine_speed import machine_line  # a sibling script

BASE_DIR = Path(__file__).resolve().parent.parent


def build_package(size: int):
    from decimal import Decimal

    from django.conf import settings
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
    from catalog.services import package_set_scaling_targets
    from provisioning.models import WebhookInstance

    webhook = WebhookInstance.objects.create(
        name="Panel", url="http://127.0.0.1:9/hook", signing_secret="secret", timeout_seconds=5
    )
    catalog = Catalog.objects.create(name="Bench", slug="bench")
    package = Package.objects.create(
        catalog=catalog,
        name="Big package",
        service_type=ServiceType.EXTENSIBLE,
        status=Package.Status.ACTIVE,
        provider_instance=webhook,
        provisioning_options={"plan_code": "big", "region": "eu-1"},
        package_settings={"cpu": 4},
    )
    names = [f"Option {number}" for number in range(size)]
    for number, name in enumerate(names):
        price = PackagePrice.objects.create(
            package=package,
            name=name,
            type=PriceType.RECURRING,
            time_interval=1 + number % 12,
            billing_period="month",
            sort_order=number,
        )
        for currency in settings.BILLING_CURRENCIES:
            PackagePriceAmount.objects.create(
                package_price=price,
                price=Money(Decimal(10 + number), currency),
                setup_fee=Money(Decimal(5), currency),
                signup_fee=Money(Decimal(0), currency),
            )
    # Every variant option priced for every pricing option, as a finished package is:
    # the Variants tab then has no warnings to list. Bulk-created: only the page is timed.
    for number in range(size):
        variant = Variant.objects.create(name=f"Variant {number}", code=f"variant-{number}")
        package.variants.add(variant)
        options = VariantOption.objects.bulk_create(
            VariantOption(variant=variant, name=f"Choice {choice}", value=f"choice-{choice}")
            for choice in range(2)
        )
        variant_prices = VariantPrice.objects.bulk_create(
            VariantPrice(option=option, name=name) for option in options for name in names
        )
        VariantPriceAmount.objects.bulk_create(
            VariantPriceAmount(
                variant_price=variant_price,
                price=Money(Decimal(choice), currency),
                setup_fee=Money(0, currency),
            )
            for choice, variant_price in enumerate(variant_prices)
            for currency in settings.BILLING_CURRENCIES
        )
    for number in range(3):
        feature = Feature.objects.create(name=f"Feature {number}", code=f"feature-{number}")
        PackageFeature.objects.create(package=package, feature=feature, value="yes")
        quota = Quota.objects.create(name=f"Quota {number}", code=f"quota-{number}", unit="GB")
        PackageQuota.objects.create(package=package, quota=quota, limit=10 * (number + 1))
    others = [
        Package.objects.create(catalog=catalog, name=f"Other {number}", tier=number)
        for number in range(5)
    ]
    package_set_scaling_targets(package=package, targets=others)
    return package


def summary(label: str, cpu: list[float], wall: list[float]) -> str:
    return (
        f"  {label:5} CPU median {statistics.median(cpu):6.1f} ms  min {min(cpu):6.1f}"
        f"  max {max(cpu):6.1f}   wall median {statistics.median(wall):6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--profile", choices=["get", "post"])
    args = parser.parse_args()
    if not 1 <= args.runs <= 500 or not 1 <= args.size <= 200:
        parser.error("keep it bounded: 1-500 runs, 1-200 options and variants")

    before = machine_line("before")
    sys.path[0] = str(BASE_DIR)  # this folder holds a storefront.py of its own
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.test")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_databases
    from django.urls import reverse

    from tests.support.admin_forms import page_data

    # No setup_test_environment(): its signal on every template render is a test
    # client's cost, not the server's (the client reads no response.context here).
    setup_databases(verbosity=0, interactive=False)
    package = build_package(args.size)
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(staff)
    url = reverse("admin:catalog_package_change", args=[package.pk])

    page = client.get(url)  # imports, template loading: not what a page costs
    assert page.status_code == 200
    data = page_data(page, "package_form")
    response = client.post(url, data)
    assert response.status_code == 302, "the unchanged page did not save"

    def get():
        response = client.get(url)
        assert response.status_code == 200
        return response

    def post():
        response = client.post(url, data)
        assert response.status_code == 302
        return response

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(get if args.profile == "get" else post)
        stats = pstats.Stats(profiler).strip_dirs().sort_stats("cumulative")
        stats.print_stats(int(os.environ.get("PROFILE_LINES", 45)))
        stats.sort_stats("tottime").print_stats(30)
        return

    results = {}
    for label, request in (("GET", get), ("POST", post)):
        cpu, wall = [], []
        for _ in range(args.runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            request()
            cpu.append((time.process_time() - cpu_started) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            response = request()
        results[label] = (cpu, wall, len(queries), response)

    print(
        f"admin package page, {args.size} pricing options and {args.size} variants, "
        f"{args.runs} runs ({connection.vendor}, DEBUG off; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    for label, (cpu, wall, query_count, _response) in results.items():
        print(summary(label, cpu, wall) + f"   {query_count} queries")
    html = results["GET"][3].content
    print(f"  HTML  {len(html) / 1024:6.1f} KB")
    cpu_median = statistics.median(results["GET"][0])
    wall_median = statistics.median(results["GET"][1])
    verdict = "meets" if max(cpu_median, wall_median) < 300 else "MISSES"
    print(f"  {before}\n  {machine_line('after')}")
    print(f"{verdict} the target (GET < 300 ms, CPU and wall-clock medians)")


if __name__ == "__main__":
    main()
