"""Folder paths as the Graph connector derives them: decoded as Graph encodes them, kept right
across renames and moves, and a delta restart when Graph gives no way to resume."""

from __future__ import annotations

import logging

import pytest
from test_connector_graph import NOW, b64, connector, op, seed

from syncd.connectors.base import poll
from syncd.connectors.graph import GraphConnector
from syncd.model import RecordRef
from syncd.sandbox.server import SandboxServer


def seed_files(sandbox: SandboxServer, *paths: str, folders: tuple[str, ...] = ()) -> None:
    sandbox.control("POST", "/_sandbox/seed", {"clock": NOW, "graph": {
        "folders": list(folders), "files": [{"path": p, "content": p} for p in paths]}})


def item_id(graph: GraphConnector, path: str) -> str:
    return str(graph._get_json(f"{graph._drive}/root:/{path}")["id"])


def patch(graph: GraphConnector, path: str, **body: object) -> None:
    """What a person does in SharePoint: rename or move an item."""
    graph._request("PATCH", f"{graph._drive}/items/{item_id(graph, path)}", json=body)


def test_folders_with_a_space_or_non_ascii_name_match_watched_folders(
    sandbox: SandboxServer,
) -> None:
    seed_files(sandbox, "Clients/Acme Corp/Zürich/notes.txt", "Clients/Other/plan.txt")
    graph = connector(sandbox, watched_folders=("Clients/Acme Corp",))
    records, _ = poll(graph, None)
    assert [(r.fields["folder"], r.fields["path"]) for r in records] == [
        ("Clients/Acme Corp/Zürich", "Clients/Acme Corp/Zürich/notes.txt")]
    fetched = graph.fetch(records[0].ref)
    assert fetched is not None and fetched.fields["folder"] == "Clients/Acme Corp/Zürich"


def test_a_renamed_or_moved_folder_gives_its_files_their_new_path(
    sandbox: SandboxServer,
) -> None:
    seed_files(sandbox, "Transcripts/Acme/a.vtt", "Transcripts/Acme/Deep/b.vtt",
               folders=("Archive",))
    graph = connector(sandbox, watched_folders=())
    first, cursor = poll(graph, None)
    assert sorted(r.fields["path"] for r in first) == [
        "Transcripts/Acme/Deep/b.vtt", "Transcripts/Acme/a.vtt"]

    # delta reports the renamed folder alone; its files are re-read with their new path
    patch(graph, "Transcripts/Acme", name="Acme Corp")
    renamed, cursor = poll(graph, cursor)
    assert sorted(r.fields["path"] for r in renamed) == [
        "Transcripts/Acme Corp/Deep/b.vtt", "Transcripts/Acme Corp/a.vtt"]

    # a later change to one file carries the new path too (no folder path kept from before)
    assert graph.execute(op("upload", "Transcripts/Acme Corp/a.vtt", content_b64=b64(b"A2"))).ok
    changed, cursor = poll(graph, cursor)
    assert [r.fields["path"] for r in changed] == ["Transcripts/Acme Corp/a.vtt"]

    # a move under another folder
    archive = item_id(graph, "Archive")
    patch(graph, "Transcripts/Acme Corp", parentReference={"id": archive})
    moved, cursor = poll(graph, cursor)
    assert sorted(r.fields["path"] for r in moved) == [
        "Archive/Acme Corp/Deep/b.vtt", "Archive/Acme Corp/a.vtt"]
    assert {r.fields["folder"] for r in moved} == {"Archive/Acme Corp", "Archive/Acme Corp/Deep"}


def test_410_without_location_starts_a_fresh_delta_and_says_so(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    seed(sandbox, files=2)
    graph = connector(sandbox)
    _, cursor = poll(graph, None)
    sandbox.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "graph", "path": "/root/delta", "kind": "status", "status": 410,
         "times": 1}]})
    with caplog.at_level(logging.WARNING):
        again, cursor = poll(graph, cursor)
    assert sorted(r.fields["name"] for r in again) == ["Call 0.vtt", "Call 1.vtt"]
    assert any("delta_restarted" in r.getMessage() or "delta_restarted" in str(r.__dict__)
               for r in caplog.records)
    # and the fresh deltaLink is the one kept: the next poll goes on from it
    assert poll(graph, cursor)[0] == []
    assert graph.fetch(RecordRef("sharepoint.file", again[0].ref.id)) is not None
