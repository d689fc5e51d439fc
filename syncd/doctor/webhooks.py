"""Checks of the Zendesk push source (`[webhooks] enabled`): the signing secret is loaded, the
listener can start (address, port, TLS certificate and key), and Zendesk has an active webhook
sending to syncd's path. Without the last one nothing is pushed and instant rules quietly fall
back to the export's 60-95 s; nothing else would say so.

Zendesk reaches syncd through an address doctor cannot know (a proxy, a public name), so a
webhook counts as syncd's when its endpoint's path is `[webhooks] path`.
"""

from __future__ import annotations

import errno
import socket
import ssl
from datetime import timedelta
from urllib.parse import urlsplit

from cryptography import x509

from syncd.clock import Clock
from syncd.connectors.http import VendorError
from syncd.connectors.zendesk import ZendeskConnector
from syncd.daemon.push import listener_tls
from syncd.doctor.report import Check
from syncd.settings import LOOPBACK, WebhooksSection

CERT_SOON = timedelta(days=14)
WEBHOOKS_PAGE = "Admin Center > Apps and integrations > Webhooks"
SHOWN = 5


def webhook_checks(
    hooks: WebhooksSection, zendesk: ZendeskConnector | None, clock: Clock
) -> list[Check]:
    """Nothing when webhooks are off; `zendesk` None when Zendesk could not be read."""
    if not hooks.enabled:
        return []
    return [
        Check("webhooks secret", "ok", "signing secret loaded (zendesk_webhook_secret)"),
        listener_check(hooks, clock),
        registered_check(hooks, zendesk),
    ]


def listener_check(hooks: WebhooksSection, clock: Clock) -> Check:
    """What `syncd run` does to listen, tried now: load the certificate and key, bind."""
    name = "webhooks listener"
    scheme = "https" if hooks.tls_cert else "http"
    url = f"{scheme}://{hooks.host}:{hooks.port}{hooks.path}"
    expires = ""
    if hooks.tls_cert is not None and hooks.tls_key is not None:
        problem, expires = _tls_problem(hooks, clock)
        if problem:
            return Check(name, "fail", f"{url}: {problem}",
                         "set [webhooks] tls_cert / tls_key to a certificate chain (PEM) and "
                         "its private key, readable by syncd")
    try:
        with socket.socket(_family(hooks.host), socket.SOCK_STREAM) as sock:
            sock.bind((hooks.host, hooks.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return Check(name, "warn", f"{url}: port {hooks.port} is in use",
                         "fine when it is syncd itself, running; else free the port or set "
                         "[webhooks] port")
        if exc.errno == errno.EADDRNOTAVAIL:
            return Check(name, "fail", f"{url}: {hooks.host} is no address of this host",
                         'set [webhooks] host to one of its addresses (or "0.0.0.0")')
        return Check(name, "fail", f"{url}: cannot listen: {exc.strerror or exc}",
                     "set [webhooks] host / port (a port under 1024 needs privileges)")
    if scheme == "http" and hooks.host not in LOOPBACK and not hooks.host.startswith("127."):
        return Check(name, "warn", f"{url}: plain HTTP on {hooks.host}: requests cross the "
                     "network unencrypted", "set [webhooks] tls_cert / tls_key, or listen on "
                     "127.0.0.1 behind a proxy that terminates TLS")
    return Check(name, "ok", url + expires)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _tls_problem(hooks: WebhooksSection, clock: Clock) -> tuple[str | None, str]:
    """(what keeps the listener from serving TLS, or None; when the certificate expires)."""
    assert hooks.tls_cert is not None and hooks.tls_key is not None
    try:
        listener_tls(hooks)
        cert = x509.load_pem_x509_certificate(hooks.tls_cert.read_bytes())
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            return f"the key does not match the certificate ({hooks.tls_key})", ""
        return f"cannot load {hooks.tls_cert} / {hooks.tls_key}: {exc.reason or exc}", ""
    except (OSError, ValueError) as exc:
        return f"cannot read the certificate or key: {exc}", ""
    left = cert.not_valid_after_utc - clock.now()
    if left <= timedelta(0):
        return f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}", ""
    soon = " (renew it: under 14 days left)" if left < CERT_SOON else ""
    return None, f", certificate valid until {cert.not_valid_after_utc:%Y-%m-%d}{soon}"


def registered_check(hooks: WebhooksSection, zendesk: ZendeskConnector | None) -> Check:
    """An active Zendesk webhook sends to `[webhooks] path` (Webhooks API, admins only)."""
    name = "zendesk webhook"
    if zendesk is None:
        return Check(name, "skip", "not checked: Zendesk could not be read")
    try:
        found = zendesk.webhooks()
    except VendorError as exc:
        if exc.status == 403:
            return Check(name, "skip", "not checked: only Zendesk admins may list webhooks, "
                         f"and syncd's API user is not one; look in {WEBHOOKS_PAGE}")
        return Check(name, "fail", f"cannot list Zendesk's webhooks: {exc}",
                     "try again; `syncd doctor` shows Zendesk's own check above")
    ours = [w for w in found if urlsplit(w.endpoint).path.rstrip("/") == hooks.path.rstrip("/")]
    active = [w for w in ours if w.active]
    if active:
        shown = "; ".join(f"{w.name!r} sends to {w.endpoint}" for w in active)
        if any(urlsplit(w.endpoint).scheme != "https" for w in active):
            return Check(name, "warn", f"{shown}: not over HTTPS",
                         f"give the webhook an https:// endpoint in {WEBHOOKS_PAGE}")
        return Check(name, "ok", shown)
    create = (f"create one in {WEBHOOKS_PAGE} (POST, JSON) and a trigger notifying it with "
              '{"ticket_id": "{{ticket.id}}"} (README: "Instant rules: Zendesk webhooks")')
    if ours:
        shown = ", ".join(f"{w.name!r} ({w.endpoint})" for w in ours)
        return Check(name, "fail", f"{shown} is inactive: nothing is pushed, instant rules "
                     "wait for the export", f"activate it in {WEBHOOKS_PAGE}")
    others = ", ".join(w.endpoint for w in found[:SHOWN]) or "none"
    return Check(name, "fail", f"no Zendesk webhook sends to a URL ending in {hooks.path}: "
                 f"nothing is pushed, instant rules wait for the export (webhooks: {others})",
                 create)
