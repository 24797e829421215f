"""The session and the signed-in user, read with SQL written once (billing_site.sessions,
subscriptions.backends.EmailBackend.get_user), sign a customer in and out as Django's do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from billing_site.sessions import SessionStore
from subscriptions.backends import EmailBackend

pytestmark = pytest.mark.django_db


def account(client):
    return client.get(reverse("subscriptions:account"))


def signed_in(client, customer):
    client.force_login(customer, backend="subscriptions.backends.EmailBackend")
    return client


def test_a_customer_signed_in_sees_their_account(client, customer):
    assert isinstance(signed_in(client, customer).session, SessionStore)
    response = account(client)
    assert response.status_code == 200
    assert response.wsgi_request.user == customer
    assert response.wsgi_request.user.email == customer.email


def test_an_expired_session_signs_the_customer_out(client, customer):
    signed_in(client, customer)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = account(client)
    assert response.status_code == 302
    assert not response.wsgi_request.user.is_authenticated


def test_a_deactivated_customer_is_signed_out(client, customer):
    signed_in(client, customer)
    get_user_model().objects.filter(pk=customer.pk).update(is_active=False)
    assert account(client).status_code == 302


def test_the_user_read_is_the_orms(customer):
    customer.last_login = timezone.now()
    customer.save()
    read = EmailBackend().get_user(customer.pk)
    orm = get_user_model().objects.get(pk=customer.pk)
    fields = [field.attname for field in orm._meta.concrete_fields]
    assert [getattr(read, name) for name in fields] == [getattr(orm, name) for name in fields]
    assert read._state.adding is False and read._state.db == "default"
    assert EmailBackend().get_user(customer.pk + 1000) is None
