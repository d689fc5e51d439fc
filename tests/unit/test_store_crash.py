"""SIGKILL a process in the middle of planning and sending: the reopened store (WAL recovery)
is consistent, every page is all-or-nothing, and no key exists or was sent twice."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from syncd.store.db import open_store

BATCH = 5

# One "poller + executor" loop: each page plans its intents together with the previous page's
# (a replay the unique key must absorb), stores a snapshot and moves the cursor in one
# transaction; then sent intents are "verified", and one due intent is sent and done.
CHILD = textwrap.dedent(
    f"""
    import sys
    from datetime import UTC, datetime
    from syncd.model import Intent, Record, RecordRef
    from syncd.store.db import open_store

    NOW = datetime(2026, 3, 2, tzinfo=UTC)
    store = open_store(sys.argv[1])

    def page_intents(page):
        ref = RecordRef("zendesk.ticket", str(page))
        return [Intent(f"r/{{page}}-{{i}}", "r", ref, "tag", {{"i": i}}, NOW)
                for i in range({BATCH})]

    with store.transaction() as tx:
        for entry in tx.ledger.sent_unverified():  # restart: verify before anything else
            tx.ledger.mark_done(entry.intent.key, {{"verified": True}}, NOW)
    while True:
        with store.transaction() as tx:
            page = int(tx.cursors.get("zendesk") or 0) + 1
            replay = page_intents(page - 1) if page > 1 else []
            assert len(tx.ledger.plan(replay + page_intents(page), NOW)) == {BATCH}
            ref = RecordRef("zendesk.ticket", str(page))
            tx.records.upsert(Record(ref, {{"status": "new", "page": page}}, NOW))
            tx.cursors.set("zendesk", str(page), NOW)
        with store.transaction() as tx:
            claimed = tx.ledger.claim_due(NOW, limit=1)
            key = claimed[0].intent.key if claimed else None
            assert key is None or tx.ledger.mark_sent(key, NOW)
        if key:
            with store.transaction() as tx:
                assert tx.ledger.mark_done(key, {{"ok": True}}, NOW)
        print(page, flush=True)
    """
)


def _run_and_kill(url: str, rng: random.Random) -> int:
    """Run the child until it has done a random number of pages, then SIGKILL it mid-work."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    pages = 0
    for _ in range(rng.randint(3, 25)):
        line = child.stdout.readline()
        assert line, f"child exited early with {child.wait()}"
        pages = int(line)
    time.sleep(rng.uniform(0, 0.03))
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()
    return pages


def _check_consistent(path: Path) -> None:
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = open_store(f"sqlite:///{path}")
    with store.read() as tx:
        sql = tx.conn.exec_driver_sql
        page = int(tx.cursors.get("zendesk") or 0)
        duplicates = "SELECT key FROM intents GROUP BY key HAVING COUNT(*) > 1"
        assert sql(duplicates).all() == []
        assert sql("SELECT COUNT(*) FROM intents").scalar() == BATCH * page
        assert sql("SELECT COUNT(*) FROM records").scalar() == page
        assert sql("SELECT COUNT(*) FROM audit WHERE event = 'planned'").scalar() == BATCH * page
        sends = "SELECT intent_key FROM audit WHERE event = 'sent' GROUP BY intent_key"
        assert sql(sends + " HAVING COUNT(*) > 1").all() == []
        states = dict(sql("SELECT state, COUNT(*) FROM intents GROUP BY state").all())
        assert set(states) <= {"planned", "sent", "done"}
        assert states.get("sent", 0) <= 1
        assert len(sql(sends).all()) == states.get("sent", 0) + states.get("done", 0)
    store.close()


def test_sigkill_mid_transaction_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    url = f"sqlite:///{path}"
    open_store(url).close()
    rng = random.Random(20260302)
    for _ in range(4):
        printed = _run_and_kill(url, rng)
        assert Path(f"{path}-wal").exists()
        _check_consistent(path)
        store = open_store(url)
        with store.read() as tx:
            assert int(tx.cursors.get("zendesk") or 0) >= printed
        store.close()
