"""What each record kind offers a rule beyond its fields: the actions it takes.

The kinds themselves (fields, template variable, values, recipients) are the vendors'
declarations in the registry, syncd/vendors/registry.py. `check` uses both to refuse a
condition on a field the kind does not have, a value the field can never hold (`status: opne`),
a template reading `ticket.sujbect`, or `create_task` on a SharePoint file, before any rule
reaches the engine.
"""

from __future__ import annotations

from syncd.vendors.registry import KINDS, VENDORS

ANY_KIND_ACTIONS = frozenset({"set", "notify", "create_ticket", "ensure_folder"})
# by system: the actions every kind of that vendor takes
SYSTEM_ACTIONS = {
    "zendesk": frozenset({"tag", "untag", "assign", "unassign", "comment", "dispatch"}),
    "salesforce": frozenset({"assign", "create_task", "create_event"}),
}
KIND_ACTIONS = {"sharepoint.file": frozenset({"file_transcript"})}

# The actions each kind takes, by kind name.
ACTIONS: dict[str, frozenset[str]] = {
    kind.name: ANY_KIND_ACTIONS
    | SYSTEM_ACTIONS.get(vendor.system, frozenset())
    | KIND_ACTIONS.get(kind.name, frozenset())
    for vendor in VENDORS.values()
    for kind in vendor.kinds
}

# Which kinds can take each action, for messages like "create_task needs salesforce.*".
ACTION_KINDS: dict[str, tuple[str, ...]] = {
    action: tuple(name for name in KINDS if action in ACTIONS[name])
    for action in sorted(set().union(*ACTIONS.values()))
}

# The kinds whose `set` and `comment` may write to another record of the kind (`record:`).
LINK_KINDS: tuple[str, ...] = ("zendesk.ticket",)
