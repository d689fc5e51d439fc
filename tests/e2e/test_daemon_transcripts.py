"""`file_transcript` against the sandbox: a transcript is attached to its ticket, or filed and
reported ("if in doubt please ask"), never failed or dropped."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from e2e_world import NOW, World, seed

from syncd.sandbox.server import SandboxServer

RULES = """
rules:
  - id: transcripts
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript: {ticket_from: "ZD-(\\\\d+)", else_folder: Transcripts/Unmatched,
                          else_notify: [hal@example.com]}
"""


def fixture(*names: str) -> dict[str, Any]:
    base = seed(1, NOW - timedelta(minutes=30))
    created = (NOW - timedelta(minutes=5)).isoformat()
    files = [{"path": f"Transcripts/{n}", "content": "WEBVTT", "created_at": created}
             for n in names]
    return {**base, "graph": {"files": files}}


def copies(sandbox: SandboxServer) -> Counter[str]:
    """Drive items by name: a transcript filed away is there twice (the original stays)."""
    graph = sandbox.sandbox.snapshot()["graph"]  # type: ignore[union-attr]
    return Counter(i["name"] for d in graph["drives"] for i in d["items"] if not i.get("deleted"))


def test_a_number_that_names_no_ticket_is_filed_and_reported_with_the_reason(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, RULES)
    sandbox.control("POST", "/_sandbox/seed", fixture(
        "ZD-1 review.vtt", "ZD-999 typo.vtt", "Weekly call.vtt"))
    report = world.cycle()
    assert report.ok, report.failures
    assert any(c.startswith("Transcript: ZD-1 review.vtt") for c in world.comments(1))
    mails = {m["subject"]: m for m in world.mail()}
    assert set(mails) == {"Transcript not filed: ZD-999 typo.vtt",
                          "Transcript not filed: Weekly call.vtt"}
    typo = mails["Transcript not filed: ZD-999 typo.vtt"]
    assert typo["to"] == ["hal@example.com"]
    assert "names ticket 999, but ticket 999 was not found" in typo["body"]
    assert "A copy is in Transcripts/Unmatched." in typo["body"]
    assert "No ticket number found in 'Weekly call.vtt'." in (
        mails["Transcript not filed: Weekly call.vtt"]["body"])
    found = copies(sandbox)
    assert (found["Unmatched"], found["ZD-999 typo.vtt"], found["Weekly call.vtt"]) == (1, 2, 2)
    with world.store().read() as tx:
        states = {str(s): n for s, n in tx.ledger.count_by_state().items() if n}
    assert states == {"done": 3}
