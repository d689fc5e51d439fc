"""Rules that can never fire because no source polls what they are on: a vendor not
configured, a Salesforce object missing from `[salesforce] objects`, a SharePoint list missing
from `[graph] lists`, a folder outside `[graph] watched_folders`. Doctor lists them as a
failure; the daemon logs each at start and after a reload (`rule_unpolled`). The reverse, a
kind polled that no rule reads, is not polled at all (sources.py, `kinds_unread`).

What a source polls is read from the settings, as the connectors read it (a connector whose
secret is missing is still what the daemon would poll once the secret is there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from syncd.rules.language import AllOf, Condition, FieldCondition, Rule, RuleSet
from syncd.settings import Settings
from syncd.vendors.graph import FILE as FILE_KIND
from syncd.vendors.graph import ITEM as ITEM_KIND
from syncd.vendors.registry import SYSTEM_OF_FAMILY
from syncd.vendors.salesforce import SOBJECT_OF_KIND, kind_of_sobject
from syncd.vendors.zendesk import TICKET

FILE, ITEM = FILE_KIND.name, ITEM_KIND.name


@dataclass(frozen=True)
class Unpolled:
    """A rule that cannot fire, where it is, why, and what to set."""

    rule: str
    where: str  # file:line
    why: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: rule {self.rule!r} never fires: {self.why}"


def polled_kinds(settings: Settings) -> frozenset[str]:
    """The record kinds the configured sources poll."""
    kinds: set[str] = set()
    if settings.zendesk is not None:
        kinds.add(TICKET.name)
    if settings.salesforce is not None:
        kinds |= {kind_of_sobject(o) for o in settings.salesforce.objects}
    if settings.graph is not None:
        kinds |= {FILE, ITEM} if settings.graph.lists else {FILE}
    return frozenset(kinds)


def unpolled_rules(ruleset: RuleSet, settings: Settings) -> list[Unpolled]:
    """Every enabled rule whose kind, list or folder no source polls."""
    kinds = polled_kinds(settings)
    found = []
    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        source = ruleset.sources[rule.id]
        where = f"{source.file}:{source.line}"
        problem = _kind_problem(rule.on, settings) if rule.on not in kinds else None
        problem = problem or _place_problem(rule, settings)
        if problem is not None:
            found.append(Unpolled(rule.id, where, *problem))
    return found


def _kind_problem(kind: str, settings: Settings) -> tuple[str, str]:
    section = SYSTEM_OF_FAMILY[kind.partition(".")[0]]
    if getattr(settings, section) is None:
        return (f"it is on {kind} and [{section}] is not configured",
                f"configure [{section}] or disable the rule")
    if kind == ITEM:
        return (f"it is on {kind} and [graph] lists is empty",
                "name the lists in [graph] lists")
    sobject = SOBJECT_OF_KIND.get(kind, "the object")
    return (f"it is on {kind} and [salesforce] objects lacks {sobject}",
            f"add {sobject} to [salesforce] objects")


def _place_problem(rule: Rule, settings: Settings) -> tuple[str, str] | None:
    """A list or folder the rule requires that the Graph source does not read."""
    graph = settings.graph
    if graph is None or rule.on not in (FILE, ITEM):
        return None
    name, polled = ("list", graph.lists) if rule.on == ITEM else ("folder", graph.watched_folders)
    if rule.on == FILE and not polled:
        return None  # no watched folders: the whole drive is polled
    for required in _required(rule, name):
        if not any(_inside(str(value), polled, name) for value in required):
            setting = "lists" if name == "list" else "watched_folders"
            shown = ", ".join(json.dumps(str(v)) for v in sorted(required, key=str))
            return (f"it needs {name} {shown}, which [graph] {setting} does not poll "
                    f"({json.dumps(list(polled))})",
                    f"add it to [graph] {setting}")
    return None


def _inside(value: str, polled: list[str], name: str) -> bool:
    if name == "list":
        return value in polled
    return any(value == w or value.startswith(w.rstrip("/") + "/") for w in polled)


def _required(rule: Rule, field: str) -> Iterator[frozenset[Any]]:
    """Value sets `field` must be in for the rule to act: equality tests that every record it
    acts on passes (the `when` and `scope` conjunctions; `any`/`not` branches are left out)."""
    for condition in (rule.when, rule.scope):
        for test in _conjuncts(condition):
            if test.field != field:
                continue
            if test.op == "eq" and test.value is not None:
                yield frozenset({test.value})
            elif test.op == "in" and isinstance(test.value, list | tuple):
                yield frozenset(test.value)


def _conjuncts(condition: Condition | None) -> Iterator[FieldCondition]:
    if isinstance(condition, FieldCondition):
        yield condition
    elif isinstance(condition, AllOf):
        for child in condition.all:
            yield from _conjuncts(child)
