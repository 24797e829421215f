from __future__ import annotations

import os

import pytest

from tests.support.webhook_server import start_backend


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_superuser(
        username="staff", email="staff@example.com", password="staff-password"
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def customer(db, django_user_model):
    return django_user_model.objects.create_user(
        username="ann@example.com", email="ann@example.com", password="ann-password-1"
    )


@pytest.fixture
def other_customer(db, django_user_model):
    return django_user_model.objects.create_user(
        username="bob@example.com", email="bob@example.com", password="bob-password-1"
    )


@pytest.fixture
def customer_client(client, customer):
    client.force_login(customer)
    return client


def pytest_runtest_setup(item):
    """Postgres-marked tests need PostgreSQL: skipped elsewhere, but a failure on CI."""
    if item.get_closest_marker("postgres") is None:
        return
    from django.conf import settings

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        message = "needs PostgreSQL: run with DATABASE_URL=$TEST_POSTGRES_URL (see bin/test)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def webhook_backend():
    """A real HTTP server on 127.0.0.1 that records the webhook events it receives."""
    backend = start_backend()
    yield backend
    backend.server.shutdown()
    backend.server.server_close()
