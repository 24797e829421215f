#!/usr/bin/env python
"""The storefront while a sale runs: catalog page req/s and p99, idle and while orders take stock.

    .venv/bin/python bench/storefront_sale.py [--seconds 15] [--buyers 8] [--port 55456]

Loads a catalog of 200 stock-tracked packages into PostgreSQL (DATABASE_URL
when it points at PostgreSQL, else a private server started on --port, as
bench/checkout.py does), serves it with gunicorn (2 sync workers, production
settings) and reads the catalog page and a package page: with wrk when it is installed
(`apt-get install wrk`; 2 threads, 10 connections, its defaults, as the issue measured),
otherwise over fresh connections from --readers Python client processes, which cost
the machine more CPU per request than the page does. First idle, then while --buyers
checkout clients (bench/checkout.py's kind: logged-in customers POSTing the
checkout form through Django in their own processes) buy that catalog's
packages at full speed, or at --rate orders/s in all. On a 2-core machine the
buyers' own CPU takes it from the web servers: the catalog version line says
whether the orders threw the cached pages away. Each order takes stock, which must not throw the
cached pages away. The target: the catalog page keeps >= 50% of its idle rate.

At the end the catalog page is read once more and every "N left" on it is
compared with the stock in the database: what is served must be what is left.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from machine_speed import machine_line  # a sibling script

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
PACKAGES = 200
STOCK = 1_000_000
CATALOG_SLUG = "catalog-0"  # load_large_catalog's main catalog
PACKAGE_SLUG = "package-1"
DB_NAME = "bench_storefront_sale"
LEFT = re.compile(rb"(\d+) left<")


# --- in child processes, with Django set up -----------------------------------


def load_store(customers: int, plan_file: str) -> None:
    """The catalog, every package stock-tracked, and the buyers' checkout POSTs."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.urls import reverse

    from catalog.demo import load_large_catalog
    from catalog.models import Package, Variant
    from storefront.cache import catalog_changed

    with transaction.atomic():
        catalog, _ = load_large_catalog(packages=PACKAGES)
        Package.objects.filter(catalog=catalog).update(stock_qty=STOCK)
        transaction.on_commit(catalog_changed)  # bulk writes send no signals
    orders = []
    packages = Package.objects.filter(catalog=catalog).prefetch_related(
        "prices", "variants__options"
    )
    for package in packages:
        data = {"price": next(p.pk for p in package.prices.all() if p.enabled)}
        for variant in package.variants.all():
            if variant.type != Variant.Type.CHECKBOX:
                data[f"variant_{variant.code}"] = variant.options.all()[0].pk
        url = reverse("subscriptions:checkout", args=[catalog.slug, package.slug])
        orders.append({"url": url, "data": data})
    User = get_user_model()
    buyers = [
        User.objects.create_user(username=f"buyer-{n}@example.com").pk for n in range(customers)
    ]
    Path(plan_file).write_text(json.dumps({"orders": orders, "buyers": buyers}))


def buy(plan_file: str, buyer: int, seconds: float, interval: float) -> None:
    """One checkout client: order random packages until the time is up; print the count.

    With an interval, orders start that many seconds apart (when the last one took less).
    """
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    import billing_site.wsgi  # noqa: F401  the application as a server loads it

    plan = json.loads(Path(plan_file).read_text())
    client = Client()
    client.force_login(get_user_model().objects.get(pk=plan["buyers"][buyer]))
    rng = random.Random(buyer)
    placed = failed = 0

    def place() -> bool:
        order = rng.choice(plan["orders"])
        placed = client.post(order["url"], order["data"]).status_code == 302
        # A browser shows the "order placed" message on the page it is sent to, once; kept
        # by a client that never follows the redirect, the messages would pile up in the
        # cookie, which Django re-encodes on every response (most of an order's CPU by then).
        client.cookies.pop("messages", None)
        return placed

    # One order before the sale: a server's first request (imports, templates, reads built
    # once per process) is its start-up, not the sale's. It takes stock like the others.
    warmed = int(place())
    print("ready", flush=True)  # set up: the sale's measurement may start
    cpu_started = time.process_time()
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        if place():
            placed += 1
        else:
            failed += 1
    cpu = time.process_time() - cpu_started
    print(
        json.dumps({"placed": placed, "failed": failed, "warmed": warmed, "cpu": cpu}), flush=True
    )


# --- the readers ---------------------------------------------------------------


def fetch(port: int, path: str) -> tuple[int, bytes]:
    """One GET over a fresh connection (gunicorn's sync workers close each one)."""
    with socket.create_connection((HOST, port), timeout=30) as connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response[9:12]) if response.startswith(b"HTTP/") else 0
    return status, response


def read_for(job: tuple[int, str, float]) -> tuple[list[float], int]:
    port, path, seconds = job
    latencies, failures = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        status, _ = fetch(port, path)
        latencies.append(time.perf_counter() - started)
        failures += status != 200
    return latencies, failures


WRK = shutil.which("wrk")
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_P99 = re.compile(r"99%\s+([\d.]+)(us|ms|s)\b")
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def measure(pool, readers: int, port: int, path: str, seconds: float) -> tuple[float, float]:
    """(requests/s, p99 in ms) of `path` read for `seconds`: by wrk, or `readers` clients."""
    if WRK:
        report = subprocess.run(
            [WRK, "-t", "2", "-c", "10", "-d", f"{seconds:.0f}s", "--latency",
             f"http://{HOST}:{port}{path}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        rate, p99 = WRK_RATE.search(report), WRK_P99.search(report)
        if rate is None or p99 is None or "Non-2xx" in report:
            raise SystemExit(f"wrk reading {path} did not get 200s:\n{report}")
        return float(rate.group(1)), float(p99.group(1)) * WRK_UNITS[p99.group(2)]
    results = pool.map(read_for, [(port, path, seconds)] * readers)
    latencies = sorted(latency for mine, _ in results for latency in mine)
    failures = sum(failed for _, failed in results)
    if failures:
        raise SystemExit(f"{failures} requests to {path} did not answer 200")
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return len(latencies) / seconds, p99 * 1000


# --- orchestration ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def postgres_server(port: int):
    """DATABASE_URL's server, or a private one (bench/checkout.py's) and how to stop it."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        return url, None
    sys.path.append(str(BASE_DIR / "bench"))
    from checkout import start_private_postgres  # a sibling script, not a package

    return start_private_postgres(port)


def fresh_database(server_url: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        connection.execute(f"CREATE DATABASE {DB_NAME}")
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{DB_NAME}"))


def catalog_version(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT token FROM storefront_catalogversion").fetchone()[0]


def stock_in_database(database_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT p.stock_qty FROM catalog_package p JOIN catalog_catalog c"
            " ON c.id = p.catalog_id WHERE c.slug = %s",
            [CATALOG_SLUG],
        ).fetchall()
    return sorted(row[0] for row in rows)


def every_catalog_page(port: int) -> bytes:
    """The catalog's pages (?page=2, 3... until one is not found), one after another."""
    html, number = b"", 1
    while True:
        status, body = fetch(port, f"/store/{CATALOG_SLUG}/?page={number}")
        if status != 200:
            return html
        html, number = html + body, number + 1


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("gunicorn exited before serving; see its output above")
        try:
            if fetch(port, "/store/-/ping/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer in time")


def run(args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="storefront-sale-bench-"))
    plan_file = str(workdir / "plan.json")
    server_url, stop_postgres = postgres_server(args.port)
    server = pool = None
    try:
        database_url = fresh_database(server_url)
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="billing_site.settings.production",
            SECRET_KEY="bench-only-secret-key-not-for-production-use-0123456789",
            ALLOWED_HOSTS=f"{HOST},testserver",  # testserver: the buyers' Django test client
            SECURE_SSL_REDIRECT="false",
            SECURE_COOKIES="false",
            DATABASE_URL=database_url,
            MEDIA_ROOT=str(workdir / "media"),
            PYTHONPATH=str(BASE_DIR),
        )
        manage = [PYTHON, str(BASE_DIR / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, cwd=BASE_DIR, check=True)
        subprocess.run(
            [*manage, "collectstatic", "--noinput", "-v0"], env=env, cwd=BASE_DIR, check=True
        )
        subprocess.run(
            [PYTHON, __file__, "--load", plan_file, "--buyers", str(args.buyers)],
            env=env,
            cwd=BASE_DIR,
            check=True,
        )
        port = free_port()
        server = subprocess.Popen(
            [
                PYTHON, "-m", "gunicorn", "billing_site.wsgi:application",
                "--bind", f"{HOST}:{port}", "--workers", "2", "--log-level", "warning",
            ],
            env=env,
            cwd=BASE_DIR,
        )  # fmt: skip
        wait_until_up(port, server)
        pages = {
            "catalog page (200 packages)": f"/store/{CATALOG_SLUG}/",
            "package page": f"/store/{CATALOG_SLUG}/{PACKAGE_SLUG}/",
        }
        for path in pages.values():
            for _ in range(20):  # every worker builds its cached copy
                fetch(port, path)
        pool = multiprocessing.Pool(args.readers)
        readers = (
            "wrk (2 threads, 10 connections)"
            if WRK
            else f"{args.readers} reader processes (a new connection per request)"
        )
        print(
            f"PostgreSQL, gunicorn 2 sync workers, {readers}, {args.seconds:.0f} s per measurement"
        )
        idle = {
            label: measure(pool, args.readers, port, path, args.seconds)
            for label, path in pages.items()
        }

        sale = {}
        version = catalog_version(database_url)
        buyers = [
            subprocess.Popen(
                [
                    PYTHON,
                    __file__,
                    "--buy",
                    plan_file,
                    "--buyer",
                    str(n),
                    "--seconds",
                    str(args.seconds * len(pages) + 2),
                    "--interval",
                    str(args.buyers / args.rate if args.rate else 0),
                ],
                env=env,
                cwd=BASE_DIR,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for n in range(args.buyers)
        ]
        # Each buyer's Django start-up and first order cost about a second of CPU: measured
        # during the sale, they would be counted against the pages. Wait until every buyer
        # has placed its first order.
        for buyer in buyers:
            assert buyer.stdout is not None and buyer.stdout.readline().strip() == "ready"
        for label, path in pages.items():
            sale[label] = measure(pool, args.readers, port, path, args.seconds)
        results = [json.loads(buyer.communicate()[0].strip().splitlines()[-1]) for buyer in buyers]
        placed = sum(r["placed"] for r in results)
        failed = sum(r["failed"] for r in results)
        warmed = sum(r["warmed"] for r in results)  # the buyers' first orders, before the sale
        order_rate = placed / (args.seconds * len(pages) + 2)
        kept = catalog_version(database_url) == version

        cpu_per_order = sum(r["cpu"] for r in results) / max(1, placed + failed) * 1000
        print(f"\nsale: {args.buyers} checkout clients, {placed} orders ({order_rate:.0f}/s), "
              f"{failed} refused or failed, {cpu_per_order:.1f} ms of the buyers' CPU per order "
              "(their Python, not PostgreSQL's); cached pages "
              f"{'kept (catalog version unchanged)' if kept else 'INVALIDATED'}")  # fmt: skip
        print(
            f"{'page':<30} {'idle req/s':>11} {'p99':>9} {'sale req/s':>11} {'p99':>9} {'share':>7}"
        )
        for label in pages:
            (idle_rate, idle_p99), (sale_rate, sale_p99) = idle[label], sale[label]
            print(
                f"{label:<30} {idle_rate:11.0f} {idle_p99:7.1f}ms {sale_rate:11.0f} "
                f"{sale_p99:7.1f}ms {sale_rate / idle_rate:7.0%}"
            )
        share = sale[next(iter(pages))][0] / idle[next(iter(pages))][0]
        verdict = "meets" if share >= 0.5 else "MISSES"
        print(f"catalog page under the sale at {share:.0%} of idle: {verdict} the >= 50% target")

        shown = sorted(int(n) for n in LEFT.findall(every_catalog_page(port)))
        stored = stock_in_database(database_url)
        if shown != stored or sum(stored) != STOCK * PACKAGES - placed - warmed:
            raise SystemExit(f"stock shown {sum(shown)} != stock stored {sum(stored)}")
        print(f"after the sale the catalog page shows the stock stored: {sum(shown)} units left")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if stop_postgres is not None:
            stop_postgres()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--buy", help=argparse.SUPPRESS)
    parser.add_argument("--buyer", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=15, help="per measurement")
    parser.add_argument("--buyers", type=int, default=8, help="checkout clients")
    parser.add_argument(
        "--rate", type=float, default=0, help="orders/s all buyers together (0: full speed)"
    )
    parser.add_argument("--interval", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--readers", type=int, default=2, help="page reader processes")
    parser.add_argument("--port", type=int, default=55456, help="port of a private PostgreSQL")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 300 or not 1 <= args.buyers <= 32 or not 1 <= args.readers <= 16:
        parser.error("keep the load bounded: 1-300 s, 1-32 buyers, 1-16 readers")
    if args.load:
        load_store(args.buyers, args.load)
    elif args.buy:
        buy(args.buy, args.buyer, args.seconds, args.interval)
    else:
        print(machine_line("before"), flush=True)
        run(args)
        print(machine_line("after"))


if __name__ == "__main__":
    # Run as a script, this folder leads sys.path, where "storefront" would be bench's own.
    sys.path[0] = str(BASE_DIR)
    main()
