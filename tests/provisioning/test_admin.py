"""Provider instances in the admin: plugin types, write-only secrets, test connection."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from catalog.models import Package
from provisioning.models import ProviderInstance, WebhookInstance
from provisioning.plugins.webhook import SIGNATURE_HEADER, verify
from tests.factories import ManualInstanceFactory, PackageFactory, WebhookInstanceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:provisioning_providerinstance_changelist"


class RecordingHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers[SIGNATURE_HEADER], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass  # keep the test output quiet


@pytest.fixture
def backend():
    """A real HTTP server on 127.0.0.1 that answers 200 and records what it receives."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def post_test_connection(client, instance, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": "test_connections", "_selected_action": [instance.pk], **extra},
        follow=True,
    )


class TestTestConnection:
    def test_it_reports_success_against_a_real_http_server(self, staff_client, backend):
        port = backend.server_address[1]
        instance = WebhookInstanceFactory(name="Panel", url=f"http://127.0.0.1:{port}/hook")

        response = post_test_connection(staff_client, instance)

        [(level, text)] = messages_of(response)
        assert level == "success"
        assert text.startswith(f"“Panel” connected: http://127.0.0.1:{port}/hook answered HTTP 200")
        [(signature, body)] = backend.received
        assert json.loads(body)["event"] == "ping"
        assert verify("s3cret", body, signature)

    def test_it_reports_a_clear_error_against_a_closed_port(self, staff_client, closed_port):
        instance = WebhookInstanceFactory(name="Down", url=f"http://127.0.0.1:{closed_port}/")

        response = post_test_connection(staff_client, instance)

        [(level, text)] = messages_of(response)
        assert level == "error"
        assert text.startswith(f"“Down” failed: Could not reach http://127.0.0.1:{closed_port}/")
        assert "refused" in text.lower()

    def test_it_reports_each_selected_instance(self, staff_client, closed_port):
        manual = ManualInstanceFactory(name="By hand")
        down = WebhookInstanceFactory(name="Down", url=f"http://127.0.0.1:{closed_port}/")

        response = staff_client.post(
            reverse(CHANGELIST),
            {"action": "test_connections", "_selected_action": [manual.pk, down.pk]},
            follow=True,
        )

        by_level = dict(messages_of(response))
        assert by_level["success"].startswith("“By hand” connected: Manual instances")
        assert by_level["error"].startswith("“Down” failed: Could not reach")

    def test_the_change_page_button_tests_and_comes_back(self, staff_client, closed_port):
        instance = WebhookInstanceFactory(url=f"http://127.0.0.1:{closed_port}/")
        change_url = reverse("admin:provisioning_providerinstance_change", args=[instance.pk])
        assert "Test connection" in staff_client.get(change_url).content.decode()

        response = post_test_connection(staff_client, instance, _from_change_page="1")

        assert response.redirect_chain[-1][0] == change_url
        assert messages_of(response)[0][0] == "error"


class TestSecrets:
    def test_the_signing_secret_never_reaches_the_change_page(self, staff_client):
        instance = WebhookInstanceFactory(signing_secret="very-secret-value")
        url = reverse("admin:provisioning_providerinstance_change", args=[instance.pk])

        html = staff_client.get(url).content.decode()

        assert "very-secret-value" not in html
        assert 'type="password" name="signing_secret"' in html

    def test_leaving_the_secret_empty_keeps_the_stored_one(self, staff_client):
        instance = WebhookInstanceFactory(signing_secret="keep-me")
        url = reverse("admin:provisioning_webhookinstance_change", args=[instance.pk])

        response = staff_client.post(
            url,
            {"name": "Renamed", "is_active": "on", "url": "https://example.com/hook",
             "signing_secret": "", "timeout_seconds": "5"},
        )  # fmt: skip

        assert response.status_code == 302
        instance.refresh_from_db()
        assert (instance.name, instance.signing_secret) == ("Renamed", "keep-me")

    def test_typing_a_secret_replaces_it_and_an_error_page_does_not_echo_it(self, staff_client):
        instance = WebhookInstanceFactory(signing_secret="old")
        url = reverse("admin:provisioning_webhookinstance_change", args=[instance.pk])
        data = {"name": instance.name, "is_active": "on", "url": "https://example.com/hook",
                "signing_secret": "brand-new-secret", "timeout_seconds": "5"}  # fmt: skip

        refused = staff_client.post(url, {**data, "timeout_seconds": "500"})
        assert refused.status_code == 200
        assert "brand-new-secret" not in refused.content.decode()

        assert staff_client.post(url, data).status_code == 302
        instance.refresh_from_db()
        assert instance.signing_secret == "brand-new-secret"

    def test_a_new_instance_needs_a_secret(self, staff_client):
        response = staff_client.post(
            reverse("admin:provisioning_webhookinstance_add"),
            {"name": "New", "is_active": "on", "url": "https://example.com/hook",
             "signing_secret": "", "timeout_seconds": "5"},
        )  # fmt: skip
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["signing_secret"] == [
            "This field is required."
        ]
        assert not WebhookInstance.objects.exists()


class TestPolymorphicAdmin:
    def test_adding_an_instance_starts_by_picking_its_plugin(self, staff_client):
        response = staff_client.get(reverse("admin:provisioning_providerinstance_add"))
        html = response.content.decode()
        assert "manual provider instance" in html and "webhook provider instance" in html

    def test_the_list_shows_each_instance_plugin_and_its_packages(self, staff_client):
        manual = ManualInstanceFactory(name="By hand")
        PackageFactory(provider_instance=manual)
        WebhookInstanceFactory(name="Panel")

        response = staff_client.get(reverse(CHANGELIST))

        rows = {row.name: row.package_count for row in response.context["cl"].result_list}
        assert rows == {"By hand": 1, "Panel": 0}
        html = response.content.decode()
        assert "Manual" in html and "Webhook" in html

    def test_an_instance_in_use_cannot_be_deleted(self, staff_client):
        instance = ManualInstanceFactory()
        package = PackageFactory(provider_instance=instance)
        url = reverse("admin:provisioning_providerinstance_delete", args=[instance.pk])

        response = staff_client.post(url, {"post": "yes"})

        assert response.status_code == 200
        html = response.content.decode()
        assert "would require deleting the following protected related objects" in html
        assert package.name in html
        assert ProviderInstance.objects.filter(pk=instance.pk).exists()
        assert Package.objects.get(pk=package.pk).provider_instance_id == instance.pk

    def test_an_unused_instance_can_be_deleted(self, staff_client):
        instance = ManualInstanceFactory()
        url = reverse("admin:provisioning_providerinstance_delete", args=[instance.pk])
        assert staff_client.post(url, {"post": "yes"}).status_code == 302
        assert not ProviderInstance.objects.exists()
