"""A real HTTP backend on 127.0.0.1 for webhook tests: records requests, answers as told."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookBackend:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    # What the next requests get, in order; the last one repeats.
    answers: list[tuple[int, dict, float]] = field(default_factory=lambda: [(200, {}, 0.0)])

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def answer(self, *answers: tuple[int, dict, float]) -> None:
        self.answers = list(answers)


def start_backend() -> WebhookBackend:
    backend: WebhookBackend

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            backend.requests.append(Received(self.path, dict(self.headers), body))
            index = min(len(backend.requests), len(backend.answers)) - 1
            status, payload, delay = backend.answers[index]
            if delay:
                time.sleep(delay)
            raw = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    backend = WebhookBackend(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return backend
