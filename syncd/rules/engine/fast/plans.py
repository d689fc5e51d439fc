"""Precomputed render plans: what an action's params need from the record, worked out once.

A param with no template is made once (an action with no template at all: `fixed`); a text in
the usual subset renders through its generated Python (`templates.renderer`); the rest (named
templates) the plain way. And `make_intent`: Intent built without a setattr per field."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.businesstime.durations import Offset
from syncd.businesstime.spans import UTC_MATH
from syncd.model import Intent
from syncd.rules import conditions as cond
from syncd.rules.engine.compiled import _Action, _has_text
from syncd.rules.engine.memory import _set
from syncd.rules.engine.render import _ANCHORED, _param, _Renderer
from syncd.rules.language import templates

# how a param of `_Planned.plan` is made (see `_plan`)
_CONST, _TEXT, _TEXTS, _TREE, _SHIFT = range(5)


@dataclass(frozen=True)
class _Planned(_Action):
    """An action with its render plan."""

    fixed: dict[str, Any] | None = None  # the final params when nothing depends on the record
    plan: tuple[tuple[str, int, Any], ...] | None = None  # (name, how, what) per param; None: plain


def planned(action: _Action) -> _Planned:
    params = action.params
    fixed = None
    if not action.templated and not _ANCHORED & params.keys() and not params.get("template"):
        fixed = {k: _constant(v) for k, v in params.items()}
    plan = None if params.get("template") else tuple(_plan(k, v) for k, v in params.items())
    made = {f.name: getattr(action, f.name) for f in dataclasses.fields(_Action)}
    return _Planned(**made, fixed=fixed, plan=plan)


class _PlannedRenderer(_Renderer):
    """`_Renderer`, following each action's plan."""

    __slots__ = ()

    def params(self, action: _Planned, base: datetime) -> dict[str, Any]:  # type: ignore[override]
        """`_Renderer.params`, by the action's plan: fixed params copied, constants as they
        are, texts through their generated renderers."""
        if action.fixed is not None:
            return dict(action.fixed)  # nested values are shared: treat params as read-only
        if action.plan is None:
            return _Renderer.params(self, action, base)
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


def _plan(name: str, value: Any) -> tuple[str, int, Any]:
    """How `_Renderer.params` makes one param: what `_param(name, rendered...)` gives, with
    everything that does not depend on the record computed here, once."""
    if isinstance(value, Offset) and name in _ANCHORED:
        return name, _SHIFT, value
    if isinstance(value, templates.Text) and templates.is_template(value):
        return name, _TEXT, (value, templates.renderer(value))
    if not _has_text(value):
        return name, _CONST, _param(name, value, None, UTC_MATH)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return (
            name,
            _TEXTS,
            tuple((v, templates.renderer(v)) if _has_text(v) else str(v) for v in value),
        )
    return name, _TREE, value


def _constant(value: Any) -> Any:
    """A param that needs no rendering, JSON-safe (as `_param` would make it)."""
    if isinstance(value, Offset):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, Mapping):
        return {k: _constant(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_constant(v) for v in value]
    return cond.json_safe(str(value) if isinstance(value, templates.Text) else value)


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


def _maker(cls: type) -> Callable[..., Any]:
    """`cls(*all_fields)` for a plain frozen dataclass (model.Intent), without the generated
    __init__'s setattr call per field: the instance's __dict__ is set at once. The class itself
    whenever that would not be the same (slots, __post_init__, fields outside __init__)."""
    fields = dataclasses.fields(cls)
    plain = (
        "__slots__" not in cls.__dict__
        and not hasattr(cls, "__post_init__")
        and all(f.init and f.name.isidentifier() for f in fields)
    )
    if not plain:
        return cls
    names = [f.name for f in fields]
    source = (
        f"def make({', '.join(names)}):\n"
        f"    made = _new(_cls)\n"
        f"    _set(made, '__dict__', {{{', '.join(f'{n!r}: {n}' for n in names)}}})\n"
        f"    return made\n"
    )
    scope: dict[str, Any] = {"_new": object.__new__, "_set": _set, "_cls": cls}
    exec(source, scope)
    return scope["make"]  # type: ignore[no-any-return]


make_intent = _maker(Intent)  # Intent(key, rule_id, record, action, params, due_at, step, ...)
