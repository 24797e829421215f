"""Checkout throughput on PostgreSQL: orders/s and p50/p99 latency with concurrent clients.

    .venv/bin/python bench/checkout.py [--clients 8] [--orders 50] [--port 55499] [--runs all]

Prints per run: orders/s, p50 and p99 latency, SQL queries per order (what
each checkout POST sent, counted on every 10th order of each client, as counting
costs CPU: CHECKOUT_PLACE_QUERIES in tests/subscriptions/test_queries.py on the
unlimited run, CHECKOUT_PLACE_STOCK_QUERIES on the stock run), the CPU time per
order of the clients' Python and of their PostgreSQL backends (read from /proc:
the machine is shared, and CPU per order is steadier than orders/s), units
oversold and per-user-limit violations (both must be 0). The stock-tracked package has a
unit per order plus one per client, and a per-user limit of --orders: every
client reaches its limit, then tries one order more, which stock would allow
but the limit must refuse (a success is a violation); no customer may end up
holding more than the limit, and no unit may be sold twice.
`--runs stock` runs only that one (the issue's target: at least 100 orders/s,
p99 under 200 ms, 8 clients).

Each client first places one untimed order of a package of the same shape (a server
process serves many orders; its first one's imports and once-per-process work are not
the sale's), then starts the clock with the others.

A third run pays each order right after placing it, with the test gateway's
success card (checkout POST, then the invoice's pay POST): orders paid per second.

Each client is a logged-in customer POSTing the checkout form through the
whole Django stack (middleware, session, view, order service) in its own
process with its own database connection. Two runs: a package whose stock is
tracked (every order locks the package row) and one with unlimited stock.

Uses DATABASE_URL when it points at PostgreSQL (a database named
`bench_checkout` is created next to it); otherwise it starts a private
PostgreSQL server in a temporary directory, like bin/start-test-postgres.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from machine_speed import machine_line  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "bench_checkout"
FORM = "application/x-www-form-urlencoded"


def start_private_postgres(port: int, options: str = "") -> tuple[str, Callable[[], None]]:
    """A PostgreSQL server of its own in a temporary directory (`options`: more `-c` settings);
    its URL and the function that stops it and removes the directory."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        sys.exit(
            "PostgreSQL binaries not found in /usr/lib/postgresql (apt-get install postgresql)."
        )
    pg_bin = bins[-1]
    directory = Path(tempfile.mkdtemp(prefix="bench-pg."))
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(directory, "postgres")

    def run(command: str) -> None:
        argv = (
            ["su", "postgres", "-s", "/bin/sh", "-c", command] if as_root else ["sh", "-c", command]
        )
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    run(f"{pg_bin}/initdb -D {directory}/data -U postgres --auth=trust -E UTF8")
    run(
        f"{pg_bin}/pg_ctl -D {directory}/data -l {directory}/log -w start -o "
        f"'-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=100 {options}'"
    )

    def stop() -> None:
        run(f"{pg_bin}/pg_ctl -D {directory}/data -m fast stop")
        shutil.rmtree(directory, ignore_errors=True)

    return f"postgres://postgres@127.0.0.1:{port}/postgres", stop


def recreate_database(server_url: str) -> str:
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        connection.execute(f"CREATE DATABASE {DB_NAME}")
    return urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def build_store(stock: int, per_user_limit: int = -1):
    from decimal import Decimal

    from djmoney.money import Money

    from catalog.models import (
        Catalog,
        Package,
        PackagePrice,
        PackagePriceAmount,
        Variant,
        VariantOption,
        VariantPrice,
        VariantPriceAmount,
    )

    catalog, _ = Catalog.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    package = Package.objects.create(
        catalog=catalog, name=f"Bench {stock}", slug=f"bench-{time.time_ns()}",
        service_type="meet", status="active", stock_qty=stock, per_user_limit=per_user_limit,
    )  # fmt: skip
    price = PackagePrice.objects.create(
        package=package, name="Monthly", type="recurring", time_interval=1, billing_period="month"
    )
    PackagePriceAmount.objects.create(
        package_price=price, price=Money(Decimal("10"), "USD"), setup_fee=Money(2, "USD")
    )
    variant, _ = Variant.objects.get_or_create(code="bench-region", defaults={"name": "Region"})
    option, _ = VariantOption.objects.get_or_create(variant=variant, name="EU", value="eu")
    variant_price, _ = VariantPrice.objects.get_or_create(option=option, name="Monthly")
    VariantPriceAmount.objects.get_or_create(
        variant_price=variant_price, defaults={"price": Money(Decimal("1.5"), "USD")}
    )
    package.variants.add(variant)
    return package, price, option


PAY_CARD = {"number": "4242424242424242", "expiry": "12/40", "cvc": "123"}


def client_process(
    customer_id: int,
    url: str,
    data: dict,
    orders: int,
    start_at: float,
    queue,
    gateway_pk=None,
    warm_up: tuple[str, dict] | None = None,
):
    """One client: its own process (no shared GIL) and database connection.

    With a gateway, each order is paid too: the checkout redirects to its
    invoice, whose pay form is posted next. After its orders, a client of a
    package with a per-user limit tries one more, which must be refused.

    Before the clock starts, the client places one untimed order of `warm_up` (the
    checkout URL and form of a package of the same shape): a server process serves many orders, and its first
    (imports, templates, the prepared reads built once per process) is not a sale's.
    """
    import uuid

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    import billing_site.wsgi  # noqa: F401  the application as a server loads it

    client = Client()
    client.force_login(get_user_model().objects.get(pk=customer_id))
    latencies, failures, queries, counted = [], [], 0, 0
    backend = backend_cpu_reader(connection)

    def post(path: str, posted: dict, count: bool):
        nonlocal queries
        # Form-encoded, as a browser sends the checkout and pay forms (neither is
        # multipart): the test client's default, multipart, cost the server ~0.5 ms to parse.
        body = urlencode(posted)
        if not count:
            response = client.post(path, body, content_type=FORM)
        else:
            # Counted per request: each request resets Django's query log, so a
            # capture around two of them would read an emptied log.
            with CaptureQueriesContext(connection) as captured:
                response = client.post(path, body, content_type=FORM)
            queries += len(captured)
        # A browser shows the "order placed" message on the next page, which clears
        # it; carrying it to the next POST would make every request read and write it.
        client.cookies.pop("messages", None)
        return response

    def place(path: str, chosen: dict, count: bool):
        # A new token per order, as each checkout page carries one.
        response = post(path, {**chosen, "checkout_token": uuid.uuid4().hex}, count)
        if response.status_code == 302 and gateway_pk is not None:
            pay_url = f"{response.url}pay/{gateway_pk}/"
            card = {f"gateway{gateway_pk}-{name}": value for name, value in PAY_CARD.items()}
            response = post(pay_url, card, count)
        return response

    if warm_up:
        place(*warm_up, count=False)
    time.sleep(max(0.0, start_at - time.time()))
    cpu_started, backend_started = time.process_time(), backend()
    for number in range(orders):
        count = number % 10 == 0
        counted += count
        started = time.perf_counter()
        response = place(url, data, count)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 302:
            failures.append(f"HTTP {response.status_code}")
        elif gateway_pk is not None and "/account/orders/" not in response.url:
            failures.append(f"not paid: sent to {response.url}")  # a paid order's page
    cpu = (time.process_time() - cpu_started, backend() - backend_started)
    over_limit = post(url, {**data, "checkout_token": uuid.uuid4().hex}, False).status_code
    queue.put((latencies, failures, time.time(), queries / max(counted, 1), over_limit, cpu))


def backend_cpu_reader(connection) -> Callable[[], float]:
    """A function giving the CPU seconds this connection's PostgreSQL backend used so far.

    Read from /proc (the server runs on this machine); 0 where it cannot be read.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    stat = Path(f"/proc/{pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return read


def run_clients(
    package, price, option, clients: int, orders: int, gateway_pk=None
) -> tuple[float, list[float], float, list[int], tuple[float, float]]:
    """(seconds, latencies, queries per order, the status of each client's order past its
    limit, (the clients' CPU seconds, their backends' CPU seconds))."""
    import multiprocessing

    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.urls import reverse

    def checkout(package, price, option) -> tuple[str, dict]:
        url = reverse("subscriptions:checkout", args=[package.catalog.slug, package.slug])
        return url, {"price": price.pk, f"variant_{option.variant.code}": option.pk}

    User = get_user_model()
    url, data = checkout(package, price, option)
    # Each client's untimed first order: a stock-tracked package with a limit of one each.
    warm_up = checkout(*build_store(clients, 1))
    customers = [
        User.objects.create_user(username=f"bench-{time.time_ns()}-{n}@example.com").pk
        for n in range(clients)
    ]
    connections.close_all()  # each forked client opens its own
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start_at = time.time() + 1.0
    processes = [
        context.Process(
            target=client_process,
            args=(pk, url, data, orders, start_at, queue, gateway_pk, warm_up),
        )
        for pk in customers
    ]
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    failures = [failure for _, fails, *_ in results for failure in fails]
    if failures:
        sys.exit(f"{len(failures)} orders failed, e.g. {failures[0]}")
    elapsed = max(finished for _, _, finished, *_ in results) - start_at
    latencies = [latency for mine, *_ in results for latency in mine]
    queries = sum(sent for _, _, _, sent, *_ in results) / len(results)
    cpu = (sum(cpu[0] for *_, cpu in results), sum(cpu[1] for *_, cpu in results))
    return elapsed, latencies, queries, [status for *_, status, _ in results], cpu


def limit_violations(package, over_limit_statuses: list[int]) -> int:
    """Orders past the per-user limit that went through, and customers holding more than it."""
    from django.db.models import Count

    from subscriptions.models import Service

    if package.per_user_limit < 0:
        return 0
    placed = sum(1 for status in over_limit_statuses if status == 302)
    holders = (
        Service.objects.live()
        .filter(package=package)
        .values("customer")
        .annotate(held=Count("pk"))
        .filter(held__gt=package.per_user_limit)
    )
    return placed + holders.count()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--orders", type=int, default=50, help="orders per client")
    parser.add_argument("--port", type=int, default=55499, help="port of a private server")
    parser.add_argument(
        "--runs", choices=["all", "stock"], default="all", help="stock: the stock-tracked run only"
    )
    args = parser.parse_args()

    server_url, stop = os.environ.get("DATABASE_URL", ""), None
    if not server_url.startswith("postgres"):
        server_url, stop = start_private_postgres(args.port)
    try:
        os.environ["DATABASE_URL"] = recreate_database(server_url)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.test")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.db import connection

        print(
            f"PostgreSQL {connection.cursor().connection.info.server_version}, "
            f"{args.clients} clients × {args.orders} orders, checkout POSTs through Django"
        )
        print(machine_line("before"))
        total = args.clients * args.orders
        from payments.models import TestCardGateway
        from subscriptions.models import Service

        gateway = TestCardGateway.objects.create(name="Bench test card", currencies="USD")
        runs = (
            ("stock tracked (row lock)", total + args.clients, args.orders, None),
            ("unlimited stock", -1, -1, None),
            ("order + pay (test gateway)", -1, -1, gateway.pk),
        )
        if args.runs == "stock":
            runs = runs[:1]
        for label, stock, per_user_limit, gateway_pk in runs:
            package, price, option = build_store(stock, per_user_limit)
            elapsed, latencies, queries, over_limit, cpu = run_clients(
                package, price, option, args.clients, args.orders, gateway_pk
            )
            package.refresh_from_db()
            sold = Service.objects.filter(package=package).count()
            oversold = max(0, sold - stock) if stock >= 0 else 0
            unit = "paid orders/s" if gateway_pk else "orders/s"
            print(
                f"{label:26} {len(latencies) / elapsed:7.1f} {unit:13}   "
                f"p50 {percentile(latencies, 0.50) * 1000:6.1f} ms   "
                f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms   "
                f"{queries:5.1f} queries/order   "
                f"CPU/order: app {cpu[0] / len(latencies) * 1000:5.1f} ms, "
                f"db {cpu[1] / len(latencies) * 1000:4.1f} ms   "
                f"stock left {package.stock_qty}   oversold {oversold}   "
                f"per-user-limit violations {limit_violations(package, over_limit)}"
            )
        print(machine_line("after"))
        connection.close()
    finally:
        if stop:
            stop()


if __name__ == "__main__":
    main()
