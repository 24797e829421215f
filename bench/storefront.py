#!/usr/bin/env python
"""Storefront throughput: the catalog and package pages against Django's own floor.

    .venv/bin/python bench/storefront.py [--requests 3000] [--rounds 10]

Builds a throwaway SQLite database with production settings, loads a catalog
of 200 packages (prices in two currencies, features, quotas, variants,
scaling targets), serves it with gunicorn on 127.0.0.1 and measures requests
per second for the catalog page, a package page and a minimal Django view
(storefront:ping, through the same middleware) in the same run. The pages'
cost shows as a ratio to that floor; the target is a catalog page at >= 50%.

Every request goes to 127.0.0.1 only, the number of requests is bounded, and
the server and the database are removed at the end. The static files are
collected into STATIC_ROOT (git-ignored), as a deployment would.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
PACKAGES = 200
CATALOG_SLUG = "catalog-0"  # load_large_catalog's main catalog
PACKAGE_SLUG = "package-1"


# --- the demo catalog (runs in a child process with Django set up) -----------


def load_catalog() -> None:
    import django

    django.setup()
    from django.db import transaction

    from catalog.demo import load_large_catalog
    from storefront.cache import catalog_changed

    with transaction.atomic():
        load_large_catalog(packages=PACKAGES)
        transaction.on_commit(catalog_changed)  # bulk writes send no signals


# --- the load generator ------------------------------------------------------


def fetch(port: int, path: str) -> tuple[int, int]:
    """One GET over a fresh connection (gunicorn's sync workers close each one)."""
    with socket.create_connection((HOST, port), timeout=30) as connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response[9:12]) if response.startswith(b"HTTP/") else 0
    return status, len(response)


def client_run(job: tuple[int, str, int]) -> tuple[float, float, int, int]:
    port, path, count = job
    failures = 0
    start = time.perf_counter()
    for _ in range(count):
        status, _ = fetch(port, path)
        failures += status != 200
    return start, time.perf_counter(), count, failures


def measure(pool, port: int, path: str, requests: int, clients: int) -> tuple[int, float]:
    """(requests answered, seconds taken) for `requests` GETs of `path` by `clients` at once."""
    per_client = max(1, requests // clients)
    results = pool.map(client_run, [(port, path, per_client)] * clients)
    failures = sum(r[3] for r in results)
    if failures:
        raise SystemExit(f"{failures} requests to {path} did not answer 200")
    return sum(r[2] for r in results), max(r[1] for r in results) - min(r[0] for r in results)


# --- orchestration -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


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


def bench_environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="billing_site.settings.production",
        SECRET_KEY="bench-only-secret-key-not-for-production-use-0123456789",
        ALLOWED_HOSTS=HOST,
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        MEDIA_ROOT=str(workdir / "media"),
        PYTHONPATH=str(BASE_DIR),
    )
    return env


def run(args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="storefront-bench-"))
    env = bench_environment(workdir)
    server = None
    pool = None
    try:
        manage = [PYTHON, str(BASE_DIR / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, cwd=BASE_DIR, check=True)
        subprocess.run(
            [*manage, "collectstatic", "--noinput", "-v0"], env=env, cwd=BASE_DIR, check=True
        )
        subprocess.run([PYTHON, __file__, "--load"], env=env, cwd=BASE_DIR, check=True)

        port = free_port()
        server = subprocess.Popen(
            [
                PYTHON, "-m", "gunicorn", "billing_site.wsgi:application",
                "--bind", f"{HOST}:{port}",
                "--workers", str(args.workers),
                "--log-level", "warning",
            ],
            env=env,
            cwd=BASE_DIR,
        )  # fmt: skip
        wait_until_up(port, server)

        pages = {
            "minimal Django view": "/store/-/ping/",
            "catalog page (200 packages)": f"/store/{CATALOG_SLUG}/",
            "package page": f"/store/{CATALOG_SLUG}/{PACKAGE_SLUG}/",
        }
        print(f"gunicorn: {args.workers} sync workers on {HOST}:{port}, production settings")
        for label, path in pages.items():
            started = time.perf_counter()
            status, size = fetch(port, path)
            first = (time.perf_counter() - started) * 1000
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
            print(
                f"  {label:<30} {path:<28} {size / 1024:7.1f} KB, first (uncached) {first:6.1f} ms"
            )
            for _ in range(args.workers * 10):  # every worker builds its cached copy
                fetch(port, path)

        # Short bursts, interleaved and rotated: whatever else runs on the machine
        # slows every page alike instead of skewing one of them.
        pool = multiprocessing.Pool(args.clients)
        labels = list(pages)
        totals = {label: [0, 0.0] for label in labels}
        ratios = {label: [] for label in labels}
        burst = max(args.clients, args.requests // args.rounds)
        for round_number in range(args.rounds):
            rates = {}
            for label in labels[round_number % 3 :] + labels[: round_number % 3]:
                count, seconds = measure(pool, port, pages[label], burst, args.clients)
                totals[label][0] += count
                totals[label][1] += seconds
                rates[label] = count / seconds
            for label in labels:
                ratios[label].append(rates[label] / rates[labels[0]])

        floor = totals[labels[0]][0] / totals[labels[0]][1]
        print(
            f"\n{args.rounds} interleaved bursts of {burst} requests per page, "
            f"{args.clients} client processes, every request a new connection:"
        )
        for label in labels:
            count, seconds = totals[label]
            rate = count / seconds
            print(
                f"  {label:<30} {rate:8.0f} requests/s  {rate / floor:6.1%} of the minimal view"
                f"  (median of bursts {statistics.median(ratios[label]):6.1%})"
            )
        ratio = totals[labels[1]][0] / totals[labels[1]][1] / floor
        verdict = "meets" if ratio >= 0.5 else "MISSES"
        print(f"catalog page at {ratio:.0%} of the minimal view: {verdict} the >= 50% target")
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
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=3000, help="per page, in all")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved bursts per page")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=2, help="concurrent client processes")
    args = parser.parse_args()
    if not 1 <= args.requests <= 50_000 or not 1 <= args.rounds <= 100:
        parser.error("keep the load bounded: 1-50000 requests, 1-100 rounds")
    if args.load:
        load_catalog()
    else:
        run(args)


if __name__ == "__main__":
    # Run as a script, this folder leads sys.path, where "storefront" is this file.
    sys.path[0] = str(BASE_DIR)
    main()
