from __future__ import annotations

import json

import pytest

from provisioning.plugins.webhook import sign, verify
from provisioning.registry import PLUGINS, all_plugins, get_plugin
from tests.factories import ManualInstanceFactory, WebhookInstanceFactory


def test_the_registry_lists_manual_and_webhook_explicitly():
    assert list(PLUGINS) == ["manual", "webhook"]
    assert [plugin.key for plugin in all_plugins()] == ["manual", "webhook"]


def test_an_unknown_plugin_key_is_a_clear_error():
    with pytest.raises(LookupError, match="No provisioning plugin is registered as “ftp”"):
        get_plugin("ftp")


@pytest.mark.django_db
def test_each_instance_model_points_at_its_plugin():
    assert ManualInstanceFactory().plugin.key == "manual"
    assert WebhookInstanceFactory().plugin.key == "webhook"


def test_a_signature_verifies_with_the_right_secret_within_the_window():
    body = json.dumps({"event": "ping"}).encode()
    header = sign("secret", body, 1_700_000_000)
    assert verify("secret", body, header, now=1_700_000_100)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("wrong", b'{"event": "ping"}', 1_700_000_000),  # other secret
        ("secret", b'{"event": "pong"}', 1_700_000_000),  # body changed
        ("secret", b'{"event": "ping"}', 1_700_000_301),  # replayed too late
    ],
)
def test_a_signature_fails_for_a_wrong_secret_a_changed_body_or_a_replay(secret, body, now):
    header = sign("secret", b'{"event": "ping"}', 1_700_000_000)
    assert not verify(secret, body, header, now=now)


def test_a_malformed_signature_header_is_rejected():
    assert not verify("secret", b"{}", "garbage")


@pytest.mark.django_db
def test_the_manual_plugin_always_connects_and_waits_for_staff():
    from provisioning.plugins.base import ProvisionRequest

    instance = ManualInstanceFactory()
    assert instance.plugin.test_connection(instance).ok
    result = instance.plugin.perform(
        instance, ProvisionRequest(action="create", service_id="1", idempotency_key="k")
    )
    assert not result.done and "staff" in result.message


@pytest.mark.django_db
def test_the_webhook_plugin_reports_an_unreachable_backend_clearly():
    instance = WebhookInstanceFactory(url="http://127.0.0.1:9/hook")
    result = instance.plugin.test_connection(instance)
    assert not result.ok and "Could not reach http://127.0.0.1:9/hook" in result.message
