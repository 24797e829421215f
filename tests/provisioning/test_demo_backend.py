from __future__ import annotations

import threading

import pytest

from provisioning.management.commands.demo_webhook_backend import make_server
from provisioning.plugins.base import ProvisioningError, ProvisionRequest
from tests.factories import WebhookInstanceFactory


@pytest.fixture
def demo_backend():
    server = make_server(secret="demo-signing-secret", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/hooks/billing"


@pytest.mark.django_db
def test_the_demo_backend_answers_a_signed_event_with_one_remote_id_per_key(demo_backend):
    instance = WebhookInstanceFactory(
        url=url_of(demo_backend), signing_secret="demo-signing-secret"
    )
    request = ProvisionRequest(action="create", service_id="7", idempotency_key="job-1")

    first = instance.plugin.perform(instance, request)
    again = instance.plugin.perform(instance, request)

    assert first.done and first.remote_id.startswith("demo-")
    assert again.remote_id == first.remote_id
    assert demo_backend.events == ["service.create", "service.create"]


@pytest.mark.django_db
def test_the_demo_backend_refuses_a_wrong_signature(demo_backend):
    instance = WebhookInstanceFactory(url=url_of(demo_backend), signing_secret="wrong")
    with pytest.raises(ProvisioningError, match="HTTP 401"):
        instance.plugin.perform(
            instance, ProvisionRequest(action="create", service_id="7", idempotency_key="k")
        )
    assert demo_backend.events == []
