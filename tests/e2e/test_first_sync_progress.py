"""A first sync of a large helpdesk reads for minutes: on a terminal `syncd run --once` shows a
progress bar (pages, records, how far it has read); under systemd (stderr is the journal, no
TTY) only the log lines, with no terminal codes in them."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, World, seed

from syncd.sandbox.server import SandboxServer

RULES = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new}
    do: [{tag: [syncd-triaged]}]
"""
BAR = "zendesk: first sync"


def going_live(sandbox: SandboxServer, tmp_path: Path) -> dict[str, str]:
    world = World(sandbox, tmp_path, RULES)
    sandbox.control("POST", "/_sandbox/seed", seed(3, NOW - timedelta(minutes=30)))
    env = {k: v for k, v in {**os.environ, **world.env}.items() if k not in ("NO_COLOR",)}
    env.pop("SYNCD_SYNCD__FIRST_SYNC")  # the default: a baseline
    return {**env, "TERM": "xterm-256color", "COLUMNS": "120",
            "SYNCD_CONFIG": str(world.config)}


COMMAND = [sys.executable, "-m", "syncd.cli", "run", "--once"]


def test_a_terminal_shows_a_progress_bar(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = going_live(sandbox, tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen(COMMAND, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    assert proc.wait(timeout=120) == 0
    reader.join(timeout=30)
    os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert BAR in shown, shown[-3000:]
    assert "3 records" in shown and "1 page" in shown
    assert "\x1b[?25l" in shown  # rich's live display (cursor hidden while it draws)
    assert "baseline_done" in shown  # the log lines still come, above the bar


def test_no_terminal_no_bar(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = going_live(sandbox, tmp_path)
    done = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "baseline_progress" in done.stderr and "baseline_done" in done.stderr
    assert BAR not in done.stderr
    assert "\x1b" not in done.stderr  # nothing for a terminal in the journal
