"""The sandbox's Zendesk webhook (syncd/sandbox/zendesk_webhooks.py) as a receiver meets it: a
ticket created or updated through the API fires it, signed as Zendesk documents, and failed
deliveries are retried as Zendesk documents (409: up to 3 retries; 429/503 with Retry-After
under 60 s: after that wait; other answers: not at all). Imports fire nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx
import pytest

from syncd.sandbox.server import SandboxServer

SECRET = "sandbox-webhook-secret-0123456789"


class _Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers: ClassVar[list[tuple[int, dict[str, str]]]] = []
    seen: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status, headers = type(self).answers.pop(0) if type(self).answers else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def receiver(sandbox: SandboxServer, answers: list[tuple[int, dict[str, str]]]
             ) -> Iterator[type[_Receiver]]:
    handler = type("Receiver", (_Receiver,), {"answers": list(answers), "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sandbox.ca.issue_cert("127.0.0.1").configure_cert(tls)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"webhooks": [{
        "endpoint": f"https://127.0.0.1:{server.server_address[1]}/hook",
        "signing_secret": SECRET, "ca_bundle": sandbox.ca_bundle}]}})
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def sender(sandbox: SandboxServer) -> Any:
    return next(v for v in sandbox.sandbox.vendors if v.name == "zendesk").webhooks


def api(sandbox: SandboxServer, method: str, path: str, body: Any) -> httpx.Response:
    zd = sandbox.info["zendesk"]
    resp = httpx.request(method, f"{sandbox.url}/api/v2{path}", json=body, timeout=30,
                         auth=(f"{zd['email']}/token", zd["token"]),
                         verify=ssl.create_default_context(cafile=sandbox.ca_bundle))
    resp.raise_for_status()
    return resp


def create(sandbox: SandboxServer) -> int:
    ticket = {"subject": "Printer on fire", "comment": {"body": "Help"}}
    return int(api(sandbox, "POST", "/tickets.json", {"ticket": ticket}).json()["ticket"]["id"])


def settle(sandbox: SandboxServer, invocations: int) -> list[Any]:
    hooks = sender(sandbox)
    deadline = threading.Event()
    for _ in range(200):
        if hooks.idle() and len(hooks.delivered) >= invocations:
            break
        deadline.wait(0.05)
    assert hooks.idle() and len(hooks.delivered) == invocations
    return list(hooks.delivered)


def test_create_and_update_fire_signed_requests(sandbox: SandboxServer) -> None:
    with receiver(sandbox, []) as got:
        ticket = create(sandbox)
        api(sandbox, "PUT", f"/tickets/{ticket}.json", {"ticket": {"status": "open"}})
        settle(sandbox, 2)
    assert [json.loads(body)["event"] for _, body in got.seen] == ["created", "updated"]
    for headers, body in got.seen:
        assert json.loads(body)["ticket_id"] == str(ticket)
        stamp = headers["x-zendesk-webhook-signature-timestamp"]
        digest = hmac.new(SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
        assert headers["x-zendesk-webhook-signature"] == base64.b64encode(digest).decode()
        assert headers["x-zendesk-webhook-id"] and headers["x-zendesk-webhook-invocation-id"]


@pytest.mark.parametrize(
    ("answers", "attempts"),
    [
        ([(409, {})] * 5, [409, 409, 409, 409]),  # the first try and 3 retries
        ([(409, {}), (200, {})], [409, 200]),
        ([(503, {"Retry-After": "1"}), (200, {})], [503, 200]),
        ([(429, {"Retry-After": "60"})], [429]),  # 60 s or more: not retried
        ([(503, {})], [503]),  # no Retry-After: not retried
        ([(500, {})], [500]),
        ([(401, {})], [401]),
    ],
)
def test_retries_as_zendesk_documents(sandbox: SandboxServer,
                                      answers: list[tuple[int, dict[str, str]]],
                                      attempts: list[int]) -> None:
    with receiver(sandbox, answers) as got:
        create(sandbox)
        (delivery,) = settle(sandbox, 1)
    assert delivery.log == attempts
    # a retry is the same request again: same timestamp, same signature
    assert len({h["x-zendesk-webhook-signature"] for h, _ in got.seen}) == 1


def test_imports_and_seeds_fire_nothing(sandbox: SandboxServer) -> None:
    with receiver(sandbox, []) as got:
        sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"tickets": [
            {"subject": "Old", "requester": "carl@customer.example"}]}})
        api(sandbox, "POST", "/imports/tickets.json", {"ticket": {
            "subject": "Imported", "comments": [{"value": "history"}]}})
        threading.Event().wait(0.3)
        assert sender(sandbox).idle() and got.seen == []


def test_the_secret_is_not_in_the_persisted_state(sandbox: SandboxServer) -> None:
    with receiver(sandbox, []):
        assert SECRET not in json.dumps(sandbox.sandbox.snapshot())


def test_a_bad_webhook_in_a_fixture_is_refused(sandbox: SandboxServer) -> None:
    with pytest.raises(Exception, match="400"):
        sandbox.control("POST", "/_sandbox/seed",
                        {"zendesk": {"webhooks": [{"endpoint": "ftp://x", "signing_secret": "s"}]}})
