"""One Salesforce object whose query Salesforce refuses does not stop the others: the
daemon's cycle applies what the other objects read and reports the refused one."""

from __future__ import annotations

from pathlib import Path

from e2e_world import NOW, World

from syncd.sandbox.server import SandboxServer
from syncd.settings import load_settings

RULES = """
rules:
  - id: new-account
    on: salesforce.account
    when: {Name: Acme}
    do: [{notify: {to: [user:ann@example.com], subject: "Account", body: "{{ account.Name }}"}}]
  - id: tasks
    on: salesforce.task
    when: {Subject: Never}
    do: [{notify: {to: [user:ann@example.com], subject: "Task", body: "{{ task.Subject }}"}}]
"""


def test_a_refused_task_query_leaves_accounts_polled(sandbox: SandboxServer,
                                                     tmp_path: Path) -> None:
    sandbox.control("POST", "/_sandbox/seed", {"clock": NOW.isoformat(), "salesforce": {
        "accounts": [{"Name": "Acme"}], "tasks": [{"Subject": "Call"}]}})
    world = World(sandbox, tmp_path, RULES)
    world.settings = load_settings(world.config, env={  # a path Salesforce refuses
        **world.env, "SYNCD_SALESFORCE__PARENT_FIELDS": '["Task.Nope.Name"]'})
    report = world.cycle()
    assert [m["subject"] for m in world.mail()] == ["Account"]  # Acme was read and acted on
    assert any("salesforce" in f and "INVALID_FIELD" in f and "Task" in f
               for f in report.failures), report.failures
    assert "polled: Account" in report.failures[0]
