"""`syncd doctor` with `[webhooks] enabled`: the signing secret is there, the listener's address
and TLS certificate are usable, and Zendesk has an active webhook sending to syncd's path
(read from Zendesk's Webhooks API, which the sandbox serves as Zendesk does)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import secret_scan
import trustme
from e2e_world import World
from typer.testing import CliRunner, Result

from syncd.cli import app
from syncd.sandbox.server import SandboxServer

SECRET = "whsec-" + "0c4be1d2a7f95863" * 2
PATH = "/webhooks/zendesk"


class Setup:
    def __init__(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.world = World(sandbox, tmp_path, rules="rules: []\n")
        secret_scan.secrets.add(SECRET)
        self.creds = tmp_path / "credentials"
        shutil.copytree(sandbox.directory / "credentials", self.creds)  # type: ignore[operator]
        (self.creds / "zendesk_webhook_secret").write_text(SECRET + "\n")
        cert = sandbox.ca.issue_cert("127.0.0.1")
        self.cert, self.key = tmp_path / "hook.pem", tmp_path / "hook.key"
        self.cert.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.key))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.env = {
            **self.world.env,
            "SYNCD_SECRETS__DIR": str(self.creds),
            "SYNCD_WEBHOOKS__ENABLED": "true",
            "SYNCD_WEBHOOKS__PORT": str(self.port),
            "SYNCD_WEBHOOKS__TLS_CERT": str(self.cert),
            "SYNCD_WEBHOOKS__TLS_KEY": str(self.key),
        }

    def hook(self, **spec: Any) -> None:
        webhook = {"endpoint": f"https://syncd.example.com{PATH}", "signing_secret": SECRET,
                   "name": "syncd", **spec}
        self.sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"webhooks": [webhook]}})

    def doctor(self, **env: str) -> Result:
        return CliRunner().invoke(app, ["doctor", "--config", str(self.world.config)],
                                  env={**self.env, **env})


def line(output: str, mark: str, name: str) -> str:
    found = [text for text in output.splitlines() if text[2:].split("  ")[0] == name]
    assert len(found) == 1, (name, output)
    assert found[0].startswith(mark + " "), found[0]
    return found[0]


def fix_of(output: str, shown: str) -> str:
    lines = output.splitlines()
    return lines[lines.index(shown) + 1].strip()


@pytest.fixture
def setup(sandbox: SandboxServer, tmp_path: Path) -> Setup:
    return Setup(sandbox, tmp_path)


def test_a_working_push_source_passes(setup: Setup) -> None:
    setup.hook()
    result = setup.doctor()
    assert result.exit_code == 0, result.output
    assert "zendesk_webhook_secret" in line(result.output, "✓", "webhooks secret")
    shown = line(result.output, "✓", "webhooks listener")
    assert f"https://127.0.0.1:{setup.port}{PATH}" in shown
    assert f"'syncd' sends to https://syncd.example.com{PATH}" in line(
        result.output, "✓", "zendesk webhook")
    assert SECRET not in result.output


def test_no_webhook_or_an_inactive_one_fails(setup: Setup) -> None:
    setup.hook(endpoint="https://elsewhere.example.com/hook")
    result = setup.doctor()
    assert result.exit_code == 1
    shown = line(result.output, "✗", "zendesk webhook")
    assert f"no Zendesk webhook sends to a URL ending in {PATH}" in shown
    assert "https://elsewhere.example.com/hook" in shown  # what there is
    assert "Webhooks" in fix_of(result.output, shown)
    setup.hook(status="inactive")
    result = setup.doctor()
    shown = line(result.output, "✗", "zendesk webhook")
    assert f"'syncd' (https://syncd.example.com{PATH}) is inactive" in shown
    assert fix_of(result.output, shown).startswith("fix: activate it")


def test_a_listener_that_cannot_start_fails(setup: Setup, tmp_path: Path) -> None:
    setup.hook()
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    result = setup.doctor(SYNCD_WEBHOOKS__TLS_KEY=str(tmp_path / "other.key"))
    assert result.exit_code == 1
    shown = line(result.output, "✗", "webhooks listener")
    assert "key does not match the certificate" in shown
    result = setup.doctor(SYNCD_WEBHOOKS__HOST="192.0.2.7")  # TEST-NET-1: not this host's
    assert "192.0.2.7 is no address of this host" in line(result.output, "✗",
                                                          "webhooks listener")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", setup.port))
        busy.listen()
        result = setup.doctor()
    assert "in use" in line(result.output, "!", "webhooks listener")  # syncd itself, maybe
    assert result.exit_code == 0


def test_plain_http_beyond_loopback_is_a_warning(setup: Setup) -> None:
    setup.hook()
    del setup.env["SYNCD_WEBHOOKS__TLS_CERT"], setup.env["SYNCD_WEBHOOKS__TLS_KEY"]
    result = setup.doctor(SYNCD_WEBHOOKS__HOST="0.0.0.0")
    shown = line(result.output, "!", "webhooks listener")
    assert "plain HTTP on 0.0.0.0" in shown


def test_a_missing_secret_is_named(setup: Setup) -> None:
    (setup.creds / "zendesk_webhook_secret").unlink()
    result = setup.doctor()
    assert result.exit_code == 1
    line(result.output, "✗", "settings")
    assert "the file zendesk_webhook_secret in the credentials directory" in result.output
