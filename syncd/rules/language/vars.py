"""Substitute a rule's vars into its conditions when the rules load.

A condition value that is exactly `"{{ vars.NAME }}"` (spaces inside the braces optional) stands
for the value of the rule's var NAME, written in its place: `group_name: "{{ vars.desk }}"`
with `desk: Support` is `group_name: Support`, and with `desk: [Support, Engineers]` it is the
bare list, i.e. `in`. The substitution is done on the rule's YAML (as plain values) before it
is validated, so the condition parser, lint and the engine see exactly what the literal rule
would give them: the engine stays pure (no template rendering per evaluation) and every check
on the value (a regex, an offset, a number) is the one the literal gets.

- Only a var with a plain value can be read: a var that is a template (`{{`, `{%` or `{#`) is
  rendered against the record when an action runs, so its value is not known at load time;
- a list var may be a whole test (one of its values) or the value of `in`/`not_in`; where one
  value is expected (`eq`, `contains`, `gt`..., an item of a list) it is an error, as a literal
  list there is, rather than a guess between "any" and "all";
- an unknown or templated var is an error at the reference, and so is any other text with
  `{{`, `{%` or `{#` in a condition (`"{{ var.x }}"`, `"{{ vars.x | lower }}"`): conditions are
  never rendered, so such a value is a typo, not a value a record would hold.

Mail recipients read plain vars the same way (`"group:{{ vars.support }}"` is `group:Support`,
a list var standing alone is its items): they are the admin's own text, so they may name a
group, a role or a user. A recipient that still renders something (a var that is a template,
a record's field) is data, which the executor takes as one address and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from syncd.rules.language.base import VAR_REFERENCE, Path_
from syncd.rules.language.diagnostics import did_you_mean
from syncd.rules.language.lint import CONDITION_KEYS, raw_actions

_JINJA = ("{{", "{%", "{#")
_PLAIN = (str, bool, int, float, date, type(None))
_LIST_OPS = ("in", "not_in")
RECIPIENTS = {"notify": ("to", "cc"), "file_transcript": ("else_notify",)}

Problem = tuple[Path_, str]  # (path inside the rule's YAML mapping, message)


def substitute_vars(rule: Any) -> tuple[Any, list[Problem]]:
    """`rule` (a rule's YAML mapping as plain values) with its conditions and mail recipients
    reading its vars, and the references that cannot be resolved. `rule` itself is not modified.

    A rule whose `vars` is not a mapping is returned as it is: validation reports its `vars`.
    """
    values = rule.get("vars", {}) if isinstance(rule, Mapping) else None
    if not isinstance(values, Mapping):
        return rule, []
    walk = _Substitution(values)
    out = dict(rule)
    actions = list(raw_actions(rule))
    wheres = [(*path, "queue", "where") for path, name in actions if name == "dispatch"]
    for path in (*CONDITION_KEYS, *wheres):
        _replace(out, path, lambda raw, path=path: walk.condition(raw, path))
    for path, name in actions:
        for key in RECIPIENTS.get(name, ()):
            _replace(out, (*path, key), lambda raw: _recipients(raw, values))
    return out, walk.problems


def _replace(root: dict[str, Any], path: Path_, change: Any) -> None:
    """root[path] = change(root[path]), copying the containers on the way: the caller's rule
    stays as it was."""
    parent: Any = root
    for key in path[:-1]:
        child = _child(parent, key)
        if not isinstance(child, Mapping | list):
            return
        parent[key] = dict(child) if isinstance(child, Mapping) else list(child)
        parent = parent[key]
    if isinstance(parent, Mapping) and path[-1] in parent:
        parent[path[-1]] = change(parent[path[-1]])


def _recipients(raw: Any, values: Mapping[str, Any]) -> Any:
    """Recipients with their plain var references written in; anything else as it was."""
    if not isinstance(raw, list):
        return raw  # validation says what is wrong
    return [out for item in raw for out in _recipient(item, values)]


def _recipient(item: Any, values: Mapping[str, Any]) -> list[Any]:
    if not isinstance(item, str):
        return [item]
    names = [m[1] for m in VAR_REFERENCE.finditer(item)]
    if not names or any(name not in values for name in names):
        return [item]  # nothing to write in, or an unknown var: rendering reports it
    if any(mark in VAR_REFERENCE.sub("", item) for mark in _JINJA):
        return [item]  # it renders more than vars: data
    found = [values[name] for name in names]
    if VAR_REFERENCE.fullmatch(item) and isinstance(found[0], list):
        return [str(v) for v in found[0]] if all(map(_literal, found[0])) else [item]
    if all(not isinstance(v, list) and _literal(v) for v in found):
        return [VAR_REFERENCE.sub(lambda m: str(values[m[1]]), item)]
    return [item]


def _literal(value: Any) -> bool:
    return isinstance(value, _PLAIN) and not (
        isinstance(value, str) and any(mark in value for mark in _JINJA))


def _child(parent: Any, key: str | int) -> Any:
    if isinstance(parent, Mapping):
        return parent.get(key)
    if isinstance(parent, list) and isinstance(key, int) and key < len(parent):
        return parent[key]
    return None


class _Substitution:
    """Walks the YAML shape of a condition (conditions._ConditionParser's), resolving references
    and knowing, at each one, whether a list may stand there."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.problems: list[Problem] = []

    def condition(self, raw: Any, path: Path_) -> Any:
        if not isinstance(raw, Mapping):
            return raw  # the parser says what is wrong
        return {key: self.entry(key, value, (*path, key)) for key, value in raw.items()}

    def entry(self, key: str, raw: Any, path: Path_) -> Any:
        if key == "not":
            return self.condition(raw, path)
        if key in ("all", "any"):
            if not isinstance(raw, list):
                return raw  # the parser says what is wrong
            return [self.condition(item, (*path, i)) for i, item in enumerate(raw)]
        return self.predicate(raw, path)

    def predicate(self, raw: Any, path: Path_) -> Any:
        """A field's test: a scalar (eq), a list (in) or a mapping of operators."""
        if isinstance(raw, Mapping):
            return {op: self.operand(str(op), value, (*path, op)) for op, value in raw.items()}
        if isinstance(raw, list):
            return self.items(raw, path)
        return self.value(raw, path, expected=None)

    def operand(self, op: str, raw: Any, path: Path_) -> Any:
        if op == "became":
            return self.predicate(raw, path)
        if op in _LIST_OPS:
            if isinstance(raw, list):
                return self.items(raw, path)
            return self.value(raw, path, expected=(True, f"'{op}' takes a list"))
        return self.value(raw, path, expected=(False, f"'{op}' takes a single value"))

    def items(self, raw: list[Any], path: Path_) -> list[Any]:
        expected = (False, "an item of a list is a single value")
        return [self.value(item, (*path, i), expected) for i, item in enumerate(raw)]

    def value(self, raw: Any, path: Path_, expected: tuple[bool, str] | None) -> Any:
        """The var's value for a reference, else `raw`. `expected` is (a list?, in words) for
        a place that takes only a list or only a single value; None where either will do."""
        match = VAR_REFERENCE.fullmatch(raw) if isinstance(raw, str) else None
        if match is None:
            if isinstance(raw, str) and any(mark in raw for mark in _JINJA):
                return self.fail(path, raw, f"condition value {raw!r} looks like a template, "
                                 "but a condition is never rendered: write a var reference "
                                 "exactly as \"{{ vars.NAME }}\", or the value itself")
            return raw
        name = match[1]
        if name not in self.values:
            known = did_you_mean(name, self.values)
            return self.fail(path, raw, f"condition reads unknown 'vars.{name}'{known}")
        value = self.values[name]
        texts = value if isinstance(value, list) else [value]
        if not all(isinstance(text, _PLAIN) for text in texts):
            return raw  # not a valid var: validation reports it at the var
        if any(isinstance(text, str) and any(m in text for m in _JINJA) for text in texts):
            return self.fail(path, raw, f"condition reads 'vars.{name}', a template: it is "
                             "rendered for each record when an action runs, so a condition "
                             "can only read a var with a plain value")
        if expected is not None and isinstance(value, list) is not expected[0]:
            if expected[0]:
                message = f"'vars.{name}' is a single value ({value!r}) but {expected[1]}"
            else:
                message = (
                    f"'vars.{name}' is a list ({value!r}) but {expected[1]}: make it "
                    "the whole test (one of its values) or the value of 'in'/'not_in'"
                )
            return self.fail(path, raw, message)
        return value

    def fail(self, path: Path_, raw: Any, message: str) -> Any:
        self.problems.append((path, message))
        return raw
