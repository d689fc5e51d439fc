"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.daemon.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_lifecycle_messages_on_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("watching 3 sources")
    assert _received(sock) == ["READY=1", "STATUS=watching 3 sources"]
    assert notifier.watchdog()
    assert _received(sock) == ["WATCHDOG=1"]
    assert notifier.status("last cycle 09:00:03\n4 intents pending")
    assert _received(sock) == ["STATUS=last cycle 09:00:03 4 intents pending"]
    assert notifier.stopping()
    assert _received(sock) == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_instant(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier({"NOTIFY_SOCKET": path}).reloading("reloading rules")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, stamp, status = _received(sock)
    assert (first, status) == ("RELOADING=1", "STATUS=reloading rules")
    name, _, value = stamp.partition("=")
    assert name == "MONOTONIC_USEC" and before <= int(value) <= after


def test_abstract_namespace_socket() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).ready()
        assert _received(sock) == ["READY=1"]


@pytest.mark.parametrize("value", [None, "", "vsock:2:1234", "@"])
def test_no_socket_means_no_op(value: str | None) -> None:
    notifier = Notifier({} if value is None else {"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.watchdog() is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(env: dict[str, str], expected: float | None) -> None:
    assert Notifier(env).watchdog_interval() == expected


def test_reads_the_process_environment_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier()
    assert notifier.watchdog_interval() == 1.0
    assert notifier.watchdog()
    assert _received(sock) == ["WATCHDOG=1"]
