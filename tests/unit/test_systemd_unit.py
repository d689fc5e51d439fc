"""The shipped unit stays verifiable and hardened (checked where systemd-analyze exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd import resources
from syncd.resources import shipped

UNIT = Path(str(shipped(resources.UNIT)))
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


def test_unit_reads_secrets_from_credentials_not_from_its_text() -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text
    assert re.findall(r"^LoadCredential=(\w+):", text, re.M) == [
        "zendesk_token", "salesforce_client_secret", "graph_client_secret"]
    assert not re.search(r"(?i)^Environment=.*(token|secret|password)", text, re.M)


def test_reload_checks_the_configured_rules_before_signalling() -> None:
    text = UNIT.read_text()
    (start,) = re.findall(r"^ExecStart=(\S+) run (--config \S+)$", text, re.M)
    assert re.findall(r"^ExecReload=(.*)$", text, re.M) == [
        f"{start[0]} check {start[1]}",  # a refused rule set fails `systemctl reload`
        "/bin/kill -HUP $MAINPID",
    ]


@needs_systemd
def test_security_exposure_is_at_most_1_5() -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True, text=True, check=False,
    ).stdout
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out).group(1))
    assert exposure <= 1.5, out


@needs_systemd
def test_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's syncd entry point.
    syncd = Path(sys.executable).with_name("syncd")
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text().replace("/opt/syncd/bin/syncd", str(syncd)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
