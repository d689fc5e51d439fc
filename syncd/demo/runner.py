"""Play the story against the sandbox with the real daemon, weeks of simulated time in seconds:
a rehearsal (syncd/rehearsal/runner.py, `syncd rehearse`) of the shipped rules over the example
company, with the story's steps as its script and its checkpoints as its stops, at which what
people see is read back for the checks. The story's six weeks take about 70 cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from syncd.daemon.cycle import CycleReport
from syncd.demo.company import Checkpoint, Company, Seen
from syncd.demo.story import CAST, CHECKPOINTS, END, STEPS
from syncd.rehearsal.client import SandboxClient
from syncd.rehearsal.runner import Scripted, rehearse
from syncd.rehearsal.timeline import Event
from syncd.sandbox.server import SandboxServer


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
    co = Company(server, workdir)
    seen: dict[str, Checkpoint] = {}

    def look(at: datetime, report: CycleReport) -> None:
        for name in (n for n, when in CHECKPOINTS.items() if when == at):
            seen[name] = co.look(list(report.failures))

    script = [Scripted(step.at, partial(step.act, co), step.who, step.what, step.record,
                       step.system, step.process) for step in STEPS]
    client = SandboxClient(server.info)
    try:
        run = rehearse(co.settings, client, co.start, min(END, until) if until else END,
                       script=script, stops=sorted(set(CHECKPOINTS.values())), cast=CAST,
                       on_event=on_event, at_stop=look)
    finally:
        client.close()
    return Run(co.seen(seen), run.events, run.started, run.ended, run.cycles, run.seconds,
               run.failures)
