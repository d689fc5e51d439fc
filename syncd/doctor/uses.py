"""What the rules name in the vendors (groups, users, fields, folders, mail, sObject writes),
each with the file:line of its use.

Rules often name things through their vars (`group: "{{ vars.team }}"`): a name that depends
on the rule alone is collected; one that depends on the record (`Clients/{{ account.Name }}`)
cannot be known in advance and is left out. Folders that `ensure_folder` makes, and the
`else_folder` that `file_transcript` uploads into (uploads create missing folders), need not
exist, so they are not collected; the folders rules read from must.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from syncd.rules.language import (
    Action,
    Assign,
    CreateEvent,
    CreateTask,
    CreateTicket,
    Dispatch,
    FileTranscript,
    Notify,
    Rule,
    RuleSet,
    SetFields,
)
from syncd.rules.language.base import VAR_REFERENCE, Path_
from syncd.rules.language.lint import CONDITION_KEYS, compared_values, condition_fields
from syncd.rules.language.loader import locate
from syncd.rules.language.templates import TemplateProblem, Text, is_template, render, render_tree
from syncd.vendors.registry import GROUP_SYSTEMS, KINDS, SYSTEM_OF_FAMILY

# Condition fields whose compared values name something: (kind, field) -> (system, what).
NAMING_FIELDS = {
    ("zendesk.ticket", "group_name"): ("zendesk", "group"),
    ("zendesk.ticket", "assignee_email"): ("zendesk", "user"),
    ("sharepoint.file", "folder"): ("graph", "folder"),
}


@dataclass(frozen=True)
class Reference:
    """A name a rule uses that must exist in a vendor system, and where it is used."""

    systems: tuple[str, ...]  # where it may live: a `group:` recipient, Zendesk or Salesforce
    what: str  # "group" | "user" | "field" | "folder"
    name: str  # a Salesforce field as "Opportunity.Week_0_Date__c"
    where: str  # "rules/x.yaml:12", or a settings key


@dataclass(frozen=True)
class Compared:
    """A value a condition compares a vendor's dropdown field with, and where."""

    system: str
    name: str  # the field: `custom.category` (Zendesk), `Opportunity.StageName` (Salesforce)
    value: str
    where: str


@dataclass
class Uses:
    """What the rules need from the vendors."""

    references: list[Reference] = field(default_factory=list)
    mail: list[str] = field(default_factory=list)  # where rules send mail (from the mailbox)
    # (sObject, "createable" | "updateable") -> where rules create or update one
    writes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)  # the record kinds rules are `on` (polled)
    compared: list[Compared] = field(default_factory=list)  # values of chosen-from-a-list fields


def rule_uses(ruleset: RuleSet) -> Uses:
    """Every name the sound rules use, with the file:line of the use."""
    uses = Uses()
    nodes = _rule_nodes(ruleset)
    for rule in ruleset.rules:
        uses.kinds.add(rule.on)
        node = nodes.get(rule.id)
        if node is not None:  # None: its file changed since it was loaded
            _Scan(rule, node, ruleset.sources[rule.id].file, uses).run()
    return uses


def _rule_nodes(ruleset: RuleSet) -> dict[str, CommentedMap]:
    """Each rule's YAML mapping, which knows the line of everything in it."""
    found: dict[str, CommentedMap] = {}
    for file in sorted({source.file for source in ruleset.sources.values()}):
        root = YAML(typ="rt").load(Path(file).read_text(encoding="utf-8"))
        for node in root.get("rules") or []:  # a sound rule's file is a mapping
            rule_id = node.get("id") if isinstance(node, CommentedMap) else None
            source = ruleset.sources.get(rule_id) if isinstance(rule_id, str) else None
            if source is not None and source.file == file and rule_id not in found:
                found[rule_id] = node
    return found


class _Scan:
    """One rule's names: from its conditions (YAML) and its actions (validated models)."""

    def __init__(self, rule: Rule, node: CommentedMap, file: str, uses: Uses) -> None:
        self.rule, self.node, self.file, self.uses = rule, node, file, uses
        self.kind = KINDS[rule.on]
        self.system = SYSTEM_OF_FAMILY[self.kind.family]
        self.sobject = self.kind.sobject or None
        context: dict[str, Any] = {"rule": {"id": rule.id, "description": rule.description}}
        self.vars: dict[str, Any] = {}
        for name, value in rule.vars.items():
            with contextlib.suppress(TemplateProblem):  # depends on the record: unknowable
                self.vars[name] = render_tree(value, context)
        self.context = {**context, "vars": self.vars}

    def run(self) -> None:
        for base in CONDITION_KEYS:
            condition = _get(self.node, base)
            if isinstance(condition, Mapping):
                for path, name, test in condition_fields(condition, base):
                    self.condition(name, path, test)
        for path in (("since",), ("defer", "to")):
            anchor = _get(self.node, path)
            if isinstance(anchor, str):
                self.field(anchor, path)
        lists: list[tuple[Path_, list[Action]]] = [(("do",), list(self.rule.do or []))]
        lists += [(("steps", i, "do"), list(s.do)) for i, s in enumerate(self.rule.steps or [])]
        for base, actions in lists:
            for i, action in enumerate(actions):
                self.action((*base, i, action.kind), action)

    def add(self, systems: tuple[str, ...], what: str, name: str | None, path: Path_) -> None:
        if name:
            self.uses.references.append(Reference(systems, what, name, self.where(path)))

    def where(self, path: Path_) -> str:
        return f"{self.file}:{locate(self.node, path)[0]}"

    def static(self, text: str | None) -> str | None:
        """`text` rendered, when it depends on the rule alone; else None."""
        if text is None:
            return None
        try:
            return render(text, self.context).strip() or None
        except TemplateProblem:
            return None

    def condition(self, name: str, path: Path_, test: Any) -> None:
        self.field(name, path)
        named = NAMING_FIELDS.get((self.rule.on, name))
        chosen = self.chosen(name)
        if named is None and chosen is None:
            return
        for at, value in compared_values(test, path):
            for resolved in self.var_values(value):
                if named is not None:
                    self.add((named[0],), named[1], str(resolved), at)
                elif chosen and not (isinstance(resolved, str) and is_template(resolved)):
                    compared = Compared(self.system, chosen, str(resolved), self.where(at))
                    self.uses.compared.append(compared)

    def chosen(self, name: str) -> str | None:
        """The field as its vendor's options are looked up, when it may be one whose values are
        chosen from a list: a Zendesk custom field (`custom.category`), any Salesforce field
        (`Opportunity.StageName`); None for other fields."""
        head = name.partition(".")[0]
        if self.system == "zendesk" and head == "custom":
            return name
        if self.sobject and head not in self.kind.mappings:
            return f"{self.sobject}.{head}"
        return None

    def var_values(self, value: Any) -> list[Any]:
        """A compared value as the loader reads it (the YAML here is as written): a var
        reference (`"{{ vars.desk }}"`, the file's vars included) names the var's values."""
        match = VAR_REFERENCE.fullmatch(value) if isinstance(value, str) else None
        if match is None or match[1] not in self.rule.vars:
            return [value]
        resolved = self.rule.vars[match[1]]
        return resolved if isinstance(resolved, list) else [resolved]

    def field(self, name: str, path: Path_) -> None:
        """A record field read or set: a Zendesk custom field, or any Salesforce field."""
        head, _, rest = name.partition(".")
        if self.system == "zendesk" and head == "custom" and rest:
            self.add(("zendesk",), "field", rest.partition(".")[0], path)
        elif self.sobject and head not in self.kind.mappings:
            self.add(("salesforce",), "field", f"{self.sobject}.{head}", path)

    def action(self, at: Path_, action: Action) -> None:
        own = (self.system,)
        match action:
            case Assign():
                self.add(own, "group", self.static(action.group), (*at, "group"))
                self.add(own, "user", self.static(action.user), (*at, "user"))
                if action.mapping is not None:
                    for key, user in action.mapping.table.items():
                        self.add(own, "user", self.static(user), (*at, "mapping", "table", key))
                    default = self.static(action.mapping.default)
                    self.add(own, "user", default, (*at, "mapping", "default"))
                self.write(self.sobject, "updateable", at)
            case SetFields():
                for name in action.fields:
                    self.field(name, (*at, name))
                self.write(self.sobject, "updateable", at)
            case Notify():
                self.recipients(at, "to", action.to)
                self.recipients(at, "cc", action.cc)
                if action.via == "mail":
                    self.uses.mail.append(self.where(at))
            case FileTranscript():
                self.recipients(at, "else_notify", action.else_notify)
                if action.else_notify:
                    self.uses.mail.append(self.where(at))
            case CreateTicket():
                self.add(("zendesk",), "group", self.static(action.group), (*at, "group"))
            case Dispatch():
                self.add(("zendesk",), "group", self.static(action.queue), (*at, "queue"))
                self.add(("zendesk",), "group", self.static(action.to), (*at, "to"))
            case CreateTask() | CreateEvent():
                self.owner(action.owner, (*at, "owner"))
                sobject = "Task" if isinstance(action, CreateTask) else "Event"
                self.write(sobject, "createable", at)

    def recipients(self, at: Path_, key: str, texts: list[Text]) -> None:
        """`group:Name` recipients, given directly or through a `role:` var."""
        for i, text in enumerate(texts):
            value = self.static(text) or ""
            members: list[Any] = [value]
            if value.startswith("role:"):  # a rule var: one recipient or a list of them
                role = self.vars.get(value.removeprefix("role:").strip())
                members = role if isinstance(role, list) else [role]
            for member in members:
                kind, _, name = str(member).partition(":")
                if kind == "group":
                    self.add(GROUP_SYSTEMS, "group", name.strip(), (*at, key, i))

    def owner(self, text: str | None, path: Path_) -> None:
        """A task or event owner: a Salesforce user, unless it is the record's owner."""
        value = self.static(text)
        if value and value.startswith("role:"):
            role = self.vars.get(value.removeprefix("role:").strip())
            value = role if isinstance(role, str) else None
        if value and value != "owner":
            self.add(("salesforce",), "user", value.removeprefix("user:").strip(), path)

    def write(self, sobject: str | None, permission: str, at: Path_) -> None:
        if sobject is not None:
            self.uses.writes.setdefault((sobject, permission), []).append(self.where(at))


def _get(node: Any, path: Path_) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node
