"""The sandbox server's own contract: control API shapes, faults, request log, TLS, files."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.clock import FrozenClock
from syncd.sandbox.core import Request, Response, SandboxClock, SandboxContext, Vendor
from syncd.sandbox.server import SandboxServer


class EchoVendor(Vendor):
    """Counts writes so apply-then-fail faults can be observed."""

    name = "zendesk"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self.writes = 0

    def matches(self, path: str) -> bool:
        return path.startswith("/api/v2/")

    def handle(self, req: Request) -> Response:
        if req.path == "/api/v2/boom.json":
            raise RuntimeError("emulator bug")
        if req.method != "GET":
            self.writes += 1
            req.json()
        return Response.json(200, {"now": self.ctx.clock.now().isoformat(), "writes": self.writes})

    def error_response(self, status: int, retry_after: int | None = None) -> Response:
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        return Response.json(status, {"error": f"Echo{status}"}, headers)

    def reset(self) -> None:
        self.writes = 0

    def snapshot(self) -> dict[str, Any]:
        return {"writes": self.writes}

    def restore(self, data: Any) -> None:
        self.writes = data["writes"]


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(directory=tmp_path, vendors=lambda ctx: [EchoVendor(ctx)]) as server:
        yield server


def client(server: SandboxServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=ssl.create_default_context(
        cafile=server.ca_bundle), timeout=10)


def test_files_written_for_people_and_scripts(echo: SandboxServer, tmp_path: Path) -> None:
    info = json.loads((tmp_path / "sandbox.json").read_text())
    assert info["url"] == echo.url and info["ca_bundle"] == str(tmp_path / "ca.pem")
    assert set(info["zendesk"]) == {"subdomain", "email", "token", "scheme", "netloc"}
    assert set(info["salesforce"]) == {"token_url", "client_id", "client_secret", "instance_url"}
    assert set(info["graph"]) == {"authority", "tenant_id", "client_id", "client_secret",
                                  "base_url", "site_id", "drive_id", "mailbox"}
    toml = (tmp_path / "syncd.toml").read_text()
    assert echo.netloc in toml
    for secret in (info["zendesk"]["token"], info["graph"]["client_secret"],
                   info["salesforce"]["client_secret"]):
        assert secret not in toml
    assert (tmp_path / "credentials" / "zendesk_token").read_text() == info["zendesk"]["token"]


def test_tls_is_verified_against_the_sandbox_ca_only(echo: SandboxServer) -> None:
    with client(echo) as c:
        assert c.get("/api/v2/x.json").status_code == 200
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as plain:
        plain.get(echo.url + "/api/v2/x.json")


def test_clock_follows_real_time_until_set_then_stands_still(echo: SandboxServer) -> None:
    before = echo.control("GET", "/_sandbox/clock")["now"]
    assert before[:4] >= "2025"
    set_to = echo.control("POST", "/_sandbox/clock", {"now": "2026-03-06T17:30:00Z"})
    assert set_to == {"now": "2026-03-06T17:30:00+00:00"}
    time.sleep(0.05)
    assert echo.control("GET", "/_sandbox/clock") == set_to
    moved = echo.control("POST", "/_sandbox/clock", {"advance": 3600})
    assert moved == {"now": "2026-03-06T18:30:00+00:00"}
    with client(echo) as c:  # emulators stamp with the sandbox clock
        assert c.get("/api/v2/x.json").json()["now"] == "2026-03-06T18:30:00+00:00"


def test_status_fault_answers_in_vendor_shape_with_retry_after(echo: SandboxServer) -> None:
    echo.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "zendesk", "path": "tickets", "kind": "status", "status": 429,
         "retry_after": 2, "times": 1}]})
    with client(echo) as c:
        first = c.get("/api/v2/tickets.json")
        assert first.status_code == 429
        assert first.headers["Retry-After"] == "2" and first.json() == {"error": "Echo429"}
        assert c.get("/api/v2/tickets.json").status_code == 200  # times: 1 is spent
        assert c.get("/api/v2/users.json").status_code == 200


def test_method_filter_and_clear(echo: SandboxServer) -> None:
    echo.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "zendesk", "method": "PUT", "path": ".", "kind": "status", "status": 503}]})
    with client(echo) as c:
        assert c.get("/api/v2/a.json").status_code == 200
        assert c.put("/api/v2/a.json", json={}).status_code == 503
        assert c.put("/api/v2/a.json", json={}).status_code == 503  # times null: until cleared
        assert echo.control("DELETE", "/_sandbox/faults") == {"faults": []}
        assert c.put("/api/v2/a.json", json={}).status_code == 200


def test_apply_then_status_applies_the_write(echo: SandboxServer) -> None:
    echo.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "zendesk", "path": "w", "kind": "apply_then_status", "status": 500,
         "times": 1}]})
    with client(echo) as c:
        assert c.post("/api/v2/w.json", json={}).status_code == 500
        assert c.get("/api/v2/r.json").json()["writes"] == 1


def test_drop_and_apply_then_drop_close_the_connection(echo: SandboxServer) -> None:
    echo.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "zendesk", "path": "d1", "kind": "drop", "times": 1},
        {"vendor": "zendesk", "path": "d2", "kind": "apply_then_drop", "times": 1}]})
    with client(echo) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/api/v2/d1.json", json={})
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/api/v2/d2.json", json={})
        assert c.get("/api/v2/r.json").json()["writes"] == 1  # only the apply_then_drop landed
    log = echo.control("GET", "/_sandbox/requests")["requests"]
    assert [(r["path"], r["status"]) for r in log] == [
        ("/api/v2/d1.json", None), ("/api/v2/d2.json", None), ("/api/v2/r.json", 200)]


def test_delay_fault_slows_then_answers(echo: SandboxServer) -> None:
    echo.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "zendesk", "path": "slow", "kind": "delay", "delay_s": 0.3, "times": 1}]})
    with client(echo) as c:
        started = time.monotonic()
        assert c.get("/api/v2/slow.json").status_code == 200
        assert time.monotonic() - started >= 0.3


def test_probability_with_seed_is_reproducible(echo: SandboxServer) -> None:
    def run() -> list[int]:
        echo.control("POST", "/_sandbox/reset")
        echo.control("POST", "/_sandbox/faults", {"faults": [
            {"vendor": "zendesk", "path": ".", "kind": "status", "status": 503,
             "probability": 0.5, "seed": 7}]})
        with client(echo) as c:
            return [c.get("/api/v2/p.json").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert 0 < first.count(503) < 20


@pytest.mark.parametrize("fault, message", [
    ({"vendor": "jira", "path": ".", "kind": "drop"}, "vendor must be one of"),
    ({"vendor": "zendesk", "path": ".", "kind": "explode"}, "kind must be one of"),
    ({"vendor": "zendesk", "path": ".", "kind": "status"}, "needs an integer 'status'"),
    ({"vendor": "zendesk", "path": "(", "kind": "drop"}, "not a valid regex"),
    ({"vendor": "zendesk", "path": ".", "kind": "drop", "oops": 1}, "unknown fault keys"),
])
def test_bad_fault_specs_are_refused_whole(echo: SandboxServer, fault: dict, message: str) -> None:
    good = {"vendor": "zendesk", "path": ".", "kind": "drop"}
    with pytest.raises(urllib.error.HTTPError) as err:
        echo.control("POST", "/_sandbox/faults", {"faults": [good, fault]})
    assert err.value.code == 400 and message in json.loads(err.value.read())["error"]
    assert echo.control("GET", "/_sandbox/faults") == {"faults": []}


def test_emulator_bug_becomes_vendor_shaped_500_not_a_traceback(echo: SandboxServer) -> None:
    with client(echo) as c:
        resp = c.get("/api/v2/boom.json")
        bad_json = c.post("/api/v2/w.json", content=b"{nope")
    assert resp.status_code == 500 and resp.json() == {"error": "Echo500"}
    assert bad_json.status_code == 400 and bad_json.json() == {"error": "Echo400"}


def test_request_log_and_reset(echo: SandboxServer) -> None:
    with client(echo) as c:
        c.get("/api/v2/tickets.json?access_token=secret")
        c.get("/nowhere")
    log = echo.control("GET", "/_sandbox/requests")["requests"]
    assert [(r["vendor"], r["method"], r["path"], r["status"]) for r in log] == [
        ("zendesk", "GET", "/api/v2/tickets.json", 200), (None, "GET", "/nowhere", 404)]
    assert set(log[0]) == {"at", "vendor", "method", "path", "status"}
    assert "secret" not in json.dumps(log)
    echo.control("POST", "/_sandbox/reset")
    assert echo.control("GET", "/_sandbox/requests") == {"requests": []}


def test_seed_rejects_unknown_sections(echo: SandboxServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        echo.control("POST", "/_sandbox/seed", {"jira": {}})
    assert err.value.code == 400
    assert echo.control("POST", "/_sandbox/seed", {"clock": "2026-01-05T09:00:00+00:00"}) == {
        "ok": True}
    assert echo.control("GET", "/_sandbox/clock")["now"] == "2026-01-05T09:00:00+00:00"


def test_persisted_state_survives_a_restart(tmp_path: Path) -> None:
    factory = lambda ctx: [EchoVendor(ctx)]  # noqa: E731
    with SandboxServer(directory=tmp_path, vendors=factory, persist=True) as first, \
            client(first) as c:
        c.post("/api/v2/w.json", json={})
    with SandboxServer(directory=tmp_path, vendors=factory, persist=True) as second, \
            client(second) as c:
        assert c.get("/api/v2/r.json").json()["writes"] == 1


def test_cli_prints_ready_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "sandbox", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        info = json.loads((tmp_path / "sandbox.json").read_text())
        assert line.strip() == f"sandbox ready at {info['url']} ({tmp_path})"
        ctx = ssl.create_default_context(cafile=info["ca_bundle"])
        with urllib.request.urlopen(info["url"] + "/_sandbox/clock", context=ctx) as resp:
            assert "now" in json.loads(resp.read())
    finally:
        proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_sandbox_clock_follows_an_in_process_clock_until_set() -> None:
    """A benchmark on an accelerated clock has the sandbox on syncd's instants, not in steps."""
    source = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    clock = SandboxClock()
    clock.follow(source.now)
    source.advance(timedelta(seconds=0.25))
    assert clock.now() == datetime(2026, 3, 2, 9, 0, 0, 250000, tzinfo=UTC) and clock.is_set
    clock.set(datetime(2026, 1, 1, tzinfo=UTC))
    source.advance(timedelta(seconds=5))
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
