"""Checks that each name the rules use, and the mailbox syncd sends from, exists in the
vendor that holds it; a name not found is shown with the rule's file:line and the names that
do exist. The folders `[graph] watched_folders` reads from are checked with the rules' own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.connectors.base import Directory, DirectoryUser
from syncd.connectors.graph import GraphConnector
from syncd.doctor.report import Check
from syncd.doctor.uses import Compared, Reference, Uses
from syncd.doctor.vendors import LABELS, Found
from syncd.model import Operation
from syncd.rules.language.diagnostics import did_you_mean
from syncd.settings import Settings

SHOWN_NAMES = 10


def mailbox_checks(settings: Settings, uses: Uses, found: Mapping[str, Found]) -> list[Check]:
    """The mailbox syncd sends from: configured when rules send mail, and a Graph user."""
    mailbox = settings.graph.mailbox if settings.graph else None
    if mailbox is None:
        if not uses.mail:
            return []
        missing = "[graph] mailbox is not set" if settings.graph else "[graph] is not configured"
        return [
            Check(
                "graph mailbox",
                "fail",
                f"rules send mail ({_places(uses.mail[:1])}, ...) but {missing}",
                "set [graph] mailbox to the mailbox syncd sends from",
            )
        ]
    if "graph" not in found:
        return [Check("graph mailbox", "skip", "not checked: Graph could not be read")]
    if _user(found["graph"].directory, mailbox) is None:
        return [Check("graph mailbox", "fail", f"no active Graph user with mail {mailbox!r}",
                      "set [graph] mailbox to an existing mailbox's address")]
    return [Check("graph mailbox", "ok", mailbox)]


def reference_checks(
    settings: Settings, uses: Uses, found: Mapping[str, Found], graph: GraphConnector | None
) -> list[Check]:
    """Every name the rules use, one line per kind of name, one more per name not found."""
    references = list(uses.references)
    if settings.graph:
        watched = "[graph] watched_folders"
        references += [Reference(("graph",), "folder", f, watched)
                       for f in settings.graph.watched_folders]
    places: dict[tuple[tuple[str, ...], str], dict[str, list[str]]] = {}
    for ref in references:
        places.setdefault((ref.systems, ref.what), {}).setdefault(ref.name, []).append(ref.where)
    checks = []
    for (systems, what), names in places.items():
        title = f"{' or '.join(LABELS[s].lower() for s in systems)} {what}s"
        label = " or ".join(LABELS[s] for s in systems)
        configured = [s for s in systems if getattr(settings, s) is not None]
        seen = [found[s] for s in configured if s in found]
        if not configured:
            wheres = [w for listed in names.values() for w in listed]
            checks.append(
                Check(
                    title,
                    "fail",
                    f"the rules name {label} {what}s "
                    f"({', '.join(names)}) but [{systems[0]}] is not configured",
                    f"configure [{systems[0]}], or change {_places(wheres)}",
                )
            )
            continue
        unreadable = what == "field" and any(f.fields is None for f in seen)
        if len(seen) < len(configured) or unreadable:
            checks.append(Check(title, "skip", f"not checked: {label} could not be read"))
            continue
        problems = [
            (name, problem, wheres)
            for name, wheres in names.items()
            if (problem := _lookup(what, name, label, seen, graph)) is not None
        ]
        for name, problem, wheres in problems:
            fix = f"change {_places(wheres)} or create the {what} in {label}"
            checks.append(Check(f"{title[:-1]} {name!r}", "fail", problem, fix))
        if not problems:
            checks.append(Check(title, "ok", ", ".join(_some(names))))
    return checks


# What a value check calls the list, and where an admin adds a value to it.
_LISTS = {
    "zendesk": ("dropdown", "dropdown values",
                "add the option in Zendesk (Admin Center > Objects and rules > Ticket fields)"),
    "salesforce": ("picklist", "picklist values",
                   "add the value in Salesforce (Setup > Object Manager > {sobject} > Fields & "
                   "Relationships > {field})"),
}


def value_checks(uses: Uses, found: Mapping[str, Found]) -> list[Check]:
    """Every value a condition compares a Zendesk dropdown or a Salesforce picklist with is
    one of its values: any other never matches (an unrestricted picklist may hold it, so that
    is a warning). Values live in the tenant, so `syncd check` (offline) cannot know."""
    checks: list[Check] = []
    for system in dict.fromkeys(use.system for use in uses.compared):
        checks += _system_values(system, [u for u in uses.compared if u.system == system],
                                 found.get(system))
    return checks


def _system_values(system: str, compared: list[Compared], found: Found | None) -> list[Check]:
    noun, title, how = _LISTS[system]
    label = LABELS[system]
    dropdowns = found.dropdowns if found is not None else None
    if dropdowns is None:
        return [Check(f"{system} {title}", "skip", f"not checked: {label} could not be read")]
    places: dict[tuple[str, str], list[str]] = {}
    for use in compared:
        places.setdefault((use.name, use.value), []).append(use.where)
    checks, checked = [], set()
    for (name, value), wheres in places.items():
        dropdown = dropdowns.get(".".join(name.split(".")[:2]))
        if dropdown is None:  # not chosen from a list, or no such field (the fields check says)
            continue
        checked.add(name)
        if value in dropdown.values:
            continue
        sobject, _, field_name = name.partition(".")
        checks.append(Check(
            f"{system} field {name} value {value!r}", "fail" if dropdown.restricted else "warn",
            f"{name} is never {value!r}{did_you_mean(value, dropdown.values)}: the {label} "
            f"{noun} {dropdown.title} offers {', '.join(_some(dropdown.values))}"
            + ("" if dropdown.restricted else " (unrestricted: a record may still hold it)"),
            f"change {_places(wheres)} or {how.format(sobject=sobject, field=field_name)}"))
    if not checks and checked:
        checks.append(Check(f"{system} {title}", "ok", ", ".join(sorted(checked))))
    return checks


def _lookup(
    what: str, name: str, label: str, seen: list[Found], graph: GraphConnector | None
) -> str | None:
    """None when `name` exists; else what is wrong, with the names that do exist."""
    if what == "group":
        groups = sorted({g.name for f in seen for g in f.directory.groups.values()})
        if name in groups:
            return None
        return (f"no {label} group named {name!r}{did_you_mean(name, groups)}; groups: "
                f"{', '.join(_some(groups)) or 'none'}")
    if what == "user":
        if any(_user(f.directory, name) for f in seen):
            return None
        return f"no active {label} user {name!r}"
    if what == "field":
        fields = sorted(f for found in seen for f in found.fields or ())
        if name in fields:
            return None
        return f"no {label} field {name!r}{did_you_mean(name, fields)}"
    assert graph is not None  # folders are Graph's, and Graph was read
    outcome = graph.verify(Operation("syncd-doctor", "graph", "ensure_folder", name, {}))
    if outcome.ok:
        return None
    if outcome.retryable:
        return f"could not read folder {name!r}: {outcome.error}"
    return f"no {label} folder {outcome.detail.get('path', name)!r}"


def _user(directory: Directory, who: str) -> DirectoryUser | None:
    """An active user by email or id, as the daemon looks them up."""
    user = directory.user_by_email(who) if "@" in who else directory.users.get(who)
    return user if user is not None and user.active else None


def _places(wheres: list[str]) -> str:
    """`the rule at rules/x.yaml:12`, `the rules at ...`, or a settings key."""
    files = sorted({w for w in wheres if not w.startswith("[")})
    keys = sorted({w for w in wheres if w.startswith("[")})
    if files:
        keys.insert(0, f"the rule{'s' if len(files) > 1 else ''} at {', '.join(files)}")
    return " and ".join(keys)


def _some(names: Any) -> list[str]:
    listed = list(names)
    return listed if len(listed) <= SHOWN_NAMES else [*listed[:SHOWN_NAMES], "…"]
