"""`syncd store copy`: an installation moved from SQLite to PostgreSQL (or back) keeps every
timer, intent, snapshot, cursor and its last accepted rule set, and goes on from there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from postgres import PostgresServer
from typer.testing import CliRunner

from syncd.cli import app
from syncd.daemon import rulesets
from syncd.model import Intent, Record, RecordRef
from syncd.store.db import open_store
from syncd.store.ledger import IntentState
from syncd.store.tables import leases, metadata
from syncd.store.timers import TimerSpec, TimerState

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TICKET = RecordRef("zendesk.ticket", "42")
runner = CliRunner()


def _populate(url: str, rules_dir: Path) -> None:
    store = open_store(url)
    intents = [Intent(f"ladder/{n}", "ladder", TICKET, "notify", {"to": ["group:Support"]},
                      NOW + timedelta(hours=n), step=f"h{n}") for n in range(4)]
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "new", "subject": "Ünïcode ✓"}, NOW))
    with store.transaction() as tx:
        tx.records.upsert(Record(TICKET, {"status": "open", "subject": "Ünïcode ✓"},
                                 NOW + timedelta(minutes=5)))
        tx.ledger.plan(intents, NOW)
        tx.timers.replace("ladder", TICKET, [TimerSpec("t/1", "h1", NOW + timedelta(hours=1)),
                                             TimerSpec("t/2", "h2", NOW + timedelta(hours=2))],
                          NOW)
        tx.memory.put("ladder", TICKET, {"inside": True}, NOW)
        tx.cursors.set("zendesk", "cursor-abc", NOW)
        rulesets.remember(tx, rules_dir, NOW)
    with store.transaction() as tx:
        tx.timers.mark_fired("t/1", NOW + timedelta(hours=1))
        assert tx.ledger.mark_sent("ladder/0", NOW)
        assert tx.ledger.mark_done("ladder/0", {"mail": "sent"}, NOW)
        assert tx.ledger.mark_sent("ladder/1", NOW + timedelta(hours=1))  # outcome unknown
        assert tx.ledger.mark_failed("ladder/2", "bad", NOW, None)  # dead
    store.close()


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    store = open_store(url)
    with store.read() as tx:
        dump = {
            table.name: [dict(row) for row in tx.conn.execute(
                table.select().order_by(*table.primary_key.columns)).mappings()]
            for table in metadata.sorted_tables if table is not leases
        }
    store.close()
    return dump


@pytest.fixture(params=["sqlite-to-postgresql", "postgresql-to-sqlite"])
def urls(request: pytest.FixtureRequest, tmp_path: Path,
         postgres: PostgresServer) -> tuple[str, str]:
    sqlite = f"sqlite:///{tmp_path / 'state.db'}"
    pg = postgres.new_database()
    return (sqlite, pg) if request.param == "sqlite-to-postgresql" else (pg, sqlite)


def test_copy_keeps_everything_and_the_daemon_goes_on_from_there(
    urls: tuple[str, str], tmp_path: Path
) -> None:
    source, destination = urls
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "ladder.yaml").write_text("rules: []\n")
    _populate(source, rules_dir)
    result = runner.invoke(app, ["store", "copy", "--from", source, "--to", destination])
    assert result.exit_code == 0, result.output
    assert "intents 4" in result.output and "timers 2" in result.output

    assert _dump(destination) == _dump(source)
    store = open_store(destination)
    with store.read() as tx:
        saved = rulesets.last_accepted(tx)
        assert saved is not None and saved.files == {"ladder.yaml": "rules: []\n"}
        assert [t.key for t in tx.timers.for_record(TICKET)] == ["t/2"]
        assert tx.timers.next_due() == NOW + timedelta(hours=2)
        assert [e.intent.key for e in tx.ledger.sent_unverified()] == ["ladder/1"]
        assert tx.ledger.get("ladder/2").state == IntentState.DEAD  # type: ignore[union-attr]
        assert tx.cursors.get("zendesk") == "cursor-abc"
    with store.transaction() as tx:  # new rows get fresh ids after the copied ones
        fresh = Intent("triage/9", "triage", TICKET, "tag", {"tags": ["x"]}, NOW)
        assert tx.ledger.plan([fresh], NOW) == ["triage/9"]
        tx.timers.replace("other", TICKET, [TimerSpec("t/9", "x", NOW)], NOW)
        assert tx.timers.for_record(TICKET)[0].state == TimerState.PENDING
    store.close()


def test_copy_refuses_a_destination_that_holds_data(urls: tuple[str, str], tmp_path: Path) -> None:
    source, destination = urls
    (tmp_path / "rules").mkdir()
    _populate(source, tmp_path / "rules")
    assert runner.invoke(app, ["store", "copy", "--from", source, "--to", destination]
                         ).exit_code == 0
    before = _dump(destination)
    again = runner.invoke(app, ["store", "copy", "--from", source, "--to", destination])
    assert again.exit_code == 1
    assert "the destination already holds data (table " in again.output
    assert _dump(destination) == before


def test_copy_names_a_bad_url_without_its_password(tmp_path: Path) -> None:
    bad = "postgresql+psycopg://syncd:s3cret-pw@127.0.0.1:1/nowhere"
    result = runner.invoke(app, ["store", "copy", "--from", f"sqlite:///{tmp_path}/s.db",
                                 "--to", bad])
    assert result.exit_code == 1
    assert "destination postgresql+psycopg://syncd:***@127.0.0.1:1/nowhere" in result.output
    assert "s3cret-pw" not in result.output


