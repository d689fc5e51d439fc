"""The example fixture shipped in config/ stays loadable by all three emulators."""

from __future__ import annotations

from syncd.resources import SANDBOX_SEED, shipped
from syncd.sandbox.server import SandboxServer, load_fixture

EXAMPLE = shipped(SANDBOX_SEED)


def test_example_fixture_seeds_every_emulator(sandbox: SandboxServer) -> None:
    assert sandbox.control("POST", "/_sandbox/seed", load_fixture(EXAMPLE)) == {"ok": True}
    assert sandbox.control("GET", "/_sandbox/clock") == {"now": "2026-03-02T08:00:00+00:00"}
    state = sandbox.sandbox.snapshot()
    assert "Printer on fire" in str(state["zendesk"])
    assert "Acme SI onboarding" in str(state["salesforce"])
    assert "ZD-1 Acme printer review.vtt" in str(state["graph"])
