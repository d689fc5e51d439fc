"""Tags under concurrency: a tag change goes as one ticket update carrying the whole tag list
(an update's `tags` replaces the ticket's), so it must go with `safe_update` and the stamp of
the list it was computed from; a stale stamp earns a 409, which is a reason to re-read the
ticket and compute the list again, never to overwrite a tag somebody else added, nor a dead
letter. A rule's tag and field changes to one ticket share that update."""

from __future__ import annotations

import json
from typing import Any

import requests
from test_connector_zendesk import AGENT, connector, op, seed

from syncd.connectors.zendesk import ZendeskConnector
from syncd.model import RecordRef
from syncd.sandbox.server import SandboxServer


def ticket_calls(sandbox: SandboxServer) -> list[tuple[str, int]]:
    return [(r["method"], r["status"]) for r in sandbox.control("GET", "/_sandbox/requests")
            ["requests"] if r["path"].startswith("/api/v2/tickets/1")]


def sent_updates(zd: ZendeskConnector) -> list[dict[str, Any]]:
    """The ticket bodies of the updates `zd` sends from now on."""
    sent: list[dict[str, Any]] = []

    def capture(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "PUT":
            sent.append(json.loads(response.request.body or b"{}")["ticket"])

    zd.client.tickets.session.hooks["response"].append(capture)
    return sent


def test_tags_are_sent_whole_with_safe_update_and_the_stamp_they_were_read_at(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    sent = sent_updates(zd)
    assert zd.execute(op("add_tags", tags=["vip"])).ok  # nothing known: read it first
    assert zd.execute(op("remove_tags", key="rule/k2", tags=["seed"])).ok
    assert [(b["tags"], b.get("safe_update"), b.get("updated_stamp")) for b in sent] == [
        (["seed", "vip"], True, "2026-03-02T08:01:00Z"),
        (["vip"], True, "2026-03-02T10:00:00Z"),  # the first write moved the stamp
    ]
    assert ticket_calls(sandbox) == [("GET", 200), ("PUT", 200)] * 2


def test_a_known_tag_list_costs_one_update_whose_answer_is_the_ticket(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    outcome = zd.execute(op("add_tags", tags=["vip"], current_tags=["seed"],
                            updated_stamp="2026-03-02T08:01:00Z"))
    assert outcome.ok, outcome
    assert ticket_calls(sandbox) == [("PUT", 200)]
    assert outcome.record is not None and outcome.record.fields["tags"] == ["seed", "vip"]
    assert outcome.record.fields["updated_at"] == "2026-03-02T10:00:00Z"


def test_a_stale_stamp_is_re_read_and_the_list_computed_again(sandbox: SandboxServer) -> None:
    seed(sandbox, tickets=1)
    zd = connector(sandbox)
    stale = op("add_tags", tags=["vip"], current_tags=[], updated_stamp="2026-03-02T07:00:00Z")
    outcome = zd.execute(stale)
    assert outcome.ok, outcome
    assert outcome.detail["tags"] == ["seed", "vip"]  # "seed", missing from the stale list
    assert ticket_calls(sandbox)[-3:] == [("PUT", 409), ("GET", 200), ("PUT", 200)]


def test_a_tag_and_an_assignment_of_one_ticket_go_as_one_update_verified_apart(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, tickets=2)
    zd = connector(sandbox)
    sent = sent_updates(zd)
    tag = op("add_tags", key="r/tag", tags=["triaged"], current_tags=["seed"],
             updated_stamp="2026-03-02T08:01:00Z")
    assign = op("update", key="r/assign", assignee_email=AGENT)
    other = op("update", target="2", key="r/other", priority="high")
    outcomes = zd.execute_many([tag, assign, other])
    assert all(o.ok for o in outcomes), outcomes
    assert [(b["id"], sorted(b)) for b in sent] == [
        (1, ["assignee_id", "id", "safe_update", "tags", "updated_stamp"]),
        (2, ["id", "priority"]),
    ]
    assert [zd.verify(o).ok for o in (tag, assign, other)] == [True, True, True]
    record = outcomes[0].record
    assert record is not None and record.ref == RecordRef("zendesk.ticket", "1")
    assert (record.fields["tags"], record.fields["assignee_email"]) == (["seed", "triaged"],
                                                                        AGENT)
