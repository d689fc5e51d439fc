"""Rules no source polls are found before they silently never fire (doctor, daemon start)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from syncd.daemon.coverage import unpolled_rules
from syncd.resources import RULES, shipped
from syncd.rules.language.loader import load_rules
from syncd.settings import Settings, load_settings

GRAPH = """
[graph]
tenant_id = "t"
client_id = "c"
"""


def settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "syncd.toml"
    path.write_text(textwrap.dedent(text))
    return load_settings(path, env={})


def rules(tmp_path: Path, text: str) -> object:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "r.yaml").write_text(textwrap.dedent(text))
    loaded = load_rules(directory)
    assert not loaded.errors, loaded.errors
    return loaded.ruleset


def test_shipped_list_rules_with_no_lists_polled_are_each_named(tmp_path: Path) -> None:
    ruleset = load_rules(Path(str(shipped(RULES)))).ruleset
    found = unpolled_rules(ruleset, settings(tmp_path, GRAPH + "lists = []\n"))
    on_items = [r.id for r in ruleset.rules if r.on == "sharepoint.item" and r.enabled]
    assert on_items and {u.rule for u in found} >= set(on_items)
    item = next(u for u in found if u.rule == on_items[0])
    assert "sharepoint.item and [graph] lists is empty" in str(item)
    assert item.where.endswith(".yaml:" + item.where.rsplit(":", 1)[1])
    # zendesk and salesforce are not configured either: their rules are named too
    assert any("[zendesk] is not configured" in u.why for u in found)


def test_a_list_or_folder_outside_what_graph_polls(tmp_path: Path) -> None:
    ruleset = rules(tmp_path, """
        rules:
          - id: releases
            on: sharepoint.item
            when: {list: Releases, fields.Date: {exists: true}}
            do: [{notify: {to: [a@example.com], subject: s, body: b}}]
          - id: either
            on: sharepoint.item
            when: {list: [Arrivals, Releases]}
            do: [{notify: {to: [a@example.com], subject: s, body: b}}]
          - id: transcripts
            on: sharepoint.file
            when: {folder: Transcripts/2026}
            do: [{notify: {to: [a@example.com], subject: s, body: b}}]
        """)
    polled = settings(tmp_path, GRAPH + 'lists = ["Arrivals"]\nwatched_folders = ["Clients"]\n')
    found = {u.rule: u for u in unpolled_rules(ruleset, polled)}
    assert set(found) == {"releases", "transcripts"}
    assert 'needs list "Releases", which [graph] lists does not poll (["Arrivals"])' in \
        found["releases"].why
    assert "folder" in found["transcripts"].why and "watched_folders" in found["transcripts"].fix
    fine = settings(tmp_path, GRAPH + 'lists = ["Releases"]\nwatched_folders = ["Transcripts"]\n')
    assert unpolled_rules(ruleset, fine) == []


def test_a_salesforce_object_not_in_objects(tmp_path: Path) -> None:
    ruleset = rules(tmp_path, """
        rules:
          - id: won
            on: salesforce.opportunity
            when: {IsWon: true}
            do: [{create_task: {subject: s, owner: owner}}]
          - id: off
            on: salesforce.opportunity
            enabled: false
            when: {IsWon: true}
            do: [{create_task: {subject: s, owner: owner}}]
        """)
    found = unpolled_rules(ruleset, settings(tmp_path, """
        [salesforce]
        client_id = "c"
        objects = ["Account"]
        """))
    assert [(u.rule, u.fix) for u in found] == [("won", "add Opportunity to [salesforce] objects")]
