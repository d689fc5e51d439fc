"""The Zendesk connector against the sandbox, through the real zenpy client."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta
from typing import Any

import pytest
from zenpy import Zenpy

from syncd.clock import Clock, FrozenClock, SystemClock
from syncd.connectors.base import poll
from syncd.connectors.http import PermanentError
from syncd.connectors.zendesk import ZendeskConnector, pin_host
from syncd.model import Operation, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import TlsSection, ZendeskSection, load_settings

NOW = "2026-03-02T10:00:00+00:00"
AGENT = "ann@example.com"


def connector(sandbox: SandboxServer, trusted: bool = True, clock: Clock | None = None,
              export_share: float = 1.0, **tuning: Any) -> ZendeskConnector:
    """The sandbox's connector (trusting its CA unless not `trusted`); `tuning` sets connector
    attributes that are not settings."""
    zd = sandbox.info["zendesk"]
    settings = ZendeskSection(
        subdomain=zd["subdomain"],
        email=zd["email"],
        token=zd["token"],
        scheme=zd["scheme"],
        netloc=zd["netloc"],
        export_share=export_share,
    )
    tls = TlsSection(ca_bundle=sandbox.ca_bundle if trusted else None)
    found = ZendeskConnector(settings, clock or SystemClock(), tls)
    for name, value in tuning.items():
        setattr(found, name, value)
    return found


def seed(sandbox: SandboxServer, tickets: int = 5) -> None:
    sandbox.control(
        "POST",
        "/_sandbox/seed",
        {
            "clock": NOW,
            "zendesk": {
                "organizations": [{"name": "Acme"}],
                "users": [
                    {"name": "Ann Agent", "email": AGENT, "role": "agent"},
                    {
                        "name": "Bob Agent",
                        "email": "bob@example.com",
                        "role": "agent",
                        "away": True,
                    },
                    {"name": "Carl", "email": "carl@customer.example", "organization": "Acme"},
                ],
                "groups": [{"name": "Support", "members": [AGENT, "bob@example.com"]}],
                "ticket_fields": [{"title": "Product", "type": "text", "key": "product"}],
                "tickets": [
                    {
                        "id": n,
                        "subject": f"Ticket {n}",
                        "requester": "carl@customer.example",
                        "group": "Support",
                        "tags": ["seed"],
                        "custom_fields": {"Product": "widget"},
                        "created_at": f"2026-03-02T08:0{n}:00Z",
                        "updated_at": f"2026-03-02T08:0{n}:00Z",
                    }
                    for n in range(1, tickets + 1)
                ],
            },
        },
    )


def op(verb: str, target: str = "1", key: str = "rule/k1", **payload: Any) -> Operation:
    return Operation(key=key, system="zendesk", verb=verb, target=target, payload=payload)


def fault(sandbox: SandboxServer, **spec: Any) -> None:
    sandbox.control("POST", "/_sandbox/faults", {"faults": [{"vendor": "zendesk", **spec}]})


def test_poll_pages_then_resume_from_the_cursor_without_loss_or_repeat(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox)
    # eight exports against a budget of five a minute: the governor waits on this clock
    clock = FrozenClock(datetime.fromisoformat(NOW))
    zd = connector(sandbox, clock=clock, export_share=0.5, page_size=2)
    pages = list(zd.poll_pages(None))
    assert [len(p.records) for p in pages] == [2, 2, 1]
    ids = [r.ref.id for p in pages for r in p.records]
    assert ids == ["1", "2", "3", "4", "5"]
    first = pages[0].records[0].fields
    assert first["requester_email"] == "carl@customer.example"
    assert first["group_name"] == "Support"
    assert first["organization_name"] == "Acme"
    assert first["custom"] == {"product": "widget"}
    assert first["tags"] == ["seed"]

    # resume from the middle page's cursor: exactly the pages after it
    rest, _ = poll(zd, pages[1].cursor)
    assert [r.ref.id for r in rest] == ["5"]

    # a change appears once a minute has passed (the export hides the last minute)
    assert zd.execute(op("add_tags", "3", tags=["later"])).ok
    assert poll(zd, pages[-1].cursor)[0] == []
    sandbox.control("POST", "/_sandbox/clock", {"advance": 61})
    changed, cursor = poll(zd, pages[-1].cursor)
    assert [(r.ref.id, r.fields["tags"]) for r in changed] == [("3", ["seed", "later"])]
    assert poll(zd, cursor)[0] == []
    assert clock.now() > datetime.fromisoformat(NOW)  # the budget was waited for, on the clock


def test_each_verb_is_absent_before_and_verified_after(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    ops = [
        op("add_tags", key="r/tag", tags=["vip", "escalated"]),
        op("remove_tags", key="r/untag", tags=["seed"]),
        op(
            "update",
            key="r/set",
            status="pending",
            priority="high",
            assignee_email=AGENT,
            custom_fields={"product": "gadget"},
        ),
        op(
            "create_ticket",
            target="",
            key="r/new",
            subject="Kickoff",
            body="Welcome",
            requester_email="carl@customer.example",
            tags=["onboarding"],
        ),
    ]
    for operation in ops:
        before = zd.verify(operation)
        assert not before.ok and not before.retryable, (operation.verb, before)
        outcome = zd.execute(operation)
        assert outcome.ok, (operation.verb, outcome)
        assert zd.verify(operation).ok, operation.verb
    ticket = zd.fetch(RecordRef("zendesk.ticket", "1"))
    assert ticket is not None
    assert set(ticket.fields["tags"]) == {"vip", "escalated"}
    assert (ticket.fields["status"], ticket.fields["assignee_email"]) == ("pending", AGENT)
    assert ticket.fields["custom"] == {"product": "gadget"}


def test_create_ticket_replays_with_the_same_idempotency_key(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    create = op("create_ticket", target="", key="r/once", subject="Once", body="Only once")
    first, second = zd.execute(create), zd.execute(create)
    assert first.ok and second.ok
    assert first.detail["ticket_id"] == second.detail["ticket_id"]


def test_comment_with_attachment_is_verified_by_the_key_in_its_audit(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    note = op(
        "comment",
        key="r/note",
        body="Looking into it",
        public=False,
        attachments=[{"filename": "log.txt", "content_b64": base64.b64encode(b"hello").decode()}],
    )
    assert not zd.verify(note).ok
    assert zd.execute(note).ok
    assert zd.verify(note).ok
    assert not zd.verify(op("comment", key="r/other", body="Looking into it")).ok


def test_comment_apply_then_500_is_retryable_and_verify_finds_it(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    note = op("comment", key="r/once", body="Public answer", public=True)
    fault(
        sandbox,
        method="PUT",
        path=r"^/api/v2/tickets/1(\.json)?$",
        kind="apply_then_status",
        status=500,
        times=1,
    )
    outcome = zd.execute(note)
    assert not outcome.ok and outcome.retryable and outcome.detail["maybe_applied"]
    assert zd.verify(note).ok  # so the daemon does not comment twice


def test_idempotent_writes_are_retried_after_apply_then_500(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    fault(
        sandbox,
        method="POST",
        path=r"^/api/v2/tickets(\.json)?$",
        kind="apply_then_status",
        status=500,
        times=1,
    )
    create = op("create_ticket", target="", key="r/one", subject="Kickoff", body="Welcome")
    outcome = zd.execute(create)
    assert outcome.ok, outcome  # the retry carried the same Idempotency-Key: a replay
    assert zd.verify(create).detail["ticket_id"] == outcome.detail["ticket_id"]
    fault(
        sandbox,
        method="PUT",
        path=r"^/api/v2/tickets/1\.json$",
        kind="apply_then_status",
        status=503,
        retry_after=1,
        times=1,
    )
    assert zd.execute(op("add_tags", tags=["vip"])).ok  # the retry's 409: read, found there
    assert zd.governor.stats.retries == 2
    created = [
        r
        for r in sandbox.control("GET", "/_sandbox/requests")["requests"]
        if r["method"] == "POST" and r["path"] == "/api/v2/tickets.json"
    ]
    assert [r["status"] for r in created] == [500, 201]


def test_429_with_retry_after_is_honoured(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    fault(sandbox, method="PUT", path=r"^/api/v2/tickets/1\.json$", kind="status", status=429,
          retry_after=1, times=1)
    assert zd.execute(op("add_tags", tags=["vip"])).ok
    assert (zd.governor.stats.throttled, zd.governor.stats.retries) == (1, 1)


def test_safe_update_on_a_stale_stamp_is_a_conflict(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    outcome = zd.execute(op("update", status="open", updated_stamp="2026-03-02T07:00:00Z"))
    assert (outcome.ok, outcome.retryable, outcome.error) == (False, False, "conflict")


def test_execute_many_batches_updates_through_a_job(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=3)
    zd = connector(sandbox, job_poll_s=0.01)
    ops = [op("update", target=str(n), key=f"r/{n}", priority="urgent") for n in (1, 2, 3)]
    ops.append(op("add_tags", target="1", key="r/tag", tags=["batched"]))
    outcomes = zd.execute_many(ops)
    assert all(o.ok for o in outcomes), outcomes
    assert len({o.detail["job_id"] for o in outcomes[:3]}) == 1
    assert all(zd.verify(o).ok for o in ops)
    paths = [r["path"] for r in sandbox.control("GET", "/_sandbox/requests")["requests"]]
    assert paths.count("/api/v2/tickets/update_many.json") == 1


def test_fetch_reads_agent_activity_from_audits(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=2)
    zd = connector(sandbox)
    untouched = zd.fetch(RecordRef("zendesk.ticket", "2"))
    assert untouched is not None and untouched.fields["agent_touched"] is False
    # syncd's own changes are not an agent's
    assert zd.execute(op("update", target="2", status="open")).ok
    assert zd.fetch(RecordRef("zendesk.ticket", "2")).fields["agent_touched"] is False  # type: ignore[union-attr]
    assert zd.fetch(RecordRef("zendesk.ticket", "99")) is None
    sandbox.control(
        "POST",
        "/_sandbox/seed",
        {
            "zendesk": {
                "tickets": [
                    {
                        "id": 7,
                        "subject": "Answered",
                        "requester": "carl@customer.example",
                        "created_at": "2026-03-02T08:00:00Z",
                        "comments": [
                            {
                                "author": "carl@customer.example",
                                "body": "Help",
                                "created_at": "2026-03-02T08:00:00Z",
                            },
                            {
                                "author": AGENT,
                                "body": "On it",
                                "public": True,
                                "created_at": "2026-03-02T09:00:00Z",
                            },
                        ],
                    }
                ]
            }
        },
    )
    touched = zd.fetch(RecordRef("zendesk.ticket", "7"))
    assert touched is not None and touched.fields["agent_touched"] is True
    assert touched.fields["last_agent_action_at"] == "2026-03-02T09:00:00Z"


def paths(sandbox: SandboxServer) -> list[str]:
    return [r["path"] for r in sandbox.control("GET", "/_sandbox/requests")["requests"]]


def test_a_poll_reads_emails_and_organizations_from_the_exports_side_loads(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox)
    zd = connector(sandbox, page_size=2)
    records, _ = poll(zd, None)
    assert {r.fields["requester_email"] for r in records} == {"carl@customer.example"}
    assert {r.fields["organization_name"] for r in records} == {"Acme"}
    read = paths(sandbox)
    assert not [p for p in read if "show_many" in p or p.endswith("/organizations.json")], read
    assert read.count("/api/v2/incremental/tickets/cursor.json") == 3  # the 3 pages, nothing else


def test_fetch_many_reads_the_tickets_in_one_show_many_and_each_ones_audits(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=3)
    zd = connector(sandbox)
    zd.directory()
    refs = [RecordRef("zendesk.ticket", n) for n in ("3", "1", "404")]
    found = zd.fetch_many(refs)
    assert [found[r].fields["id"] if found[r] else None for r in refs] == [3, 1, None]
    assert all(found[r].fields["agent_touched"] is False for r in refs[:2])  # type: ignore[union-attr]
    read = [p for p in paths(sandbox) if p.startswith("/api/v2/tickets")]
    assert sorted(read) == ["/api/v2/tickets/1/audits.json", "/api/v2/tickets/3/audits.json",
                            "/api/v2/tickets/show_many.json"]


def test_the_directory_is_kept_15_minutes_and_read_again_once_for_a_group_it_lacks(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=1)
    clock = FrozenClock(datetime.fromisoformat(NOW))
    tls = TlsSection(ca_bundle=sandbox.ca_bundle)
    zd = ZendeskConnector(connector(sandbox).settings, clock, tls)
    assert zd.settings.directory_ttl_s == 900
    zd.directory()
    clock.advance(timedelta(minutes=14))
    assert zd.directory().group_by_name("Support") is not None  # still the first read

    def group_of_new_ticket(ticket: int, group: str) -> str | None:
        """A ticket in a group created after the directory was read, re-read by syncd."""
        if ticket not in seeded:
            sandbox.control("POST", "/_sandbox/seed", {"zendesk": {
                "groups": [{"name": group, "members": [AGENT]}],
                "tickets": [{"id": ticket, "subject": "New", "group": group,
                             "requester": "carl@customer.example"}]}})
            seeded.add(ticket)
        found = zd.fetch(RecordRef("zendesk.ticket", str(ticket)))
        assert found is not None
        return found.fields["group_name"]  # type: ignore[no-any-return]

    seeded: set[int] = set()
    assert group_of_new_ticket(8, "Billing") == "Billing"  # the directory is read again at once
    assert group_of_new_ticket(9, "Legal") is None  # ... but not twice within a minute
    clock.advance(timedelta(seconds=61))
    assert group_of_new_ticket(9, "Legal") == "Legal"
    assert paths(sandbox).count("/api/v2/group_memberships.json") == 3
    clock.advance(timedelta(minutes=15))
    zd.directory()
    assert paths(sandbox).count("/api/v2/group_memberships.json") == 4
    # the groups are listed apart only after a miss (a group without members is side-loaded
    # by no membership)
    assert paths(sandbox).count("/api/v2/groups.json") == 2


def test_the_directory_is_one_listing_with_its_users_and_groups_side_loaded(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=1)
    directory = connector(sandbox).directory()
    assert paths(sandbox) == ["/api/v2/group_memberships.json"]
    bob = directory.user_by_email("bob@example.com")
    support = directory.group_by_name("Support")
    assert bob is not None and bob.away and support is not None
    assert support.member_ids == {bob.id, directory.user_by_email(AGENT).id}  # type: ignore[union-attr]


def test_directory_has_agents_groups_and_away_flags(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    directory = connector(sandbox).directory()
    bob = directory.user_by_email("bob@example.com")
    support = directory.group_by_name("Support")
    assert bob is not None and bob.away and support is not None
    assert bob.id in support.member_ids and support.id in bob.group_ids


def test_tls_is_verified_against_the_configured_ca_not_the_environment(
    sandbox: SandboxServer,
) -> None:
    assert os.environ.get("REQUESTS_CA_BUNDLE")  # set by conftest, as on a real host
    seed(sandbox, tickets=1)
    assert connector(sandbox).fetch(RecordRef("zendesk.ticket", "1")) is not None
    untrusting = connector(sandbox, trusted=False)
    with pytest.raises(PermanentError) as caught:
        untrusting.fetch(RecordRef("zendesk.ticket", "1"))
    assert caught.value.code == "tls"


def test_the_connector_of_the_sandbox_configuration(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    assert sandbox.directory is not None
    settings = load_settings(sandbox.directory / "syncd.toml", env={})
    assert settings.zendesk is not None and settings.zendesk.token is not None
    zd = ZendeskConnector(settings.zendesk, SystemClock(), settings.tls, settings.proxy)
    assert zd.fetch(RecordRef("zendesk.ticket", "1")) is not None
    token = settings.zendesk.token.get_secret_value()
    assert token not in repr(zd.settings) and token not in repr(zd)  # the secret is not shown


def test_a_netloc_is_pinned_per_client_not_process_wide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("ZENPY_FORCE_NETLOC", "ZENPY_FORCE_SCHEME"):  # unset, and unset again after
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    a = Zenpy(subdomain="a", email="x@y.z", token="t")
    b = Zenpy(subdomain="b", email="x@y.z", token="t")
    pin_host(a, "https", "127.0.0.1:8443")
    assert a.tickets.base_url == "127.0.0.1:8443"
    assert b.tickets.base_url == "b.zendesk.com"
    assert "ZENPY_FORCE_NETLOC" not in os.environ
    pin_host(b, "https", "localhost:8443")  # no dot to split at: the variables it is
    assert os.environ["ZENPY_FORCE_NETLOC"] == "localhost:8443"
    with pytest.raises(ValueError):
        pin_host(b, "https", "localhost:9999")
