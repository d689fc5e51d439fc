"""What systemd hears from `syncd run` on a real NOTIFY_SOCKET datagram socket: READY once the
vendors answered, WATCHDOG only while the loop makes progress, RELOADING/READY around reloads,
STOPPING at the end; and the same from the `syncd run` process with real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_world import LADDER, NOW, TRIAGE, World, seed, serving

from syncd.connectors.base import Connector, Page
from syncd.daemon.notify import Notifier
from syncd.daemon.runtime import build_connectors, open_runtime
from syncd.model import Operation, Outcome, Record, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

WATCHDOG_USEC = "1000000"  # WatchdogSec=1s: a ping is due every half second


class Listener:
    """systemd's side: a bound AF_UNIX datagram socket, every message kept in order."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, list[str]]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.messages.append((time.monotonic(), data.decode().split("\n")))

    def states(self, since: float = 0.0) -> list[str]:
        """READY=1, WATCHDOG=1, ... (STATUS= lines left out), in the order sent."""
        with self._lock:
            lines = [line for at, sent in self.messages if at >= since for line in sent]
        return [line for line in lines if not line.startswith(("STATUS=", "MONOTONIC_USEC="))]

    def statuses(self) -> list[str]:
        with self._lock:
            return [line.removeprefix("STATUS=") for _, lines in self.messages
                    for line in lines if line.startswith("STATUS=")]

    def reloaded(self) -> bool:
        """RELOADING=1 was heard, and READY=1 after it."""
        heard = self.states()
        return "RELOADING=1" in heard and "READY=1" in heard[heard.index("RELOADING=1") :]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; heard {self.states()}"
            time.sleep(0.05)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Listener]:
    listener = Listener(tmp_path / "notify.sock")
    yield listener
    listener.close()


class Stalling:
    """A real connector that stops answering while `gate` is closed (a hung vendor call)."""

    def __init__(self, connector: Connector, gate: threading.Event) -> None:
        self.connector = connector
        self.gate = gate

    def __getattr__(self, name: str) -> Any:  # governor, close, ...
        return getattr(self.connector, name)

    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]:
        self.gate.wait()
        yield from self.connector.poll_pages(cursor, kinds)

    def fetch(self, ref: RecordRef) -> Record | None:
        self.gate.wait()
        return self.connector.fetch(ref)

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        self.gate.wait()
        return self.connector.fetch_many(refs, extras=extras)

    def directory(self, max_age_s: float | None = None) -> Any:
        self.gate.wait()
        return self.connector.directory(max_age_s)

    def execute(self, op: Operation) -> Outcome:
        self.gate.wait()
        return self.connector.execute(op)

    def verify(self, op: Operation) -> Outcome:
        self.gate.wait()
        return self.connector.verify(op)


def test_ready_watchdog_reloading_ready_stopping_and_no_watchdog_while_stuck(
    sandbox: SandboxServer, tmp_path: Path, systemd: Listener
) -> None:
    world = World(sandbox, tmp_path, TRIAGE + LADDER)
    sandbox.control("POST", "/_sandbox/seed", seed(2, NOW - 5 * timedelta(minutes=1)))
    settings = load_settings(world.config, env={**world.env, "SYNCD_SYNCD__POLL_INTERVAL_S": "0.3"})
    vendors = threading.Event()  # closed: no vendor answers yet, so syncd is not ready
    real = build_connectors(settings, world.clock)
    connectors = {name: Stalling(connector, vendors) for name, connector in real.items()}
    rt = open_runtime(settings, world.clock, connectors=connectors)
    notifier = Notifier({"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": WATCHDOG_USEC})
    with serving(rt, notifier) as service:
        try:
            time.sleep(1.0)
            assert systemd.states() == []
            vendors.set()
            systemd.wait_for(lambda: "WATCHDOG=1" in systemd.states())
            systemd.wait_for(lambda: len(world.mail()) == 2)  # triage done: a cycle went round
            systemd.wait_for(lambda: any("intents pending" in s for s in systemd.statuses()))

            service.reload()
            systemd.wait_for(systemd.reloaded)

            vendors.clear()  # the ladder's first step comes due while the vendors hang
            world.advance(timedelta(hours=1))
            stuck_since = time.monotonic()
            time.sleep(1.0)  # whatever was in flight finishes; then nothing moves
            quiet_from = time.monotonic()
            time.sleep(2.0)  # four watchdog intervals
            assert "WATCHDOG=1" not in systemd.states(since=quiet_from), stuck_since
            vendors.set()
            systemd.wait_for(lambda: "WATCHDOG=1" in systemd.states(since=quiet_from))
        finally:
            vendors.set()
    heard = systemd.states()
    assert heard[0] == "READY=1" and heard[-1] == "STOPPING=1"
    reload_at = heard.index("RELOADING=1")
    assert "WATCHDOG=1" in heard[1:reload_at] and heard[reload_at + 1] == "READY=1"
    assert set(heard) == {"READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"}


def test_syncd_run_answers_sighup_and_sigterm(sandbox: SandboxServer, tmp_path: Path,
                                              systemd: Listener) -> None:
    world = World(sandbox, tmp_path, TRIAGE)
    env = {**os.environ, **world.env, "NOTIFY_SOCKET": systemd.path,
           "WATCHDOG_USEC": WATCHDOG_USEC, "SYNCD_SYNCD__LOG_FORMAT": "json",
           "SYNCD_SYNCD__POLL_INTERVAL_S": "0.5"}
    env.pop("WATCHDOG_PID", None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "run", "--config", str(world.config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        systemd.wait_for(lambda: "WATCHDOG=1" in systemd.states(), timeout=60)
        daemon.send_signal(signal.SIGHUP)
        systemd.wait_for(systemd.reloaded)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, stderr.decode()
    heard = systemd.states()
    assert (heard[0], heard[-1]) == ("READY=1", "STOPPING=1")
    events = [json.loads(line)["event"] for line in stderr.decode().splitlines()]
    assert {"daemon_started", "rules_reloaded", "daemon_stopped"} <= set(events)
