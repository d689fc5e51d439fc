"""The Graph connector against the sandbox, through the real msal and httpx clients."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta
from typing import Any

from syncd.clock import FrozenClock, SystemClock
from syncd.connectors.base import poll
from syncd.connectors.graph import FRAGMENT, GraphConnector
from syncd.model import Operation, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import GraphSection, TlsSection, load_settings

NOW = "2026-03-02T10:00:00+00:00"


def connector(sandbox: SandboxServer, trusted: bool = True, **overrides: Any) -> GraphConnector:
    """The sandbox's connector (trusting its CA unless not `trusted`): `overrides` of [graph]
    settings, or of connector attributes that are not settings (`page_size`)."""
    g = sandbox.info["graph"]
    settings: dict[str, Any] = {
        "tenant_id": g["tenant_id"],
        "client_id": g["client_id"],
        "client_secret": g["client_secret"],
        "authority": g["authority"],
        "base_url": g["base_url"],
        "site_id": g["site_id"],
        "drive_id": g["drive_id"],
        "mailbox": g["mailbox"],
        "watched_folders": ("Transcripts",),
    }
    tuning = {k: overrides.pop(k) for k in list(overrides) if k not in GraphSection.model_fields}
    tls = TlsSection(ca_bundle=sandbox.ca_bundle if trusted else None)
    found = GraphConnector(GraphSection(**{**settings, **overrides}), SystemClock(), tls)
    for name, value in tuning.items():
        setattr(found, name, value)
    return found


def seed(sandbox: SandboxServer, files: int = 0, **extra: Any) -> None:
    sandbox.control(
        "POST",
        "/_sandbox/seed",
        {
            "clock": NOW,
            "graph": {
                "folders": ["Clients"],
                "files": [
                    {"path": f"Transcripts/Call {n}.vtt", "content": f"WEBVTT {n}"}
                    for n in range(files)
                ],
                **extra,
            },
        },
    )


def op(verb: str, target: str, key: str = "rule/k1", **payload: Any) -> Operation:
    return Operation(key=key, system="graph", verb=verb, target=target, payload=payload)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fault(sandbox: SandboxServer, **spec: Any) -> None:
    sandbox.control("POST", "/_sandbox/faults", {"faults": [{"vendor": "graph", **spec}]})


def test_delta_pages_then_resume_and_see_changes_and_deletes(sandbox: SandboxServer) -> None:
    seed(sandbox, files=5)
    graph = connector(sandbox, page_size=2)
    pages = list(graph.poll_pages(None))
    files = [r for p in pages for r in p.records]
    assert len(pages) >= 3
    assert sorted(r.fields["name"] for r in files) == [f"Call {n}.vtt" for n in range(5)]
    assert {r.fields["folder"] for r in files} == {"Transcripts"}
    assert files[0].fields["path"] == f"Transcripts/{files[0].fields['name']}"

    # resuming from a page in the middle reads only what follows it
    rest, cursor = poll(graph, pages[0].cursor)
    assert sorted(r.fields["name"] for r in rest) == sorted(
        r.fields["name"] for p in pages[1:] for r in p.records
    )
    assert poll(graph, cursor)[0] == []

    # a new file in the watched folder, and a file elsewhere that is not watched
    for path in ("Transcripts/New.vtt", "Clients/Other.txt"):
        assert graph.execute(op("upload", path, key=path, content_b64=b64(b"hi"))).ok
    changed, cursor = poll(graph, cursor)
    assert [r.fields["path"] for r in changed] == ["Transcripts/New.vtt"]

    gone = files[0].ref.id
    graph.http.delete(
        f"{graph.settings.base_url}/drives/{graph.settings.drive_id}/items/{gone}",
        headers={"Authorization": f"Bearer {graph._token()}"},
    ).raise_for_status()
    deleted, _ = poll(graph, cursor)
    assert [(r.ref.id, r.deleted) for r in deleted] == [(gone, True)]


def test_expired_delta_link_restarts_a_full_enumeration(sandbox: SandboxServer) -> None:
    seed(sandbox, files=2, settings={"delta_token_max_age_s": 60})
    graph = connector(sandbox)
    _, cursor = poll(graph, None)
    sandbox.control("POST", "/_sandbox/clock", {"advance": 3600})
    again, _ = poll(graph, cursor)
    assert sorted(r.fields["name"] for r in again) == ["Call 0.vtt", "Call 1.vtt"]
    statuses = [r["status"] for r in sandbox.control("GET", "/_sandbox/requests")["requests"]]
    assert 410 in statuses


def test_list_items_are_polled_and_fetched(sandbox: SandboxServer) -> None:
    seed(
        sandbox,
        lists=[
            {
                "name": "Arrivals",
                "columns": ["Name"],
                "items": [{"fields": {"Title": "Ann", "Name": "Ann"}}],
            }
        ],
    )
    graph = connector(sandbox, watched_folders=("Clients",), lists=("Arrivals",))
    records, _ = poll(graph, None)
    (item,) = [r for r in records if r.ref.kind == "sharepoint.item"]
    assert item.fields["list"] == "Arrivals" and item.fields["fields"]["Title"] == "Ann"
    fetched = graph.fetch(item.ref)
    assert fetched is not None and fetched.fields["fields"]["Name"] == "Ann"


def test_each_verb_is_absent_before_and_verified_after(sandbox: SandboxServer) -> None:
    seed(sandbox, files=1)
    graph = connector(sandbox, fragment_size=FRAGMENT)
    big = os.urandom(4 * 1024 * 1024 + 1000)  # over the simple-upload limit
    ops = [
        op("ensure_folder", "Clients/Acme", key="r/folder", subfolders=["Contracts", "Meetings"]),
        op("upload", "Clients/Acme/notes.txt", key="r/small", content_b64=b64(b"notes")),
        op("upload", "Clients/Acme/recording.bin", key="r/big", content_b64=b64(big)),
        op("copy_file", "Transcripts/Call 0.vtt", key="r/copy", destination="Clients/Acme"),
        op(
            "send_mail",
            "",
            key="r/mail",
            to=["carl@customer.example"],
            subject="Kickoff",
            body="Welcome aboard",
        ),
    ]
    for operation in ops:
        before = graph.verify(operation)
        assert not before.ok and not before.retryable, (operation.verb, before)
        outcome = graph.execute(operation)
        assert outcome.ok, (operation.verb, outcome)
        assert graph.verify(operation).ok, operation.verb
    assert graph.download("Clients/Acme/recording.bin") == big
    assert graph.execute(ops[0]).ok  # folders that exist are fine
    mail = sandbox.control("GET", "/_sandbox/mail")["mail"]
    assert len(mail) == 1
    headers = {k.lower(): v for k, v in mail[0]["headers"].items()}
    assert headers["x-syncd-key"] == "r/mail"


def test_apply_then_500_on_send_mail_is_retryable_and_verify_finds_it(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox)
    graph = connector(sandbox)
    mail = op("send_mail", "", key="r/once", to=["a@customer.example"], subject="S", body="B")
    graph.directory()  # token first
    fault(sandbox, method="POST", path="/sendMail", kind="apply_then_status", status=500, times=1)
    outcome = graph.execute(mail)
    assert not outcome.ok and outcome.retryable and outcome.detail["maybe_applied"]
    assert graph.verify(mail).ok  # so the daemon does not send it twice
    assert len(sandbox.control("GET", "/_sandbox/mail")["mail"]) == 1


def test_429_with_retry_after_is_honoured(sandbox: SandboxServer) -> None:
    seed(sandbox)
    graph = connector(sandbox)
    fault(
        sandbox, method="POST", path="/children", kind="status", status=429, retry_after=1, times=1
    )
    assert graph.execute(op("ensure_folder", "Reports")).ok
    assert (graph.governor.stats.throttled, graph.governor.stats.retries) == (1, 1)


def test_expired_token_is_acquired_again(sandbox: SandboxServer) -> None:
    seed(sandbox, settings={"token_lifetime_s": 600})
    graph = connector(sandbox)
    assert graph.execute(op("ensure_folder", "A")).ok
    sandbox.control("POST", "/_sandbox/clock", {"advance": 900})  # msal still trusts its cache
    assert graph.execute(op("ensure_folder", "B")).ok
    requests = sandbox.control("GET", "/_sandbox/requests")["requests"]
    assert sum(r["path"].endswith("/oauth2/v2.0/token") for r in requests) == 2
    assert 401 in [r["status"] for r in requests]


def test_a_token_expired_on_syncds_clock_is_renewed_before_graph_refuses_it(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, settings={"token_lifetime_s": 600})
    clock = FrozenClock(datetime.fromisoformat(NOW))  # the sandbox's clock, as in the daemon
    tls = TlsSection(ca_bundle=sandbox.ca_bundle)
    graph = GraphConnector(connector(sandbox).settings, clock, tls)
    assert graph.execute(op("ensure_folder", "A")).ok
    for seconds in (500, 400):  # within the token's 600 s, then past it (msal: still valid)
        clock.advance(timedelta(seconds=seconds))
        sandbox.control("POST", "/_sandbox/clock", {"advance": seconds})
        assert graph.execute(op("ensure_folder", f"B{seconds}")).ok
    requests = sandbox.control("GET", "/_sandbox/requests")["requests"]
    assert sum(r["path"].endswith("/oauth2/v2.0/token") for r in requests) == 2
    assert 401 not in [r["status"] for r in requests]


def test_fetch_a_file_and_a_missing_one(sandbox: SandboxServer) -> None:
    seed(sandbox, files=1)
    graph = connector(sandbox)
    (record,), _ = poll(graph, None)
    fetched = graph.fetch(record.ref)
    assert fetched is not None and fetched.fields["path"] == "Transcripts/Call 0.vtt"
    assert graph.fetch(RecordRef("sharepoint.file", "01NOSUCHITEM")) is None


def test_tls_is_verified_against_the_configured_ca_not_the_environment(
    sandbox: SandboxServer,
) -> None:
    assert os.environ.get("REQUESTS_CA_BUNDLE")  # msal's requests would otherwise use it
    seed(sandbox)
    assert connector(sandbox).execute(op("ensure_folder", "A")).ok
    outcome = connector(sandbox, trusted=False).execute(op("ensure_folder", "B"))
    assert not outcome.ok and outcome.detail["code"] == "tls"


def test_the_connector_of_the_sandbox_configuration(sandbox: SandboxServer) -> None:
    seed(sandbox)
    assert sandbox.directory is not None
    settings = load_settings(sandbox.directory / "syncd.toml", env={})
    assert settings.graph is not None and settings.graph.client_secret is not None
    graph = GraphConnector(settings.graph, SystemClock(), settings.tls, settings.proxy)
    secret = settings.graph.client_secret.get_secret_value()
    assert secret not in repr(graph.settings) and secret not in repr(graph)
    assert graph.execute(op("ensure_folder", "From settings")).ok
