"""Shared fixtures. Tests run with REQUESTS_CA_BUNDLE set, as on a real host, to prove that
syncd's configured CA wins over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import secret_scan
from secret_scan import pytest_configure, pytest_sessionfinish  # noqa: F401  (hooks)

from syncd.sandbox.server import SandboxServer

_SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
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
