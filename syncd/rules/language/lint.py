"""Checks what pydantic cannot see in one rule: its record kind, the calendars and named
templates of the whole rule set, and the meaning of its steps and conditions.

Lint works on the rule's parts (each condition, step timing and action validated on its own),
not on the whole `Rule`, so a typo in one action never hides a bad template in another: `check`
reports everything in one run. Findings carry a path inside the rule's YAML mapping; the
loader positions them and drops any rule with an error. Warnings flag rules that are legal but
almost certainly not what the admin meant (a rule that can never fire, a shadowed step).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, TypeAdapter, ValidationError

from syncd.businesstime.durations import Offset
from syncd.businesstime.instants import as_instant
from syncd.rules.kinds import ACTION_KINDS, ACTIONS, LINK_KINDS
from syncd.rules.language import templates
from syncd.rules.language.actions import (
    LINK,
    Action,
    ActionField,
    CreateEvent,
    CreateTask,
    FileTranscript,
    Notify,
)
from syncd.rules.language.base import Path_
from syncd.rules.language.conditions import (
    AllOf,
    AnyOf,
    Condition,
    ConditionField,
    FieldCondition,
    Not,
)
from syncd.rules.language.diagnostics import Severity, did_you_mean
from syncd.rules.language.rule import shape_problems
from syncd.rules.language.templates import NamedTemplate, Text
from syncd.rules.language.timeline import TIMING_KEYS, Timing, default_step_id
from syncd.vendors.declare import RecordKind, Values

RECIPIENT_PREFIXES = ("group:", "user:", "role:")
SYMBOLIC_RECIPIENTS = ("assignee", "requester", "owner")
CONDITION_KEYS: tuple[Path_, ...] = (("when",), ("scope",), ("until",), ("since", "became"),
                                     ("defer", "when"), ("canary", "scope"))
EQUALITY_OPS = ("eq", "ne", "in", "not_in", "became")  # the operators that compare values
YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})
_ACTION: TypeAdapter[Action] = TypeAdapter(ActionField)
_CONDITION: TypeAdapter[Condition] = TypeAdapter(ConditionField)


@dataclass(frozen=True)
class Finding:
    path: Path_  # inside the rule's YAML mapping
    message: str
    severity: Severity = "error"
    at_key: bool = False


@dataclass(frozen=True)
class Env:
    """What a rule is checked against beyond itself."""

    calendars: frozenset[str]
    templates: Mapping[str, NamedTemplate]  # named templates next to the rule's file
    template_dir: str
    broken_templates: frozenset[str]  # names whose file has an error (reported there)
    calendar: str | None  # the rule's effective calendar (its own, else the file default)


def unknown_calendar(name: str, known: Iterable[str]) -> str:
    return f"unknown calendar {name!r}{did_you_mean(name, known)}"


@dataclass(frozen=True)
class Parts:
    """The parts of one rule that validate on their own."""

    rule_id: str
    kind: RecordKind
    vars: frozenset[str]
    steps: list[tuple[int, str, Timing]]  # (index, step id, timing)
    actions: list[tuple[Path_, frozenset[str], Action]]  # (path, template names, action)
    conditions: list[tuple[Path_, Condition]]


def lint(node: Mapping[str, Any], kind: RecordKind, env: Env) -> Iterator[Finding]:
    """Every finding for one rule; `node` is its YAML mapping as plain Python values."""
    parts = _parts(node, kind)
    if node.get("enabled") is False:
        yield Finding(("enabled",), f"rule {parts.rule_id!r} is disabled and will not run",
                      "warning")
    calendar = node.get("calendar")
    if isinstance(calendar, str) and calendar not in env.calendars:
        yield Finding(("calendar",), unknown_calendar(calendar, env.calendars))
    yield from _shape(node)
    yield from _fields(node, kind)
    yield from _values(node, kind)
    yield from _business_needs_calendar(parts, env)
    yield from _steps(parts)
    yield from _never_fires(parts)
    for path, names, action in parts.actions:
        yield from _action(parts, env, path, names, action)
    names = templates.context_names(kind.var) - {"vars"}
    raw_vars = node.get("vars")
    for name, value in raw_vars.items() if isinstance(raw_vars, Mapping) else ():
        for i, text in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(text, str) and _valid(Text._validate, text) is not None:
                sub = (i,) if isinstance(value, list) else ()
                yield from _template(text, names, parts, ("vars", name, *sub))


def _shape(node: Mapping[str, Any]) -> Iterator[Finding]:
    present = {key for key in ("do", "steps", "since", "until", "defer") if node.get(key)}
    raw_steps = node.get("steps")
    ids = [
        default_step_id(step, n).get("id")
        for n, step in enumerate(raw_steps if isinstance(raw_steps, list) else [], 1)
        if isinstance(step, Mapping)
    ]
    from_step = _get(node, ("defer", "from_step"))
    problems = shape_problems(present, [i for i in ids if isinstance(i, str)],
                              from_step if isinstance(from_step, str) else None)
    for path, message, at_key in problems:
        yield Finding(path, message, at_key=at_key)


def _valid(validate: Any, raw: Any) -> Any:
    """The validated value, or None: errors are reported by the whole-rule validation."""
    try:
        return validate(raw)
    except (ValidationError, ValueError):
        return None


def _parts(node: Mapping[str, Any], kind: RecordKind) -> Parts:
    steps, actions, conditions = [], [], []
    for path in CONDITION_KEYS:
        raw = _get(node, path)
        condition = _valid(_CONDITION.validate_python, raw) if raw is not None else None
        if condition is not None:
            conditions.append((path, condition))
    raw_steps = node.get("steps")
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if not isinstance(raw, Mapping):
            continue
        timing = {key: raw[key] for key in TIMING_KEYS if key in raw}
        valid = _valid(Timing.model_validate, timing)
        step_id = default_step_id(dict(raw), index + 1).get("id")
        if valid is not None and isinstance(step_id, str):
            steps.append((index, step_id, valid))
        names = templates.context_names(
            kind.var, timeline=True, pattern="every" in raw, repeat="repeat" in raw
        )
        actions += _valid_actions(raw, ("steps", index), names)
    actions += _valid_actions(node, (), templates.context_names(kind.var))
    raw_vars = node.get("vars")
    return Parts(
        rule_id=str(node.get("id")),
        kind=kind,
        vars=frozenset(raw_vars) if isinstance(raw_vars, Mapping) else frozenset(),
        steps=steps,
        actions=actions,
        conditions=conditions,
    )


def _valid_actions(
    owner: Mapping[str, Any], base: Path_, names: frozenset[str]
) -> Iterator[tuple[Path_, frozenset[str], Action]]:
    raw = owner.get("do")
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        action = _valid(_ACTION.validate_python, item)
        if action is not None:
            yield (*base, "do", i, action.kind), names, action


def _get(node: Any, path: Path_) -> Any:
    for key in path:
        if isinstance(node, Mapping):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


# --- fields and actions against the record kind -------------------------------------------


def _fields(node: Mapping[str, Any], kind: RecordKind) -> Iterator[Finding]:
    """Every field a rule names must exist on its record kind; every action must suit it."""
    named: list[tuple[Path_, Any]] = []
    for base in CONDITION_KEYS:
        raw = _get(node, base)
        if isinstance(raw, Mapping):
            named += [(path, name) for path, name, _ in condition_fields(raw, base)]
    named += [(path, _get(node, path)) for path in (("since",), ("defer", "to"))]
    for path, name in raw_actions(node):
        body = _get(node, path)
        if name in ACTION_KINDS and name not in ACTIONS[kind.name]:
            yield Finding(path, f"action {name!r} cannot act on {kind.name} (it works on "
                          f"{', '.join(ACTION_KINDS[name])})", at_key=True)
        linked = isinstance(body, Mapping) and LINK in body
        if linked and kind.name not in LINK_KINDS:
            yield Finding((*path, LINK), f"'{LINK}' (writing to another record) works only in "
                          f"rules on {', '.join(LINK_KINDS)} for now, not on {kind.name}",
                          at_key=True)
        if name == "set" and isinstance(body, Mapping):
            fields, base = (body.get("fields"), (*path, "fields")) if linked else (body, path)
            if isinstance(fields, Mapping):
                named += [((*base, key), key) for key in fields]
        if name == "assign":
            named.append(((*path, "mapping", "field"), _get(body, ("mapping", "field"))))
        where = _get(body, ("queue", "where")) if name == "dispatch" else None
        if isinstance(where, Mapping):
            named += [(p, n) for p, n, _ in condition_fields(where, (*path, "queue", "where"))]
    for path, field in named:
        if isinstance(field, str) and not kind.has_field(field):
            at_key = path[-1] not in ("since", "to", "field")
            yield Finding(path, f"unknown field {field!r} for {kind.name}"
                          f"{did_you_mean(field, kind.all_fields)}", at_key=at_key)


def _values(node: Mapping[str, Any], kind: RecordKind) -> Iterator[Finding]:
    """A compared value the field can never hold: a status that is no status, text compared
    with a true/false field, a number or instant written as something else."""
    for base in CONDITION_KEYS:
        raw = _get(node, base)
        if not isinstance(raw, Mapping):
            continue
        for path, name, test in condition_fields(raw, base):
            spec = kind.values.get(name)
            if spec is None:
                continue
            for at, value in compared_values(test, path):
                problem = _value_problem(value, spec)
                if problem:
                    yield Finding(at, f"{name} {problem}")


def _value_problem(value: Any, spec: Values) -> str | None:
    if value is None or (isinstance(value, str) and templates.is_template(value)):
        return None
    shown = repr(value)
    if spec.type == "bool" and not isinstance(value, bool):
        hint = (" (YAML 1.2 reads yes/no/on/off as text: write true or false)"
                if str(value).lower() in YAML11_BOOLEANS else "")
        return f"is true or false, never {shown}{hint}"
    if spec.type == "number" and (isinstance(value, bool)
                                  or not isinstance(value, int | float | Decimal)):
        return f"is a number, never the text {shown} (write it without quotes)"
    if spec.type == "instant" and not (isinstance(value, date) or (
            isinstance(value, str) and as_instant(value) is not None)):
        return f"is a date and time, never {shown} (write an ISO date: 2026-03-02T09:00:00Z)"
    if spec.type == "choice" and value not in spec.choices:
        return (f"is never {shown}{did_you_mean(str(value), spec.choices)}: it is one of "
                f"{', '.join(spec.choices)}")
    return None


def compared_values(test: Any, path: Path_) -> Iterator[tuple[Path_, Any]]:
    """The values a field test compares with for (in)equality, with their paths: a bare scalar
    or list, or eq/ne/in/not_in/became."""
    if isinstance(test, list):
        for i, value in enumerate(test):
            yield from compared_values(value, (*path, i))
    elif isinstance(test, Mapping):
        for op in EQUALITY_OPS:
            if op in test:
                yield from compared_values(test[op], (*path, op))
    elif test is not None:
        yield path, test


def raw_actions(node: Mapping[str, Any]) -> Iterator[tuple[Path_, str]]:
    """(path of the action's body, action name) for each one-key action mapping in the YAML."""
    steps = node.get("steps")
    lists: list[Path_] = [("do",)]
    lists += [("steps", i, "do") for i in range(len(steps))] if isinstance(steps, list) else []
    for base in lists:
        actions = _get(node, base)
        for i, action in enumerate(actions if isinstance(actions, list) else []):
            if isinstance(action, Mapping) and len(action) == 1:
                name = str(next(iter(action)))
                yield (*base, i, name), name


def condition_fields(raw: Mapping[str, Any], path: Path_) -> Iterator[tuple[Path_, str, Any]]:
    """(path, field, test) for each field a YAML condition tests, through all/any/not."""
    for key, value in raw.items():
        if key == "not" and isinstance(value, Mapping):
            yield from condition_fields(value, (*path, key))
        elif key in ("all", "any") and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    yield from condition_fields(item, (*path, key, i))
        elif key not in ("all", "any", "not"):
            yield (*path, key), str(key), value


# --- business time ------------------------------------------------------------------------


def _business_needs_calendar(parts: Parts, env: Env) -> Iterator[Finding]:
    if env.calendar:
        return
    for path, offset in _offsets(parts):
        if offset.is_business:
            yield Finding(path, f"'{offset}' counts business time but the rule has no calendar "
                          "(set 'calendar' on the rule or 'defaults.calendar' in the file)")
            return


def _offsets(parts: Parts) -> Iterator[tuple[Path_, Offset]]:
    for index, _, timing in parts.steps:
        for key in TIMING_KEYS:
            value = getattr(timing, "from_" if key == "from" else key)
            if isinstance(value, Offset):
                yield ("steps", index, key), value
    for path, _, action in parts.actions:
        if isinstance(action, CreateTask) and action.due:
            yield (*path, "due"), action.due
        if isinstance(action, CreateEvent):
            yield (*path, "start"), action.start
            yield (*path, "duration"), action.duration
    for path, condition in parts.conditions:
        for test in _tests(condition):
            if test.op in ("older_than", "newer_than"):
                yield path, test.value


# --- steps --------------------------------------------------------------------------------

# Offsets on the same scale can be ordered; days and weeks count as 24h (DST aside).
_SCALES = {"minutes": ("wall", 1), "hours": ("wall", 60), "days": ("wall", 1440),
           "weeks": ("wall", 10080), "months": ("months", 1),
           "business_minutes": ("business", 1), "business_hours": ("business", 60),
           "business_days": ("business days", 1)}
_BUSINESS = frozenset({"business", "business days"})


def _scale(offset: Offset) -> tuple[str, int]:
    scale, factor = _SCALES[offset.unit]
    return scale, offset.amount * factor


def _start(timing: Timing) -> tuple[str, Offset]:
    return ("from", timing.from_) if timing.from_ is not None else ("after", timing.after)  # type: ignore[return-value]


def _steps(parts: Parts) -> Iterator[Finding]:
    """Steps are listed in time order: an earlier step below a later one is an error."""
    for index, step_id, timing in parts.steps:
        if timing.from_ is not None and timing.to is not None:
            (a, x), (b, y) = _scale(timing.from_), _scale(timing.to)
            if a == b and y <= x:
                yield Finding(("steps", index, "to"), f"step {step_id!r}: 'to' ({timing.to}) "
                              f"must be later than 'from' ({timing.from_})")
    for (_, before_id, before), (index, step_id, timing) in zip(
        parts.steps, parts.steps[1:], strict=False
    ):
        if before.repeat is not None:
            yield Finding(("steps", index), f"step {step_id!r} follows the repeating step "
                          f"{before_id!r}; list repeating steps last", "warning")
        key, here = _start(timing)
        there = _start(before)[1]
        (scale, value), (prev_scale, prev_value) = _scale(here), _scale(there)
        path = ("steps", index, key)
        if scale == prev_scale and value < prev_value:
            yield Finding(path, f"steps out of order: {step_id!r} ({here}) is due before "
                          f"{before_id!r} ({there}) listed above it")
        elif scale == prev_scale and value == prev_value and not (timing.every or before.every):
            yield Finding(path, f"step {step_id!r} is shadowed: due at the same offset ({here}) "
                          f"as {before_id!r}; merge their actions", "warning")
        elif {scale, prev_scale} & _BUSINESS and "wall" in {scale, prev_scale}:
            yield Finding(path, f"steps {before_id!r} ({there}) and {step_id!r} ({here}) mix "
                          "business and wall time; their order depends on the calendar",
                          "warning")


# --- conditions ---------------------------------------------------------------------------


def _tests(condition: Condition) -> Iterator[FieldCondition]:
    """Every field test in a condition tree (including those inside `became`)."""
    if isinstance(condition, FieldCondition):
        yield condition
        if condition.op == "became":
            yield from _tests(condition.value)
    elif isinstance(condition, AllOf | AnyOf):
        for part in condition.all if isinstance(condition, AllOf) else condition.any:
            yield from _tests(part)
    elif isinstance(condition, Not):
        yield from _tests(condition.not_)


def _conjuncts(condition: Condition) -> Iterator[FieldCondition]:
    """The field tests that must all hold for `condition` to hold."""
    if isinstance(condition, AllOf):
        for part in condition.all:
            yield from _conjuncts(part)
    elif isinstance(condition, FieldCondition):
        yield condition


_ANYTHING = object()  # stands for "any other value" after a `ne`


def _never_fires(parts: Parts) -> Iterator[Finding]:
    """`status: new` and `status: solved` at once (in `when` and `scope` together)."""
    gates = [(path, c) for path, c in parts.conditions if path in (("when",), ("scope",))]
    allowed: dict[str, set[Any]] = {}
    said: dict[str, list[str]] = {}
    for test in (t for _, gate in gates for t in _conjuncts(gate)):
        if test.op in ("eq", "in"):
            values = {test.value} if test.op == "eq" else set(test.value)
            allowed[test.field] = allowed.get(test.field, values) & values
            text = repr(test.value) if test.op == "eq" else f"one of {list(test.value)!r}"
        elif test.op in ("ne", "not_in"):
            values = {test.value} if test.op == "ne" else set(test.value)
            allowed[test.field] = allowed.get(test.field, values | {_ANYTHING}) - values
            text = f"not {test.value!r}" if test.op == "ne" else f"none of {list(test.value)!r}"
        else:
            continue
        said.setdefault(test.field, []).append(text)
    for field, values in allowed.items():
        if not values:
            yield Finding(gates[0][0], f"rule {parts.rule_id!r} can never fire: {field!r} "
                          f"cannot be {' and '.join(said[field])} at once", "warning")


# --- actions ------------------------------------------------------------------------------


def _action(
    parts: Parts, env: Env, path: Path_, names: frozenset[str], action: Action
) -> Iterator[Finding]:
    if action.kind not in ACTIONS[parts.kind.name]:
        return  # reported by _fields
    if action.deliver is not None and action.deliver.within not in env.calendars:
        yield Finding((*path, "deliver", "within"),
                      unknown_calendar(action.deliver.within, env.calendars))
    for sub, text in _texts(action):
        yield from _template(text, names, parts, (*path, *sub))
    if isinstance(action, Notify):
        yield from _recipients([*action.to, *action.cc], parts.kind, path)
        yield from _notify(action, names, parts, env, path)
    if isinstance(action, FileTranscript):
        yield from _recipients(action.else_notify, parts.kind, path)


def _texts(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Text]]:
    """(path, template) for every template inside an action (the body key elided)."""
    if isinstance(value, Text):
        yield path, value
    elif isinstance(value, BaseModel):
        # the short form's body is the body key's value (`set: {status: solved}`), the long
        # form names it (`set: {record: ..., fields: {status: solved}}`)
        body_key = None
        if isinstance(value, Action) and value.link is None:
            body_key = value.body_key
        for name, info in type(value).model_fields.items():
            sub = () if name == body_key else (info.alias or name,)
            yield from _texts(getattr(value, name), (*path, *sub))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _texts(item, (*path, i))


def _template(
    text: str,
    names: frozenset[str],
    parts: Parts,
    path: Path_,
    origin: NamedTemplate | None = None,
    first_line: int = 1,
) -> Iterator[Finding]:
    """Unknown variables and fields a template reads. For a named template, `origin` is its
    file and `first_line` the file line where `text` starts."""
    kind = parts.kind

    def at(lineno: int) -> tuple[str, str]:
        if origin is not None:
            return f"{origin.path}:{first_line + lineno - 1}: ", ""
        return "", f" (template line {lineno})" if lineno > 1 else ""

    unknown = templates.variables(text) - names
    for name in sorted(unknown, key=lambda n: (templates.first_use(text, n), n)):
        prefix, line = at(templates.first_use(text, name))
        yield Finding(path, f"{prefix}template reads unknown variable {name!r}"
                      f"{did_you_mean(name, names)}{line}")
    known = {
        "rule": templates.RULE_ATTRIBUTES,
        "step": templates.STEP_ATTRIBUTES,
        "vars": parts.vars,
    }
    for variable, attribute, lineno in templates.attributes(text):
        prefix, line = at(lineno)
        if attribute.startswith("_"):
            yield Finding(path, f"{prefix}template reads private attribute {attribute!r}{line}")
        elif variable in (kind.var, "record", "previous") and not kind.has_field(attribute):
            yield Finding(path, f"{prefix}template reads unknown field '{variable}.{attribute}' "
                          f"of {kind.name}{did_you_mean(attribute, kind.all_fields)}{line}")
        elif variable in known and attribute not in known[variable]:
            yield Finding(path, f"{prefix}template reads unknown '{variable}.{attribute}'"
                          f"{did_you_mean(attribute, known[variable])}{line}")


def _recipients(recipients: list[Text], kind: RecordKind, path: Path_) -> Iterator[Finding]:
    for recipient in recipients:
        if templates.is_template(recipient):
            continue
        prefix = next((p for p in RECIPIENT_PREFIXES if recipient.startswith(p)), None)
        address = recipient.removeprefix("user:").strip() if prefix in (None, "user:") else ""
        if "@" in address:
            problem = _address_problem(address)
            if problem:
                yield Finding(path, f"recipient {recipient!r} is not a mail address: {problem}")
            continue
        if prefix and recipient[len(prefix):].strip():
            continue
        if recipient in SYMBOLIC_RECIPIENTS:
            if recipient not in kind.recipients:
                yield Finding(path, f"recipient {recipient!r} does not exist on {kind.name}")
            continue
        yield Finding(path, f"unknown recipient {recipient!r}"
                      f"{did_you_mean(recipient, SYMBOLIC_RECIPIENTS)} (expected group:Name, "
                      "user:email, role:Name, assignee, requester, owner, an address or a "
                      "template)")


def _address_problem(address: str) -> str | None:
    """Why `address` cannot receive mail (syntax only: no DNS lookup), or None."""
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _notify(
    action: Notify, names: frozenset[str], parts: Parts, env: Env, path: Path_
) -> Iterator[Finding]:
    """A named template must exist (for a templated name: some file must match) and read only
    what the rule offers; a mail needs a subject from the rule or the template."""
    named: list[NamedTemplate] = []
    if action.template is not None:
        name = action.template
        pattern = re.compile(
            ".+".join(re.escape(part) for part in re.split(r"\{\{.*?\}\}", name))
        )
        named = [t for n, t in sorted(env.templates.items()) if pattern.fullmatch(n)]
        if not named and any(pattern.fullmatch(n) for n in env.broken_templates):
            return
        if not named:
            yield Finding((*path, "template"), f"no named template {name!r} (looked for "
                          f"{env.template_dir}/{name}.j2)")
            return
    for template in named:
        if template.subject is not None:
            yield from _template(template.subject, names, parts, (*path, "template"), template)
        yield from _template(template.body, names, parts, (*path, "template"), template,
                             template.body_line)
    has_subject = action.subject is not None or (named and all(t.subject for t in named))
    if action.via == "mail" and not has_subject:
        yield Finding(path, "a mail needs a subject: set 'subject' or start the named template "
                      "with 'Subject: ...'")
