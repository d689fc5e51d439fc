"""The sandbox's control API has no authentication: only loopback clients may use it, even
when the sandbox listens on every interface (the emulated vendor APIs stay reachable)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from syncd.sandbox.server import SandboxServer, is_loopback


def _outward_address() -> str:
    """This host's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing decides, nothing is sent
        return str(probe.getsockname()[0])


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_control_api_refuses_a_client_that_is_not_loopback(tmp_path: Path) -> None:
    address = _outward_address()
    assert not is_loopback(address), f"this host has no address beside loopback: {address}"
    with SandboxServer(directory=tmp_path, host="0.0.0.0") as server:
        port = server.url.rsplit(":", 1)[1]
        outside = requests.Session()
        outside.trust_env = False
        outside.verify = False  # the certificate names 127.0.0.1; trust is not the point here
        refused = outside.get(f"https://{address}:{port}/_sandbox/clock", timeout=10)
        assert refused.status_code == 403
        assert outside.post(f"https://{address}:{port}/_sandbox/reset", timeout=10
                            ).status_code == 403  # fmt: skip
        inside = requests.Session()
        inside.trust_env = False
        inside.verify = server.ca_bundle
        mine = inside.get(f"https://127.0.0.1:{port}/_sandbox/clock", timeout=10)
        assert mine.status_code == 200 and mine.json()["now"]  # loopback: as ever


def test_loopback_addresses() -> None:
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(a) for a in ("192.0.2.2", "10.0.0.1", "fd00::2", "::ffff:10.0.0.1",
                                            "not an address"))  # fmt: skip
