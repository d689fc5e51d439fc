"""One loopback HTTPS server for all emulators, with the `/_sandbox/` control API.

Stdlib `http.server` rather than an ASGI framework: fault injection needs to drop a connection
mid-request and delay an answer, which a framework hides from us.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.error
import uuid
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme
from ruamel.yaml import YAML

from syncd.files import private_dir, write_private
from syncd.sandbox.core import (
    BadJson,
    Request,
    Response,
    SandboxClock,
    SandboxContext,
    Vendor,
)
from syncd.sandbox.faults import FaultSpecError, FaultTable

log = logging.getLogger("syncd.sandbox")

CONTROL_PREFIX = "/_sandbox/"


def is_loopback(host: str) -> bool:
    """Whether a client address is this host's loopback (127.0.0.0/8, ::1, v4-mapped)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def make_credentials(url: str, ca_path: str) -> dict[str, Any]:
    """Fresh throwaway credentials for one sandbox run, in sandbox.json's shape."""
    netloc = urlsplit(url).netloc
    tenant = str(uuid.uuid4())
    site_guid, web_guid = uuid.uuid4(), uuid.uuid4()
    return {
        "url": url,
        "ca_bundle": ca_path,
        "zendesk": {
            "subdomain": "sandbox",
            "email": "syncd@sandbox.example",
            "token": secrets.token_urlsafe(24),
            "scheme": "https",
            "netloc": netloc,
        },
        "salesforce": {
            "token_url": f"{url}/services/oauth2/token",
            "client_id": "3MVG9sandbox" + secrets.token_hex(8),
            "client_secret": secrets.token_urlsafe(24),
            "instance_url": url,
        },
        "graph": {
            "authority": f"{url}/{tenant}",
            "tenant_id": tenant,
            "client_id": str(uuid.uuid4()),
            "client_secret": secrets.token_urlsafe(24),
            "base_url": f"{url}/v1.0",
            "site_id": f"contoso.sharepoint.com,{site_guid},{web_guid}",
            "drive_id": "b!" + secrets.token_urlsafe(30),
            "mailbox": "syncd@contoso.example",
        },
    }


def default_vendors(ctx: SandboxContext) -> list[Vendor]:
    """The emulators, in routing order."""
    from syncd.sandbox.graph import GraphVendor
    from syncd.sandbox.identity import IdentityVendor
    from syncd.sandbox.salesforce import SalesforceVendor
    from syncd.sandbox.zendesk import ZendeskVendor

    identity = IdentityVendor(ctx)
    return [ZendeskVendor(ctx), SalesforceVendor(ctx), GraphVendor(ctx, identity), identity]


class Sandbox:
    """The emulators' shared state and the control API; transport-independent."""

    def __init__(
        self,
        credentials: dict[str, Any],
        vendors: Callable[[SandboxContext], list[Vendor]] = default_vendors,
    ) -> None:
        self.ctx = SandboxContext(clock=SandboxClock(), credentials=credentials)
        self.ctx.base_url = credentials["url"]
        self.vendors = vendors(self.ctx)
        self.faults = FaultTable()
        self.requests: list[dict[str, Any]] = []

    # -- vendor traffic --------------------------------------------------------------------
    def route(self, path: str) -> Vendor | None:
        return next((v for v in self.vendors if v.matches(path)), None)

    def log_request(self, vendor: str | None, method: str, path: str, status: int | None) -> None:
        with self.ctx.lock:
            self.requests.append(
                {
                    "at": self.ctx.clock.now().isoformat(),
                    "vendor": vendor,
                    "method": method,
                    "path": path,
                    "status": status,
                }
            )

    def call_vendor(self, vendor: Vendor, req: Request) -> Response:
        """Run one emulator call; an emulator bug becomes the vendor's own 500, not a traceback."""
        with self.ctx.lock:
            try:
                return vendor.handle(req)
            except BadJson:
                return vendor.error_response(400)
            except Exception:
                log.error("emulator %s failed on %s %s\n%s", vendor.name, req.method, req.path,
                          traceback.format_exc())
                return vendor.error_response(500)

    # -- control API -----------------------------------------------------------------------
    def control(self, req: Request) -> Response:
        name = req.path[len(CONTROL_PREFIX):].strip("/")
        handler = {
            ("POST", "reset"): self._reset,
            ("POST", "seed"): self._seed,
            ("GET", "clock"): self._get_clock,
            ("POST", "clock"): self._set_clock,
            ("POST", "faults"): self._add_faults,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "faults"): self._list_faults,
            ("GET", "requests"): self._list_requests,
            ("GET", "mail"): self._list_mail,
        }.get((req.method, name))
        if handler is None:
            return Response.json(404, {"error": f"no control endpoint {req.method} {req.path}"})
        try:
            with self.ctx.lock:
                return handler(req)
        except (BadJson, FaultSpecError, ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})

    def reset(self) -> None:
        with self.ctx.lock:
            for vendor in self.vendors:
                vendor.reset()
            self.ctx.clock.reset()
            self.ctx.limiter.reset()
            self.faults.clear()
            self.requests.clear()

    def seed(self, fixture: dict[str, Any]) -> None:
        if not isinstance(fixture, dict):
            raise ValueError("a seed fixture is an object with vendor sections")
        known = {v.name for v in self.vendors} | {"clock"}
        unknown = set(fixture) - known
        if unknown:
            raise ValueError(f"unknown seed sections {sorted(unknown)}; known: {sorted(known)}")
        with self.ctx.lock:
            if fixture.get("clock"):
                self.ctx.clock.set(datetime.fromisoformat(fixture["clock"]))
            for vendor in self.vendors:
                if vendor.name in fixture:
                    vendor.seed(fixture[vendor.name] or {})

    def _reset(self, req: Request) -> Response:
        self.reset()
        return Response.json(200, {"ok": True})

    def _seed(self, req: Request) -> Response:
        self.seed(req.json())
        return Response.json(200, {"ok": True})

    def _get_clock(self, req: Request) -> Response:
        return Response.json(200, {"now": self.ctx.clock.now().isoformat()})

    def _set_clock(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict) or not ({"now", "advance"} & set(body)):
            raise ValueError('clock takes {"now": ISO-8601} or {"advance": seconds}')
        if "now" in body:
            self.ctx.clock.set(datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00")))
        if "advance" in body:
            self.ctx.clock.advance(float(body["advance"]))
        return self._get_clock(req)

    def _add_faults(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict) or "faults" not in body:
            raise ValueError('faults takes {"faults": [...]}')
        self.faults.add(body["faults"])
        return self._list_faults(req)

    def _clear_faults(self, req: Request) -> Response:
        self.faults.clear()
        return Response.json(200, {"faults": []})

    def _list_faults(self, req: Request) -> Response:
        return Response.json(200, {"faults": [f.to_json() for f in self.faults.faults]})

    def _list_requests(self, req: Request) -> Response:
        return Response.json(200, {"requests": list(self.requests)})

    def _list_mail(self, req: Request) -> Response:
        return Response.json(200, {"mail": [m for v in self.vendors for m in v.mail()]})

    # -- persistence -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.ctx.lock:
            state: dict[str, Any] = {v.name: v.snapshot() for v in self.vendors}
            state["clock"] = self.ctx.clock.now().isoformat() if self.ctx.clock.is_set else None
            return state

    def restore(self, state: dict[str, Any]) -> None:
        with self.ctx.lock:
            for vendor in self.vendors:
                if vendor.name in state:
                    vendor.restore(state[vendor.name])
            if state.get("clock"):
                self.ctx.clock.set(datetime.fromisoformat(state["clock"]))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "syncd-sandbox"
    timeout = 120
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        split = urlsplit(self.path)
        host = self.headers.get("Host") or sandbox.ctx.base_url.split("://", 1)[1]
        req = Request(
            method=self.command,
            path=unquote(split.path),
            raw_path=self.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=self._read_body(),
            base_url=f"https://{host}",
        )
        if req.path.startswith(CONTROL_PREFIX):
            if not is_loopback(self.client_address[0]):  # no auth: loopback is the guard
                self._send(Response.json(403, {"error": "the control API answers loopback "
                                                        "clients only"}))
                return
            self._send(sandbox.control(req))
            return
        vendor = sandbox.route(req.path)
        if vendor is None:
            resp = Response.json(404, {"error": f"no emulator serves {req.path}"})
            sandbox.log_request(None, req.method, split.path, resp.status)
            self._send(resp)
            return
        with sandbox.ctx.lock:
            fault = sandbox.faults.pick(vendor.name, req.method, req.path)
        status: int | None
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_s)
            fault = None
        if fault is not None and fault.kind == "drop":
            sandbox.log_request(vendor.name, req.method, split.path, None)
            self._drop()
            return
        if fault is not None and fault.kind == "status":
            resp = self._fault_response(vendor, fault.status or 500, fault.retry_after)
        else:
            resp = sandbox.call_vendor(vendor, req)
            if fault is not None and fault.kind == "apply_then_drop":
                sandbox.log_request(vendor.name, req.method, split.path, None)
                self._drop()
                return
            if fault is not None and fault.kind == "apply_then_status":
                resp = self._fault_response(vendor, fault.status or 500, fault.retry_after)
        status = resp.status
        sandbox.log_request(vendor.name, req.method, split.path, status)
        self._send(resp)

    @staticmethod
    def _fault_response(vendor: Vendor, status: int, retry_after: int | None) -> Response:
        resp = vendor.error_response(status, retry_after)
        if retry_after is not None and not any(k.lower() == "retry-after" for k in resp.headers):
            resp.headers["Retry-After"] = str(retry_after)
        return resp

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        headers = {k.lower(): (k, v) for k, v in resp.headers.items()}
        for key, value in headers.values():
            self.send_header(key, value)
        if "content-length" not in headers:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sandbox: Sandbox | None, tls: ssl.SSLContext):
        super().__init__(addr, _Handler)
        self.sandbox: Sandbox = sandbox  # type: ignore[assignment]  # set before serving
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the connection's own thread, so one slow client can't stall accept().
        request.settimeout(30)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(wrapped, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request (killed, timed out) is routine, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """The sandbox on a real socket; startable in-process (tests) or from `syncd sandbox`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        directory: Path | None = None,
        vendors: Callable[[SandboxContext], list[Vendor]] = default_vendors,
        persist: bool = False,
    ) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost", "::1")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(tls)
        self._http = _HTTPServer((host, port), None, tls)
        bound_port = self._http.server_address[1]
        display_host = f"[{host}]" if ":" in host else host
        self.url = f"https://{display_host}:{bound_port}"
        self.directory = directory
        self.persist = persist
        self.ca_bundle = ""
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.ca_bundle = str(directory / "ca.pem")
            self.ca.cert_pem.write_to_path(self.ca_bundle)
        self.info = make_credentials(self.url, self.ca_bundle)
        self.sandbox = Sandbox(self.info, vendors)
        self._http.sandbox = self.sandbox
        self._thread: threading.Thread | None = None
        self._control_lock = threading.Lock()
        self._control_conn: http.client.HTTPSConnection | None = None
        if persist and directory is not None and self.state_path.exists():
            self.sandbox.restore(json.loads(self.state_path.read_text()))

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def state_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "state.json"

    def write_files(self) -> None:
        """sandbox.json, syncd.toml and the credentials directory, for people and scripts."""
        assert self.directory is not None
        write_private(self.directory / "sandbox.json", json.dumps(self.info, indent=2) + "\n")
        creds = self.directory / "credentials"
        private_dir(creds)
        for name, value in (
            ("zendesk_token", self.info["zendesk"]["token"]),
            ("salesforce_client_secret", self.info["salesforce"]["client_secret"]),
            ("graph_client_secret", self.info["graph"]["client_secret"]),
        ):
            path = creds / name
            write_private(path, value)
        (self.directory / "syncd.toml").write_text(syncd_toml(self.info, self.directory))

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="syncd-sandbox", daemon=True
        )
        self._thread.start()
        if self.directory is not None:
            self.write_files()
        return self

    def stop(self) -> None:
        if self._control_conn is not None:
            self._control_conn.close()
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.persist and self.directory is not None:
            write_private(self.state_path, json.dumps(self.sandbox.snapshot()))

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the control API over HTTPS, verified against this sandbox's CA, on one kept-alive
        connection. A 4xx/5xx raises `urllib.error.HTTPError` with the JSON body."""
        data = None if body is None else json.dumps(body).encode()
        with self._control_lock:
            for attempt in (1, 2):
                if self._control_conn is None:
                    tls = ssl.create_default_context()
                    self.ca.configure_trust(tls)
                    host, _, port = self.netloc.rpartition(":")
                    self._control_conn = http.client.HTTPSConnection(
                        host.strip("[]"), int(port), context=tls, timeout=30)
                try:
                    self._control_conn.request(
                        method, path, body=data, headers={"Content-Type": "application/json"})
                    resp = self._control_conn.getresponse()
                    payload = resp.read()
                    break
                except (http.client.HTTPException, OSError):
                    self._control_conn.close()
                    self._control_conn = None
                    if attempt == 2:
                        raise
        if resp.status >= 400:
            raise urllib.error.HTTPError(self.url + path, resp.status, resp.reason,
                                         resp.headers, io.BytesIO(payload))
        return json.loads(payload or b"null")


def syncd_toml(info: dict[str, Any], directory: Path) -> str:
    """A complete syncd configuration pointing at this sandbox. Secrets stay in credentials/."""
    zd, sf, gr = info["zendesk"], info["salesforce"], info["graph"]
    return f"""# Written by `syncd sandbox`: a syncd configuration pointing at this sandbox.
# Secrets are not in this file: syncd reads them from the credentials directory below,
# exactly as it reads systemd's $CREDENTIALS_DIRECTORY in production.

[syncd]
rules_dir = "rules"
state_dir = "{directory / 'state'}"

[secrets]
dir = "{directory / 'credentials'}"

[tls]
ca_bundle = "{info['ca_bundle']}"

[zendesk]
subdomain = "{zd['subdomain']}"
email = "{zd['email']}"
scheme = "{zd['scheme']}"
netloc = "{zd['netloc']}"

[salesforce]
token_url = "{sf['token_url']}"
client_id = "{sf['client_id']}"
instance_url = "{sf['instance_url']}"

[graph]
authority = "{gr['authority']}"
tenant_id = "{gr['tenant_id']}"
client_id = "{gr['client_id']}"
base_url = "{gr['base_url']}"
site_id = "{gr['site_id']}"
drive_id = "{gr['drive_id']}"
mailbox = "{gr['mailbox']}"
"""


def load_fixture(path: Traversable) -> dict[str, Any]:
    """A seed fixture from YAML 1.2 or JSON (JSON is YAML), read as syncd reads rule files."""
    data = YAML(typ="safe").load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed fixture is a mapping of vendor sections")
    return data

