"""Every text an action writes is a sandboxed Jinja2 template with `StrictUndefined`.

One environment for the whole process: a rule can neither reach Python internals
(`{{ ticket.__class__ }}` raises `SecurityError`) nor silently print an empty string for a
misspelt variable (`UndefinedError`). `check` reads the same parse trees statically
(`variables`, `attributes`) so those mistakes surface before a reload, not in a customer's mail.

Most templates only print record fields (`#{{ ticket.id }}`, `{{ 'hot' if ticket.priority ==
'urgent' else 'warm' }}`): those are also compiled to plain Python closures (`_fast`), which
give Jinja's exact output for that subset and hand anything else back to Jinja: a name not in
the context, an attribute that is not a key of a plain dict, a failed lookup or comparison. So
errors (unknown variables, sandbox violations) are always Jinja's own.

Named templates (`notify: {template: name}`) are files `templates/<name>.j2` next to the rule
files. If the file's first line is `Subject: ...`, that line is the subject template and the rest
(after one optional blank line) is the body; otherwise the whole file is the body.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    nodes,
    pass_context,
)
from jinja2.meta import find_undeclared_variables
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from syncd.errors import Skippable
from syncd.pathnames import DATA_SLASH
from syncd.rules.language.bounded import BoundedEnvironment, TooCostly, cost_problem, render_bounded

ENV = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                         finalize=lambda value: _finalize(value))
SUBJECT_PREFIX = "Subject:"
SUFFIX = ".j2"
# The rule calendar's timezone in a render context, under a key no template can name (a name
# cannot hold a dot): what the date filters render in.
TIMEZONE = "syncd.timezone"


def _local(value: Any, tz: tzinfo) -> datetime | date | None:
    """A date stays the day it is; an instant (aware, naive = UTC, or ISO text) is seen in
    `tz`. None for an empty value; TemplateProblem for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise TemplateProblem(f"not a date or an instant: {value!r}") from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(tz)
    if isinstance(value, date):
        return value
    raise TemplateProblem(f"not a date or an instant: {value!r}")


@pass_context
def localdate(context: Any, value: Any, format: str = "%Y-%m-%d") -> str:
    """`{{ item.fields.Arrival | localdate }}`: the day an instant falls on in the rule's
    calendar timezone (Graph stores a date-only column as the UTC instant of local midnight:
    1 June in London is 2026-05-31T23:00:00Z), or a date as it is. Empty for an empty value."""
    found = _local(value, context.get(TIMEZONE) or UTC)
    return "" if found is None else found.strftime(format)


@pass_context
def localtime(context: Any, value: Any, format: str = "%Y-%m-%d %H:%M %Z") -> str:
    """`{{ item.fields.MeetingStart | localtime }}`: an instant in the rule's calendar timezone
    (`2026-03-04 10:00 GMT`)."""
    found = _local(value, context.get(TIMEZONE) or UTC)
    if found is None:
        return ""
    if not isinstance(found, datetime):
        raise TemplateProblem(f"localtime needs an instant, not the date {value!r}")
    return found.strftime(format)


@pass_context
def localday(context: Any, value: Any) -> date | None:
    """`{% set today = now | localday %}`: the local day as a date, for date arithmetic
    (`today.weekday()`, `today.toordinal()`)."""
    found = _local(value, context.get(TIMEZONE) or UTC)
    return found.date() if isinstance(found, datetime) else found


ENV.filters["localdate"] = localdate
ENV.filters["localday"] = localday
ENV.filters["localtime"] = localtime


class TemplateProblem(Skippable, ValueError):
    """A template that does not parse or render; `lineno` is 1-based within the template."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno

    def __str__(self) -> str:
        where = f" (template line {self.lineno})" if self.lineno and self.lineno > 1 else ""
        return f"{self.message}{where}"


class Text(str):
    """A text that is a template (every text an action writes); syntax-checked when a pydantic
    model validates it, so the engine renders exactly these and never a regex or field name."""

    __slots__ = ()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls._validate, core_schema.str_schema())

    @classmethod
    def _validate(cls, value: str) -> Text:
        compile(value)  # TemplateProblem is a ValueError: pydantic reports it
        return cls(value)


class RecipientText(Text):
    """A mail recipient. Literal rule text may name `group:`, `role:`, `user:`, `requester`...;
    a template that reads the record (a list item's `HRPartner`) renders data, so its output
    is marked as an address and nothing else (`address:...`), which the executor validates as
    one address; one that reads only the rule (`{{ vars.leads }}`) is rule text."""

    __slots__ = ()


class PathText(Text):
    """A drive path (`ensure_folder`, `else_folder`): the `/` written in the template separate
    folders; a `/` or `\\` printed by an expression (an account named "A/B") is data and is
    marked (`pathnames.DATA_SLASH`), so the path check refuses it instead of nesting folders."""

    __slots__ = ()


_PATH: ContextVar[bool] = ContextVar("syncd_path_template", default=False)


def _finalize(value: Any) -> Any:
    """Every printed value, as Jinja prints it; in a path template, separators marked."""
    if _PATH.get() and isinstance(value, str | int | float):
        return str(value).replace("/", DATA_SLASH).replace("\\", DATA_SLASH)
    return value


ADDRESS = "address:"
RECIPIENT_KINDS = ("group:", "role:", "user:")  # what only literal rule text may name


RULE_NAMES = frozenset({"vars", "rule", "now", "step", "occurrence", "week", "date"})


def _from_data(text: str) -> bool:
    """A recipient template whose output may come from the record (it reads more than the
    rule's own text and its kind is not written out): an address and nothing else.
    `group:{{ rule.id }}` is rule text; `{{ item.fields.HRPartner }}` is data, and so is a
    `{{ vars.x }}` still here after loading: the loader writes plain vars into recipients
    (vars.py), so what is left is a var that renders the record."""
    return (isinstance(text, RecipientText) and not text.lstrip().startswith(RECIPIENT_KINDS)
            and bool(variables(text) - (RULE_NAMES - {"vars"})))


def render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` (an action's params) with every `Text` rendered; other values as they are."""
    if isinstance(value, Text):
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: render_tree(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_tree(v, context) for v in value]
    return value


def is_template(text: str) -> bool:
    """Plain text needs no Jinja at all: render and check it as-is."""
    return "{" in text


@lru_cache(maxsize=4096)
def _parse(text: str) -> nodes.Template:
    try:
        tree = ENV.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    problem = cost_problem(tree)
    if problem is not None:
        raise TemplateProblem(problem)
    return tree


@lru_cache(maxsize=4096)
def compile(text: str) -> Template:
    """The compiled template for `text`; raises TemplateProblem on a syntax error."""
    _parse(text)
    return ENV.from_string(text)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render `text`; an unknown variable or an unsafe access raises TemplateProblem."""
    if not is_template(text):
        return text
    marked = ADDRESS if _from_data(text) else ""
    if isinstance(text, PathText):  # Jinja only: its finalize marks what expressions print
        token = _PATH.set(True)
        try:
            return _render_jinja(text, context)
        finally:
            _PATH.reset(token)
    fast = _fast(text)
    if fast is not None:
        try:
            return marked + fast(context)
        except Exception:  # outside the fast subset: Jinja answers, or raises its own error
            pass
    return marked + _render_jinja(text, context)


def _render_jinja(text: str, context: Mapping[str, Any]) -> str:
    try:
        return render_bounded(compile(text), context)
    except TemplateProblem:
        raise
    except TooCostly as exc:
        raise TemplateProblem(str(exc)) from None
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {exc}", getattr(exc, "lineno", None)) from None


# ----------------------------------------------------------------------------- the fast path

Renderer = Callable[[Mapping[str, Any]], str]


class _Unsupported(Exception):
    """A template construct the fast path does not compile: Jinja renders the template."""


class _Slow(Exception):
    """A value the fast path does not decide (an `if` without `else` that is false...)."""


def _slow() -> Any:
    raise _Slow


# Attributes Jinja's getattr would find on a dict before its keys; names Jinja binds itself.
_DICT_ATTRIBUTES = frozenset(dir(dict))
_SPECIAL_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})
_OPERATORS = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gteq": ">=",
    "lt": "<",
    "lteq": "<=",
    "in": "in",
    "notin": "not in",
}


def renderer(text: str) -> Renderer | None:
    """`render(text, ·)` as generated Python for the fast subset (see `_fast`), else None.

    It raises where Jinja might answer differently: the caller then renders with `render`,
    which gives Jinja's answer or error."""
    fast = _fast(text) if is_template(text) and not isinstance(text, PathText) else None
    if fast is not None and _from_data(text):
        plain = fast
        return lambda context: ADDRESS + plain(context)
    return fast


@lru_cache(maxsize=4096)
def _fast(text: str) -> Renderer | None:
    """`text` as one generated Python function, or None when it uses more than the subset.

    The subset: text, `{{ expr }}` where expr is a constant, a context name, `.attr` or
    `[constant]` on a plain dict (an index on a list or tuple), `==` `!=` `<` `<=` `>` `>=` `in`
    `not in` (one operator), `and` `or` `not`, `~`, and `a if test else b`. Jinja compiles these
    to the same Python operations, with `str()` around each printed value; the function raises
    (and `render` asks Jinja) wherever Jinja would look further: undefined names, globals, keys
    a dict does not have, non-dict attributes (the sandbox's business).
    """
    try:
        compile(text)  # what Jinja cannot compile (its constant folding fails), Jinja reports
        tree = _parse(text)
        names: dict[str, Any] = {"_slow": _slow}
        parts: list[str] = []
        for output in tree.body:
            if not isinstance(output, nodes.Output):
                return None
            for child in output.nodes:
                if isinstance(child, nodes.TemplateData):
                    parts.append(_const(names, child.data))
                else:
                    parts.append(f"str({_expr(child, names)})")
    except Exception:  # _Unsupported, or anything Jinja itself raises on this text
        return None
    body = " + ".join(parts) if parts else "''"
    source = f"def render(c):\n    return {body}\n"
    exec(builtins.compile(source, f"<template {text[:40]!r}>", "exec"), names)
    return names["render"]  # type: ignore[no-any-return]


def _const(names: dict[str, Any], value: Any) -> str:
    name = f"_k{len(names)}"
    names[name] = value
    return name


def _expr(node: nodes.Node, names: dict[str, Any]) -> str:
    """A Python expression for `node`: KeyError, IndexError... or `_slow()` where Jinja would
    not simply index a dict, list or tuple."""
    if isinstance(node, nodes.Const):
        return _const(names, node.value)
    if isinstance(node, nodes.Name):
        if node.ctx != "load" or node.name in _SPECIAL_NAMES:
            raise _Unsupported(node.name)
        return f"c[{node.name!r}]"  # not in the context: a KeyError, Jinja decides
    if isinstance(node, nodes.Getattr):
        if node.attr in _DICT_ATTRIBUTES:
            raise _Unsupported(node.attr)
        owner, v = _expr(node.node, names), _var(names)
        return f"({v}[{node.attr!r}] if type({v} := {owner}) is dict else _slow())"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        owner, v, key = _expr(node.node, names), _var(names), _const(names, node.arg.value)
        plain = f"type({v} := {owner}) in (dict, list, tuple)"
        return f"({v}[{key}] if {plain} else _slow())"
    if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _OPERATORS:
        left, right = _expr(node.expr, names), _expr(node.ops[0].expr, names)
        return f"({left} {_OPERATORS[node.ops[0].op]} {right})"
    if isinstance(node, nodes.CondExpr):
        test, yes = _expr(node.test, names), _expr(node.expr1, names)
        no = _expr(node.expr2, names) if node.expr2 is not None else "_slow()"
        return f"({yes} if {test} else {no})"
    if isinstance(node, nodes.And):
        return f"({_expr(node.left, names)} and {_expr(node.right, names)})"
    if isinstance(node, nodes.Or):
        return f"({_expr(node.left, names)} or {_expr(node.right, names)})"
    if isinstance(node, nodes.Not):
        return f"(not {_expr(node.node, names)})"
    if isinstance(node, nodes.Concat):
        return "(" + " + ".join(f"str({_expr(n, names)})" for n in node.nodes) + ")"
    raise _Unsupported(type(node).__name__)


def _var(names: dict[str, Any]) -> str:
    names["_vars"] = count = names.get("_vars", 0) + 1
    return f"_v{count}"


def variables(text: str) -> frozenset[str]:
    """The top-level names `text` reads (Jinja's own globals such as `range` excluded)."""
    if not is_template(text):
        return frozenset()
    return frozenset(find_undeclared_variables(_parse(text)) - ENV.globals.keys())


def first_use(text: str, name: str) -> int:
    """The line of the first read of variable `name` in `text` (1 if it is never read)."""
    if not is_template(text):
        return 1
    found = (n.lineno for n in _parse(text).find_all(nodes.Name) if n.name == name)
    return next(found, 1)


def attributes(text: str) -> Iterator[tuple[str | None, str, int]]:
    """`(variable, attribute, lineno)` for each `x.attr` or `x['attr']` that `text` reads;
    `variable` is the name when `x` is a plain variable, else None (`a.b.c` reads `c` of an
    expression)."""
    if not is_template(text):
        return
    for node in _parse(text).find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node.name if isinstance(node.node, nodes.Name) else None
        if isinstance(node, nodes.Getattr):
            yield target, node.attr, node.lineno
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield target, node.arg.value, node.lineno


def context_names(
    record_var: str, *, timeline: bool = False, pattern: bool = False, repeat: bool = False
) -> frozenset[str]:
    """The variables a template may read; the engine's render context must provide them.

    Always: the record under its kind's short name and as `record`, `previous` (the version
    observed before, `{}` when none), `rule` (id, description), `vars`, `now`. Timeline
    steps add `step` (id); repeating and pattern steps add `occurrence`
    (0-based); pattern steps add `week` (1-based week since the anchor) and `date`.
    """
    names = {record_var, "record", "previous", "rule", "vars", "now"}
    if timeline:
        names.add("step")
    if repeat or pattern:
        names.add("occurrence")
    if pattern:
        names |= {"week", "date"}
    return frozenset(names)


RULE_ATTRIBUTES = frozenset({"id", "description"})
STEP_ATTRIBUTES = frozenset({"id"})


@dataclass(frozen=True)
class NamedTemplate:
    """A `templates/<name>.j2` file split into subject and body."""

    name: str
    path: Path
    subject: str | None
    body: str
    body_line: int  # 1-based line of the body's first line in the file


def load_named(path: Path) -> NamedTemplate:
    """Read and syntax-check one named template; raises TemplateProblem with file lines."""
    text = path.read_text(encoding="utf-8")
    subject: str | None = None
    body, body_line = text, 1
    first, _, rest = text.partition("\n")
    if first.startswith(SUBJECT_PREFIX):
        subject = first.removeprefix(SUBJECT_PREFIX).strip()
        body, body_line = rest, 2
        if body.startswith("\n"):
            body, body_line = body[1:], 3
    if subject is not None:
        _check_syntax(subject, 1)
    _check_syntax(body, body_line)
    return NamedTemplate(path.name.removesuffix(SUFFIX), path, subject, body, body_line)


def _check_syntax(text: str, first_line: int) -> None:
    try:
        compile(text)
    except TemplateProblem as exc:
        raise TemplateProblem(exc.message, first_line + (exc.lineno or 1) - 1) from None
