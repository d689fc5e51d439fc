"""One cycle of the daemon, in order: settle unknown outcomes, poll every source, fire due
timers, execute due intents. `syncd run --once` is exactly this; the service runs the same
steps as separate jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.connectors.http import VendorError
from syncd.daemon.executor import Drained, Executor
from syncd.daemon.poller import poll_source
from syncd.daemon.runtime import Runtime, log
from syncd.daemon.timers import fire_due


@dataclass
class CycleReport:
    polled: dict[str, int] = field(default_factory=dict)  # source -> records read
    fired: int = 0
    drained: Drained = field(default_factory=Drained)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def poll_all(rt: Runtime, stopping: Callable[[], bool] = lambda: False) -> dict[str, int]:
    """Poll each configured source the rules read (source -> records read); one failing source
    does not stop the others."""
    polled: dict[str, int] = {}
    for source, connector in rt.connectors.items():
        if stopping():
            break
        try:
            found = poll_source(rt, source, connector, stopping)
            if found.kinds:
                polled[source] = found.records
        except VendorError as exc:
            log.warning("poll_failed", source=source, error=str(exc))
            rt.fail(f"poll {source}: {exc}")
        except Exception as exc:  # a bug or bad data: this source's, not the others'
            log.exception("poll_crashed", source=source)
            rt.fail(f"poll {source}: {type(exc).__name__}: {exc}")
    return polled


def run_cycle(rt: Runtime, stopping: Callable[[], bool] = lambda: False) -> CycleReport:
    rt.failures.clear()
    if rt.rules_refused:  # `run --once` exits 1 while the rules directory is refused
        rt.fail(f"rules directory refused: {rt.rules_refused}")
    executor = Executor(rt, stopping)
    executor.recover()
    report = CycleReport(polled=poll_all(rt, stopping))
    report.fired = fire_due(rt, stopping=stopping)
    report.drained = executor.drain()
    report.failures = list(rt.failures)
    d = report.drained
    log.info("cycle_done", records=sum(report.polled.values()), timers=report.fired,
             done=d.done, failed=d.failed, skipped=d.skipped,
             held=d.held, limited=d.limited, problems=len(report.failures))
    return report
