"""`deliver: {within: CALENDAR}`: an action due outside the calendar's open hours is planned
for its next open minute (an instant rule's mail at 3 a.m. waits for 09:00); the key stays
the entry's, so nothing fires twice; an unknown calendar is a `check` error."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from test_engine import CALENDAR, Sim, build
from typer.testing import CliRunner

from syncd.cli import app

RULES = """
- id: new-case-mail
  on: zendesk.ticket
  when: {status: new}
  do:
    - notify: {to: [desk@example.com], subject: New case, body: "A new case",
               deliver: {within: support}}
    - tag: [seen]
"""


def test_a_mail_planned_at_night_waits_for_the_next_open_minute(tmp_path: Path) -> None:
    sim = Sim(build(tmp_path, RULES))
    saturday_3am = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)
    mail, tag = sim.see(saturday_3am, status="new")
    assert mail.due_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Monday 09:00 London (GMT)
    assert tag.due_at == saturday_3am  # no window: at once
    assert "deliver" not in mail.params
    tuesday_10am = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    sim.see(tuesday_10am, status="open")
    again, _ = sim.see(tuesday_10am, status="new")
    assert again.due_at == tuesday_10am  # open: not delayed


def test_an_unknown_delivery_calendar_is_a_check_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(CALENDAR + "rules:\n" + textwrap.indent(
        RULES.replace("within: support", "within: suport"), "  "))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "unknown calendar 'suport' (did you mean 'support'?)" in result.output
