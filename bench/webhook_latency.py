"""Instant-rule latency with and without Zendesk webhooks (issue 19: with them, p99 <= 5 s).

    .venv/bin/python bench/webhook_latency.py [--tickets N] [--every S] [--seed N]

Real time throughout (SystemClock; the sandbox clock follows real time): an accelerated clock
would multiply every real millisecond of the push path (the batch window, the re-read, the
executor) by its factor, and the export's last-minute exclusion is what is measured without
webhooks. Each mode gets its own sandbox and state: `syncd run` (daemon/service.py, the
default 30 s poll interval) on bench/common.py's rules, gone live on an empty desk by one
`run --once`; then `--tickets` customers write in, one every `--every` seconds (jittered by
`--seed`). Latency per ticket: from the instant its create call returned to the instant its
triage mail ("New ticket #N", an instant rule) shows in the sandbox's mail log, read every
0.05 s. With webhooks, the sandbox's webhook (signed, as Zendesk's) calls syncd's endpoint
over HTTPS; without, syncd sees the ticket through the incremental export, which leaves out
the last minute (Zendesk behaviour).
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import bench_sandbox, bench_settings, percentile, table
from pydantic import SecretStr

from syncd.clock import SystemClock
from syncd.daemon.cycle import run_cycle
from syncd.daemon.runtime import open_runtime
from syncd.daemon.service import Service
from syncd.sandbox.server import SandboxServer
from syncd.settings import Settings, WebhooksSection

SECRET = "bench-webhook-signing-secret-0123456789"
TRIAGE = re.compile(r"^New ticket #(\d+)$")
DESK = {"zendesk": {
    "users": [{"name": f"Agent {n}", "email": f"agent{n}@example.com", "role": "agent"}
              for n in range(1, 4)],
    "groups": [{"name": "Support", "members": [f"agent{n}@example.com" for n in range(1, 4)]}],
}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hooked(settings: Settings, sandbox: SandboxServer, root: Path) -> tuple[Settings, str]:
    """`settings` with [webhooks] on (HTTPS, a cert from the sandbox's CA) and its URL."""
    cert = sandbox.ca.issue_cert("127.0.0.1")
    (root / "hook.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(root / "hook.key"))
    hooks = WebhooksSection(enabled=True, port=free_port(), tls_cert=root / "hook.pem",
                            tls_key=root / "hook.key", signing_secret=SecretStr(SECRET))
    url = f"https://127.0.0.1:{hooks.port}{hooks.path}"
    return settings.model_copy(update={"webhooks": hooks}), url


def run_mode(webhooks: bool, tickets: int, every: float, seed: int) -> list[float]:
    with bench_sandbox() as (sandbox, root):
        settings = bench_settings(sandbox, root)
        fixture: dict[str, Any] = {"zendesk": dict(DESK["zendesk"])}
        if webhooks:
            settings, url = hooked(settings, sandbox, root)
            fixture["zendesk"]["webhooks"] = [{"endpoint": url, "signing_secret": SECRET,
                                               "ca_bundle": sandbox.ca_bundle}]
        sandbox.control("POST", "/_sandbox/seed", fixture)
        clock = SystemClock()
        rt = open_runtime(settings, clock)
        run_cycle(rt)  # live: the source has its cursor
        service = Service(rt)
        thread = threading.Thread(target=service.serve)
        thread.start()
        try:
            return _measure(sandbox, tickets, every, seed)
        finally:
            service.stop()
            thread.join(timeout=60)
            rt.close()


def _measure(sandbox: SandboxServer, tickets: int, every: float, seed: int) -> list[float]:
    zd = sandbox.info["zendesk"]
    http = httpx.Client(auth=(f"{zd['email']}/token", zd["token"]), timeout=30,
                        verify=ssl.create_default_context(cafile=sandbox.ca_bundle))
    rng = random.Random(seed)
    created: dict[int, float] = {}
    seen: dict[int, float] = {}
    time.sleep(1.0)  # the service's start: first poll, election, endpoint up
    deadline = None
    next_at = time.monotonic()
    while len(seen) < tickets:
        now = time.monotonic()
        if len(created) < tickets and now >= next_at:
            body = {"ticket": {"subject": "Printer on fire", "comment": {"body": "Help"},
                               "requester": {"email": f"c{len(created)}@customer.example"}}}
            resp = http.post(f"{sandbox.url}/api/v2/tickets.json", json=body)
            resp.raise_for_status()
            created[int(resp.json()["ticket"]["id"])] = time.monotonic()
            next_at = now + every * rng.uniform(0.5, 1.5)
            if len(created) == tickets:
                deadline = time.monotonic() + 240
        for mail in sandbox.control("GET", "/_sandbox/mail")["mail"]:
            match = TRIAGE.match(mail["subject"])
            if match and int(match.group(1)) in created and int(match.group(1)) not in seen:
                seen[int(match.group(1))] = time.monotonic()
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(0.05)
    http.close()
    missing = sorted(set(created) - set(seen))
    if missing:
        print(f"  {len(missing)} ticket(s) without a triage mail after 240 s: {missing[:10]}")
    return [seen[t] - created[t] for t in seen]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between new tickets")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rows = []
    for webhooks in (False, True):
        print(f"measuring {'with' if webhooks else 'without'} webhooks "
              f"({args.tickets} tickets, one every ~{args.every:g} s, real time)...", flush=True)
        found = run_mode(webhooks, args.tickets, args.every, args.seed)
        rows.append(["webhooks + export" if webhooks else "export only (poll 30 s)",
                     len(found), f"{percentile(found, 50):.2f}", f"{percentile(found, 99):.2f}",
                     f"{max(found, default=float('nan')):.2f}"])
    print("\nInstant rule (triage mail) latency after the ticket's creation, seconds:")
    print(table(rows, ["source", "tickets", "p50", "p99", "max"]))
    print("target (issue 19): p99 <= 5 s with webhooks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
