"""The lease loop's decisions, one turn at a time: who is told to work, what STATUS= and the
metrics say, on the leader, on a standby and after a step-down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from postgres import PostgresServer

from syncd.clock import SystemClock
from syncd.daemon.leadership import Leadership
from syncd.daemon.metrics import Metrics
from syncd.daemon.notify import Notifier
from syncd.daemon.status import Status
from syncd.store.db import open_store
from syncd.store.lease import Fenced


class Told(Notifier):
    def __init__(self) -> None:
        super().__init__({})
        self.lines: list[str] = []

    def status(self, text: str) -> None:
        self.lines.append(text)


def _leadership(url: str, holder: str) -> tuple[Leadership, list[str], Told]:
    rt: Any = SimpleNamespace(
        settings=SimpleNamespace(syncd=SimpleNamespace(lease_term_s=10.0, lease_renew_s=3.0)),
        store=open_store(url), clock=SystemClock())
    woken: list[str] = []
    told = Told()
    leadership = Leadership(rt, Metrics(), Status(ZoneInfo("UTC")), told,
                            on_lead=lambda: woken.append(holder), holder=holder)
    rt.store.fence = leadership.lease
    return leadership, woken, told


@pytest.fixture
def pair(postgres: PostgresServer) -> Iterator[tuple[Any, Any]]:
    """Two hosts on one PostgreSQL database (on SQLite the last started seizes the lease)."""
    url = postgres.new_database()
    a, b = _leadership(url, "a:1"), _leadership(url, "b:2")
    yield a, b
    for leadership, _, _ in (a, b):
        leadership.rt.store.close()


def test_the_leader_is_woken_once_and_the_standby_says_who_leads(pair: Any) -> None:
    (a, a_woken, a_told), (b, b_woken, b_told) = pair
    assert a.turn() == 3.0 and b.turn() == 1.0  # renew every 3 s; a standby tries every 1 s
    a.turn()
    assert a_woken == ["a:1"] and b_woken == []
    assert a_told.lines[-1].startswith("leader since ") and "(epoch 1)" in a_told.lines[-1]
    assert b_told.lines[-1].startswith("standby, leader is a:1 since ")
    assert a.metrics.render().count(b"syncd_leader 1.0") == 1
    assert b.metrics.render().count(b"syncd_leader 0.0") == 1


def test_a_leader_fenced_from_a_job_is_woken_again_when_it_leads_again(pair: Any) -> None:
    """The lease loop's renewal may land after a job stepped down (another thread): the jobs,
    which stopped rescheduling themselves, must be woken again."""
    (a, a_woken, _), _ = pair
    a.turn()
    epoch = a.lease.epoch
    a.fenced(Fenced("the term ran out before a vendor call"))
    assert not a.leading()
    a.lease.epoch = epoch  # the renewal in flight when the job stepped down lands
    a.turn()
    assert a.leading() and a_woken == ["a:1", "a:1"]


def test_a_lost_database_is_said_and_retried_with_back_off() -> None:
    server = PostgresServer().start()
    try:
        leadership, woken, told = _leadership(server.new_database(), "a:1")
        assert leadership.turn() == 3.0 and woken == ["a:1"]
        server.halt()
        waits = [leadership.turn() for _ in range(5)]
        assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
        assert "state database UNREACHABLE since" in told.lines[-1]
        assert b"syncd_store_up 0.0" in leadership.metrics.render()
        server.resume()
        assert leadership.turn() == 3.0 and leadership.leading()
        assert "UNREACHABLE" not in told.lines[-1]
        assert b"syncd_store_up 1.0" in leadership.metrics.render()
        leadership.rt.store.close()
    finally:
        server.stop()


def test_on_sqlite_a_restarted_daemon_takes_the_lease_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    (old, _, _), (new, woken, _) = _leadership(url, "host:1"), _leadership(url, "host:2")
    old.turn()
    assert new.turn() == 3.0 and woken == ["host:2"] and new.lease.epoch == 2
    old.turn()
    assert not old.leading()
