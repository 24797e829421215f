"""The billing run at scale on PostgreSQL: first and second run times, queries, peak memory.

    .venv/bin/python bench/billing.py [--counts 10000,30000,100000] [--port 55498]

"CPU here" is the first run's CPU in the bench's own process (Python and psycopg), "in
PostgreSQL" that of its server process (read from /proc), which together are steadier than
the wall time on a shared machine. The run bills in BILLING_PROCESSES processes (default 2):
the CPU and queries printed are those of the run's own process and its server process only. BENCH_STATEMENTS=1 prints the first run's statements by
their time in the server (pg_stat_statements, on the bench's own server only).

BENCH_SLOW=1 prints each query slower than 0.3 s; BENCH_PROFILE=1 prints the
first run's profile (cProfile, by cumulative time); BENCH_PROFILE=path.prof
also saves it there, for `python -m pstats path.prof`.

For each count N it populates N due monthly services (two per customer, in
grace-period packages, as a host's cron finds them), then times the first run
(bills every service: N invoice lines on N/2 invoices, every customer told
and put in grace) and a second run with nothing to do. Each count runs in its
own process (populating in another), so the peak RSS printed is the runs' own.

Uses DATABASE_URL when it points at PostgreSQL (a database named
`bench_billing` is created next to it); otherwise it starts a private
PostgreSQL server in a temporary directory, like bin/start-test-postgres.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from machine_speed import machine_line  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DB_NAME = "bench_billing"


def recreate_database(server_url: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        connection.execute(f"CREATE DATABASE {DB_NAME}")
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{DB_NAME}"))


def populate(count: int, now) -> None:
    """`count` active monthly services whose period ended an hour ago, two per customer."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from djmoney.money import Money

    from catalog.models import Catalog, Package
    from subscriptions.models import Order, Service

    catalog = Catalog.objects.create(slug="bench", name="Bench")
    package = Package.objects.create(
        catalog=catalog, name="Bench VPS", slug="vps", service_type="meet", status="active",
        grace_period=7, grace_interval="day",
        notification_preferences=["invoice_created", "payment_overdue"],
    )  # fmt: skip
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"c{n}@example.com", email=f"c{n}@example.com")
        for n in range((count + 1) // 2)
    )
    ten = Money(Decimal("10"), "USD")
    orders = Order.objects.bulk_create(
        (
            Order(
                customer=user,
                status="paid",
                package=package,
                package_name="Bench VPS",
                price_name="Monthly",
                price_type="recurring",
                quantity=2,
                currency="USD",
                total=ten,
                recurring_total=ten,
            )  # fmt: skip
            for user in users
        ),
        batch_size=5000,
    )
    start, end = now - timedelta(days=31), now - timedelta(hours=1)
    Service.objects.bulk_create(
        (
            Service(
                customer_id=orders[n // 2].customer_id,
                order=orders[n // 2],
                status="active",
                package=package,
                package_name="Bench VPS",
                price_name="Monthly",
                price_type="recurring",
                time_interval=1,
                billing_period="month",
                currency="USD",
                recurring_amount=ten,
                package_amount=ten,
                grace_period=7,
                grace_interval="day",
                activated_at=start,
                billing_anchor=start,
                current_period_start=start,
                current_period_end=end,
                next_due_at=end,
                next_bill_at=end,
            )  # fmt: skip
            for n in range(count)
        ),
        batch_size=5000,
    )


def peak_rss_kb() -> int:
    """VmHWM: the process's peak resident memory since the last reset, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if os.environ.get("BENCH_SLOW") and time.perf_counter() - started > 0.3:
                print(f"{time.perf_counter() - started:.2f}s {sql[:300]}", file=sys.stderr)


def populate_only(count: int, now: datetime) -> None:
    """Empty the database and populate it, in a process of its own (see `main`)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("flush", interactive=False, verbosity=0)
    populate(count, now)
    connection.cursor().execute("ANALYZE")
    print(
        f"populating {count} services peaked at "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        file=sys.stderr,
    )


def one(count: int, now: datetime) -> None:
    """Time two runs over the populated database; print one line. Runs in its own process."""
    import django

    django.setup()
    from checkout import backend_cpu_reader
    from django.conf import settings
    from django.db import connection

    from subscriptions.billing import services_run_billing
    from subscriptions.models import Invoice, InvoiceLine

    backend_cpu = backend_cpu_reader(connection)
    print(f"billing in up to {settings.BILLING_PROCESSES} processes (BILLING_PROCESSES)")
    statements = os.environ.get("BENCH_STATEMENTS")
    if statements:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cursor.execute("SELECT pg_stat_statements_reset()")
    gc.collect()
    # The peak of the runs alone, from Django's imports on: Linux resets the high-water mark.
    Path("/proc/self/clear_refs").write_text("5")
    base = peak_rss_kb()
    timings = []
    for _ in range(2):
        counter = QueryCounter()
        started, cpu_started, server_started = (
            time.perf_counter(),
            time.process_time(),
            backend_cpu(),
        )
        with connection.execute_wrapper(counter):
            if os.environ.get("BENCH_PROFILE") and not timings:
                # BENCH_PROFILE=1 prints where the first run spends its time.
                profile = cProfile.Profile()
                run = profile.runcall(services_run_billing, now=now)
                if os.environ["BENCH_PROFILE"].endswith(".prof"):
                    profile.dump_stats(os.environ["BENCH_PROFILE"])
                pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
            else:
                run = services_run_billing(now=now)
        timings.append(
            (
                time.perf_counter() - started,
                counter.count,
                run,
                time.process_time() - cpu_started,
                backend_cpu() - server_started,
            )
        )
        if statements and len(timings) == 1:
            print_statements(connection)
    peak = peak_rss_kb()
    assert InvoiceLine.objects.filter(service__isnull=False).count() == count
    invoices = Invoice.objects.filter(kind="renewal").count()
    (first, first_queries, first_run, first_cpu, first_server), second_timing = timings
    second, second_queries = second_timing[:2]
    print(
        f"{count:>8} services  first run {first:6.2f} s (CPU here {first_cpu:5.2f} s, "
        f"in PostgreSQL {first_server:5.2f} s)  "
        f"{first_queries:5} queries in its own process "
        f"({first_queries / count:.4f}/service; {first_run.invoices} invoices, "
        f"{first_run.grace} in grace)  second run {second:5.2f} s  {second_queries} queries  "
        f"peak RSS during the runs {peak / 1024:.0f} MB ({base / 1024:.0f} MB before)  "
        f"[{invoices} renewal invoices]",
        flush=True,
    )


def print_statements(connection) -> None:
    """The statements of the run just ended by their time in the server, with their calls
    and rows (foreign-key checks show as their SELECT ... FOR KEY SHARE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT total_exec_time, calls, rows, regexp_replace(query, '\\s+', ' ', 'g') "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 15"
        )
        for milliseconds, calls, rows, query in cursor.fetchall():
            print(
                f"  {milliseconds / 1000:6.2f} s {calls:7} calls {rows:8} rows  {query[:110]}",
                file=sys.stderr,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="100000", help="comma-separated service counts")
    parser.add_argument("--port", type=int, default=55498, help="port of a private server")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--populate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate:
        populate_only(args.populate, args.now)
        return
    if args.one:
        one(args.one, args.now)
        return

    from checkout import start_private_postgres

    server_url, stop = os.environ.get("DATABASE_URL", ""), None
    if not server_url.startswith("postgres"):
        server_url, stop = start_private_postgres(
            args.port,
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on"
            if os.environ.get("BENCH_STATEMENTS")
            else "",
        )
    try:
        env = {
            **os.environ,
            "DATABASE_URL": recreate_database(server_url),
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "billing_site.settings.test"
            ),
        }
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity=0"],
            env=env,
            check=True,
        )
        import psycopg

        with psycopg.connect(server_url) as connection:
            print(f"PostgreSQL {connection.info.server_version}, billing run over due services")
        print(machine_line("before"), flush=True)
        for count in (int(n) for n in args.counts.split(",")):
            # Populated in a process of its own: memory Python keeps after building
            # the rows would otherwise count as the runs' peak.
            now = datetime.now(UTC).isoformat()
            for step in ("--populate", "--one"):
                subprocess.run(
                    [sys.executable, __file__, step, str(count), "--now", now], env=env, check=True
                )
        print(machine_line("after"))
    finally:
        if stop is not None:
            stop()


if __name__ == "__main__":
    main()
