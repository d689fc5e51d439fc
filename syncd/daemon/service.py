"""`syncd run`: APScheduler jobs around the cycle's steps, signals, systemd notifications.

Jobs (APScheduler 3, BackgroundScheduler):
- `poll:<source>` every `poll_interval_s`, in a pool with a thread per source, so a long
  backfill or a vendor's exhausted API budget never delays another source or due escalations;
- `work`: settle unknown outcomes, fire due timers, execute due intents; in the default
  one-thread pool. After each run it is rescheduled to the next instant anything becomes due
  (the earliest pending timer or intent attempt), at the latest one poll interval away; a poll
  that planned something wakes it at once.

Every job has `max_instances=1` (two executors would race for the same intents; the ledger's
guarded transitions make that safe, but it wastes vendor calls), `coalesce=True` (runs missed
during a pause collapse into one) and `misfire_grace_time=None`: APScheduler's default (1 s)
*drops* a run that starts late, which after a suspend, a stopped process or a slow job would
silently skip a poll or a due escalation. Late is fine here; skipped is not.

Time. APScheduler waits in real time while rules and timers live on the injected Clock; the
wake-up delay is computed on the Clock and divided by its `factor` (AcceleratedClock), so an
accelerated demo wakes on time. A FrozenClock never moves by itself: with it, drive the daemon
with `cycle.run_cycle` (`run --once`, tests) rather than `serve`.

Signals: SIGTERM/SIGINT stop after the page or intent in flight (exit 0); SIGHUP reloads the
rules, and a rule set with errors is refused (logged with file:line; the old rules keep
running).
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd.connectors.http import VendorError
from syncd.daemon.executor import Executor
from syncd.daemon.metrics import Metrics, MetricsServer
from syncd.daemon.notify import Notifier
from syncd.daemon.poller import poll_source
from syncd.daemon.runtime import RulesRefused, Runtime, compile_rules, log
from syncd.daemon.timers import fire_due

MIN_WAKE_S = 0.05  # real seconds: never spin on a due instant that keeps coming back
WORK = "work"


class Service:
    def __init__(self, rt: Runtime, notifier: Notifier | None = None,
                 metrics: Metrics | None = None) -> None:  # fmt: skip
        self.rt = rt
        self.notifier = notifier or Notifier()
        self.metrics = metrics or Metrics(sources=list(rt.connectors),
                                          vendors=list(rt.connectors), clock=rt.clock)  # fmt: skip
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._lock = threading.Lock()
        self._working = False  # `work` is running: a wake-up now would be dropped by
        self._again = False  # max_instances, so it is remembered and honoured when it ends
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(1),
                "poll": ThreadPoolExecutor(max(1, len(rt.connectors))),
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
        server = self._serve_metrics()
        poll_every = self.rt.settings.syncd.poll_interval_s
        now = datetime.now(UTC)
        for source in self.rt.connectors:
            self.scheduler.add_job(
                self._poll,
                IntervalTrigger(seconds=poll_every),
                args=[source],
                id=f"poll:{source}",
                executor="poll",
                next_run_time=now,
            )
        self.scheduler.add_job(self._work, "date", run_date=now, id=WORK)  # fmt: skip
        self.scheduler.start()
        self.notifier.ready(f"watching {', '.join(self.rt.connectors) or 'no source'}")
        log.info("daemon_started", sources=list(self.rt.connectors), dry_run=self.rt.dry_run)
        ping = self.notifier.watchdog_interval()
        try:
            while not self._stop.wait(min(ping or 1.0, 1.0)):
                self.notifier.watchdog()
                if self._reload.is_set():
                    self._reload.clear()
                    self._apply_reload()
        finally:
            self.notifier.stopping("finishing the work in flight")
            log.info("daemon_stopping")
            self.scheduler.shutdown(wait=True)
            if server is not None:
                server.stop()
            log.info("daemon_stopped")

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
        try:
            return self.metrics.serve(settings.host, settings.port)
        except OSError as exc:  # a taken port must not keep the daemon from working
            log.warning("metrics_unavailable", host=settings.host, port=settings.port,
                        error=str(exc))  # fmt: skip
            return None

    # -- jobs --------------------------------------------------------------------------------
    def _poll(self, source: str) -> None:
        if self.stopping():
            return
        connector = self.rt.connectors[source]
        with self.rt.store.read() as tx:
            before = tx.ledger.next_attempt_at()
        try:
            poll_source(self.rt, source, connector, self.stopping)
            self.metrics.polled(source)
        except VendorError as exc:
            log.warning("poll_failed", source=source, error=str(exc))
            self.metrics.polled(source, failed=True)
            return
        with self.rt.store.read() as tx:
            after = tx.ledger.next_attempt_at()
        if after is not None and after != before:
            with self._lock:
                if self._working:
                    self._again = True
                    return
            self._wake(after)

    def _work(self) -> None:
        """Settle, fire, execute; then sleep until the next due instant. Always reschedules
        itself: an unexpected error is logged and retried a poll interval later."""
        if self.stopping():
            return
        with self._lock:
            self._working, self._again = True, False
        self.rt.failures.clear()  # only `run --once` reports them; do not let them pile up
        due: list[datetime] = []
        failed = True
        try:
            with self.metrics.time_cycle():
                executor = Executor(self.rt, self.stopping)
                executor.recover()
                fire_due(self.rt, stopping=self.stopping)
                drained = executor.drain()
            with self.rt.store.read() as tx:
                self.metrics.set_intents(tx.ledger.count_by_state())
                due = [at for at in (tx.timers.next_due(), tx.ledger.next_attempt_at()) if at]
            failed = drained.failed > 0
            if drained.done or drained.failed or drained.held:
                log.info(
                    "work_done",
                    done=drained.done,
                    failed=drained.failed,
                    skipped=drained.skipped,
                    deferred=drained.deferred,
                    held=drained.held,
                )
            self.notifier.status(f"done {drained.done}, failed {drained.failed}, "
                                 f"held {drained.held}")  # fmt: skip
        except Exception:
            log.exception("work_failed")
        finally:
            with self._lock:
                self._working, again = False, self._again
        self._wake(self.rt.clock.now() if again else min(due, default=None), failed)

    def _wake(self, at: datetime | None, after_failures: bool = False) -> None:
        """Schedule `work` for clock instant `at` (None: nothing due), within a poll interval."""
        if self.stopping():
            return
        cap = self.rt.settings.syncd.poll_interval_s
        delay = cap if at is None else (at - self.rt.clock.now()).total_seconds()
        factor = float(getattr(self.rt.clock, "factor", 1.0))
        seconds = min(cap, max(MIN_WAKE_S, delay / factor))
        if after_failures:
            seconds = max(seconds, 1.0)
        run_at = datetime.now(UTC) + timedelta(seconds=seconds)
        job: Any = self.scheduler.get_job(WORK)
        if job is None:
            self.scheduler.add_job(self._work, "date", run_date=run_at, id=WORK)
        elif job.next_run_time is None or run_at < job.next_run_time:
            job.modify(next_run_time=run_at)

    def _apply_reload(self) -> None:
        self.notifier.reloading()
        rules_dir = self.rt.settings.syncd.rules_dir
        try:
            engine = compile_rules(rules_dir)
        except RulesRefused as refused:
            for diagnostic in refused.diagnostics:
                log.error("reload_refused", diagnostic=str(diagnostic))
            self.metrics.reloaded(ok=False)
            self.notifier.ready("reload refused; previous rules still running")
            return
        removed = set(self.rt.engine.rules) - set(engine.rules)
        self.rt.engine = engine
        now = self.rt.clock.now()
        with self.rt.store.transaction() as tx:
            cancelled = sum(tx.timers.cancel_rule(rule_id, now) for rule_id in sorted(removed))
        log.info("rules_reloaded", rules=len(engine.rules), removed=sorted(removed),
                 timers_cancelled=cancelled)  # fmt: skip
        self.metrics.reloaded(ok=True)
        self.notifier.ready(f"rules reloaded: {len(engine.rules)}")
