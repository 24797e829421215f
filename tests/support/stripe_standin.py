"""A local stand-in for the part of Stripe's API the Stripe gateway uses, and webhook signing.

It answers with the shapes of Stripe's API reference (checkout.session,
refund, balance, error), replays the first answer for a repeated
Idempotency-Key as Stripe does, and records every request for the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

GOOD_KEY = "sk_test_standin"


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    form: dict


@dataclass
class StripeStandIn:
    url: str
    requests: list[Request] = field(default_factory=list)
    replies: dict = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _nested(form: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding (a[b][0][c]=v) back into plain keys, flat: 'a[b][0][c]' → v."""
    return dict(form)


def start_stripe() -> StripeStandIn:
    standin: StripeStandIn

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_standin")
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str):
            length = int(self.headers.get("Content-Length") or 0)
            form = _nested(parse_qsl(self.rfile.read(length).decode())) if length else {}
            request = Request(method, self.path.split("?")[0], dict(self.headers), form)
            standin.requests.append(request)
            if self.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
                return self._answer(
                    401,
                    {"error": {"type": "invalid_request_error",
                               "message": "Invalid API Key provided: sk_test_****"}},
                )  # fmt: skip
            key = self.headers.get("Idempotency-Key", "")
            if key and key in standin.replies:
                # Stripe replays the first answer to a repeated idempotency key.
                return self._answer(*standin.replies[key])
            answer = self._route(request, key)
            if answer is None:
                answer = (
                    404,
                    {"error": {"type": "invalid_request_error", "message": "No such path"}},
                )
            status, body = answer if isinstance(answer, tuple) else (200, answer)
            if key:
                standin.replies[key] = (status, body)
            return self._answer(status, body)

        def _route(self, request: Request, key: str):
            suffix = hashlib.sha256((key or str(time.time())).encode()).hexdigest()[:16]
            if request.method == "GET" and request.path == "/v1/balance":
                return {"object": "balance", "livemode": False,
                        "available": [{"amount": 0, "currency": "usd"}], "pending": []}  # fmt: skip
            if request.method == "POST" and request.path == "/v1/checkout/sessions":
                form = request.form
                session_id = f"cs_test_{suffix}"
                return {
                    "id": session_id,
                    "object": "checkout.session",
                    "mode": form.get("mode"),
                    "status": "open",
                    "payment_status": "unpaid",
                    "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                    "currency": form["line_items[0][price_data][currency]"],
                    "client_reference_id": form.get("client_reference_id"),
                    "customer_email": form.get("customer_email"),
                    "metadata": {"invoice_id": form.get("metadata[invoice_id]")},
                    "payment_intent": None,
                    "success_url": form.get("success_url"),
                    "cancel_url": form.get("cancel_url"),
                    "url": f"{standin.url}/c/pay/{session_id}",
                    "livemode": False,
                }
            if request.method == "POST" and request.path == "/v1/payment_intents":
                form = request.form
                intent_id = f"pi_{suffix}"
                if form.get("payment_method") == "pm_card_chargeDeclined":
                    return 402, {
                        "error": {
                            "type": "card_error",
                            "code": "card_declined",
                            "decline_code": "generic_decline",
                            "message": "Your card was declined.",
                            "payment_intent": {"id": intent_id, "object": "payment_intent",
                                               "status": "requires_payment_method"},
                        }
                    }  # fmt: skip
                return {
                    "id": intent_id,
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": int(form["amount"]),
                    "amount_received": int(form["amount"]),
                    "currency": form["currency"],
                    "customer": form.get("customer"),
                    "payment_method": form.get("payment_method"),
                    "metadata": {"invoice_id": form.get("metadata[invoice_id]")},
                }
            if request.method == "POST" and request.path.endswith("/detach"):
                method_id = request.path.split("/")[3]
                return {"id": method_id, "object": "payment_method", "customer": None}
            if request.method == "POST" and request.path == "/v1/refunds":
                return {
                    "id": f"re_{suffix}",
                    "object": "refund",
                    "amount": int(request.form["amount"]),
                    "currency": "usd",
                    "payment_intent": request.form["payment_intent"],
                    "status": "succeeded",
                }
            return None

        def do_GET(self):  # noqa: N802 (http.server's name)
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    standin = StripeStandIn(url=f"http://127.0.0.1:{server.server_port}", server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return standin


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends: t=<unix time>,v1=<HMAC-SHA256 of "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def event(event_id: str, type_: str, obj: dict) -> str:
    """A webhook body in the shape of Stripe's Event object."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": type_,
            "data": {"object": obj},
        }
    )


def paid_session(invoice, amount_cents: int, payment_intent: str) -> dict:
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "payment_status": "paid",
        "status": "complete",
        "amount_total": amount_cents,
        "currency": invoice.currency.lower(),
        "metadata": {"invoice_id": str(invoice.pk)},
        "payment_intent": payment_intent,
    }


def succeeded_intent(invoice, amount_cents: int, payment_intent: str) -> dict:
    return {
        "id": payment_intent,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": amount_cents,
        "amount_received": amount_cents,
        "currency": invoice.currency.lower(),
        "metadata": {"invoice_id": str(invoice.pk)},
    }
