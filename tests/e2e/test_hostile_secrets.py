"""Secrets never at rest, never printed: a vendor 500 whose body echoes the request's
`Authorization: Basic <base64 of email/token:TOKEN>` (a misbehaving proxy's error page) is
masked wherever syncd stores or prints vendor error text: intents.last_error, audit.detail,
`run --once`'s failure lines, `syncd intents --json`, `syncd audit --json`."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from e2e_world import NOW, World, seed
from sqlalchemy import select
from typer.testing import CliRunner

from syncd.cli import app
from syncd.store.tables import audit, intents


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request 500 with its request headers in a text body (and a Retry-After
    beyond the retry policy's patience, so the test does not sit through its backoff)."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = f"Internal error while proxying.\n{self.headers}".encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Retry-After", "3600")  # more than syncd waits for: no retry now
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _echo

    def log_message(self, *args: object) -> None:  # quiet
        pass


@contextmanager
def echoing(world: World) -> Iterator[str]:
    """An HTTPS server (a cert from the sandbox's CA, which syncd trusts) echoing headers."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    world.sandbox.ca.issue_cert("127.0.0.1").configure_cert(tls)  # type: ignore[attr-defined]
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_echoed_basic_credential_is_stored_and_printed_masked(world: World,
                                                                  tmp_path: Path) -> None:
    zd = world.sandbox.info["zendesk"]
    token = zd["token"]
    basic = base64.b64encode(f"{zd['email']}/token:{token}".encode()).decode()
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=30)))
    switch = Path(world.settings.syncd.kill_switch_file)
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()  # plan now, execute against the echoing proxy below
    world.cycle()
    switch.unlink()
    runner = CliRunner()
    with echoing(world) as netloc:
        env = {**world.env, "SYNCD_CONFIG": str(world.config),
               "SYNCD_ZENDESK__NETLOC": netloc, "SYNCD_SYNCD__MAX_ATTEMPTS": "1"}
        once = runner.invoke(app, ["run", "--once"], env=env)
    assert once.exit_code == 1
    assert "failed:" in once.stderr
    listed = runner.invoke(app, ["intents", "--json"], env=env)
    explained = runner.invoke(app, ["audit", "zendesk:1", "--json"], env=env)
    store = world.store()
    try:
        with store.read() as tx:
            errors = [r.last_error for r in tx.conn.execute(select(intents)) if r.last_error]
            details = [str(r.detail) for r in tx.conn.execute(select(audit))]
    finally:
        store.close()
    print(once.stderr, errors)
    assert any("Authorization" in e for e in errors), errors  # the echo was stored: masked
    for text in (once.stderr, once.stdout, listed.stdout, explained.stdout, *errors, *details):
        for secret in (basic, token, quote(basic, safe="")):
            assert secret not in text, text


def test_every_client_ignores_ambient_proxy_variables(world: World,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One explicit `[proxy] https` for all clients; a host's HTTPS_PROXY (here a port nobody
    listens on) is ignored alike by zenpy, simple-salesforce, msal and httpx."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=30)))
    report = world.cycle()
    assert report.ok, report.failures
    assert "syncd-triaged" in world.ticket(1)["tags"] and world.subjects() == ["New ticket #1"]
