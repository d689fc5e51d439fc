"""The leader lease: one row in `leases`, so that of several `syncd run` sharing one database
exactly one acts (polls, fires timers, executes) and the others stand by.

The lease has a term (10 s by default), renewed by its holder every few seconds. Whether it has
expired is judged by the database's clock alone (PostgreSQL's `clock_timestamp()`), never by
comparing hosts' clocks. A standby takes an expired (or released) lease and the grant carries the
next **epoch**. Safety does not rest on the term, but on the epoch (fencing):

- every write transaction of a leader starts with `check` (Store.fence): it reads the lease row
  with a shared row lock and refuses (`Fenced`, the transaction rolls back) unless the row still
  holds this process's epoch;
- a takeover updates that row, so it waits for every transaction holding the shared lock, and
  every transaction after it sees the new epoch.

So each write of the old leader either commits before the takeover or fails: two holders can
never both commit work (docs/ha.md has the argument and a sequence diagram). Vendors cannot check
our epoch, so just before each vendor call a leader also asks `valid()`: false once its own
term, counted on this host's monotonic clock from the start of the last renewal, may have run
out; a process paused past its term (SIGSTOP, a frozen VM) thus sends nothing when it wakes,
and its next transaction fails on the epoch.

On SQLite (one host) the daemon `seize`s the lease at start: the previous process on this host
is gone or stale, and a stale one is fenced by the new epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from syncd.clock import Clock
from syncd.errors import Fatal
from syncd.logs import get_logger
from syncd.store.db import Store
from syncd.store.tables import leases

log = get_logger("syncd.store")

LEADER = "leader"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout runs out
# Of its term, the share a holder trusts without renewing: the rest absorbs scheduling delays
# and clock rate differences between this host and the database.
TRUSTED_SHARE = 0.8


class Fenced(Fatal, RuntimeError):
    """This process no longer holds the lease (a newer epoch exists): it must step down."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lease, since when, until when (database time)."""

    holder: str
    epoch: int
    acquired_at: datetime | None
    expires_at: datetime


class Lease:
    def __init__(
        self,
        store: Store,
        holder: str,
        *,
        clock: Clock,
        term_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        name: str = LEADER,
    ) -> None:
        self.store = store
        self.holder = holder
        self.name = name
        self.term = timedelta(seconds=term_s)
        self._clock = clock  # the database's clock stands in for it on PostgreSQL
        self._monotonic = monotonic
        self.epoch: int | None = None  # the epoch this process holds, None on a standby
        self.current: Holder | None = None  # as last read
        self._trusted_until = 0.0

    # -- taking and keeping -----------------------------------------------------------------
    def acquire(self, *, seize: bool = False) -> bool:
        """Renew the lease if held, take it if free or expired (or always, with `seize`);
        True when this process leads afterwards."""
        started = self._monotonic()
        try:
            with self.store.transaction(fenced=False) as tx:
                granted = self._grant(tx.conn, seize)
        except IntegrityError:  # another host created the row first
            granted = None
        except DBAPIError as exc:  # waited a term for the row: its holder may be frozen
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            self._end_frozen()
            granted = None
        self.epoch = granted
        if granted is not None:
            self._trusted_until = started + self.term.total_seconds() * TRUSTED_SHARE
        return granted is not None

    def _grant(self, conn: Connection, seize: bool) -> int | None:
        self._bound_pause(conn)
        now = self._now(conn)
        row = conn.execute(
            select(leases).where(leases.c.name == self.name).with_for_update()
        ).first()
        expires = now + self.term
        if row is None:
            conn.execute(insert(leases).values(name=self.name, holder=self.holder, epoch=1,
                                               acquired_at=now, expires_at=expires))
            self.current = Holder(self.holder, 1, now, expires)
            return 1
        mine = row.holder == self.holder and row.epoch == self.epoch
        if mine:
            values: dict[str, object] = {"expires_at": expires}
            self.current = Holder(self.holder, row.epoch, row.acquired_at, expires)
        elif seize or row.expires_at <= now:
            values = {"holder": self.holder, "epoch": row.epoch + 1, "acquired_at": now,
                      "expires_at": expires}
            self.current = Holder(self.holder, row.epoch + 1, now, expires)
        else:
            self.current = Holder(row.holder, row.epoch, row.acquired_at, row.expires_at)
            return None
        conn.execute(update(leases).where(leases.c.name == self.name).values(**values))
        return self.current.epoch

    def release(self) -> None:
        """A clean stop: end the term now, so that a standby takes over at its next try."""
        epoch, self.epoch = self.epoch, None
        if epoch is None:
            return
        with self.store.transaction(fenced=False) as tx:
            tx.conn.execute(
                update(leases)
                .where(
                    leases.c.name == self.name,
                    leases.c.epoch == epoch,
                    leases.c.holder == self.holder,
                )
                .values(expires_at=self._now(tx.conn))
            )

    def step_down(self) -> None:
        """Stop acting at once (a fenced write said another process leads)."""
        self.epoch = None

    # -- asking ------------------------------------------------------------------------------
    def leading(self) -> bool:
        return self.epoch is not None

    def valid(self) -> bool:
        """True while this process may still call a vendor: it holds an epoch and its term,
        counted from the last renewal's start on this host's monotonic clock, has not run
        out. A process that slept (SIGSTOP) past its term gets False."""
        return self.epoch is not None and self._monotonic() < self._trusted_until

    def check(self, conn: Connection) -> None:
        """The fence (Store.fence): raise `Fenced` unless the lease row, read with a shared row
        lock held until this transaction ends, still carries this process's epoch."""
        epoch = self.epoch
        if epoch is None:
            raise Fenced(f"{self.holder} does not hold the {self.name} lease (standby)")
        self._bound_pause(conn)
        row = conn.execute(
            select(leases.c.holder, leases.c.epoch)
            .where(leases.c.name == self.name)
            .with_for_update(read=True)
        ).first()
        if row is None or (row.holder, row.epoch) != (self.holder, epoch):
            self.epoch = None
            held = f"{row.holder} at epoch {row.epoch}" if row else "nobody"
            raise Fenced(f"{self.holder} lost the {self.name} lease (epoch {epoch}): "
                         f"now held by {held}")

    def _bound_pause(self, conn: Connection) -> None:
        """A process paused inside a transaction keeps its row locks, and a takeover waits for
        them. PostgreSQL ends a transaction left idle for a term; a lock wait gives up after a
        term (then `_end_frozen` ends a holder frozen halfway through a statement)."""
        if conn.dialect.name == "postgresql":
            ms = str(max(1, int(self.term.total_seconds() * 1000)))
            conn.execute(select(func.set_config("idle_in_transaction_session_timeout", ms, True),
                                func.set_config("lock_timeout", ms, True)))

    def _end_frozen(self) -> None:
        """End the sessions that hold the lease row's lock while waiting on their client for
        longer than a term, inside a transaction: a process frozen (SIGSTOP, a frozen VM)
        halfway through a statement, which no server timeout ends. Rolled back, they release
        the row; the process, if it ever wakes, finds its connection gone."""
        with self.store.engine.connect() as conn, conn.begin():
            if conn.dialect.name != "postgresql":
                return
            ended = conn.execute(text(
                "SELECT pid FROM pg_stat_activity a, pg_terminate_backend(a.pid) "
                "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() "
                "AND a.xact_start IS NOT NULL AND a.wait_event = 'ClientRead' "
                "AND clock_timestamp() - a.state_change > make_interval(secs => :term) "
                "AND EXISTS (SELECT 1 FROM pg_locks l "
                "            WHERE l.pid = a.pid AND l.relation = 'leases'::regclass)"
            ), {"term": self.term.total_seconds()}).scalars().all()
        if ended:
            log.warning("lease_frozen_sessions_ended", pids=list(ended))

    def _now(self, conn: Connection) -> datetime:
        if conn.dialect.name == "postgresql":
            return conn.scalar(select(func.clock_timestamp()))  # type: ignore[no-any-return]
        return self._clock.now()
