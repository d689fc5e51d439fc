"""The shipped processes (rules/*.yaml, docs/processes.md) end to end.

The story of `syncd demo` (syncd/demo/story.py) drives the real daemon with the shipped rules
over the example company of config/sandbox-seed.yaml, from Monday 2 March 2026 08:00 to 13
April, on the demo's accelerated clock (syncd/demo/runner.py): the daemon's clock and the
sandbox's move together from one instant at which something can happen to the next. People's
actions (a sales decision, a public reply, a Work state) are made through the Zendesk API. What
staff and customers would see (tickets, comments, tags, Salesforce tasks, SharePoint files,
mail) is read back from the emulators at named checkpoints, and the demo's checks
(syncd/demo/checks.py) judge each process from it: one test per process, every line of its
evidence must hold.
"""

from __future__ import annotations

import pytest

from syncd.demo.checks import CHECKS, Check
from syncd.demo.company import Seen
from syncd.demo.runner import run_story
from syncd.sandbox.server import SandboxServer

pytestmark = pytest.mark.slow  # the whole story, six simulated weeks, before the first check


@pytest.fixture(scope="module")
def seen(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Seen:
    return run_story(sandbox_server, tmp_path_factory.mktemp("shipped")).seen


def _params() -> list[object]:
    return [pytest.param(check, id=check.judge.__name__) for check in CHECKS]


def test_every_process_has_its_check() -> None:
    assert len({c.judge.__name__ for c in CHECKS}) == len(CHECKS) == 22


@pytest.mark.parametrize("check", _params())
def test_process(check: Check, seen: Seen) -> None:
    ok, evidence = check.judge(seen)
    assert ok, f"{check.name}:\n" + "\n".join(evidence)
