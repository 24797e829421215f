"""Repeated failed logins lock the account and the address out; sign-ups are throttled by address.

The lockout answers the same whether the email is registered or not.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db

LIMIT = 5


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


def log_in(client, email: str, password: str, address: str = "198.51.100.1"):
    return client.post(
        reverse("login"), {"username": email, "password": password}, REMOTE_ADDR=address
    )


def page_text(response) -> str:
    """The page without its per-request CSRF tokens."""
    return re.sub(r'value="[^"]{32,}"', 'value=""', response.content.decode())


def test_wrong_passwords_lock_the_account_out_with_a_clear_message(client, customer):
    answers = [log_in(client, "ann@example.com", "wrong") for _ in range(LIMIT)]

    assert [answer.status_code for answer in answers] == [200] * (LIMIT - 1) + [429]
    assert "Too many attempts" in answers[-1].content.decode()
    assert "15 minutes" in answers[-1].content.decode()
    # Even the right password waits until the lockout ends, from any address.
    refused = log_in(client, "ann@example.com", "ann-password-1", address="203.0.113.9")
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_the_same_for_an_email_nobody_registered(client, customer):
    registered = [log_in(client, "ann@example.com", "wrong") for _ in range(LIMIT + 1)]
    unknown = [
        log_in(client, "nobody@example.com", "wrong", address="198.51.100.2")
        for _ in range(LIMIT + 1)
    ]

    assert [r.status_code for r in registered] == [r.status_code for r in unknown]
    assert page_text(registered[-1]) == page_text(unknown[-1])
    assert page_text(registered[0]).replace("ann@", "nobody@") == page_text(unknown[0])


def test_an_address_trying_many_emails_is_locked_out(client, customer):
    for number in range(LIMIT):
        log_in(client, f"guess{number}@example.com", "wrong")

    assert log_in(client, "ann@example.com", "ann-password-1").status_code == 429
    # Another address still logs in to the same account.
    other = log_in(client, "ann@example.com", "ann-password-1", address="203.0.113.9")
    assert other.status_code == 302


def test_the_lockout_counts_an_email_however_it_is_typed(client, customer):
    typed = ["ann@example.com", "ANN@example.com", " Ann@Example.com", "ann@EXAMPLE.com"]
    # Each from its own address, so only the account's count can lock it.
    answers = [
        log_in(client, email, "wrong", address=f"198.51.100.{number}")
        for number, email in enumerate([*typed, typed[0]])
    ]
    assert answers[-1].status_code == 429


def test_a_login_before_the_limit_clears_the_failures(client, customer):
    for _ in range(LIMIT - 1):
        log_in(client, "ann@example.com", "wrong")
    assert log_in(client, "ann@example.com", "ann-password-1").status_code == 302
    client.post(reverse("logout"))

    assert log_in(client, "ann@example.com", "wrong").status_code == 200


def test_sign_ups_from_one_address_are_throttled(client, settings):
    settings.SIGNUP_THROTTLE_LIMIT = 3
    settings.SIGNUP_THROTTLE_MINUTES = 60

    def sign_up(number: int, address: str = "192.0.2.44"):
        client.cookies.clear()
        return client.post(
            reverse("signup"),
            {
                "email": f"new{number}@example.com",
                "password1": "a-long-pass-123",
                "password2": "a-long-pass-123",
            },
            REMOTE_ADDR=address,
        )

    assert [sign_up(number).status_code for number in range(3)] == [302, 302, 302]
    refused = sign_up(3)
    assert refused.status_code == 429
    assert "Too many sign-up attempts from your network" in refused.content.decode()
    assert not get_user_model().objects.filter(email="new3@example.com").exists()
    assert sign_up(4, address="192.0.2.45").status_code == 302


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(client, customer, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(email: str, password: str, forwarded_for: str):
        return client.post(
            reverse("login"),
            {"username": email, "password": password},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=forwarded_for,
        )

    # The attacker sends a different made-up address each time; the proxy appends the real one.
    for number in range(LIMIT):
        via_proxy(f"guess{number}@example.com", "wrong", f"1.2.3.{number}, 198.51.100.7")

    assert via_proxy("ann@example.com", "ann-password-1", "198.51.100.7").status_code == 429
    assert via_proxy("ann@example.com", "ann-password-1", "198.51.100.8").status_code == 302
