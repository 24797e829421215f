"""A stand-in provider for the demo: accepts signed webhook events and answers with a remote id.

It shows what a real backend does with the Webhook plugin's events: check the
HMAC signature and its timestamp (replay window), then act once per
Idempotency-Key. bin/demo runs it on 127.0.0.1:8081 for the demo VPS panel.
"""

from __future__ import annotations

import json
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.core.management.base import BaseCommand

from provisioning.plugins.webhook import SIGNATURE_HEADER, verify


def make_server(*, secret: str, host: str = "127.0.0.1", port: int = 8081) -> ThreadingHTTPServer:
    remote_ids: dict[str, str] = {}  # idempotency key -> the id answered the first time

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not verify(secret, body, self.headers.get(SIGNATURE_HEADER, "")):
                return self.reply(401, {"error": "bad or stale signature"})
            event = json.loads(body).get("event", "")
            key = self.headers.get("Idempotency-Key") or uuid.uuid4().hex
            remote_id = remote_ids.setdefault(key, f"demo-{uuid.uuid4().hex[:12]}")
            self.server.events.append(event)
            self.reply(200, {"remote_id": remote_id})

        def reply(self, status: int, payload: dict) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.events = []
    return server


class Command(BaseCommand):
    help = "Serves a demo provider that accepts the Webhook plugin's signed events."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8081)
        parser.add_argument("--secret", default="demo-signing-secret")

    def handle(self, *args, port: int, secret: str, **options):
        server = make_server(secret=secret, port=port)
        self.stdout.write(f"Demo webhook backend on http://127.0.0.1:{port}/hooks/billing")
        try:
            server.serve_forever()
        finally:
            server.server_close()
