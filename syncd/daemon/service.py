"""`syncd run`: APScheduler jobs around the cycle's steps, signals, systemd notifications.

Jobs (APScheduler 3, BackgroundScheduler):
- `poll:<source>` every `poll_interval_s`, in a pool with a thread per source, so a long
  backfill or a vendor's exhausted API budget never delays another source or due escalations;
  a run reads only the kinds the current rules read (sources.py), and nothing at all when they
  read none of the source's (no call, no poll in the metrics, no sign of life for the
  watchdog: a daemon whose real jobs are stuck must not look alive through idle ones);
- `work`: settle unknown outcomes, fire due timers, execute due intents; in the default
  one-thread pool. After each run it is rescheduled to the next instant anything becomes due
  (the earliest pending timer or intent attempt), at the latest one poll interval away; a poll
  that planned something wakes it at once.

Every job has `max_instances=1` (two executors would race for the same intents; the ledger's
guarded transitions make that safe, but it wastes vendor calls), `coalesce=True` (runs missed
during a pause collapse into one) and `misfire_grace_time=None`: APScheduler's default (1 s)
*drops* a run that starts late, which after a suspend, a stopped process or a slow job would
silently skip a poll or a due escalation. Late is fine here; skipped is not.

Time. APScheduler waits in real time while rules and timers live on the injected Clock, so
every interval it is given is clock time divided by the clock's `factor` (AcceleratedClock):
the poll jobs run every `poll_interval_s` of clock time and `work` wakes at the due instant,
so an accelerated run polls and wakes as a real-time one would, only faster. A FrozenClock
never moves by itself: with it, drive the daemon with `cycle.run_cycle` (`run --once`, tests)
rather than `serve`.

systemd (sd_notify). READY=1 once settings, rules and store are loaded (before `serve`) and
every configured vendor has answered once (its directory: credentials and network work);
WATCHDOG=1 from the main loop only while the jobs make progress (liveness.py; when the
watchdog is on, `work` runs at least every quarter of WatchdogSec, so an idle daemon makes
progress too); a STATUS= line after each `work` run (status.py); RELOADING=1 ... READY=1 around
reloads; STOPPING=1 on shutdown.

Leadership (leadership.py): the jobs act only while this process holds the leader lease; a
standby's jobs return at once (its lease loop is its sign of life for the watchdog) and `work`
is woken when it is elected. A job whose transaction is fenced (another process leads now) or
loses the database is rolled back and counted against nothing; the lease loop says so and
reconnects. A clean stop releases the lease after the work in flight.

Signals and reloads: SIGTERM/SIGINT stop after the page or intent in flight (exit 0). SIGHUP,
or a change in the rules directory (watch.py), reloads the rules (reload.py); a rule set with
errors is refused (logged with file:line, counted, shown in STATUS; the old rules keep running).

Metrics (metrics.py, served on `[metrics] host:port` when enabled): polls, poll errors and lag
per source after each poll; API calls, 429s, retries and budget per vendor after each job
(meters.py); intents by state (and those held by a limit, per rule), timers due and the
cycle's duration after each `work` run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd.connectors.http import VendorError
from syncd.daemon.coverage import unpolled_rules
from syncd.daemon.executor import Executor
from syncd.daemon.leadership import Leadership
from syncd.daemon.liveness import Liveness
from syncd.daemon.meters import VendorMeter, store_gauges
from syncd.daemon.metrics import Metrics, MetricsServer
from syncd.daemon.notify import Notifier
from syncd.daemon.poller import note_unread, poll_source
from syncd.daemon.push import PushSource
from syncd.daemon.reload import reload_rules
from syncd.daemon.runtime import RulesRefused, Runtime, log
from syncd.daemon.sources import wanted
from syncd.daemon.status import Status
from syncd.daemon.timers import fire_due
from syncd.daemon.watch import RulesWatcher
from syncd.settings import metrics_exposed
from syncd.store.db import connection_lost
from syncd.store.lease import Fenced
from syncd.store.retention import prune

MIN_WAKE_S = 0.05  # real seconds: never spin on a due instant that keeps coming back
TICK_S = 1.0  # the main loop's turn: reloads, rules directory, watchdog
VENDOR_RETRY_S = 10.0  # before READY: how long to wait before asking a silent vendor again
# A job silent this long hangs (longer than one vendor call may take under the retry policy:
# two minutes of back-off plus the requests' own timeouts).
HUNG_AFTER_S = 600.0
WORK = "work"
PRUNE = "prune"
LEASE = "lease"


class Service:
    def __init__(self, rt: Runtime, notifier: Notifier | None = None,
                 metrics: Metrics | None = None, holder: str | None = None) -> None:  # fmt: skip
        self.rt = rt
        self.notifier = notifier or Notifier()
        self.metrics = metrics or Metrics(sources=list(rt.connectors),
                                          vendors=list(rt.connectors), clock=rt.clock)  # fmt: skip
        self.metrics_server: MetricsServer | None = None
        self.ping_every = self.notifier.watchdog_interval()  # None: no watchdog
        self.liveness = Liveness(max(HUNG_AFTER_S, 4 * (self.ping_every or 0)))
        self.watcher = RulesWatcher(rt.settings.syncd.rules_dir)
        self.meter = VendorMeter(self.metrics)
        self.metrics.watch(kill_switch=lambda: rt.kill_switch,
                           fallback=lambda: rt.rules_refused is not None)  # fmt: skip
        self._started = threading.Event()  # jobs running: /-/ready
        self.status = Status(rt.settings.syncd.tz)
        self.leadership = Leadership(
            rt, self.metrics, self.status, self.notifier,
            on_lead=self._led, beat=lambda: self.liveness.finished(LEASE), holder=holder,
        )  # fmt: skip
        rt.may_send = self.leadership.may_send
        if rt.rules_refused:
            self.status.rules_refused_at_start(rt.rules_refused)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._lock = threading.Lock()
        self._working = False  # `work` is running: a wake-up now would be dropped by
        self._again = False  # max_instances, so it is remembered and honoured when it ends
        self._hung: list[str] = []
        self.push: PushSource | None = None  # [webhooks] enabled: Zendesk's pushes (push.py)
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(1),
                "poll": ThreadPoolExecutor(max(1, len(rt.connectors))),
                PRUNE: ThreadPoolExecutor(1),  # retention: never in the way of work or polls
            },
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )

    # -- control -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the page or intent in flight, then return from `serve`."""
        self._stop.set()

    def reload(self) -> None:
        """Reload the rules at the next turn of the main loop (SIGHUP)."""
        self._reload.set()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def serve(self) -> None:
        """Run until `stop()` (SIGTERM, SIGINT)."""
        self._install_signals()
        self.metrics_server = self._serve_metrics()
        try:
            if self._await_vendors():
                self._start_jobs()
                if self.rt.settings.webhooks.enabled:
                    self.push = PushSource(self.rt, self.leadership.leading,
                                           lambda: self._planned(self.rt.clock.now())).start()
                self._started.set()
                self.leadership.start()
                self.notifier.ready(f"watching {', '.join(self.rt.connectors) or 'no source'}")
                log.info("daemon_started", sources=list(self.rt.connectors),
                         dry_run=self.rt.dry_run)  # fmt: skip
                self._warn_unpolled()
                self._main_loop()
        finally:
            self.notifier.stopping("finishing the work in flight")
            log.info("daemon_stopping")
            if self.push is not None:
                self.push.stop()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=True)
            self.leadership.stop()  # after the work in flight: a standby takes over at once
            if self.metrics_server is not None:
                self.metrics_server.stop()
            log.info("daemon_stopped")

    def _warn_unpolled(self) -> None:
        for rule in unpolled_rules(self.rt.engine.ruleset, self.rt.settings):
            log.warning("rule_unpolled", rule=rule.rule, where=rule.where, why=rule.why,
                        fix=rule.fix)  # fmt: skip

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded (tests): the caller uses stop() and reload()
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.reload())

    def _serve_metrics(self) -> MetricsServer | None:
        settings = self.rt.settings.metrics
        if not settings.enabled:
            return None
        exposed = metrics_exposed(self.rt.settings)
        if exposed is not None:
            log.warning("metrics_exposed", reason=exposed)
        try:
            return self.metrics.serve(settings.host, settings.port,
                                      healthy=lambda: not self.liveness.hung(),
                                      ready=self._started.is_set)  # fmt: skip
        except OSError as exc:  # a taken port must not keep the daemon from working
            log.warning("metrics_unavailable", host=settings.host, port=settings.port,
                        error=str(exc))  # fmt: skip
            return None

    def _await_vendors(self) -> bool:
        """Ask every vendor once (its directory, cached for the executor) until each answered;
        False if stopped first. Until then STATUS says which vendor syncd is waiting for."""
        waiting = dict(self.rt.connectors)
        while waiting and not self.stopping():
            for name, connector in list(waiting.items()):
                try:
                    connector.directory()
                except VendorError as exc:
                    log.warning("vendor_unanswered", vendor=name, error=str(exc),
                                request_id=exc.request_id)  # fmt: skip
                    self.notifier.status(f"starting: waiting for {name} to answer: {exc}")
                else:
                    del waiting[name]
            if waiting:
                self._stop.wait(VENDOR_RETRY_S)
        return not self.stopping()

    def _real_s(self, clock_s: float) -> float:
        """Real seconds for `clock_s` of the clock's time (APScheduler waits in real time)."""
        return clock_s / float(getattr(self.rt.clock, "factor", 1.0))

    def _start_jobs(self) -> None:
        now = datetime.now(UTC)
        for source in self.rt.connectors:
            self.scheduler.add_job(
                self._poll,
                IntervalTrigger(seconds=self._real_s(self.rt.settings.syncd.poll_interval_s)),
                args=[source],
                id=f"poll:{source}",
                executor="poll",
                next_run_time=now,
            )
        self.scheduler.add_job(self._work, "date", run_date=now, id=WORK)
        if self.rt.settings.store.keep_days:
            every = self._real_s(self.rt.settings.store.prune_every_s)
            self.scheduler.add_job(self._prune, IntervalTrigger(seconds=every), id=PRUNE,
                                   executor=PRUNE, next_run_time=now)  # fmt: skip
        self.scheduler.start()

    def _main_loop(self) -> None:
        """Reloads (SIGHUP, a changed rules directory) and watchdog pings, until stopped."""
        tick = min(TICK_S, self.ping_every / 2) if self.ping_every else TICK_S
        while not self._stop.wait(tick):
            watched = self.rt.settings.syncd.watch_rules and self.watcher.changed()
            if self._reload.is_set() or watched:
                self._reload.clear()
                self._apply_reload()
            self._watch_jobs()

    def _watch_jobs(self) -> None:
        """WATCHDOG=1 when the jobs made progress; a hung job is logged once and withholds it."""
        hung = self.liveness.hung()
        if hung and hung != self._hung:
            log.error("jobs_hung", jobs=hung, silent_s=self.liveness.hung_after_s)
            self.notifier.status(f"HUNG: {', '.join(hung)} | {self.status.line()}")
        self._hung = hung
        if self.ping_every and self.liveness.may_ping():
            self.notifier.watchdog()

    def _turning(self, job: str) -> Callable[[], bool]:
        """The job's `stopping` callback, which it calls at each page, timer or intent: also
        its sign of life."""

        def turning() -> bool:
            self.liveness.beat(job)
            return self.stopping()

        return turning

    # -- jobs --------------------------------------------------------------------------------
    def _led(self) -> None:
        """Just elected: work at once (polls come at their interval)."""
        if self.scheduler.running:
            self._wake(self.rt.clock.now())

    def _store_trouble(self, exc: Exception) -> bool:
        """A job's transaction failed for want of the lease or of the database: rolled back,
        nothing to count against the source or the intents. True if handled."""
        if isinstance(exc, Fenced):
            self.leadership.fenced(exc)
        elif connection_lost(exc):
            self.leadership.store_lost(exc)
        else:
            return False
        return True

    @contextmanager
    def _store_troubles(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if not self._store_trouble(exc):
                raise

    def _poll(self, source: str) -> None:
        if self.stopping() or not self.leadership.leading():
            return
        connector = self.rt.connectors[source]
        if not wanted(self.rt.engine, connector):  # no call to make: no sign of life either
            with self._store_troubles():
                note_unread(self.rt, source, connector.kinds)
            return
        job = f"poll:{source}"
        self.liveness.started(job)
        try:
            with self._store_troubles():  # the store's reads, before and after the page
                self._poll_once(source, job)
        finally:
            self.liveness.finished(job)
            self.meter.read(self.rt.connectors)

    def _poll_once(self, source: str, job: str) -> None:
        connector = self.rt.connectors[source]
        with self.rt.store.read() as tx:
            before = tx.ledger.next_attempt_at()
        try:
            polled = poll_source(self.rt, source, connector, self._turning(job))
        except Exception as exc:  # one source failing must not stop the others
            if self._store_trouble(exc):
                return
            if isinstance(exc, VendorError):
                log.warning("poll_failed", source=source, error=str(exc),
                            request_id=exc.request_id)  # fmt: skip
            else:
                log.exception("poll_crashed", source=source)
            self.metrics.polled(source, failed=True)
            self.status.error(self.rt.clock.now(), f"poll {source}: {exc}")
            return
        if not polled.kinds:  # no rule reads this source: nothing was asked of it
            return
        self.metrics.polled(source)
        if polled.newest is not None:
            self.metrics.saw_change(source, polled.newest)
        with self.rt.store.read() as tx:
            after = tx.ledger.next_attempt_at()
        if after is not None and after != before:
            self._planned(after)

    def _planned(self, at: datetime) -> None:
        """A poll or a push planned something due at `at`: wake `work` (after its run if it
        is running now)."""
        with self._lock:
            if self._working:
                self._again = True
                return
        self._wake(at)

    def _prune(self) -> None:
        """Delete what retention lets go (store/retention.py), a small batch at a time."""
        cutoff = self.rt.clock.now() - timedelta(days=self.rt.settings.store.keep_days)
        try:
            pruned = prune(self.rt.store, cutoff, stopping=self.stopping)
        except Exception:  # retention failing must not stop the daemon's work
            log.exception("prune_failed")
            return
        if pruned.total:
            log.info("pruned", cutoff=cutoff.isoformat(), **pruned.rows)

    def _work(self) -> None:
        """Settle, fire, execute; then sleep until the next due instant. Reschedules itself
        while this process leads: an unexpected error is logged and retried a poll interval
        later."""
        if self.stopping() or not self.leadership.leading():
            return  # a standby: woken again when it is elected
        with self._lock:
            self._working, self._again = True, False
        self.liveness.started(WORK)
        self.rt.failures.clear()  # only `run --once` reports them; do not let them pile up
        due: list[datetime] = []
        failed = True
        try:
            due, failed = self._cycle()
        except Exception as exc:
            if not self._store_trouble(exc):
                log.exception("work_failed")
                self.status.error(self.rt.clock.now(), f"work failed: {exc!r}")
        finally:
            with self._lock:
                self._working, again = False, self._again
            self.liveness.finished(WORK)
            self.meter.read(self.rt.connectors)
        if self.leadership.leading():
            self._wake(self.rt.clock.now() if again else min(due, default=None), failed)

    def _cycle(self) -> tuple[list[datetime], bool]:
        """One `work` run; returns the next due instants and whether an intent failed."""
        turning = self._turning(WORK)
        with self.metrics.time_cycle():
            executor = Executor(self.rt, turning)
            executor.recover()
            fire_due(self.rt, stopping=turning)
            drained = executor.drain()
        now = self.rt.clock.now()
        with self.rt.store.read() as tx:
            counts = store_gauges(tx, self.metrics, now)
            due = [at for at in (tx.timers.next_due(), tx.ledger.next_attempt_at()) if at]
        if self.rt.failures:
            self.status.error(now, self.rt.failures[-1])
        self.status.cycle(now, counts)
        self.notifier.status(self.status.line())
        if drained.done or drained.failed or drained.held or drained.limited:
            log.info("work_done", done=drained.done, failed=drained.failed,
                     skipped=drained.skipped,
                     held=drained.held, limited=drained.limited)  # fmt: skip
        return due, drained.failed > 0

    def _wake(self, at: datetime | None, after_failures: bool = False) -> None:
        """Schedule `work` for clock instant `at` (None: nothing due), within a poll interval
        (and, with the watchdog on, within a quarter of WatchdogSec: progress to show). Real
        seconds throughout: the watchdog's are real already."""
        if self.stopping():
            return
        cap = self._real_s(self.rt.settings.syncd.poll_interval_s)
        if self.ping_every:
            cap = min(cap, self.ping_every / 2)
        delay = cap if at is None else self._real_s((at - self.rt.clock.now()).total_seconds())
        seconds = min(cap, max(MIN_WAKE_S, delay))
        if after_failures:
            seconds = max(seconds, min(cap, 1.0))
        run_at = datetime.now(UTC) + timedelta(seconds=seconds)
        job: Any = self.scheduler.get_job(WORK)
        if job is None:
            self.scheduler.add_job(self._work, "date", run_date=run_at, id=WORK)
        elif job.next_run_time is None or run_at < job.next_run_time:
            job.modify(next_run_time=run_at)

    def _apply_reload(self) -> None:
        self.notifier.reloading("reloading rules")
        self.watcher.loading()
        try:
            reloaded = reload_rules(self.rt)
        except RulesRefused as refused:
            for diagnostic in refused.diagnostics:
                log.error("reload_refused", diagnostic=str(diagnostic))
            self.metrics.reloaded(ok=False)
            first = str(refused.diagnostics[0]) if refused.diagnostics else str(refused)
            self.status.reload_refused(self.rt.clock.now(), first)
            self.notifier.ready(self.status.line())
            return
        log.info("rules_reloaded", rules=reloaded.rules, removed=reloaded.removed,
                 timers_cancelled=reloaded.timers_cancelled)  # fmt: skip
        self.metrics.reloaded(ok=True)
        self._warn_unpolled()
        self.status.reload_accepted()
        self.notifier.ready(f"rules reloaded ({reloaded.rules}) | {self.status.line()}")
