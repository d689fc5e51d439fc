"""The governor against the sandbox enforcing the vendors' real limits: a burst through the real
clients (zenpy, msal + httpx) never puts more than syncd's configured share into any sliding
60-second window, as the vendor counts, and so never meets a 429.

This takes a little over a minute of real time: the vendors' windows run on real time, and a
burst only shows what a window allows once it outlasts one."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest

from syncd.clock import SystemClock
from syncd.connectors.graph import GraphConnector
from syncd.connectors.zendesk import ZendeskConnector
from syncd.model import Operation, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import GraphSection, TlsSection, ZendeskSection

pytestmark = pytest.mark.slow

WINDOW = timedelta(seconds=60)
MAILS = 650  # Graph allows 600 a minute; syncd's default share is all of it
FETCHES = 15  # two Zendesk calls each (show_many + audits)
ZENDESK_SHARE = 0.5  # of a 70-a-minute plan: 35 (the sandbox allows 700)
EXPORTS = 7  # Zendesk's export allows 10 a minute; syncd spends its export_share: 5


def busiest_window(stamps: list[datetime]) -> int:
    """The most requests in any window [t, t + 60 s) that starts at a request."""
    stamps = sorted(stamps)
    most = end = 0
    for start, at in enumerate(stamps):
        while end < len(stamps) and stamps[end] < at + WINDOW:
            end += 1
        most = max(most, end - start)
    return most


def test_a_burst_never_exceeds_the_configured_share_in_any_sliding_minute(
    sandbox: SandboxServer,
) -> None:
    # no "clock": the sandbox's clock follows real time, so the request log's instants do
    sandbox.control("POST", "/_sandbox/seed", {
        "zendesk": {"users": [{"name": "Carl", "email": "carl@customer.example"}],
                    "tickets": [{"id": n, "subject": f"T{n}", "requester": "carl@customer.example"}
                                for n in (1, 2, 3)]},
        "graph": {"users": [{"userPrincipalName": "support@example.com"}]},
    })
    zd, g = sandbox.info["zendesk"], sandbox.info["graph"]
    tls = TlsSection(ca_bundle=sandbox.ca_bundle)
    zendesk = ZendeskConnector(ZendeskSection(
        subdomain=zd["subdomain"], email=zd["email"], token=zd["token"], scheme=zd["scheme"],
        netloc=zd["netloc"], rate_share=ZENDESK_SHARE, plan_rate_per_minute=70,
        export_share=0.5),
        SystemClock(), tls)
    graph = GraphConnector(GraphSection(
        tenant_id=g["tenant_id"], client_id=g["client_id"], client_secret=g["client_secret"],
        authority=g["authority"], base_url=g["base_url"], site_id=g["site_id"],
        drive_id=g["drive_id"], mailbox=g["mailbox"]), SystemClock(), tls)
    failures: list[Any] = []

    def mails() -> None:
        for n in range(MAILS):
            mail = {"to": ["carl@customer.example"], "subject": f"#{n}", "body": "b"}
            op = Operation(key=f"burst/{n}", system="graph", verb="send_mail", target="",
                           payload=mail)
            outcome = graph.execute(op)
            if not outcome.ok:
                failures.append(outcome)

    def exports() -> None:
        cursor = None
        for page in zendesk.poll_pages(None):
            cursor = page.cursor
        for _ in range(EXPORTS - 1):
            for page in zendesk.poll_pages(cursor):
                cursor = page.cursor

    def tickets() -> None:
        for n in range(FETCHES):
            if zendesk.fetch(RecordRef("zendesk.ticket", str(n % 3 + 1))) is None:
                failures.append(n)

    threads = [threading.Thread(target=job) for job in (mails, exports, tickets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert failures == []
    assert len(sandbox.control("GET", "/_sandbox/mail")["mail"]) == MAILS

    log = sandbox.control("GET", "/_sandbox/requests")["requests"]
    assert [r for r in log if r["status"] == 429] == []

    def stamps(vendor: str, path: str = "") -> list[datetime]:
        return [datetime.fromisoformat(r["at"]) for r in log
                if r["vendor"] == vendor and path in r["path"]]

    assert len(stamps("graph", "/sendMail")) == MAILS
    # each share is reached (the burst is larger) and never exceeded
    assert busiest_window(stamps("graph")) == 600
    assert busiest_window(stamps("zendesk")) == 35  # the exports count in the account's budget
    assert busiest_window(stamps("zendesk", "/incremental/")) == 5
