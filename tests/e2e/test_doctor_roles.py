"""What `syncd doctor` says about the rights syncd's accounts hold at the vendors: the Zendesk
export is for admins only, and Graph verification needs a mail-reading role."""

from __future__ import annotations

from pathlib import Path

from test_doctor import doctor, line, setup

from syncd.sandbox.server import SandboxServer


def test_an_agent_api_user_cannot_poll_and_doctor_says_so(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = setup(sandbox, tmp_path)
    api_user = {"name": "syncd", "email": sandbox.info["zendesk"]["email"], "role": "agent"}
    sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"users": [api_user]}})
    result = doctor(world)
    assert result.exit_code == 1
    shown = line(result.output, "✗", "zendesk permissions")
    assert "agent" in shown and "incremental ticket export" in shown and "admin" in shown
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    assert fix.startswith("fix: make ") and "an admin" in fix


def test_graph_roles_are_read_from_the_token(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path)
    result = doctor(world)
    assert result.exit_code == 0, result.output
    shown = line(result.output, "✓", "graph permissions")
    assert "Sites.ReadWrite.All" in shown and "Mail.Send" in shown and "Mail.Read" in shown

    sandbox.control("POST", "/_sandbox/seed", {"graph": {
        "app_roles": ["Sites.ReadWrite.All", "Mail.Send", "User.Read.All"]}})
    result = doctor(world)
    assert result.exit_code == 1
    shown = line(result.output, "✗", "graph permissions")
    assert "Mail.ReadBasic.All or Mail.Read" in shown
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    assert "Mail.ReadBasic.All" in fix and "admin consent" in fix
