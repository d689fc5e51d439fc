"""A large transcript is streamed from SharePoint to Zendesk: `syncd run --once` holds at most a
buffer of it in memory, never the whole file (nor its base64), so a meeting of several hundred
MB cannot take the daemon's memory with it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from e2e_world import NOW, World, seed

from syncd.sandbox.server import SandboxServer

RULES = """
rules:
  - id: transcripts
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript: {ticket_from: "ZD-(\\\\d+)", else_folder: Transcripts/Unmatched}
"""

# `syncd ...` in a process of its own, printing its peak resident memory (KiB) when it ends:
# VmHWM, which starts afresh at exec (ru_maxrss would carry over this test process's own)
PEAK = (
    "import re, runpy, sys\n"
    "sys.argv = ['syncd', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('syncd.cli', run_name='__main__')\n"
    "finally:\n"
    "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]\n"
    "    print('peak_kib', hwm, file=sys.stderr)\n"
)
BIG = 40_000_000  # bytes: under Zendesk's 50 MB and syncd's default cap


def run_once_peak_kib(world: World) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, "run", "--once", "--config", str(world.config)],
        env={**os.environ, **world.env}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("peak_kib ")]
    return int(line.split()[1])


def drop(sandbox: SandboxServer, name: str, size: int) -> None:
    created = (NOW - timedelta(minutes=5)).isoformat()
    sandbox.control("POST", "/_sandbox/seed", {"graph": {"files": [
        {"path": f"Transcripts/{name}", "content": "W" * size, "created_at": created}]}})


def test_a_large_transcript_is_streamed_not_held_whole(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = World(sandbox, tmp_path, RULES)
    sandbox.control("POST", "/_sandbox/seed", seed(1, NOW - timedelta(minutes=30)))
    drop(sandbox, "ZD-1 small.vtt", 1_000)
    small = run_once_peak_kib(world)  # the same process, the same work, a small file
    drop(sandbox, "ZD-1 big.vtt", BIG)
    big = run_once_peak_kib(world)
    found = world._get("/tickets/1/comments.json")["comments"]
    sizes = {a["file_name"]: a["size"] for c in found for a in c.get("attachments") or []}
    assert sizes == {"ZD-1 small.vtt": 1_000, "ZD-1 big.vtt": BIG}
    # held whole, the file alone would add 40 MB (and its base64 53 MB more)
    assert (big - small) * 1024 < BIG // 4, f"peak grew by {(big - small) // 1024} MB"
