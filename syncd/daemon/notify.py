"""sd_notify(3) without libsystemd: tell systemd when syncd is ready, reloading, stopping or
alive, with a one-line STATUS= for `systemctl status`.

    notifier = Notifier()                  # reads $NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID
    notifier.ready("watching 3 sources")   # READY=1 after settings, rules, store, vendors
    every = notifier.watchdog_interval()   # seconds between watchdog() calls, or None
    notifier.watchdog()                    # WATCHDOG=1 from the main loop (a hung loop restarts)
    notifier.reloading(); ...; notifier.ready()
    notifier.status("last cycle 12:00:03, 4 intents pending")
    notifier.stopping()

Every call is a no-op returning False when `$NOTIFY_SOCKET` is unset (not started by systemd,
tests, `syncd run --once` from a shell). A failed send is logged and returns False rather than
raising: losing a notification must never take the daemon down (a missed watchdog ping is
what systemd's restart is for). One datagram per call on a fresh socket, so any thread may call.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """Read the notification socket and watchdog settings from `env` (default os.environ)."""
        env = os.environ if env is None else env
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _watchdog_usec(env)

    @property
    def enabled(self) -> bool:
        """True when systemd is listening (a unit with Type=notify)."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete; `systemctl start` returns now."""
        return self.notify("READY=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload began; follow with `ready()` when it ends, accepted or refused. Carries the
        CLOCK_MONOTONIC instant that systemd >= 253 requires with RELOADING=1."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown began (finishing the intent in flight)."""
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        """Keep-alive ping; send at least every `watchdog_interval()` seconds."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """The line `systemctl status` shows, e.g. last cycle, intents pending, last error."""
        return self.notify(*_status(text))

    def watchdog_interval(self) -> float | None:
        """How often to call `watchdog()`, in seconds: half of `WatchdogSec=`, as
        sd_watchdog_enabled(3) advises, leaving the other half for a slow cycle. None when the
        watchdog is off or `$WATCHDOG_PID` names another process."""
        return self._watchdog_usec / 2_000_000 if self._watchdog_usec else None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments in one datagram; True if it was sent."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            logger.warning("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True


def _address(value: str) -> str | bytes | None:
    """`/run/systemd/notify` as is, `@name` as the abstract address `\\0name`; anything else
    (unset, vsock:) is not ours to speak to."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value:
        logger.warning("NOTIFY_SOCKET=%r is not a path or @abstract address; not notifying", value)
    return None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _status(text: str | None) -> tuple[str, ...]:
    # The protocol is one assignment per line: a newline would end STATUS= early.
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)
