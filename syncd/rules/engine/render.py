"""An action's params rendered for one record: templates, anchored offsets, JSON-safe values.

The plain way, Jinja over the whole params tree; fast/plans.py precomputes what it can."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.businesstime.durations import Offset
from syncd.businesstime.spans import TimeMath
from syncd.rules import conditions as cond
from syncd.rules.language import templates

if TYPE_CHECKING:
    from syncd.rules.engine.compiled import _Action, _Rule
    from syncd.rules.engine.semantics import _Due, _Run

_ANCHORED = frozenset({"due", "start"})  # create_task.due, create_event.start


class _Renderer:
    """Renders one rule's actions for one record, building the template context once."""

    __slots__ = ("_context", "rule", "run", "step")

    def __init__(self, run: _Run, rule: _Rule, step: _Due | None) -> None:
        self.run = run
        self.rule = rule
        self.step = step
        self._context: dict[str, Any] | None = None

    def context(self) -> dict[str, Any]:
        if self._context is None:
            fields = self.run.fields
            context: dict[str, Any] = {
                self.rule.record_var: fields,
                "record": fields,
                "previous": self.run.previous or {},
                "rule": {"id": self.rule.id, "description": self.rule.description},
                "now": self.run.now,
                templates.TIMEZONE: self.rule.math.tz,
            }
            if self.step is not None:
                context["step"] = {"id": self.step.step.id}
                context["occurrence"] = self.step.occurrence
                if self.step.day is not None:
                    context["week"] = self.step.week
                    context["date"] = self.step.day
            variables = self.rule.vars
            context["vars"] = (
                {k: templates.render_tree(v, context) for k, v in variables.items()}
                if variables
                else {}
            )
            self._context = context
        return self._context

    def params(self, action: _Action, base: datetime) -> dict[str, Any]:
        """The action's params rendered, offsets resolved against `base`, JSON-safe: the whole
        tree rendered, a named template filled, each value converted (`_param`)."""
        params = action.params
        if action.templated:
            params = templates.render_tree(params, self.context())
        if action.kind == "notify" and params.get("template"):
            params = self.named(params)
        return {k: _param(k, v, base, self.rule.math) for k, v in params.items()}

    def named(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fill subject and body from the named template (an explicit subject wins)."""
        finder = self.run.engine.ruleset.template
        named = finder(self.rule.id, params["template"])
        if named is None:
            raise templates.TemplateProblem(f"no template named {params['template']!r}")
        filled = dict(params)
        if named.subject is not None and not params.get("subject"):
            filled["subject"] = templates.render(named.subject, self.context())
        filled["body"] = templates.render(named.body, self.context())
        return filled


_RECORD_ID = re.compile(r"[1-9][0-9]*")


def _record_id(rendered: Any) -> str | None:
    """A linked record's id as its canonical text; None for anything else (blank, 'None', 0,
    '12a', '#12'), which is a rule error rather than a write to a wrong record."""
    text = str(rendered).strip()
    return text if _RECORD_ID.fullmatch(text) else None


def _param(name: str, value: Any, base: datetime | None, math: TimeMath) -> Any:
    """One rendered param as the intent carries it: an anchored offset (`due`, `start`) as the
    local ISO instant from `base`, other offsets and patterns as their text, JSON-safe."""
    if isinstance(value, Offset):
        if name in _ANCHORED:  # an instant relative to the anchor
            assert base is not None
            return math.shift(base, value).astimezone(math.tz).isoformat()
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, templates.Text):
        return str(value)
    return cond.json_safe(value)
