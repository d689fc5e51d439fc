"""Fixtures of the end-to-end tests (helpers in e2e_world.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_world import World

from syncd.sandbox.server import SandboxServer


@pytest.fixture
def world(sandbox: SandboxServer, tmp_path: Path) -> World:
    return World(sandbox, tmp_path)
