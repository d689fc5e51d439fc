"""Sandboxed, strict templates: what `check` reads statically and what the engine renders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.rules.language import templates
from syncd.rules.language.templates import TemplateProblem, Text


def test_render_and_plain_text() -> None:
    assert templates.render("#{{ ticket.id }} {{ vars.team }}",
                            {"ticket": {"id": 7}, "vars": {"team": "L1"}}) == "#7 L1"
    assert templates.render("no {braces} here", {}) == "no {braces} here"


def test_unknown_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateProblem, match="'nope' is undefined"):
        templates.render("Hello {{ nope }}", {})
    with pytest.raises(TemplateProblem, match="has no attribute 'missing'"):
        templates.render("{{ ticket.missing }}", {"ticket": {}})


def test_sandbox_blocks_python_internals() -> None:
    with pytest.raises(TemplateProblem, match="unsafe"):
        templates.render("{{ ticket.__class__.__mro__ }}", {"ticket": {}})
    with pytest.raises(TemplateProblem, match="unsafe"):
        templates.render("{{ ''.__class__ }}", {})


def test_syntax_errors_carry_the_template_line() -> None:
    with pytest.raises(TemplateProblem) as caught:
        templates.compile("line one\n{{ oops }")
    assert caught.value.lineno == 2
    assert str(caught.value) == "template syntax error: unexpected '}' (template line 2)"


def test_compile_is_cached() -> None:
    assert templates.compile("{{ a }}") is templates.compile("{{ a }}")


def test_static_reads() -> None:
    text = "{% for t in ticket.tags %}{{ t }}{% endfor %}\n{{ record['subject'] }} {{ range(2) }}"
    assert templates.variables(text) == {"ticket", "record"}
    assert list(templates.attributes(text)) == [("ticket", "tags", 1), ("record", "subject", 2)]
    assert templates.first_use(text, "record") == 2


def test_context_names() -> None:
    assert templates.context_names("ticket") == {
        "ticket", "record", "previous", "rule", "vars", "now"}
    assert templates.context_names("opportunity", timeline=True, pattern=True) == {
        "opportunity", "record", "previous", "rule", "vars", "now", "step", "occurrence", "week",
        "date",
    }
    assert "occurrence" in templates.context_names("account", timeline=True, repeat=True)


def test_render_tree_renders_only_templates() -> None:
    params = {"to": [Text("user:{{ ticket.id }}")], "ticket_from": "#(\\d{2,})", "n": 2}
    assert templates.render_tree(params, {"ticket": {"id": 5}}) == {
        "to": ["user:5"], "ticket_from": "#(\\d{2,})", "n": 2,
    }


def test_named_template_subject_and_body(tmp_path: Path) -> None:
    path = tmp_path / "welcome.j2"
    path.write_text("Subject: Hi {{ ticket.id }}\n\nBody {{ ticket.subject }}\n")
    named = templates.load_named(path)
    assert (named.name, named.subject, named.body, named.body_line) == (
        "welcome", "Hi {{ ticket.id }}", "Body {{ ticket.subject }}\n", 3,
    )
    path.write_text("Only a body\n")
    assert templates.load_named(path).subject is None


def test_named_template_errors_point_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.j2"
    path.write_text("Subject: ok\n\nfine\n{% if %}\n")
    with pytest.raises(TemplateProblem) as caught:
        templates.load_named(path)
    assert caught.value.lineno == 4


def test_date_filters_render_in_the_rule_calendar_timezone() -> None:
    london = {templates.TIMEZONE: ZoneInfo("Europe/London")}
    # Graph's date-only column: 1 June in London is stored as 31 May 23:00 UTC
    assert templates.render("{{ d | localdate }}", {**london, "d": "2026-05-31T23:00:00Z"}) == (
        "2026-06-01")
    assert templates.render("{{ d | localdate('%-d %B') }}", {**london, "d": "2026-06-01"}) == (
        "1 June")
    summer = datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    assert templates.render("{{ t | localtime }}", {**london, "t": summer}) == (
        "2026-07-01 09:30 BST")
    assert templates.render("{{ t | localdate }}", {"t": "2026-05-31T23:00:00Z"}) == "2026-05-31"
    assert templates.render("[{{ t | localdate }}]", {**london, "t": None}) == "[]"
    late = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)  # already Tuesday in London
    assert templates.render("{{ (t | localday).weekday() }}", {**london, "t": late}) == "1"
    with pytest.raises(templates.TemplateProblem, match="not a date"):
        templates.render("{{ t | localdate }}", {**london, "t": "soon"})
