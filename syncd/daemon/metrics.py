"""Prometheus metrics for `/metrics`, in a registry of their own (not prometheus_client's global
one), so a reload or a test builds a fresh set without "duplicated timeseries" errors.

    metrics = Metrics(sources=["zendesk", "salesforce", "graph"],  # systems (connectors)
                      vendors=["zendesk", "salesforce", "graph"])
    server = metrics.serve(settings.metrics.host, settings.metrics.port)   # if enabled
    with metrics.time_cycle():
        metrics.polled("zendesk")                       # or polled("zendesk", failed=True)
        metrics.saw_change("zendesk", newest_updated_at)
        metrics.api_call("zendesk", status=429); metrics.retried("zendesk")
        metrics.api_counts("zendesk", calls=12, rate_limited=1, retries=1)  # counted elsewhere
        metrics.budget_remaining("zendesk", 312)
        with store.read() as tx:
            metrics.set_intents(tx.ledger.count_by_state())
        metrics.set_timers_due(len(due_timers))
    metrics.reloaded(ok=False)
    metrics.webhook(); metrics.webhook(refused="signature")     # Zendesk's pushes (push.py)
    metrics.watch(kill_switch=lambda: ..., fallback=lambda: ...)  # read when scraped
    server.stop()

Lag is computed when scraped (now minus the newest change seen), so a stalled poller shows as
growing lag instead of a frozen value; alert on the age of the last successful poll instead
(`time() - syncd_last_successful_poll_timestamp_seconds`): lag also grows on a quiet night.
Sources and vendors named up front are exported at zero before their first event, so `rate()`
and absence alerts work from the start. The process collector (CPU, memory, open files, start
time) and `syncd_build_info` come along; `_created` series are off (they only double the
series count). The endpoint serves `/metrics` and nothing else there, plus `/-/healthy` (200
while no job hangs) and `/-/ready` (200 once the daemon has started its jobs), as Prometheus
and Alertmanager do; other paths are 404. monitoring/ has alerts and a dashboard on these.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

from syncd import __version__
from syncd.clock import Clock, SystemClock
from syncd.settings import METRICS_PORT

CYCLE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
WEBHOOK_REFUSALS = ("signature", "stale", "replay", "unknown")  # zendesk_webhook.Refused
PER_RULE_STATES = ("held", "failed", "dead")  # held: due, not carried out (kill switch, limit)
Probe = Callable[[], bool]


@dataclass
class MetricsServer:
    """The running exposition endpoint; `port` is the bound one (useful with port 0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Metrics:
    def __init__(
        self,
        sources: Iterable[str] = (),
        vendors: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        disable_created_metrics()  # process-wide: _created doubles every counter's series
        self.registry = CollectorRegistry()
        self._clock = clock or SystemClock()
        self._newest: dict[str, datetime] = {}
        self._lock = threading.Lock()
        r = self.registry
        ProcessCollector(registry=r)
        build = Gauge("syncd_build_info", "Always 1; the running version.",
                      ["version", "python_version"], registry=r)
        build.labels(__version__, platform.python_version()).set(1)
        self._polls = Counter("syncd_polls", "Polls per source.", ["source"], registry=r)
        self._last_poll = Gauge(
            "syncd_last_successful_poll_timestamp_seconds",
            "When the source last answered a poll (Unix time; alert on its age).",
            ["source"],
            registry=r,
        )
        self._kill_switch = Gauge(
            "syncd_kill_switch_engaged", "1 while the kill switch file holds every action.",
            registry=r,
        )
        self._fallback = Gauge(
            "syncd_rules_fallback",
            "1 while the rules directory is refused and the last accepted rule set runs.",
            registry=r,
        )
        self._by_rule = Gauge(
            "syncd_rule_intents",
            "Intents per rule that need a look: held (due, not carried out), failed, dead.",
            ["rule", "state"],
            registry=r,
        )
        self._poll_errors = Counter(
            "syncd_poll_errors", "Polls that failed, per source.", ["source"], registry=r
        )
        self._lag = Gauge(
            "syncd_source_lag_seconds",
            "Now minus the newest change seen from the source.",
            ["source"],
            registry=r,
        )
        self._intents = Gauge(
            "syncd_intents", "Intents in the ledger by state.", ["state"], registry=r
        )
        self._quarantined = Gauge(
            "syncd_records_quarantined",
            "Records held back because evaluating them failed (retried after a backoff).",
            registry=r,
        )
        self._held = Gauge(
            "syncd_intents_held",
            "Intents held past a blast-radius limit, per rule (`syncd intents --held`).",
            ["rule"],
            registry=r,
        )
        self._held_rules: set[str] = set()
        self._timers_due = Gauge(
            "syncd_timers_due", "Pending timers whose instant has come.", registry=r
        )
        self._api_calls = Counter("syncd_api_calls", "Vendor API calls.", ["vendor"], registry=r)
        self._rate_limited = Counter(
            "syncd_api_rate_limited",
            "Vendor answers 429 Too Many Requests.",
            ["vendor"],
            registry=r,
        )
        self._retries = Counter(
            "syncd_api_retries", "Vendor API calls retried.", ["vendor"], registry=r
        )
        self._budget = Gauge(
            "syncd_api_budget_remaining",
            "API calls left in the vendor's current budget window.",
            ["vendor"],
            registry=r,
        )
        self._budget_capacity = Gauge(
            "syncd_api_budget_capacity",
            "Most API calls the vendor's budget holds (remaining / capacity: how spent it is).",
            ["vendor"],
            registry=r,
        )
        self._reloads = Counter(
            "syncd_reloads", "Rule reloads by result (ok | refused).", ["result"], registry=r
        )
        self._cycle = Histogram(
            "syncd_cycle_duration_seconds",
            "Wall time of one cycle (poll, timers, executor).",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self._leader = Gauge(
            "syncd_leader", "1 while this daemon holds the leader lease and acts, 0 on a standby.",
            registry=r,
        )
        self._store_up = Gauge(
            "syncd_store_up", "1 while the state database answers, 0 while reconnecting.",
            registry=r,
        )
        self._store_up.set(1)
        self._webhooks = Counter(
            "syncd_webhooks_accepted", "Zendesk webhook requests accepted (verified, new).",
            registry=r,
        )
        self._webhooks_refused = Counter(
            "syncd_webhooks_refused",
            "Zendesk webhook requests refused, by reason: signature (unsigned or another "
            "secret), stale (timestamp outside max_age_s), replay, unknown (path, body).",
            ["reason"],
            registry=r,
        )
        self._last_webhook = Gauge(
            "syncd_webhook_last_accepted_timestamp_seconds",
            "When a Zendesk webhook request was last accepted (Unix time).",
            registry=r,
        )
        self._store_lost = Counter(
            "syncd_store_connection_lost", "Times the state database connection was lost.",
            registry=r,
        )
        for source in sources:
            self._polls.labels(source)
            self._poll_errors.labels(source)
        for vendor in vendors:
            for counter in (self._api_calls, self._rate_limited, self._retries):
                counter.labels(vendor)
        for result in ("ok", "refused"):
            self._reloads.labels(result)
        for reason in WEBHOOK_REFUSALS:
            self._webhooks_refused.labels(reason)
        self._known_rule_states: set[tuple[str, str]] = set()

    def polled(self, source: str, *, failed: bool = False) -> None:
        """Count one poll of `source`, and a poll error if it failed."""
        self._polls.labels(source).inc()
        if failed:
            self._poll_errors.labels(source).inc()
        else:
            self._last_poll.labels(source).set(self._clock.now().timestamp())

    def watch(self, *, kill_switch: Probe, fallback: Probe) -> None:
        """Gauges read when scraped: the kill switch file, the fallback rule set."""
        self._kill_switch.set_function(lambda: float(kill_switch()))
        self._fallback.set_function(lambda: float(fallback()))

    def set_rule_intents(self, counts: Mapping[tuple[str, str], int]) -> None:
        """(rule, state) -> count, for PER_RULE_STATES; a rule no longer listed drops to 0."""
        for labels in list(self._known_rule_states):
            if labels not in counts:
                self._by_rule.labels(*labels).set(0)
        for (rule, state), count in counts.items():
            self._by_rule.labels(rule, state).set(count)
        self._known_rule_states |= set(counts)

    def saw_change(self, source: str, at: datetime) -> None:
        """Note a change from `source` made at `at` (the vendor's updated/modified instant);
        lag is measured from the newest one seen."""
        with self._lock:
            first = source not in self._newest
            if first or at > self._newest[source]:
                self._newest[source] = at
        if first:
            self._lag.labels(source).set_function(lambda: self._lag_seconds(source))

    def set_intents(self, counts: Mapping[str, int]) -> None:
        """Intents by state, e.g. `ledger.count_by_state()` (which includes the zeros)."""
        for state, count in counts.items():
            self._intents.labels(str(state)).set(count)

    def set_held(self, by_rule: Mapping[str, int]) -> None:
        """Held intents per rule; a rule released or dropped since goes back to zero."""
        for rule in self._held_rules - set(by_rule):
            self._held.labels(rule).set(0)
        for rule, count in by_rule.items():
            self._held.labels(rule).set(count)
        self._held_rules |= set(by_rule)

    def set_quarantined(self, count: int) -> None:
        self._quarantined.set(count)

    def set_timers_due(self, count: int) -> None:
        self._timers_due.set(count)

    def api_call(self, vendor: str, *, status: int | None = None) -> None:
        """Count one call to `vendor`'s API; `status` 429 also counts as rate-limited."""
        self._api_calls.labels(vendor).inc()
        if status == 429:
            self._rate_limited.labels(vendor).inc()

    def api_counts(self, vendor: str, *, calls: int = 0, rate_limited: int = 0,
                   retries: int = 0) -> None:
        """Add counts a connector kept itself (its governor's stats since the last reading)."""
        self._api_calls.labels(vendor).inc(max(0, calls))
        self._rate_limited.labels(vendor).inc(max(0, rate_limited))
        self._retries.labels(vendor).inc(max(0, retries))

    def retried(self, vendor: str) -> None:
        """Count one retry of a call to `vendor` (after a 429, 5xx or timeout)."""
        self._retries.labels(vendor).inc()

    def budget_remaining(self, vendor: str, calls: float, capacity: float | None = None) -> None:
        self._budget.labels(vendor).set(calls)
        if capacity is not None:
            self._budget_capacity.labels(vendor).set(capacity)

    def reloaded(self, *, ok: bool) -> None:
        """Count a rules reload: accepted, or refused (old rules kept running)."""
        self._reloads.labels("ok" if ok else "refused").inc()

    def webhook(self, refused: str | None = None) -> None:
        """Count a webhook request: accepted (None), or refused for the reason given."""
        if refused is None:
            self._webhooks.inc()
            self._last_webhook.set(self._clock.now().timestamp())
        else:
            self._webhooks_refused.labels(refused).inc()

    def leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)

    def store_reachable(self, up: bool) -> None:
        """The state database answered (True) or a connection to it was lost (False)."""
        if not up:
            self._store_lost.inc()
        self._store_up.set(1 if up else 0)

    def time_cycle(self) -> AbstractContextManager[object]:
        """`with metrics.time_cycle(): ...` observes the block's wall time, even if it raises."""
        return self._cycle.time()

    def render(self) -> bytes:
        """The text exposition format, as `/metrics` serves it."""
        return generate_latest(self.registry)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = METRICS_PORT,
        healthy: Probe = lambda: True,
        ready: Probe = lambda: True,
    ) -> MetricsServer:
        """Serve `/metrics`, `/-/healthy` and `/-/ready` from a daemon thread until `stop()`;
        port 0 picks a free port. Raises OSError when the address is taken or not local."""
        app = _endpoints(make_wsgi_app(self.registry), healthy, ready)
        server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        return MetricsServer(server, thread)

    def _lag_seconds(self, source: str) -> float:
        with self._lock:
            newest = self._newest[source]
        return max(0.0, (self._clock.now() - newest).total_seconds())


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not news."""


def _endpoints(metrics_app: Any, healthy: Probe, ready: Probe) -> Any:
    """`/metrics` to prometheus-client's app; the probes as 200 or 503 with a line of text."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes] | list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        probes = {"/-/healthy": (healthy, "healthy", "a job hangs"),
                  "/-/ready": (ready, "ready", "starting")}
        if path not in probes:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /metrics, /-/healthy, /-/ready\n"]
        probe, yes, no = probes[path]
        ok = probe()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "text/plain")])
        return [f"syncd is {yes}\n".encode() if ok else f"syncd is not {yes}: {no}\n".encode()]

    return app
