"""Providers report usage by POSTing signed JSON, as the Webhook plugin signs its events."""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from provisioning.plugins.webhook import SIGNATURE_HEADER, sign
from subscriptions.models import UsageRecord
from tests.factories import ManualInstanceFactory, WebhookInstanceFactory, metered_service

pytestmark = pytest.mark.django_db
SECRET = "usage-secret"


@pytest.fixture
def service(customer):
    instance = WebhookInstanceFactory(signing_secret=SECRET)
    return metered_service(
        customer,
        limit=100,
        activate=False,  # its create event would go to a backend that is not there
        provider_instance=instance,
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": True},
        checkout_fields={"label": "room"},
    )


def report(reported, *, secret=SECRET, timestamp=None, body=None, instance_pk=None, **fields):
    data = {
        "service": str(reported.uuid),
        "quota": "minutes",
        "quantity": "12.5",
        "occurred_at": timezone.now().isoformat(),
        "idempotency_key": "evt-1",
        **fields,
    }
    raw = body if body is not None else json.dumps(data).encode()
    signature = sign(secret, raw, int(timestamp if timestamp is not None else time.time()))
    url = reverse(
        "subscriptions:provider_usage", args=[instance_pk or reported.provider_instance_id]
    )
    return raw, url, {"content_type": "application/json", "headers": {SIGNATURE_HEADER: signature}}


def post(client, reported, **kwargs):
    raw, url, options = report(reported, **kwargs)
    return client.post(url, raw, **options)


def test_a_signed_report_records_the_usage(client, service):
    response = post(client, service)

    assert response.status_code == 201
    (record,) = UsageRecord.objects.all()
    assert response.json() == {"status": "recorded", "message": "Usage recorded.", "id": record.pk}
    assert record.service == service
    assert str(record.quantity) == "12.500000"
    assert record.source == UsageRecord.Source.PROVIDER


def test_a_number_quantity_is_read_exactly(client, service):
    raw = json.dumps({"service": str(service.uuid), "quota": "minutes", "quantity": 0.1,
                      "occurred_at": timezone.now().isoformat(), "idempotency_key": "k"})  # fmt: skip

    assert post(client, service, body=raw.encode()).status_code == 201
    assert str(UsageRecord.objects.get().quantity) == "0.100000"


def test_the_same_report_sent_twice_is_recorded_once(client, service):
    raw, url, options = report(service)

    first = client.post(url, raw, **options)
    replayed = client.post(url, raw, **options)

    assert (first.status_code, replayed.status_code) == (201, 200)
    assert replayed.json()["status"] == "duplicate"
    assert UsageRecord.objects.count() == 1


def test_a_key_reused_for_other_usage_is_a_conflict(client, service):
    post(client, service, quantity="5")

    response = post(client, service, quantity="6")

    assert response.status_code == 409
    assert response.json()["status"] == "usage_key_reused"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"secret": "wrong"}, id="wrong-secret"),
        pytest.param({"age": 301}, id="replayed-after-the-window"),
        pytest.param({"age": -301}, id="from-the-future"),
    ],
)
def test_a_report_without_a_valid_fresh_signature_is_refused(client, service, tamper):
    if "age" in tamper:
        tamper = {"timestamp": time.time() - tamper["age"]}
    response = post(client, service, **tamper)

    assert response.status_code == 401
    assert response.json()["status"] == "bad_signature"
    assert not UsageRecord.objects.exists()


def test_a_body_changed_after_signing_is_refused(client, service):
    raw, url, options = report(service)

    response = client.post(url, raw.replace(b"12.5", b"99.5"), **options)

    assert response.status_code == 401


def test_a_report_with_no_signature_is_refused(client, service):
    raw, url, options = report(service)

    response = client.post(url, raw, content_type="application/json")

    assert response.status_code == 401


def test_an_instance_without_a_signing_secret_takes_no_reports(client, service):
    manual = ManualInstanceFactory()

    assert post(client, service, instance_pk=manual.pk).status_code == 404
    assert post(client, service, instance_pk=manual.pk + 1000).status_code == 404


def test_a_provider_cannot_report_for_another_providers_service(client, customer, service):
    other = WebhookInstanceFactory(signing_secret=SECRET)

    response = post(client, service, instance_pk=other.pk)

    assert response.status_code == 404
    assert response.json()["status"] == "unknown_service"


def test_an_unknown_quota_is_refused(client, service):
    response = post(client, service, quota="storage")

    assert response.status_code == 400
    assert response.json()["status"] == "unknown_quota"
    assert "storage" in response.json()["message"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"quantity": "lots"}, id="non-numeric-quantity"),
        pytest.param({"quantity": "NaN"}, id="nan-quantity"),
        pytest.param({"quantity": "-1"}, id="negative-quantity"),
        pytest.param({"quantity": "0"}, id="zero-quantity"),
        pytest.param({"quantity": "1e30"}, id="huge-quantity"),
        pytest.param({"quantity": True}, id="boolean-quantity"),
        pytest.param({"quantity": ["1"]}, id="list-quantity"),
        pytest.param({"occurred_at": "yesterday"}, id="bad-time"),
        pytest.param({"service": "not-a-uuid"}, id="bad-service"),
        pytest.param({"idempotency_key": ""}, id="empty-key"),
        pytest.param({"idempotency_key": "x" * 201}, id="long-key"),
        pytest.param({"idempotency_key": "evt\x00"}, id="nul-in-key"),
        pytest.param({"quota": "min\x00utes"}, id="nul-in-quota"),
        pytest.param({"quantity": "1\x00"}, id="nul-in-quantity"),
    ],
)
def test_bad_input_is_a_clear_400_and_records_nothing(client, service, fields):
    response = post(client, service, **fields)

    assert response.status_code == 400
    assert response.json()["status"] == "usage_invalid"
    assert response.json()["message"]
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b"\xff\xfe", b'"text"', b"{}"],
    ids=["not-json", "a-list", "not-utf8", "a-string", "empty-object"],
)
def test_a_body_that_is_not_a_report_is_a_400(client, service, body):
    response = post(client, service, body=body)

    assert response.status_code == 400
    assert not UsageRecord.objects.exists()


def test_only_post_is_allowed(client, service):
    url = reverse("subscriptions:provider_usage", args=[service.provider_instance_id])

    assert client.get(url).status_code == 405


def test_a_body_too_large_is_refused(client, service):
    response = post(client, service, idempotency_key="k" * 20_000)

    assert response.status_code == 413
