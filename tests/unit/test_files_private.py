"""Whatever the umask syncd starts with, what it writes to disk is its own: the state directory
0700, the database and its -wal/-shm 0600, the sandbox's sandbox.json and credentials 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.clock import FrozenClock
from syncd.daemon.runtime import open_runtime
from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings


@pytest.fixture
def loose_umask() -> Iterator[None]:
    before = os.umask(0o022)  # a login shell's
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_directory_and_database_are_private(tmp_path: Path, loose_umask: None) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules: []\n")
    config = tmp_path / "syncd.toml"
    state = tmp_path / "var" / "syncd"
    config.write_text(f'[syncd]\nstate_dir = "{state}"\nrules_dir = "{rules}"\n')
    rt = open_runtime(load_settings(config, env={}), FrozenClock(datetime(2026, 3, 2, tzinfo=UTC)))
    try:
        with rt.store.transaction() as tx:  # a write: WAL and shared-memory files appear
            tx.cursors.set("zendesk", "c", rt.clock.now())
        assert mode(state) == 0o700
        files = {p.name: mode(p) for p in state.iterdir() if p.name.startswith("state.db")}
        assert files and set(files.values()) == {0o600}, files
    finally:
        rt.close()


def test_sandbox_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    with SandboxServer(directory=tmp_path / "sb"):
        assert mode(tmp_path / "sb" / "sandbox.json") == 0o600
        assert mode(tmp_path / "sb" / "credentials") == 0o700
        assert {mode(p) for p in (tmp_path / "sb" / "credentials").iterdir()} == {0o600}
