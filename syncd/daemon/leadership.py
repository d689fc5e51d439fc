"""Whether this daemon acts or stands by, and whether its state database answers.

A thread of its own, on real time (never the daemon's possibly accelerated clock), keeps the
leader lease (store/lease.py): the leader renews it every `lease_renew_s`; a standby tries to
take it every second, so it takes over within a second of the term running out (or of a
release: a clean stop hands over at once). Only the leader polls, fires timers and executes;
a standby keeps its rules loaded and reloaded, serves `/metrics` (`syncd_leader` 0) and says
in STATUS= who leads.

The same loop is the reconnection: when the database does not answer, it retries with
exponential back-off (1 s doubling up to 8 s), STATUS= and `syncd_store_up` say so,
and the jobs' transactions, rolled back by the lost connection, are simply run again later.
A leader that cannot renew stops calling vendors when its term runs out (`may_send`); when the
database is back it goes on if nobody took over, else its next write fails on the epoch and it
steps down.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime

from syncd.clock import SystemClock
from syncd.daemon.metrics import Metrics
from syncd.daemon.notify import Notifier
from syncd.daemon.runtime import Runtime, log
from syncd.daemon.status import Status
from syncd.store.db import connection_lost
from syncd.store.lease import Fenced, Lease

STANDBY_TRY_S = 1.0
MAX_BACKOFF_S = 8.0  # under the default term: a leader back in time keeps its lease


def holder_name() -> str:
    """This process, as other hosts see it in STATUS=: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(self, rt: Runtime, metrics: Metrics, status: Status, notifier: Notifier,
                 on_lead: Callable[[], None], *, beat: Callable[[], None] = lambda: None,
                 holder: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        settings = rt.settings.syncd
        self.rt = rt
        self.metrics = metrics
        self.status = status
        self.notifier = notifier
        self.on_lead = on_lead
        self.beat = beat  # a sign of life for the watchdog (a standby runs no other job)
        self.renew_s = settings.lease_renew_s
        self.lease = Lease(rt.store, holder or holder_name(), clock=SystemClock(),
                           term_s=settings.lease_term_s, monotonic=monotonic)
        # On SQLite (one host) the lease is taken at once: the last process is gone or stale.
        self._seize = rt.store.engine.dialect.name == "sqlite"
        self._acting = False  # on_lead was called since the last step-down
        self._failures = 0  # lease turns failed in a row: the back-off
        self._down_since: datetime | None = None  # since when the database has not answered
        self._shown: tuple[object, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease", daemon=True)

    def start(self) -> None:
        """Fence the store with the lease, take a first turn (so a lone daemon leads before
        its jobs start), then keep it in the background."""
        self.rt.store.fence = self.lease
        self.turn()
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and release the lease, so that a standby takes over at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self.lease.leading():
            try:
                self.lease.release()
                log.info("lease_released", holder=self.lease.holder)
            except Exception as exc:  # the term will run out instead
                log.warning("lease_release_failed", error=str(exc))
        self.metrics.leader(False)

    def leading(self) -> bool:
        return self.lease.leading()

    def may_send(self) -> bool:
        """A vendor call may go out now: this process leads and its term has not run out."""
        return self.lease.valid()

    def _loop(self) -> None:
        delay = self.renew_s if self.leading() else STANDBY_TRY_S
        while not self._stop.wait(delay):
            delay = self.turn()
            if not self.leading():  # a leader's signs of life are its jobs' progress
                self.beat()

    def turn(self) -> float:
        """Renew or try the lease once; the real seconds until the next turn."""
        was = self.leading()
        try:
            leads = self.lease.acquire(seize=self._seize)
        except Exception as exc:
            if not connection_lost(exc):
                log.exception("lease_failed")
            self._failures += 1
            wait = min(MAX_BACKOFF_S, 2.0 ** (self._failures - 1))
            self.store_lost(exc, wait)
            return wait
        self._seize = False
        if self._down_since is not None:
            self._failures, self._down_since = 0, None
            log.info("store_reconnected")
            self.metrics.store_reachable(True)
            self.status.store_back()
            self._shown = ()  # say it again, without the trouble
        if leads and not was:
            log.info("leader_elected", holder=self.lease.holder, epoch=self.lease.epoch)
        elif was and not leads:
            log.warning("leader_lost", holder=self.lease.holder, leader=self._leader())
        self._show()
        # Woken whenever it leads after a step-down too: a job that found this process not
        # leading (fenced meanwhile, from another thread) did not reschedule itself.
        acting, self._acting = self._acting, leads
        if leads and not acting:
            self.on_lead()
        return self.renew_s if leads else STANDBY_TRY_S

    def fenced(self, exc: Fenced) -> None:
        """A write failed on the epoch: another process leads now. Stand by."""
        self.lease.step_down()
        self._acting = False
        log.warning("leader_fenced", holder=self.lease.holder, error=str(exc))
        self._show()

    def store_lost(self, exc: BaseException, retry_in_s: float = 1.0) -> None:
        """The database did not answer (the lease loop, or a job whose transaction it rolled
        back): say so; the lease loop retries, backing off, until it answers again."""
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if self._down_since is None:
            self._down_since = self.rt.clock.now()
            self.metrics.store_reachable(False)
        log.warning("store_unreachable", error=error, attempt=self._failures,
                    retry_in_s=retry_in_s)
        self.status.store_lost(self._down_since, error, retry_in_s)
        self.notifier.status(self.status.line())

    def _leader(self) -> str:
        current = self.lease.current
        return current.holder if current else "nobody"

    def _show(self) -> None:
        """Metric and STATUS= for the role, sent when it (or the leader seen) changes."""
        leads, current = self.leading(), self.lease.current
        self.metrics.leader(leads)
        shown = (leads, current.holder if current else None, current.epoch if current else None)
        if shown == self._shown:
            return
        self._shown = shown
        since = current.acquired_at if current else None
        if leads:
            self.status.leading(since, self.lease.epoch or 0)
        else:
            self.status.standby(self._leader(), since)
        self.notifier.status(self.status.line())
