"""Whether the daemon's loop is turning, for systemd's watchdog: WATCHDOG=1 is earned, not
sent on a timer.

Every job reports when it starts, each time it turns to its next page, timer or intent (the
`stopping` callback it already polls), and when it ends. The main loop may ping when some job
has made progress since the last ping and no running job has been silent for `hung_after_s`.
The first rule catches a loop that stopped altogether (a dead scheduler, every job stuck); the
second a single job stuck while the others go on (a poll that never returns would otherwise
leave its source unpolled for good, as each job runs one instance at a time). `hung_after_s`
is longer than one vendor call may legitimately take under the retry policy, so a vendor that
is slow or rate-limits does not get the daemon restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Liveness:
    def __init__(self, hung_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.hung_after_s = hung_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._silent_since: dict[str, float] = {}  # running job -> its last sign of life
        self._progress = 0  # signs of life so far
        self._pinged = 0  # ... when the last ping was allowed

    def started(self, job: str) -> None:
        with self._lock:
            self._silent_since[job] = self._clock()

    def beat(self, job: str) -> None:
        """The job turned to its next unit of work."""
        with self._lock:
            self._silent_since[job] = self._clock()
            self._progress += 1

    def finished(self, job: str) -> None:
        with self._lock:
            self._silent_since.pop(job, None)
            self._progress += 1

    def hung(self) -> list[str]:
        """Running jobs silent for longer than `hung_after_s`."""
        now = self._clock()
        with self._lock:
            return sorted(job for job, since in self._silent_since.items()
                          if now - since > self.hung_after_s)

    def may_ping(self) -> bool:
        """True (once per progress) when the loop has moved since the last ping and no job
        hangs."""
        hung = self.hung()
        with self._lock:
            if hung or self._progress == self._pinged:
                return False
            self._pinged = self._progress
            return True
