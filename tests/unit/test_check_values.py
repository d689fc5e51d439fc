"""`syncd check` refuses condition values a field can never hold and recipients that are no
mail address, at file:line:col, before a rule silently never matches or mails nobody."""

from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner

from syncd.cli import app

runner = CliRunner()


def check(tmp_path: Path, rules: str) -> list[str]:
    (tmp_path / "r.yaml").write_text(textwrap.dedent(rules))
    result = runner.invoke(app, ["check", str(tmp_path / "r.yaml")])
    return result.output.splitlines()


def test_status_priority_and_type_values_are_zendesks(tmp_path: Path) -> None:
    out = check(tmp_path, """
        rules:
          - id: r
            on: zendesk.ticket
            when: {status: [new, opne], priority: {ne: hihg}, type: incident}
            do: [{tag: [x]}]
        """)
    name = tmp_path / "r.yaml"
    assert out[:2] == [
        f"{name}:5:26: error: status is never 'opne' (did you mean 'open'?): it is one of new, "
        "open, pending, hold, solved, closed",
        f"{name}:5:48: error: priority is never 'hihg' (did you mean 'high'?): it is one of low, "
        "normal, high, urgent",
    ]
    assert out[-1] == "failed: 2 errors, 0 warnings"


def test_yaml_1_1_booleans_numbers_and_dates(tmp_path: Path) -> None:
    out = check(tmp_path, """
        rules:
          - id: ladder
            on: zendesk.ticket
            when: {status: open, group_id: "42", created_at: {ne: soon}}
            since: created_at
            until: {agent_touched: yes}
            steps:
              - after: 1h
                do: [{tag: [late]}]
        """)
    text = "\n".join(out)
    assert "agent_touched is true or false, never 'yes' (YAML 1.2 reads yes/no/on/off as " \
        "text: write true or false)" in text
    assert "group_id is a number, never the text '42'" in text
    assert "created_at is a date and time, never 'soon'" in text
    assert out[-1] == "failed: 3 errors, 0 warnings"


def test_good_values_pass(tmp_path: Path) -> None:
    out = check(tmp_path, """
        rules:
          - id: r
            on: zendesk.ticket
            when: {status: {in: [new, open]}, priority: null, agent_touched: false,
                   group_id: 42, created_at: {ne: "2026-03-02T09:00:00Z"}}
            do: [{notify: {to: [ann@example.com, "user:bob@example.com"], subject: s, body: b}}]
        """)
    assert out[-1].startswith("ok: 1 rule"), out


def test_recipients_must_be_mail_addresses(tmp_path: Path) -> None:
    out = check(tmp_path, """
        rules:
          - id: r
            on: zendesk.ticket
            when: {status: new}
            do:
              - notify: {to: ["bob@", "al ice@x.com"], cc: ["user:a@b@c"], subject: s, body: b}
        """)
    text = "\n".join(out)
    assert "recipient 'bob@' is not a mail address: There must be something after the @-sign." \
        in text
    assert "recipient 'al ice@x.com' is not a mail address" in text
    assert "recipient 'user:a@b@c' is not a mail address" in text
    assert out[-1] == "failed: 3 errors, 0 warnings"
