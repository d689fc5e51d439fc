"""Rehearse rules over simulated time: the real daemon's cycles against a sandbox, weeks in
seconds (`syncd rehearse`, and `syncd demo` on its own story).

The daemon is the real one: `run_cycle` (what `syncd run --once` does: settle, poll every
source, fire due timers, execute due intents) on one runtime, kept for the whole run as the
service keeps it.

The clock is accelerated. The daemon's clock (a FrozenClock) and the sandbox's
(`POST /_sandbox/clock`) are set to the same simulated instant, and the rehearsal jumps from
one instant to the next at which something can happen: each scripted action and stop; each
instant the daemon reports something due (its earliest pending timer or intent attempt: where
the service's `work` job would wake); and one poll interval after any change to a polled
record (people acted or syncd wrote: the next poll has news). Nothing else writes to the
sandbox while it runs, so the polls skipped in between would have found nothing. Simulated
time thus runs as fast as the work allows rather than at a fixed factor (AcceleratedClock would
spend real time waiting through idle nights and weekends).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from syncd.clock import FrozenClock
from syncd.daemon.cycle import CycleReport, run_cycle
from syncd.daemon.runtime import Runtime, open_runtime
from syncd.rehearsal.client import SandboxClient
from syncd.rehearsal.timeline import Event, Timeline
from syncd.settings import Settings

# The next poll after a change: past the Zendesk export's one-minute lag, well within the 5
# minutes a due step may be late and still count as on time.
POLL = timedelta(minutes=5)
STOPPED = "someone, at the stop"  # who made the changes found after a pause


@dataclass(frozen=True)
class Scripted:
    """At `at`, `who` does `what` to `record` in `system`, through its API (`act`)."""

    at: datetime
    act: Callable[[], None]
    who: str = "script"
    what: str = ""
    record: str = ""
    system: str = ""
    process: str = ""

    def event(self) -> Event:
        return Event(self.at, self.process, self.system, self.what, self.record, by=self.who)


@dataclass
class Rehearsal:
    events: list[Event]
    started: datetime  # simulated
    ended: datetime  # the last simulated instant reached
    cycles: int
    seconds: float  # real time
    failures: list[str] = field(default_factory=list)  # what syncd's cycles reported

    def to_json(self) -> dict[str, object]:
        return {"from": self.started.isoformat(), "reached": self.ended.isoformat(),
                "cycles": self.cycles, "seconds": round(self.seconds, 2),
                "events": [e.to_json() for e in self.events],
                "failures": self.failures}


def rehearse(
    settings: Settings,
    client: SandboxClient,
    start: datetime,
    end: datetime,
    *,
    script: Sequence[Scripted] = (),
    stops: Sequence[datetime] = (),
    cast: dict[str, str] | None = None,
    on_event: Callable[[Event], None] = lambda event: None,
    at_stop: Callable[[datetime, CycleReport], None] = lambda at, report: None,
) -> Rehearsal:
    """Run the daemon with `settings` against the sandbox from `start` to `end` (simulated),
    playing `script`; after the cycle at each of `stops`, `at_stop` is called (a person looks
    or acts; the demo reads its checkpoints). Events go to `on_event` as they happen."""
    real_start = time.monotonic()
    client.ensure_sandbox()
    clock = FrozenClock(start)
    client.set_clock(start.isoformat())
    timeline = Timeline(client, settings.syncd.rules_dir, start, cast)
    events: list[Event] = []
    failures: list[str] = []
    cycles = 0
    instants = sorted({*(s.at for s in script), *stops})

    def emit(found: list[Event]) -> None:
        events.extend(found)
        for event in found:
            on_event(event)

    rt = open_runtime(settings, clock)
    now = reached = start
    try:
        while now <= end:
            reached = now
            clock.set(now)
            client.set_clock(now.isoformat())
            acting = [step for step in script if step.at == now]
            for step in acting:
                step.act()
            emit([step.event() for step in acting])
            timeline.observe(now)  # the people's own writes, told above
            report = run_cycle(rt)
            cycles += 1
            failures += [f"{now.isoformat()} {f}" for f in report.failures]
            news = timeline.observe(now)
            emit(news)
            if now in stops:
                at_stop(now, report)
                done = [replace(e, by=STOPPED) for e in timeline.observe(now)]
                emit(done)  # what a person did during the pause
                news += done
            # Mail is not polled: only a change to a polled record is news for the next poll.
            changed = bool(acting) or any(e.system != "Mail" for e in news)
            following = _next(rt, now, changed, instants)
            if following is None:
                break
            now = following
    finally:
        rt.close()
    return Rehearsal(events, start, reached, cycles, time.monotonic() - real_start, failures)


def _next(rt: Runtime, now: datetime, changed: bool,
          instants: Sequence[datetime]) -> datetime | None:
    """The next instant at which something can happen (None: nothing ever will)."""
    with rt.store.read() as tx:
        due = [tx.timers.next_due(), tx.ledger.next_attempt_at()]
    ahead = [at for at in (*due, *instants) if at is not None and at > now]
    if changed:
        ahead.append(now + POLL)
    return min(ahead, default=None)
