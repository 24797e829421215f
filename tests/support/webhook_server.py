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


@dataclass
class Call:
    key: str
    service_id: str
    received_at: float
    answered: bool = False


@dataclass
class StandInProvider:
    """A provider that builds one resource per idempotency key, then answers slowly."""

    server: ThreadingHTTPServer
    delay: float
    calls: list[Call] = field(default_factory=list)
    # Idempotency key -> (service id, remote id) of the resource built for it.
    resources: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Closed by hold(): calls wait inside the provider until release(), so a test
    # knows which workers are mid-call when it kills one.
    gate: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def in_flight(self) -> int:
        return self.in_flight_since(0.0)

    def in_flight_since(self, moment: float) -> int:
        """Calls received after `moment` that the provider has not answered yet."""
        with self.lock:
            return sum(1 for c in self.calls if c.received_at > moment and not c.answered)


def start_provider(*, delay: float) -> StandInProvider:
    provider: StandInProvider

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers["Idempotency-Key"]
            service_id = json.loads(body)["data"]["service_id"]
            call = Call(key, service_id, time.monotonic())
            with provider.lock:
                provider.calls.append(call)
                # Built at once, like a real provider; only the answer is slow.
                _, remote_id = provider.resources.setdefault(
                    key, (service_id, f"vm-{len(provider.resources) + 1}")
                )
            provider.gate.wait(timeout=30)
            time.sleep(provider.delay)
            with provider.lock:
                call.answered = True
            raw = json.dumps({"remote_id": remote_id}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker that called was killed

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    provider = StandInProvider(server=server, delay=delay)
    provider.release()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return provider
