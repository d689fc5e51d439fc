"""`syncd doctor` against the sandbox, through the real connectors over TLS: what an
administrator reads in the checklist, and the exit status a script sees."""

from __future__ import annotations

import json
import logging
import re
import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from e2e_world import NOW, World, serving, wait_for
from typer.testing import CliRunner, Result

from syncd.cli import app
from syncd.clock import AcceleratedClock, FrozenClock
from syncd.daemon.runtime import open_runtime
from syncd.doctor import examine
from syncd.sandbox.server import SandboxServer

RULES = r"""
rules:
  - id: triage
    on: zendesk.ticket
    scope: {group_name: [Support, Supervisors]}
    vars: {team: Support, leads: "group:Supervisors"}
    when: {status: new, custom.kind: {exists: false}}
    do:
      - assign: {group: "{{ vars.team }}", strategy: round_robin}
      - notify: {to: ["{{ vars.leads }}"], subject: "New #{{ ticket.id }}", body: Hello}
  - id: kick-off
    on: salesforce.opportunity
    when: {IsWon: true, Week_0_Date__c: {exists: true}}
    do:
      - create_task: {subject: Kick-off, owner: ann@example.com}
  - id: transcripts
    on: sharepoint.file
    when: {folder: Transcripts}
    do:
      - file_transcript: {ticket_from: '#(\d+)', else_folder: Transcripts/Unmatched}
"""
SEED: dict[str, Any] = {
    "zendesk": {
        "users": [
            {"name": "Ann", "email": "ann@example.com", "role": "agent"},
            {"name": "Sue", "email": "sue@example.com", "role": "admin"},
        ],
        "groups": [
            {"name": "Support", "members": ["ann@example.com"]},
            {"name": "Supervisors", "members": ["sue@example.com"]},
        ],
        "ticket_fields": [{"title": "Kind", "key": "kind", "type": "tagger", "options": ["X"]}],
    },
    "salesforce": {
        "settings": {"custom_fields": {"Opportunity": ["Week_0_Date__c"]}},
        "users": [{"Username": "ann@example.com", "Email": "ann@example.com", "Name": "Ann A"}],
    },
    "graph": {"folders": ["Transcripts"]},
}


def setup(sandbox: SandboxServer, tmp_path: Path, rules: str = RULES) -> World:
    sandbox.control("POST", "/_sandbox/seed", SEED)
    return World(sandbox, tmp_path, rules)


def doctor(world: World, *args: str, **env: str) -> Result:
    return CliRunner().invoke(
        app, ["doctor", "--config", str(world.config), *args], env={**world.env, **env}
    )


def line(output: str, mark: str, name: str) -> str:
    """The checklist line of check `name`; it must show `mark`."""
    found = [text for text in output.splitlines() if text[2:].split("  ")[0] == name]
    assert len(found) == 1, (name, output)
    assert found[0].startswith(mark + " "), found[0]
    return found[0]


def test_a_correct_installation_passes_every_check(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path)
    result = doctor(world)
    assert result.exit_code == 0, result.output
    assert "✗" not in result.output
    out = result.output
    for name in ("settings", "rules", "zendesk", "salesforce", "graph", "graph mailbox", "clock"):
        line(out, "✓", name)
    assert "Support, Supervisors" in line(out, "✓", "zendesk groups")
    assert "Supervisors" in line(out, "✓", "zendesk or salesforce groups")  # a mail recipient
    assert "kind" in line(out, "✓", "zendesk fields")
    assert "Opportunity.Week_0_Date__c" in line(out, "✓", "salesforce fields")
    assert "ann@example.com" in line(out, "✓", "salesforce users")
    assert "create Task" in line(out, "✓", "salesforce permissions")
    assert "client credentials flow" in line(out, "✓", "salesforce sign-in")
    assert "Transcripts" in line(out, "✓", "sharepoint folders")
    assert "syncd creates" in line(out, "✓", "store")
    assert not (tmp_path / "state").exists()  # doctor did not make it
    assert out.rstrip().endswith("ready: every check passed")


def test_doctor_finds_a_misnamed_group(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path, RULES.replace("{team: Support", "{team: Suport"))
    result = doctor(world)
    assert result.exit_code == 1
    shown = line(result.output, "✗", "zendesk group 'Suport'")
    assert "no Zendesk group named 'Suport' (did you mean 'Support'?)" in shown
    rule_file = world.rules_dir / "support.yaml"
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    assert fix == f"fix: change the rule at {rule_file}:9 or create the group in Zendesk"
    assert "assign: {group:" in rule_file.read_text().splitlines()[8]
    assert result.output.rstrip().endswith("1 problem(s) to fix")


def test_a_missing_secret_is_named_never_shown(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path)
    credentials = tmp_path / "credentials"
    shutil.copytree(sandbox.directory / "credentials", credentials)  # type: ignore[operator]
    (credentials / "graph_client_secret").unlink()
    result = doctor(world, SYNCD_SECRETS__DIR=str(credentials))
    assert result.exit_code == 1
    assert "missing graph_client_secret" in line(result.output, "✗", "graph secret")
    assert f"fix: write the secret to {credentials / 'graph_client_secret'}" in result.output
    assert "not tried: its secret is missing" in line(result.output, "–", "graph")
    line(result.output, "✓", "zendesk secret")
    info = sandbox.info
    for secret in (info["zendesk"]["token"], info["salesforce"]["client_secret"],
                   info["graph"]["client_secret"]):
        assert secret not in result.output


def test_an_unreachable_vendor_fails_its_check_not_the_command(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = setup(sandbox, tmp_path)
    result = doctor(world, SYNCD_ZENDESK__NETLOC="127.0.0.1:1")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a checklist, not a traceback
    shown = line(result.output, "✗", "zendesk")
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    assert fix.startswith("fix: cannot connect: check [zendesk] subdomain / netloc")
    assert "Zendesk could not be read" in line(result.output, "–", "zendesk groups")
    line(result.output, "✓", "salesforce")
    line(result.output, "✓", "graph")


def test_json_lists_every_check(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path, RULES.replace("folder: Transcripts", "folder: Transcrips"))
    result = doctor(world, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {tuple(check) for check in report["checks"]} == {
        ("name", "status", "ok", "detail", "fix")
    }
    assert [c for c in report["checks"] if not c["ok"]] == [{
        "name": "sharepoint folder 'Transcrips'", "status": "fail", "ok": False,
        "detail": "no SharePoint folder 'Transcrips'",
        "fix": f"change the rule at {world.rules_dir / 'support.yaml'}:18 or create the folder "
               "in SharePoint",
    }]
    assert {c["status"] for c in report["checks"]} == {"ok", "fail"}  # nothing left unchecked


def test_a_wrong_clock_and_an_end_user_api_account(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path)
    api_user = {"name": "syncd", "email": sandbox.info["zendesk"]["email"], "role": "end-user"}
    sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"users": [api_user]}})
    ahead = FrozenClock(datetime.now(UTC) + timedelta(minutes=5))
    checks = {c.name: c for c in examine(world.settings, ahead, world.rules_dir, {})}
    assert checks["clock"].status == "fail"
    assert re.match(r"this host's clock is 30[01] s ahead of ", checks["clock"].detail)
    assert "timedatectl set-ntp true" in checks["clock"].fix
    assert checks["zendesk permissions"].status == "fail"
    assert "is an end-user" in checks["zendesk permissions"].detail


def test_settings_and_rule_errors_name_where_they_are(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    world = setup(sandbox, tmp_path, RULES.replace("on: zendesk.ticket", "on: zendesk.tiket"))
    result = doctor(world, SYNCD_SYNCD__POLL_INTERVAL_S="-1")
    assert result.exit_code == 1
    assert "syncd.poll_interval_s (from SYNCD_SYNCD__POLL_INTERVAL_S)" in result.output
    assert [text[:10] for text in result.output.splitlines() if text[:1] in "✓✗–"] == [
        "✗ settings"
    ]  # nothing else can be checked without settings
    result = doctor(world)
    assert result.exit_code == 1
    assert f"{world.rules_dir / 'support.yaml'}:4:" in line(result.output, "✗", "rules")


def test_doctor_reports_the_jwt_audience(sandbox: SandboxServer, tmp_path: Path) -> None:
    """A Salesforce sandbox org refuses login.salesforce.com as the JWT `aud`: doctor shows
    the audience it sends and, when refused, which one to set."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    world = setup(sandbox, tmp_path)
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {
        "settings": {"jwt_public_key_pem": public, "org_kind": "sandbox"}}})
    credentials = tmp_path / "credentials"
    shutil.copytree(sandbox.directory / "credentials", credentials)  # type: ignore[operator]
    (credentials / "salesforce_private_key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    env = {"SYNCD_SECRETS__DIR": str(credentials), "SYNCD_SALESFORCE__USERNAME": "ann@example.com"}
    shown = line(doctor(world, **env).output, "✓", "salesforce sign-in")
    assert f"JWT bearer flow as ann@example.com, audience {sandbox.url}" in shown
    result = doctor(world, **env, SYNCD_SALESFORCE__JWT_AUDIENCE="https://login.salesforce.com")
    assert result.exit_code == 1
    shown = line(result.output, "✗", "salesforce sign-in")
    assert "audience https://login.salesforce.com: the org refused this audience" in shown
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    assert "https://test.salesforce.com (a sandbox org)" in fix


RELEASES = RULES + r"""
  - id: release-day
    on: sharepoint.item
    when: {list: Releases, fields.ReleaseDate: {exists: true}}
    do:
      - notify: {to: [ann@example.com], subject: Released, body: Out today}
"""


def test_a_rule_on_a_list_no_source_polls_fails_and_the_daemon_says_so_at_start(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = setup(sandbox, tmp_path, RELEASES)  # the sandbox's syncd.toml polls no list
    result = doctor(world)
    assert result.exit_code == 1, result.output
    found = line(result.output, "✗", "polled")
    assert "rule 'release-day' never fires: it is on sharepoint.item and [graph] lists is empty" \
        in result.output
    assert "support.yaml:" in found  # where the rule is
    assert "fix: name the lists in [graph] lists" in result.output

    polled = doctor(world, SYNCD_GRAPH__LISTS='["Releases"]')
    line(polled.output, "✓", "polled")

    rt = open_runtime(world.settings, AcceleratedClock(NOW, factor=1.0))
    with caplog.at_level(logging.WARNING), serving(rt):
        wait_for(lambda: any(r.getMessage() == "rule_unpolled" for r in caplog.records))
    (record,) = [r for r in caplog.records if r.getMessage() == "rule_unpolled"]
    assert record.syncd_fields["rule"] == "release-day"  # type: ignore[attr-defined]


def test_metrics_on_every_interface_is_a_warning(sandbox: SandboxServer, tmp_path: Path) -> None:
    world = setup(sandbox, tmp_path, RULES)
    result = doctor(world, "--json", SYNCD_METRICS__ENABLED="true", SYNCD_METRICS__HOST="0.0.0.0")
    (check,) = [c for c in json.loads(result.output)["checks"] if c["name"] == "metrics"]
    assert (check["status"], check["ok"]) == ("warn", True)
    assert "0.0.0.0" in check["detail"] and "127.0.0.1" in check["fix"]
    assert result.exit_code == 0  # a warning, not a failure


CATEGORY = r"""
  - id: billing-desk
    on: zendesk.ticket
    vars: {kinds: [billing, refnd]}
    when: {status: new, custom.category: {in: [billing, tecnical]}}
    do:
      - tag: [desk]
  - id: by-var
    on: zendesk.ticket
    when: {custom.category: "{{ vars.kinds }}", custom.kind: x}
    vars: {kinds: [billing, refnd]}
    do:
      - tag: [refund]
"""


def test_dropdown_values_the_tenant_does_not_offer_fail(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A value a Zendesk dropdown never takes never matches: doctor reads the field's options
    (`custom_field_options` of /api/v2/ticket_fields) and names the rule's file:line."""
    world = setup(sandbox, tmp_path, RULES + CATEGORY)
    sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"ticket_fields": [
        {"title": "Category", "type": "tagger",
         "options": [{"name": "Billing", "value": "billing"},
                     {"name": "Technical", "value": "technical"},
                     {"name": "Refund", "value": "refund"}]}]}})
    result = doctor(world)
    assert result.exit_code == 1, result.output
    rules = world.rules_dir / "support.yaml"
    lines = rules.read_text().splitlines()
    shown = line(result.output, "✗", "zendesk field custom.category value 'tecnical'")
    assert "custom.category is never 'tecnical' (did you mean 'technical'?): the Zendesk " \
        "dropdown Category offers billing, technical, refund" in shown
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    at = int(fix.split(f"{rules}:")[1].split()[0])
    assert "tecnical" in lines[at - 1] and "billing-desk" in "\n".join(lines[at - 5 : at])
    shown = line(result.output, "✗", "zendesk field custom.category value 'refnd'")
    assert "(did you mean 'refund'?)" in shown
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    assert "custom.category:" in lines[int(fix.split(f"{rules}:")[1].split()[0]) - 1]
    assert "custom.kind value" not in result.output  # 'x' is one of Kind's options
    good = RULES + CATEGORY.replace("tecnical", "technical").replace("refnd", "refund")
    (world.rules_dir / "support.yaml").write_text(textwrap.dedent(good))
    result = doctor(world)
    assert result.exit_code == 0, result.output
    assert "category" in line(result.output, "✓", "zendesk dropdown values")


STAGE = """
  - id: won-deal-welcome
    on: salesforce.opportunity
    when: {StageName: {became: Closed-Won}, Type: [New Customer, Existing Customer - Upgrade]}
    do:
      - create_task: {subject: Welcome, owner: ann@example.com}
"""


def test_picklist_values_the_org_does_not_offer_fail(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A value a Salesforce picklist never takes never matches either: doctor reads the field's
    `picklistValues` from the describe it already makes, and names the rule's file:line."""
    world = setup(sandbox, tmp_path, RULES + STAGE)
    result = doctor(world)
    assert result.exit_code == 1, result.output
    shown = line(result.output, "✗", "salesforce field Opportunity.StageName value 'Closed-Won'")
    assert "Opportunity.StageName is never 'Closed-Won' (did you mean 'Closed Won'?): the " \
        "Salesforce picklist Stage offers " in shown
    fix = result.output.splitlines()[result.output.splitlines().index(shown) + 1].strip()
    lines = (world.rules_dir / "support.yaml").read_text().splitlines()
    assert "Closed-Won" in lines[int(fix.split("support.yaml:")[1].split()[0]) - 1]
    assert "Object Manager" in fix
    good = RULES + STAGE.replace("Closed-Won", "Closed Won")
    (world.rules_dir / "support.yaml").write_text(textwrap.dedent(good))
    result = doctor(world)
    assert result.exit_code == 0, result.output
    assert "Opportunity.StageName" in line(result.output, "✓", "salesforce picklist values")
