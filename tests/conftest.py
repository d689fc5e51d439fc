"""Shared fixtures. Tests run with REQUESTS_CA_BUNDLE set, as on a real host, to prove that
syncd's configured CA wins over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import secret_scan
from postgres import PostgresServer
from secret_scan import (  # noqa: F401  (hooks)
    pytest_configure,
    pytest_sessionfinish,
    pytest_testnodedown,
)

from syncd.sandbox.server import SandboxServer

_SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
WATCHED_ENV = ("ZENPY_", "SYNCD_", "REQUESTS_", "CURL_", "NOTIFY_SOCKET", "CREDENTIALS_")
for _var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.setdefault(
        _var, _SYSTEM_BUNDLE if Path(_SYSTEM_BUNDLE).exists() else certifi.where()
    )


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = SandboxServer(directory=tmp_path_factory.mktemp("sandbox"))
    secret_scan.secrets.update((server.info["zendesk"]["token"],
                                server.info["salesforce"]["client_secret"],
                                server.info["graph"]["client_secret"]))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The running sandbox, reset to empty (data, clock, faults, request log) for each test."""
    sandbox_server.control("POST", "/_sandbox/reset")
    return sandbox_server


@pytest.fixture(autouse=True)
def _environment_kept() -> Iterator[None]:
    """A test that leaves a process-wide variable behind (ZENPY_FORCE_NETLOC points every later
    zenpy client elsewhere) makes the suite's result depend on its order: fail it instead."""
    before = {k: v for k, v in os.environ.items() if k.startswith(WATCHED_ENV)}
    yield
    after = {k: v for k, v in os.environ.items() if k.startswith(WATCHED_ENV)}
    for name in after.keys() - before.keys():
        del os.environ[name]  # put back, so that one failure does not become many
    os.environ.update(before)
    assert after == before, f"the test changed the environment: {before} -> {after}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (started on first use)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state database on each engine the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long runs first (crash, then slow), the rest in their usual order: on `make test`'s
    xdist workers they start at once, instead of one of them being the last still running."""
    order = ("crash", "slow")
    items.sort(key=lambda item: next(
        (n for n, mark in enumerate(order) if item.get_closest_marker(mark)), len(order)))
