"""The directories actions read (Zendesk's agents and groups) are kept an hour; an action naming
a group created since reads the directory again, once, instead of failing."""

from __future__ import annotations

from datetime import timedelta

from e2e_world import BOB, NOW, STAFF, World, seed

from syncd.daemon.cycle import run_cycle
from syncd.daemon.reload import reload_rules
from syncd.daemon.runtime import open_runtime
from syncd.store.ledger import IntentState

ESCALATE = """
rules:
  - id: escalate
    on: zendesk.ticket
    when: {tags: {contains: escalate}}
    do: [{assign: {group: "{{ ticket.subject }}", strategy: round_robin}}]
"""


def group_reads(world: World) -> int:
    """Directory reads: each lists the group memberships (side-loading users and groups)."""
    log = world.sandbox.control("GET", "/_sandbox/requests")["requests"]
    return sum(r["path"] == "/api/v2/group_memberships.json" for r in log)


def test_a_group_created_after_the_directory_was_read_is_found_by_reading_it_again(
    world: World,
) -> None:
    world.sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=5)))
    rt = open_runtime(world.settings, world.clock)
    try:
        assert run_cycle(rt).ok  # triage: the directory is read
        assert group_reads(world) == 1
        (world.rules_dir / "escalate.yaml").write_text(ESCALATE)
        reload_rules(rt)
        world.advance(timedelta(minutes=2))
        world.sandbox.control("POST", "/_sandbox/seed", {"zendesk": {
            "groups": [{"name": "Escalations", "members": [STAFF[BOB]]}],
            "tickets": [{"id": n, "subject": subject, "status": "open", "requester":
                         "carl@customer.example", "tags": ["syncd-triaged", "escalate"]}
                        for n, subject in ((2, "Escalations"), (3, "Nobody"))]}})
        world.advance(timedelta(minutes=2))  # the export shows them
        report = run_cycle(rt)
        with rt.store.read() as tx:
            states = {e.intent.record.id: (e.state, e.last_error)
                      for e in tx.ledger.list(rule_id="escalate")}
    finally:
        rt.close()
    assert world.ticket(2)["assignee_id"] == BOB  # the new group, read again
    assert states["2"] == (IntentState.DONE, None)
    assert states["3"] == (IntentState.DEAD, "no zendesk group named 'Nobody'")
    assert report.drained.failed == 1
    assert group_reads(world) == 2  # once for both: not again within the minute
