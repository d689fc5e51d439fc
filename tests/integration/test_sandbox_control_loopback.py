"""The sandbox's control API has no authentication: only loopback clients may use it, even
when the sandbox listens on every interface (the emulated vendor APIs stay reachable)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from syncd.sandbox.server import SandboxServer, _HTTPServer, is_loopback

REMOTE = "192.0.2.7"  # TEST-NET-1: how a client on another host would read


def test_the_control_api_refuses_a_client_that_is_not_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox listens on every interface; a request reaching it from another host's address
    is refused. Tests send nothing beyond loopback, so the request goes over loopback with
    verified TLS and the server is handed the address a remote client would have."""
    with SandboxServer(directory=tmp_path, host="0.0.0.0") as server:
        port = server.url.rsplit(":", 1)[1]
        client = requests.Session()
        client.trust_env = False
        client.verify = server.ca_bundle
        real = _HTTPServer.finish_request
        monkeypatch.setattr(_HTTPServer, "finish_request", lambda self, request, address:
                            real(self, request, (REMOTE, address[1])))
        refused = client.get(f"https://127.0.0.1:{port}/_sandbox/clock", timeout=10)
        assert refused.status_code == 403
        assert client.post(f"https://127.0.0.1:{port}/_sandbox/reset", timeout=10
                           ).status_code == 403
        client.close()  # that connection was taken as remote; a new one is as it comes
        monkeypatch.undo()
        mine = client.get(f"https://127.0.0.1:{port}/_sandbox/clock", timeout=10)
        assert mine.status_code == 200 and mine.json()["now"]  # loopback: as ever


def test_loopback_addresses() -> None:
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(a) for a in ("192.0.2.2", "10.0.0.1", "fd00::2", "::ffff:10.0.0.1",
                                            "not an address"))
