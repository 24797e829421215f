#!/usr/bin/env python
"""The uncached catalog page of a 200-package catalog: render time, HTML size and queries.

    .venv/bin/python bench/catalog_render.py [--runs 30] [--packages 200]

Loads the catalog into a throwaway in-memory SQLite database (test settings,
DEBUG off), then GETs the catalog page through the whole Django stack
(middleware, view, selectors, templates) --runs times with the page cache
emptied before each: every run builds the page. Prints the median and the
worst render, the HTML size and the query count. Targets: under 40 ms and
under 100 KB. SQLite runs in this process, so the process's CPU time is the
whole render's cost even when other programs share the machine's cores; the
wall-clock time is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from machine_speed import machine_line  # a sibling script

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--packages", type=int, default=200)
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000 or not 1 <= args.packages <= 2000:
        parser.error("keep it bounded: 1-1000 runs, 1-2000 packages")

    before = machine_line("before")
    sys.path[0] = str(BASE_DIR)  # this folder holds a storefront.py of its own
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.test")
    import django

    django.setup()
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_databases
    from django.urls import reverse

    from catalog.demo import load_large_catalog
    from storefront.cache import catalog_changed

    # No setup_test_environment(): its signal on every template render is a test
    # client's cost, not the server's (the client reads no response.context here).
    setup_databases(verbosity=0, interactive=False)
    catalog, _ = load_large_catalog(packages=args.packages)
    catalog_changed()
    url = reverse("storefront:catalog", args=[catalog.slug])
    client = Client()

    client.get(url)  # imports, template loading: not what a page costs
    timings, cpu_timings = [], []
    for _ in range(args.runs):
        cache.clear()
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url)
        cpu_timings.append((time.process_time() - cpu_started) * 1000)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        html = client.get(url).content

    median = statistics.median(cpu_timings)
    print(f"catalog page, {args.packages} packages, uncached, {args.runs} runs (SQLite, DEBUG off)")
    print(f"  {before}")
    print(f"  render   CPU median {median:6.1f} ms   worst {max(cpu_timings):6.1f} ms")
    print(
        f"           wall median {statistics.median(timings):6.1f} ms   worst {max(timings):6.1f} ms"
        f"   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"  HTML     {len(html) / 1024:6.1f} KB")
    print(f"  queries  {len(queries)}")
    verdict = "meets" if median < 40 and len(html) < 100 * 1024 else "MISSES"
    print(f"  {machine_line('after')}")
    print(f"{verdict} the targets (< 40 ms, < 100 KB)")


if __name__ == "__main__":
    main()
