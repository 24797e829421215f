"""Two web servers on one PostgreSQL (and one Redis when it is installed) agree at once.

Real gunicorn processes with the production settings, each with its own page
cache unless Redis is there to share one: an order on one server shows its
stock on the other, and a staff edit on one shows on the other, on the very
next request. (Jobs run once across several workers, killed ones included:
tests/subscriptions/test_dead_workers.py, real db_worker processes.)
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from storefront.cache import catalog_changed
from tests.factories import CatalogFactory, priced_package

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            requests.get(url, timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def redis_url(tmp_path):
    """A private Redis server, when Debian's redis-server is installed (bin/test installs it)."""
    if REDIS_SERVER is None:
        yield ""
        return
    port = free_port()
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def web_servers(redis_url, tmp_path):
    """Two gunicorn servers (one worker each) on the test database: their base URLs."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.production",
        # The test's sessions are signed with the test settings' key.
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:"
        f"{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        # Production serves hashed static files from a manifest, as a deployment would
        # after collectstatic: collected here into the test's own directory.
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    servers, urls = [], []
    for _ in range(2):
        port = free_port()
        servers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "billing_site.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
            )  # fmt: skip
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, server in zip(urls, servers, strict=True):
            wait_until_serving(url + reverse("storefront:ping"), server)
        yield urls
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=15)


def signed_in(user) -> requests.Session:
    """An HTTP session carrying a Django session cookie for `user`."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set(
        settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value
    )
    return session


class FormReader(HTMLParser):
    """The fields a browser would submit with the first form whose action is empty or ''."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.select: str | None = None
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name:
            kind = attributes.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                return
            if kind not in ("submit", "file", "button"):
                self.fields.append(
                    (name, attributes.get("value") or ("on" if kind == "checkbox" else ""))
                )
        elif tag == "select" and name:
            self.select = name
        elif tag == "option" and self.select and "selected" in attributes:
            self.fields.append((self.select, attributes.get("value", "")))
        elif tag == "textarea" and name:
            self.textarea, self.text = name, ""

    def handle_data(self, data):
        if self.textarea:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.fields.append((self.textarea, self.text.strip("\n")))
            self.textarea = None


def form_fields(html: str) -> list[tuple[str, str]]:
    reader = FormReader()
    reader.feed(html)
    return reader.fields


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
    fields = [
        (name, "Video and webinar services" if name == "name" else value)
        for name, value in form_fields(staff.get(change).text)
        if name != "_addanother"
    ]
    answer = staff.post(change, data=fields, headers={"Referer": change}, allow_redirects=False)
    assert answer.status_code == 302, answer.text[:3000]

    assert "Video and webinar services" in requests.get(first + listing).text
    assert "Video and webinar services" in requests.get(first + page).text
