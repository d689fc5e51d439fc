"""The one line `systemctl status` shows (sd_notify STATUS=): what a person looks at first.

    last cycle 10:00:03 UTC: 4 intents pending, 1 dead; last error 09:58:10 UTC zendesk 503 ...
    | rules reload REFUSED 10:01:00 UTC (rules/x.yaml:3:5: ...); previous rules still running

A refused reload stays on the line until a reload is accepted: the admin who saved the file
must see that it is not running. So does a start on the last accepted rules (rulesets.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime, tzinfo

from syncd.store.ledger import IntentState

PENDING = (IntentState.PLANNED, IntentState.SENT, IntentState.FAILED)
SHOWN_CHARS = 160


class Status:
    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._lock = threading.Lock()
        self._cycle = "no cycle yet"
        self._error = "none"
        self._rules = ""
        self._role = ""  # "" when not electing (run --once); "leader ..." or "standby ..."
        self._store = ""  # what is wrong with the state database, while it is

    def cycle(self, at: datetime, counts: Mapping[IntentState, int]) -> None:
        pending = sum(counts.get(state, 0) for state in PENDING)
        dead = counts.get(IntentState.DEAD, 0)
        unknown = counts.get(IntentState.UNKNOWN, 0)
        held = (f", {unknown} unknown (verify refused: `syncd intents --state unknown`)"
                if unknown else "")
        if limited := counts.get(IntentState.HELD, 0):
            held += f", {limited} held by limits (`syncd intents --held`)"
        with self._lock:
            self._cycle = (f"last cycle {self._time(at)}: {pending} intents pending, {dead} dead"
                           f"{held}")

    def error(self, at: datetime, text: str) -> None:
        with self._lock:
            self._error = f"{self._time(at)} {_short(text)}"

    def reload_refused(self, at: datetime, first_error: str) -> None:
        with self._lock:
            self._rules = (f"rules reload REFUSED {self._time(at)} ({_short(first_error)}); "
                           "previous rules still running")

    def rules_refused_at_start(self, why: str) -> None:
        with self._lock:
            self._rules = f"rules REFUSED at start ({_short(why)})"

    def reload_accepted(self) -> None:
        with self._lock:
            self._rules = ""
        self._role = ""  # "" when not electing (run --once); "leader ..." or "standby ..."
        self._store = ""  # what is wrong with the state database, while it is

    def leading(self, since: datetime | None, epoch: int) -> None:
        with self._lock:
            self._role = f"leader since {self._time(since) if since else '?'} (epoch {epoch})"

    def standby(self, holder: str, since: datetime | None) -> None:
        with self._lock:
            self._role = (f"standby, leader is {holder} since "
                          f"{self._time(since) if since else '?'}")

    def store_lost(self, at: datetime, error: str, retry_in_s: float) -> None:
        with self._lock:
            self._store = (f"state database UNREACHABLE since {self._time(at)} "
                           f"({_short(error)}); reconnecting in {retry_in_s:.0f} s")

    def store_back(self) -> None:
        with self._lock:
            self._store = ""

    def line(self) -> str:
        with self._lock:
            if self._role.startswith("standby"):
                parts = [self._role]
            else:
                text = f"{self._cycle}; last error {self._error}"
                parts = [f"{self._role}; {text}" if self._role else text]
            parts += [part for part in (self._store, self._rules) if part]
            return " | ".join(parts)

    def _time(self, at: datetime) -> str:
        return at.astimezone(self.tz).strftime("%H:%M:%S %Z")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
