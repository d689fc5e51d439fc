"""An action's params rendered for one record: templates, anchored offsets, JSON-safe values."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.durations import Offset
from syncd.rules import conditions as cond
from syncd.rules import templates

if TYPE_CHECKING:
    from syncd.rules.engine.compiled import _Action, _Rule
    from syncd.rules.engine.semantics import _Due, _Run

# ----------------------------------------------------------------------------- rendering


_ANCHORED = frozenset({"due", "start"})  # create_task.due, create_event.start
# how a param of `_Action.plan` is made (see `_plan`)
_CONST, _TEXT, _TEXTS, _TREE, _SHIFT = range(5)


class _Renderer:
    """Renders one rule's actions for one record, building the template context once."""

    __slots__ = ("_context", "ctx", "rule", "run", "step")

    def __init__(self, run: _Run, rule: _Rule, ctx: cond.Context, step: _Due | None) -> None:
        self.run = run
        self.rule = rule
        self.ctx = ctx
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
        """The action's params rendered, offsets resolved against `base`, JSON-safe."""
        if action.fixed is not None:
            return dict(action.fixed)  # nested values are shared: treat params as read-only
        if action.plan is None:
            return self.generic(action, base)
        out: dict[str, Any] = {}
        context = self._context
        for name, how, what in action.plan:
            if how == _CONST:
                out[name] = what  # nested values are shared, as in `fixed`
            elif how == _SHIFT:
                out[name] = _param(name, what, base, self.rule.math)
            else:
                if context is None:
                    context = self.context()
                if how == _TEXT:
                    out[name] = _render(what, context)
                elif how == _TEXTS:
                    out[name] = [p if type(p) is str else _render(p, context) for p in what]
                else:
                    rendered = templates.render_tree(what, context)
                    out[name] = _param(name, rendered, base, self.rule.math)
        return out

    def generic(self, action: _Action, base: datetime) -> dict[str, Any]:
        """`params` the long way: render the whole tree, fill a named template, convert."""
        params = action.params
        if action.templated:
            params = templates.render_tree(params, self.context())
        if action.kind == "notify" and params.get("template"):
            params = self.named(params)
        return {k: _param(k, v, base, self.rule.math) for k, v in params.items()}

    def named(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fill subject and body from the named template (an explicit subject wins)."""
        finder = getattr(self.run.engine.ruleset, "template", None)
        named = finder(self.rule.id, params["template"]) if finder else None
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


def _render(template: tuple[str, templates.Renderer | None], context: dict[str, Any]) -> str:
    """`templates.render(text, context)`, through the text's generated renderer if it has one
    (which raises wherever it might differ from Jinja: then Jinja renders, or reports)."""
    text, fast = template
    if fast is not None:
        try:
            return fast(context)
        except Exception:  # outside the fast subset
            pass
    return templates.render(text, context)


def _param(name: str, value: Any, base: datetime | None, math: cond.TimeMath) -> Any:
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
