"""The leader lease on both engines: one holder at a time, epochs that only grow, takeover after
the term or at once after a release, and fencing: a deposed leader's writes fail, even one whose
transaction began before the takeover and one that slept past its term."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from postgres import PostgresServer
from sqlalchemy.exc import DBAPIError

from syncd.clock import SystemClock
from syncd.model import Intent, RecordRef
from syncd.store.db import Store, open_store
from syncd.store.lease import Fenced, Lease
from syncd.store.ledger import IntentState
from syncd.store.timers import TimerSpec, TimerState

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TICKET = RecordRef("zendesk.ticket", "7")
TERM_S = 0.6


class Host:
    """One daemon's view: its own store (connection pool) fenced by its own lease."""

    def __init__(self, url: str, name: str, term_s: float = TERM_S) -> None:
        self.store = open_store(url)
        self.lease = Lease(self.store, name, clock=SystemClock(), term_s=term_s)
        self.store.fence = self.lease

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def hosts(store_url: str) -> Iterator[tuple[Host, Host]]:
    a, b = Host(store_url, "host-a:1"), Host(store_url, "host-b:2")
    yield a, b
    a.close()
    b.close()


def _plan(store: Store) -> str:
    intent = Intent("triage/7", "triage", TICKET, "tag", {"tags": ["x"]}, NOW)
    with store.transaction(fenced=False) as tx:
        tx.ledger.plan([intent], NOW)
        tx.timers.replace("ladder", TICKET, [TimerSpec("ladder/7", "1h", NOW)], NOW)
    return intent.key


def test_one_holder_at_a_time_and_the_standby_sees_who(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert a.lease.acquire() and a.lease.epoch == 1
    assert not b.lease.acquire() and b.lease.epoch is None
    assert b.lease.current is not None and b.lease.current.holder == "host-a:1"
    assert b.lease.current.acquired_at is not None
    assert a.lease.acquire() and a.lease.epoch == 1  # a renewal keeps the epoch


def test_a_standby_takes_an_expired_lease_with_the_next_epoch(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert a.lease.acquire()
    time.sleep(TERM_S + 0.2)  # a stops renewing (killed)
    assert b.lease.acquire() and b.lease.epoch == 2
    assert not a.lease.acquire() and a.lease.epoch is None
    assert a.lease.current is not None and a.lease.current.holder == "host-b:2"


def test_a_release_hands_over_at_once(store_url: str) -> None:
    a, b = Host(store_url, "a", term_s=30), Host(store_url, "b", term_s=30)
    assert a.lease.acquire()
    assert not b.lease.acquire()
    a.lease.release()
    assert not a.lease.leading()
    assert b.lease.acquire() and b.lease.epoch == 2
    a.close()
    b.close()


def test_a_deposed_leader_cannot_claim_advance_or_settle(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    key = _plan(a.store)
    assert a.lease.acquire()
    with a.store.transaction() as tx:  # while it leads, its writes land
        tx.cursors.set("zendesk", "page-1", NOW)
    time.sleep(TERM_S + 0.2)  # a is paused past its term
    assert b.lease.acquire()
    for write in (
        lambda tx: tx.ledger.mark_sent(key, NOW),
        lambda tx: tx.cursors.set("zendesk", "page-2", NOW),
        lambda tx: tx.timers.mark_fired("ladder/7", NOW),
    ):
        a.lease.epoch = 1  # as if a had not noticed yet: the check is in the database
        with pytest.raises(Fenced, match="now held by host-b:2 at epoch 2"), \
                a.store.transaction() as tx:
            write(tx)
        assert not a.lease.leading()  # it stepped down
    with b.store.read() as tx:
        entry = tx.ledger.get(key)
        assert entry is not None and entry.state == IntentState.PLANNED
        assert tx.cursors.get("zendesk") == "page-1"
        assert [t.state for t in tx.timers.for_record(TICKET)] == [TimerState.PENDING]


def test_a_standby_writes_nothing(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert a.lease.acquire() and not b.lease.acquire()
    with pytest.raises(Fenced, match="standby"), b.store.transaction() as tx:
        tx.cursors.set("zendesk", "page-9", NOW)
    with a.store.read() as tx:
        assert tx.cursors.get("zendesk") is None


def test_a_takeover_waits_for_the_old_leaders_transaction_in_flight(store_url: str) -> None:
    """No timing assumption: a write that passed the fence commits before the new epoch
    exists, and the one after it fails. Never both leaders' writes interleaved."""
    a, b = Host(store_url, "host-a:1", term_s=30), Host(store_url, "host-b:2", term_s=30)
    assert a.lease.acquire()
    taken = threading.Event()
    with a.store.transaction() as tx:
        # b takes over (seize: no waiting for the term) while a's transaction is open
        taker = threading.Thread(target=lambda: b.lease.acquire(seize=True) and taken.set())
        taker.start()
        time.sleep(0.5)
        assert not taken.is_set()  # b waits for a's transaction
        tx.cursors.set("zendesk", "from-a", NOW)
    taker.join(timeout=30)
    assert taken.is_set() and b.lease.epoch == 2
    with pytest.raises(Fenced), a.store.transaction() as tx:
        tx.cursors.set("zendesk", "from-a-again", NOW)
    with b.store.transaction() as tx:
        assert tx.cursors.get("zendesk") == "from-a"
    a.close()
    b.close()


def test_validity_ends_with_the_term_on_the_holders_own_clock(store_url: str) -> None:
    ticks = [100.0]
    store = open_store(store_url)
    lease = Lease(store, "a", clock=SystemClock(), term_s=10, monotonic=lambda: ticks[0])
    assert lease.acquire() and lease.valid()
    ticks[0] += 7.9
    assert lease.valid()
    ticks[0] += 0.2  # 8.1 s: past the share of the term it trusts without renewing
    assert not lease.valid() and lease.leading()  # may write (the epoch decides), not send
    assert lease.acquire() and lease.valid()
    store.close()


def test_seizing_fences_the_previous_holder_at_once(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert a.lease.acquire()
    assert b.lease.acquire(seize=True) and b.lease.epoch == 2
    with pytest.raises(Fenced), a.store.transaction() as tx:
        tx.cursors.set("zendesk", "stale", NOW)


def test_hosts_racing_for_a_free_lease_elect_exactly_one(store_url: str) -> None:
    racers = [Host(store_url, f"host-{n}", term_s=30) for n in range(4)]
    start = threading.Barrier(len(racers))
    won: list[str] = []

    def race(host: Host) -> None:
        start.wait()
        if host.lease.acquire():
            won.append(host.lease.holder)

    threads = [threading.Thread(target=race, args=(h,)) for h in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 1
    for host in racers:
        host.close()


def test_a_leader_frozen_inside_a_transaction_delays_a_takeover_by_a_term_at_most(
    postgres: PostgresServer,
) -> None:
    """SIGSTOP between a transaction's statements: its locks would stall the takeover for as
    long as the pause lasts. PostgreSQL ends the frozen session after a term instead."""
    url = postgres.new_database()
    a, b = Host(url, "host-a:1", term_s=1.0), Host(url, "host-b:2", term_s=1.0)
    assert a.lease.acquire()
    frozen = a.store.engine.connect()
    tx = frozen.begin()
    a.store.fence.check(frozen)  # type: ignore[union-attr]  # passed the fence, then froze
    started = time.monotonic()
    while not b.lease.acquire():
        assert time.monotonic() - started < 10, "the takeover stayed blocked"
        time.sleep(0.1)
    assert b.lease.epoch == 2 and time.monotonic() - started < 4
    with pytest.raises(DBAPIError):  # the frozen session was ended: nothing it did commits
        frozen.exec_driver_sql("SELECT 1")
        tx.commit()
    frozen.invalidate()
    a.close()
    b.close()


def test_a_leader_frozen_halfway_through_a_statement_delays_a_takeover_by_a_term_at_most(
    postgres: PostgresServer,
) -> None:
    """Frozen while sending a batch (psycopg's pipeline, no Sync yet): the server waits in an
    active statement, which idle_in_transaction_session_timeout does not end."""
    url = postgres.new_database()
    a, b = Host(url, "host-a:1", term_s=1.0), Host(url, "host-b:2", term_s=1.0)
    assert a.lease.acquire()
    frozen = a.store.engine.connect()
    frozen.begin()
    a.store.fence.check(frozen)  # type: ignore[union-attr]
    raw = frozen.connection.driver_connection
    pipeline = raw.pipeline()  # type: ignore[union-attr]
    pipeline.__enter__()
    raw.execute("UPDATE cursors SET cursor = 'x'")  # type: ignore[union-attr]
    raw.pgconn.flush()  # type: ignore[union-attr]  # sent, without the Sync that ends it
    started = time.monotonic()
    while not b.lease.acquire():
        assert time.monotonic() - started < 10, "the takeover stayed blocked"
        time.sleep(0.1)
    assert b.lease.epoch == 2 and time.monotonic() - started < 4
    with contextlib.suppress(psycopg.OperationalError):  # ended now, not by the collector
        pipeline.__exit__(None, None, None)  # at exit, when its log stream is closed
    frozen.invalidate()
    a.close()
    b.close()
