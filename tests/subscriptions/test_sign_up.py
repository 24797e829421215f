"""Sign-up takes every valid email address, and refusals are form errors, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from subscriptions.accounts import customer_username

pytestmark = pytest.mark.django_db

LONG_EMAIL = "a" * 64 + "@" + "b" * 60 + "." + "c" * 60 + ".example.com"


def sign_up(client, email: str):
    return client.post(
        reverse("signup"),
        {"email": email, "password1": "a-long-pass-123", "password2": "a-long-pass-123"},
    )


@pytest.mark.parametrize(
    "email", ["o'brien@example.com", '"quoted"@example.com', "a!b#c$d@example.com", LONG_EMAIL]
)
def test_a_visitor_signs_up_with_any_valid_address_and_logs_in_with_it_later(client, email):
    response = sign_up(client, email)
    assert response.status_code == 302, response.content.decode()
    assert response.url == reverse("subscriptions:account")

    client.post(reverse("logout"))
    response = client.post(
        reverse("login"), {"username": email.upper(), "password": "a-long-pass-123"}
    )
    assert response.status_code == 302
    assert response.url == reverse("subscriptions:account")
    assert client.get(reverse("subscriptions:account")).context["user"].email == email.lower()


def test_two_addresses_that_differ_only_in_refused_characters_get_two_accounts(client):
    assert sign_up(client, "o'brien@example.com").status_code == 302
    client.post(reverse("logout"))
    assert sign_up(client, "o`brien@example.com").status_code == 302
    usernames = set(get_user_model().objects.values_list("username", flat=True))
    assert len(usernames) == 2


def test_a_refusal_from_the_sign_up_service_is_shown_on_the_form(client, django_user_model):
    # A staff account already holds the username the new customer would get.
    django_user_model.objects.create_user(
        username=customer_username("o'brien@example.com"), email="staff@example.com"
    )

    response = sign_up(client, "o'brien@example.com")

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not django_user_model.objects.filter(email="o'brien@example.com").exists()
