"""A deployment on one PostgreSQL (and one Redis when it is installed) keeps its guarantees.

Real gunicorn processes with the production settings, each with its own page
cache unless Redis is there to share one, and real `manage.py db_worker`
processes: an order on one server shows its stock on the other, a staff edit on
one shows on the other, on the very next request; and every provisioning job
runs once across the workers, even when one is killed inside a provider call.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from datetime import date
from urllib.parse import urljoin

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from catalog.models import Package
from payments.models import TestCardGateway
from storefront.cache import catalog_changed
from subscriptions.events import Kind
from subscriptions.models import ProvisioningJob, Service, ServiceEvent
from tests.factories import CatalogFactory, WebhookInstanceFactory, priced_package, shop_package
from tests.support.admin_forms import find_form
from tests.support.servers import (
    collect_static,
    production_env,
    start_gunicorn,
    start_redis,
    stop,
    wait_until_serving,
)
from tests.support.webhook_server import start_provider
from tests.support.workers import every_job_done, kill, start_worker, stop_cleanly, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server")
PASSWORD = "a-long-enough-passphrase-7"
CARD = {"number": "4242 4242 4242 4242", "expiry": f"12/{date.today().year % 100 + 2:02d}",
        "cvc": "123"}  # fmt: skip


@pytest.fixture
def redis_url(tmp_path):
    """A private Redis server, when Debian's redis-server is installed (bin/test installs it)."""
    if REDIS_SERVER is None:
        yield ""
        return
    server, url = start_redis(REDIS_SERVER, tmp_path)
    yield url
    stop(server)


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """Static files collected once, as a deployment does before its servers start."""
    root = tmp_path_factory.mktemp("static")
    # Only the file storage matters here: no database, no cache.
    collect_static(production_env(secret_key="collectstatic", redis_url="", static_root=root))
    return root


@pytest.fixture
def deployment_env(redis_url, static_root):
    """What every process of the deployment is started with, on the test database."""
    return production_env(
        # The test's sessions are signed with the test settings' key.
        secret_key=settings.SECRET_KEY,
        redis_url=redis_url,
        static_root=static_root,
        # A short lease, so a killed worker's job is taken again within seconds: 2 s,
        # stretched to the Webhook's 2 s timeout + 5 s; a failed call is retried at once.
        PROVISIONING_LEASE_SECONDS=2,
        PROVISIONING_RETRY_BASE_SECONDS=0,
        # Nobody reads the emails here; printed, they would fill the workers' pipes.
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )


@pytest.fixture
def web_servers(deployment_env):
    """Two gunicorn servers (one worker process each) on the test database: their base URLs."""
    started = [start_gunicorn(deployment_env) for _ in range(2)]
    try:
        for server, url in started:
            wait_until_serving(url + reverse("storefront:ping"), server)
        yield [url for _, url in started]
    finally:
        for server, _ in started:
            stop(server)


def signed_in(user) -> requests.Session:
    """An HTTP session carrying a Django session cookie for `user`."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set(
        settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value
    )
    return session


def stock_left(html: str) -> int | None:
    found = re.search(r"(\d+) left<", html)
    return int(found.group(1)) if found else None


def test_an_order_and_a_staff_edit_on_one_server_show_on_the_other_at_once(
    web_servers, django_user_model
):
    first, second = web_servers
    catalog = CatalogFactory(name="Video services", slug="video")
    package = priced_package(catalog=catalog, name="Webinar S", stock_qty=5)
    catalog_changed()
    page = reverse("storefront:package", args=[catalog.slug, package.slug])
    listing = reverse("storefront:catalog", args=[catalog.slug])
    for server in (first, second):  # both cache the pages first
        assert stock_left(requests.get(server + page).text) == 5
        assert stock_left(requests.get(server + listing).text) == 5

    customer = signed_in(django_user_model.objects.create_user(username="buyer@example.com"))
    checkout = first + reverse("subscriptions:checkout", args=[catalog.slug, package.slug])
    customer.get(checkout)
    answer = customer.post(
        checkout,
        {"price": package.prices.get().pk, "csrfmiddlewaretoken": customer.cookies["csrftoken"]},
        headers={"Referer": checkout},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:2000]

    assert stock_left(requests.get(second + page).text) == 4
    assert stock_left(requests.get(second + listing).text) == 4

    staff = signed_in(
        django_user_model.objects.create_superuser(username="staff", email="staff@example.com")
    )
    change = second + reverse("admin:catalog_catalog_change", args=[catalog.pk])
    form = find_form(staff.get(change).text, form_id="catalog_form")
    fields = [
        (name, "Video and webinar services" if name == "name" else value)
        for name, value in form.pairs
    ]
    answer = staff.post(change, data=fields, headers={"Referer": change}, allow_redirects=False)
    assert answer.status_code == 302, answer.text[:3000]

    assert "Video and webinar services" in requests.get(first + listing).text
    assert "Video and webinar services" in requests.get(first + page).text


# --- customers in a browser, over HTTP -------------------------------------------------


def browser_get(server: str, package: Package) -> str:
    """The package page as an anonymous visitor gets it (from the page cache when built)."""
    return requests.get(
        server + reverse("storefront:package", args=[package.catalog.slug, package.slug])
    ).text


def sign_up(server: str, email: str) -> requests.Session:
    """A new browser signs up on `server`: it comes back signed in."""
    browser = requests.Session()
    url = server + reverse("signup")
    form = find_form(browser.get(url).text, having="password1")
    typed = {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    answer = browser.post(
        url, [(name, typed.get(name, value)) for name, value in form.pairs], allow_redirects=False
    )
    assert answer.status_code == 302, answer.text[:2000]
    return browser


def order(browser: requests.Session, server: str, package: Package, *, quantity: int) -> str:
    """Choose on the package page, place the order on the checkout: the invoice page's URL."""
    page = server + reverse("storefront:package", args=[package.catalog.slug, package.slug])
    choice = find_form(browser.get(page).text, form_id="order-form")
    chosen = [(name, value) for name, value in choice.pairs if name != "quantity"]
    checkout = browser.get(urljoin(page, choice.action), params=[*chosen, ("quantity", quantity)])
    assert checkout.status_code == 200, checkout.text[:2000]
    typed = {"checkout-label": "team-room"}
    place = find_form(checkout.text, form_id="place-order")
    answer = browser.post(
        checkout.url,
        [(name, typed.get(name, value)) for name, value in place.pairs],
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:2000]
    return urljoin(checkout.url, answer.headers["Location"])


def pay_by_card(browser: requests.Session, invoice_page: str, *, on: str) -> None:
    """Pay the invoice with the test gateway's card; the form is posted to server `on`."""
    form = find_form(browser.get(invoice_page).text, having="attempt_key")
    answer = browser.post(
        urljoin(on, form.action),
        [(name, CARD.get(name.rpartition("-")[2], value)) for name, value in form.pairs],
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:2000]


def test_two_servers_and_two_workers_provision_every_order_once_when_a_worker_dies_mid_call(
    web_servers, deployment_env
):
    first, second = web_servers
    provider = start_provider(delay=0.2)
    package, _, _ = shop_package(
        catalog=CatalogFactory(name="Video rooms", slug="rooms"),
        name="Team room",
        stock_qty=10,
        allow_quantity="multiple",
        provider_instance=WebhookInstanceFactory(url=provider.url, timeout_seconds=2),
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": True},
    )
    TestCardGateway.objects.create(name="Test card", currencies="USD,EUR")
    catalog_changed()
    workers: list[subprocess.Popen] = []
    try:
        workers = [start_worker(**deployment_env), start_worker(**deployment_env)]
        # The provider keeps the calls it gets, so both workers are inside one when one dies.
        provider.hold()
        assert stock_left(browser_get(second, package)) == 10  # now in its page cache
        ann = sign_up(first, "ann@example.com")
        pay_by_card(ann, order(ann, first, package, quantity=3), on=first)
        assert stock_left(browser_get(second, package)) == 7
        wait_for(lambda: provider.in_flight() == 2, timeout=30, what="both workers mid-call")
        kill(workers.pop(0))
        # What `restart: unless-stopped` does; the dead worker's job waits for its lease.
        workers.append(start_worker(**deployment_env))
        provider.release()

        # Another customer's visit moves between the servers, as behind a load balancer.
        bob = sign_up(second, "bob@example.com")
        pay_by_card(bob, order(bob, second, package, quantity=3), on=first)

        wait_for(
            lambda: every_job_done(6),
            timeout=40,
            what="every job to succeed and the queue to empty",
        )
        stop_cleanly(workers)
    finally:
        for worker in workers:
            if worker.poll() is None:  # the test failed: leave no worker behind
                kill(worker)
        provider.release()
        provider.server.shutdown()
        provider.server.server_close()

    services = list(Service.objects.all())
    assert len(services) == 6
    assert {service.status for service in services} == {Service.Status.ACTIVE}
    # One remote resource per service: the provider saw each idempotency key create once.
    built_for = Counter(service_id for service_id, _ in provider.resources.values())
    assert built_for == Counter(str(service.uuid) for service in services)
    jobs = list(ProvisioningJob.objects.select_related("service"))
    calls = Counter(call.key for call in provider.calls)
    # The killed worker lost one job mid-call; the sweep queued it again with its key.
    assert sum(job.workers_lost for job in jobs) == 1
    for job in jobs:
        assert job.attempts == job.workers_lost + 1
        assert calls[str(job.idempotency_key)] == job.attempts
        assert job.service.remote_id == provider.resources[str(job.idempotency_key)][1]
    # Each job completed once: one success on each service's timeline.
    succeeded = Counter(
        ServiceEvent.objects.filter(kind=Kind.JOB_SUCCEEDED).values_list("service", flat=True)
    )
    assert succeeded == Counter(service.pk for service in services)
    # The dead worker's task row was closed (the queue emptied); the jobs ran on more
    # than one worker.
    lost = DBTaskResult.objects.get(exception_class_path="subscriptions.jobs.WorkerLost")
    done = DBTaskResult.objects.filter(return_value="done")
    assert done.count() == 6
    assert len({row.worker_ids[-1] for row in [lost, *done]}) >= 2

    # Both servers show the stock the database holds: 10 less two orders of 3.
    package.refresh_from_db()
    assert package.stock_qty == 4
    listing = reverse("storefront:catalog", args=[package.catalog.slug])
    for server in (first, second):
        assert stock_left(browser_get(server, package)) == package.stock_qty
        assert stock_left(requests.get(server + listing).text) == package.stock_qty
