"""What syncd's own writes cost at Zendesk, and what they must not break.

A rule firing's writes to its ticket (triage: tag, then assign) go out as one ticket update, and
the update's answer (the ticket as saved) is what a later action of the cycle reads: no second
write, no read-back. The tag list that update carries replaces the ticket's, so it goes with
`safe_update`: a tag an agent added after syncd read the ticket is kept, never overwritten."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import ANN, BOB, NOW, STAFF, World, seed

from syncd.daemon.cycle import run_cycle
from syncd.daemon.runtime import build_connectors, open_runtime
from syncd.model import Operation, Outcome
from syncd.sandbox.server import SandboxServer

MINUTE = timedelta(minutes=1)
TO_ASSIGNEE = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new, tags: {lacks: syncd-triaged}}
    do:
      - tag: [syncd-triaged]
      - assign: {group: Support, strategy: round_robin}
      - notify: {to: [assignee], subject: "Yours: #{{ ticket.id }}", body: "{{ ticket.url }}"}
"""


def ticket_calls(world: World, cycle: Any) -> list[tuple[str, str]]:
    """The Zendesk ticket requests (method, path) syncd makes during `cycle()`, the export
    and the directory left out."""
    before = len(world.sandbox.control("GET", "/_sandbox/requests")["requests"])
    report = cycle()
    assert report.ok, report.failures
    log = world.sandbox.control("GET", "/_sandbox/requests")["requests"][before:]
    return [(r["method"], r["path"]) for r in log
            if r["vendor"] == "zendesk" and r["path"].startswith("/api/v2/tickets")]


def test_a_triaged_ticket_costs_one_ticket_update_and_no_read_back(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - 30 * MINUTE))
    calls = ticket_calls(world, world.cycle)
    assert calls == [("PUT", f"/api/v2/tickets/{n}.json") for n in (1, 2, 3)]
    for n, agent in ((1, ANN), (2, BOB), (3, ANN)):  # round robin, Cara is away
        ticket = world.ticket(n)
        assert ticket["tags"] == ["syncd-triaged"]
        assert ticket["assignee_id"] == agent
    assert world.subjects() == ["New ticket #1", "New ticket #2", "New ticket #3"]
    assert set(world.mail_per_key().values()) == {1}
    assert ticket_calls(world, world.cycle) == []  # nothing done twice


def test_a_mail_to_the_assignee_reaches_the_one_syncd_just_assigned(
    sandbox: SandboxServer, tmp_path: Path,
) -> None:
    world = World(sandbox, tmp_path, TO_ASSIGNEE)
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 30 * MINUTE))
    calls = ticket_calls(world, world.cycle)
    assert not [c for c in calls if c[0] == "GET"]  # the update's answer told who it is
    assert {(m["subject"], tuple(m["to"])) for m in world.mail()} == {
        ("Yours: #1", (STAFF[ANN],)), ("Yours: #2", (STAFF[BOB],))}


class Meddled:
    """The Zendesk connector, with an agent tagging ticket 1 a second before syncd's first
    write: after syncd read the ticket, before it wrote."""

    def __init__(self, inner: Any, world: World) -> None:
        self.inner, self.world, self.done = inner, world, False

    def _meddle(self) -> None:
        if not self.done:
            self.done = True
            self.world.advance(timedelta(seconds=1))
            resp = self.world.http.put(f"{self.world.api}/tickets/1/tags.json",
                                       json={"tags": ["vip"]}, timeout=30)
            resp.raise_for_status()

    def execute(self, op: Operation) -> Outcome:
        self._meddle()
        return self.inner.execute(op)

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]:
        self._meddle()
        return self.inner.execute_many(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_tag_an_agent_adds_between_syncds_read_and_its_write_is_kept(world: World) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - 30 * MINUTE))
    connectors = build_connectors(world.settings, world.clock)
    connectors["zendesk"] = Meddled(connectors["zendesk"], world)
    rt = open_runtime(world.settings, world.clock, connectors=connectors)
    try:
        report = run_cycle(rt)
    finally:
        rt.close()
    assert report.ok, report.failures
    ticket = world.ticket(1)
    assert sorted(ticket["tags"]) == ["syncd-triaged", "vip"]
    assert ticket["assignee_id"] == ANN
    assert world.subjects() == ["New ticket #1"]


ROUTE = """
rules:
  - id: route
    on: zendesk.ticket
    when: {status: new}
    do:
      - tag: [routed]
      - set: {priority: urgent}
      - assign:
          strategy: mapping
          mapping: {field: priority, table: {urgent: bob@example.com}, default: ann@example.com}
"""


def test_an_assignment_mapped_from_a_field_the_list_just_set_reads_the_new_value(
    sandbox: SandboxServer, tmp_path: Path,
) -> None:
    # the tag and the priority share one update; the mapping waits for its answer
    world = World(sandbox, tmp_path, ROUTE)
    sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - 30 * MINUTE))
    calls = ticket_calls(world, world.cycle)
    assert calls == [("PUT", "/api/v2/tickets/1.json")] * 2
    ticket = world.ticket(1)
    assert (ticket["priority"], ticket["assignee_id"], ticket["tags"]) == (
        "urgent", BOB, ["routed"])
