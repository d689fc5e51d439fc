"""`syncd explain RECORD --rule ID`: "why didn't it fire?", as Home Assistant's automation
traces answer it. For one rule and one record, each condition of the rule (`scope`, `when`,
`until`, a `became` anchor, `defer.when`) with every test in it, the record's value and true or
false: at the last evaluation (the version syncd last saw, against the one before it) and at
each pending step's due instant (age tests change with time alone). Read from the state
database and the rules directory; no vendor is called.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from syncd.commands.arguments import CONFIG_HELP, RECORD_HELP, parse_record
from syncd.commands.configured import configured_store
from syncd.commands.format import short, show_instant
from syncd.commands.output import fail, print_json
from syncd.model import FieldChange
from syncd.rules import language
from syncd.rules.conditions import Context, compile_condition
from syncd.rules.language import Rule
from syncd.rules.language.diagnostics import did_you_mean
from syncd.rules.language.loader import load_rules

PARTS = (("scope", ("scope",)), ("when", ("when",)), ("until", ("until",)),
         ("since.became", ("since", "became")), ("defer.when", ("defer", "when")))


@dataclass(frozen=True)
class Trace:
    """One node of a condition: its text, its answer, the record's value (leaves), children."""

    text: str
    ok: bool
    value: Any = None
    leaf: bool = False
    children: tuple[Trace, ...] = ()

    def lines(self, depth: int = 1) -> Iterator[str]:
        mark = "✓" if self.ok else "✗"
        shown = f"    (is {short(self.value)})" if self.leaf else ""
        yield f"{'  ' * depth}{mark} {self.text}{shown}"
        for child in self.children:
            yield from child.lines(depth + 1)

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"test": self.text, "ok": self.ok}
        if self.leaf:
            found["value"] = self.value
        if self.children:
            found["all"] = [child.to_json() for child in self.children]
        return found


def trace(node: language.Condition, ctx: Context) -> Trace:
    """`node` evaluated against `ctx`, test by test."""
    if isinstance(node, language.AllOf | language.AnyOf):
        children = tuple(trace(child, ctx) for child in (
            node.all if isinstance(node, language.AllOf) else node.any))
        every = isinstance(node, language.AllOf)
        ok = all(c.ok for c in children) if every else any(c.ok for c in children)
        return Trace("all of" if every else "any of", ok, children=children)
    if isinstance(node, language.Not):
        inner = trace(node.not_, ctx)
        return Trace("not", not inner.ok, children=(inner,))
    ok = compile_condition(node).test(ctx)
    return Trace(describe(node), ok, ctx.value(node.field), leaf=True)


def describe(node: language.FieldCondition) -> str:
    if isinstance(node.value, language.FieldCondition):  # became: {op: value}
        inner = describe(node.value).removeprefix(f"{node.field} ")
        return f"{node.field} became {inner}"
    value = json.dumps(node.value, ensure_ascii=False, default=str)
    return f"{node.field} {node.op.replace('_', ' ')} {value}"


def previous_fields(fields: Mapping[str, Any], history: list[FieldChange]) -> dict[str, Any] | None:
    """The version before the last one syncd saw: the last instant's changes undone."""
    if not history:
        return None
    last = history[-1].at
    before = json.loads(json.dumps(dict(fields), default=str))
    for change in (c for c in history if c.at == last):
        node, *path = change.field.split(".")
        target = before
        for part in [node, *path][:-1]:
            target = target.setdefault(part, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[[node, *path][-1]] = change.old
    return before


def conditions(rule: Rule) -> Iterator[tuple[str, language.Condition]]:
    for name, path in PARTS:
        node: Any = rule
        for key in path:
            node = getattr(node, key, None)
        if isinstance(
            node, language.FieldCondition | language.AllOf | language.AnyOf | language.Not
        ):
            yield name, node


def explain(
    record: Annotated[str, typer.Argument(metavar="RECORD", help=RECORD_HELP, show_default=False)],
    rule_id: Annotated[str, typer.Option("--rule", help="The rule to explain.")],
    rules_dir: Annotated[
        Path | None, typer.Option("--rules", help="Rules directory (default: [syncd] rules_dir).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)] = None,
) -> None:
    """Why a rule did or did not act on a record: each condition's tests, values, answers."""
    ref = parse_record(record)
    with configured_store(config) as (settings, store), store.read() as tx:
        snapshot = tx.records.get(ref)
        history = tx.records.history(ref)
        timers = [t for t in tx.timers.for_record(ref) if t.rule_id == rule_id]
    loaded = load_rules(rules_dir or settings.syncd.rules_dir)
    rules = {rule.id: rule for rule in loaded.ruleset.rules}
    if rule_id not in rules:
        fail(f"no rule {rule_id!r} in {rules_dir or settings.syncd.rules_dir}"
             f"{did_you_mean(rule_id, rules)}")
    rule = rules[rule_id]
    if snapshot is None:
        fail(f"syncd has never seen {ref}: nothing to evaluate")
    if rule.on != ref.kind:
        fail(f"rule {rule_id!r} is on {rule.on}, not on {ref.kind}: it never sees this record")
    calendar = loaded.ruleset.calendars.get(rule.calendar or "")
    previous = previous_fields(snapshot.fields, history)
    moments: list[tuple[str, datetime]] = [("last evaluation", snapshot.observed_at)]
    moments += [(f"step {t.step or '-'} due", t.due_at) for t in timers]
    found = []
    for label, at in moments:
        ctx = Context(snapshot.fields, previous if label == "last evaluation" else None, at,
                      calendar)
        found.append((label, at, [(name, trace(node, ctx)) for name, node in conditions(rule)]))
    source = loaded.ruleset.sources[rule_id]
    if as_json:
        print_json({"rule": rule_id, "where": f"{source.file}:{source.line}", "record": str(ref),
                    "evaluations": [{"at": at.isoformat(), "label": label,
                                     "conditions": {name: t.to_json() for name, t in traces}}
                                    for label, at, traces in found]})
        return
    tz = settings.syncd.tz
    typer.echo(f"rule {rule_id} ({source.file}:{source.line}) on {ref}")
    for label, at, traces in found:
        typer.echo(f"{label}, {show_instant(at, tz)}:")
        if not traces:
            typer.echo("  (no conditions: the rule acts on every record of its kind)")
        for name, result in traces:
            typer.echo(f"  {name}: {'true' if result.ok else 'false'}")
            for line in result.lines(2):
                typer.echo(line)
