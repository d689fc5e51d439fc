"""Zendesk webhooks as a push source: instant rules act seconds after a change, not the 60-95 s
the incremental export needs (it leaves out its last minute).

A Zendesk trigger calls `[webhooks] host:port path` with the ticket id; the request is verified
(connectors/zendesk_webhook.py: signature, timestamp window, replay) before it is answered 200,
and refused with 401 otherwise (Zendesk does not retry a 401). Accepted ids gather for
`batch_s`, then the tickets are read through the connector (`fetch_many`: one show_many per
100) and applied exactly as a polled change (planner.apply_record, in one transaction), so the
ledger's unique intent keys and the rules' memory absorb a webhook that comes twice and the
export's later copy of the same change. The export stays the safety net: a lost webhook is
only a slower change. Until the Zendesk source's first sync (or a kind's catch-up) is done,
webhooks are ignored: the export's baseline decides what counts as history.

TLS: with `tls_cert`/`tls_key` syncd serves HTTPS itself; without them it serves plain HTTP on
`host` (loopback by default), for a reverse proxy that terminates TLS in front of it.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from syncd.connectors.http import VendorError
from syncd.connectors.zendesk_webhook import Refused, Replayed, Verifier
from syncd.daemon import baseline
from syncd.daemon.contain import apply_contained
from syncd.daemon.runtime import Runtime, log
from syncd.daemon.sources import TICKET, wanted
from syncd.model import RecordRef
from syncd.settings import WebhooksSection

SOURCE = "zendesk"
MAX_BODY = 256 * 1024  # a trigger's JSON body is small; anything larger is refused


class Inbox:
    """Ticket ids accepted and not yet applied; thread-safe, duplicates collapse."""

    def __init__(self) -> None:
        self._ids: dict[int, None] = {}
        self._lock = threading.Lock()
        self.arrived = threading.Event()

    def add(self, ticket_id: int) -> None:
        with self._lock:
            self._ids[ticket_id] = None
            self.arrived.set()

    def take(self) -> list[int]:
        with self._lock:
            ids, self._ids = list(self._ids), {}
            self.arrived.clear()
            return ids


def apply_pushed(rt: Runtime, ids: list[int]) -> int:
    """Read the tickets and apply them as the poll would; returns the intents planned. Does
    nothing (the export will bring them) while the source is not live or no rule reads tickets."""
    connector = rt.connectors.get(SOURCE)
    engine = rt.engine
    if connector is None or not ids or TICKET not in wanted(engine, connector):
        return 0
    with rt.store.read() as tx:
        cursor = tx.cursors.get(SOURCE)
        if cursor is None or baseline.running(tx, rt.settings, SOURCE, cursor):
            return 0
        if baseline.resuming(tx, rt.settings, [TICKET]):
            return 0
    refs = [RecordRef(TICKET, str(i)) for i in ids]
    fresh = connector.fetch_many(refs)
    planned = 0
    now = rt.clock.now()
    with rt.store.transaction() as tx:
        for ref in refs:
            record = fresh.get(ref)
            if record is None:  # gone: the export reports the deletion
                continue
            applied = apply_contained(rt, tx, engine, record, now, rt.grace)
            if applied is not None:
                planned += len(applied.planned)
    log.info("webhooks_applied", tickets=len(refs), planned=planned)
    return planned


class PushSource:
    """The webhook endpoint and the worker that applies what it accepted."""

    def __init__(self, rt: Runtime, may_act: Callable[[], bool], planned: Callable[[], None],
                 counted: Callable[[str | None], None]) -> None:
        settings = rt.settings.webhooks
        assert settings.signing_secret is not None  # settings refuse `enabled` without it
        self.rt = rt
        self.settings = settings
        self.inbox = Inbox()
        self.verifier = Verifier(settings.signing_secret.get_secret_value(), rt.clock,
                                 settings.max_age_s)
        self._may_act = may_act
        self._planned = planned
        self.counted = counted  # each request: None accepted, else the refusal's reason
        self._stop = threading.Event()
        self._http = _server(settings, self)
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    def start(self) -> PushSource:
        for name, target in (("syncd-webhooks", self._serve), ("syncd-push", self._work)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("webhooks_listening", host=self.settings.host, port=self.port,
                 path=self.settings.path, tls=self.settings.tls_cert is not None)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.inbox.arrived.set()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _serve(self) -> None:
        self._http.serve_forever(poll_interval=0.1)

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self.inbox.arrived.wait(1.0):
                continue
            self._stop.wait(self.settings.batch_s)  # let the ids of one burst gather
            ids = self.inbox.take()
            if not ids or self._stop.is_set():
                continue
            if not self._may_act():  # a standby: the leader's export brings them
                continue
            try:
                if apply_pushed(self.rt, ids):
                    self._planned()
            except VendorError as exc:
                log.warning("webhooks_read_failed", tickets=len(ids), error=str(exc))
            except Exception:  # the export will bring them; the endpoint must stay up
                log.exception("webhooks_apply_failed", tickets=len(ids))

    def receive(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, answer) for one request."""
        if path.split("?", 1)[0] != self.settings.path:
            self.counted(Refused.reason)
            return 404, {"error": "not found"}
        try:
            ticket_id = self.verifier.check(headers, body)
        except Refused as exc:  # a replay is routine (see Replayed); the others are not
            (log.info if isinstance(exc, Replayed) else log.warning)("webhook_refused",
                                                                     reason=str(exc))
            self.counted(exc.reason)
            return 401, {"error": str(exc)}
        self.inbox.add(ticket_id)
        self.counted(None)
        return 200, {"accepted": ticket_id}


def _server(settings: WebhooksSection, source: PushSource) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 15  # a client that stalls (or never finishes its TLS handshake) is dropped

        def log_message(self, format: str, *args: Any) -> None:  # journald gets our own lines
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                source.counted(Refused.reason)
                self._answer(413, {"error": "body too large"})
                return
            body = self.rfile.read(length) if length else b""
            self._answer(*source.receive(self.path, self.headers, body))

        def _answer(self, status: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((settings.host, settings.port), Handler)
    server.daemon_threads = True
    tls = listener_tls(settings)
    if tls is not None:
        # the handshake happens in the request's thread, not in the accepting one
        server.socket = tls.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    return server


def listener_tls(settings: WebhooksSection) -> ssl.SSLContext | None:
    """The listener's TLS (None: plain HTTP); raises what a certificate or key that cannot
    serve raises (doctor tries it the same way)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(settings.tls_cert, settings.tls_key)
    return tls
