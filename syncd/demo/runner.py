"""Play the story against the sandbox with the real daemon, weeks of simulated time in seconds.

The daemon is the real one with the shipped rules: `run_cycle` (what `syncd run --once` does:
settle, poll every source, fire due timers, execute due intents) on one runtime, kept for the
whole run as the service keeps it.

The clock is accelerated. The daemon's clock (a FrozenClock) and the sandbox's are set to the
same simulated instant, and the runner jumps from one instant to the next at which something
can happen: each story step and checkpoint; each instant the daemon reports something due (its
earliest pending timer or intent attempt: where the service's `work` job would wake); and one
poll interval after any change to a polled record (people acted or syncd wrote: the next poll
has news). Nothing else writes to the sandbox, so the polls skipped in between would have found
nothing. Simulated time thus runs as fast as the work allows rather than at a fixed factor
(AcceleratedClock would spend real time waiting through idle nights and weekends): the story's
six weeks take about 70 cycles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from syncd.clock import FrozenClock
from syncd.daemon.cycle import run_cycle
from syncd.daemon.runtime import Runtime, open_runtime
from syncd.demo.company import Checkpoint, Company, Seen
from syncd.demo.story import CHECKPOINTS, END, STEPS
from syncd.demo.timeline import Event, Timeline, person_event
from syncd.sandbox.server import SandboxServer

# The next poll after a change: past the Zendesk export's one-minute lag, well within the 5
# minutes a due step may be late and still count as on time.
POLL = timedelta(minutes=5)


@dataclass
class Run:
    seen: Seen
    events: list[Event]
    started: datetime  # simulated
    ended: datetime  # the last simulated instant reached
    cycles: int
    seconds: float  # real time
    failures: list[str]  # what syncd's cycles reported (shown, not judged: the checks judge)


def run_story(
    server: SandboxServer,
    workdir: Path,
    *,
    until: datetime | None = None,
    on_event: Callable[[Event], None] = lambda event: None,
) -> Run:
    """Seed the sandbox, play the story to its end (or `until`) with syncd running, and return
    what people saw at each checkpoint, with the timeline (also given to `on_event` live)."""
    real_start = time.monotonic()
    co = Company(server, workdir)
    clock = FrozenClock(co.start)
    timeline = Timeline(co)
    end = min(END, until) if until else END
    events: list[Event] = []
    seen: dict[str, Checkpoint] = {}
    failures: list[str] = []
    cycles = 0

    def emit(found: list[Event]) -> None:
        events.extend(found)
        for event in found:
            on_event(event)

    rt = open_runtime(co.settings, clock)
    now = reached = co.start
    try:
        while now <= end:
            reached = now
            clock.set(now)
            co.set_clock(now)
            acting = [step for step in STEPS if step.at == now]
            for step in acting:
                step.act(co)
            emit([person_event(step) for step in acting])
            timeline.observe(now)  # the people's own writes, told above
            report = run_cycle(rt)
            cycles += 1
            failures += [f"{now.isoformat()} {f}" for f in report.failures]
            news = timeline.observe(now)
            emit(news)
            for name in (n for n, at in CHECKPOINTS.items() if at == now):
                seen[name] = co.look(list(report.failures))
            # Mail is not polled: only a change to a polled record is news for the next poll.
            changed = bool(acting) or any(e.system != "Mail" for e in news)
            following = _next(rt, now, changed)
            if following is None:
                break
            now = following
    finally:
        rt.close()
    return Run(co.seen(seen), events, co.start, reached, cycles, time.monotonic() - real_start,
               failures)  # fmt: skip


def _next(rt: Runtime, now: datetime, changed: bool) -> datetime | None:
    """The next instant at which something can happen (None: nothing ever will)."""
    with rt.store.read() as tx:
        due = [tx.timers.next_due(), tx.ledger.next_attempt_at()]
    story = [step.at for step in STEPS] + list(CHECKPOINTS.values())
    ahead = [at for at in (*due, *story) if at is not None and at > now]
    if changed:
        ahead.append(now + POLL)
    return min(ahead, default=None)
