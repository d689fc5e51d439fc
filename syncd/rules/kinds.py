"""What each record kind offers a rule: its fields, its template variable, its actions.

`check` uses this to refuse a condition on a field the kind does not have, a value the field
can never hold (`status: opne`, `agent_touched: yes`), a template reading `ticket.sujbect`, or
`create_task` on a SharePoint file, before any rule reaches the engine.
Field names are the connectors' normalised names (docs/rules.md, "Record fields").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ValueType = Literal["bool", "number", "instant", "choice"]

ANY_KIND_ACTIONS = frozenset({"set", "notify", "create_ticket", "ensure_folder"})
ZENDESK_ACTIONS = frozenset({"tag", "untag", "assign", "unassign", "comment", "dispatch"})
SALESFORCE_ACTIONS = frozenset({"assign", "create_task", "create_event"})


@dataclass(frozen=True)
class Values:
    """What a field holds, so that `check` refuses a compared value it can never equal."""

    type: ValueType
    choices: tuple[str, ...] = ()  # for "choice": the vendor's documented values


# Zendesk's documented ticket enums (Tickets API: status, priority, type).
ZENDESK_TICKET_VALUES = {
    "status": Values("choice", ("new", "open", "pending", "hold", "solved", "closed")),
    "priority": Values("choice", ("low", "normal", "high", "urgent")),
    "type": Values("choice", ("problem", "incident", "question", "task")),
    "agent_touched": Values("bool"),
    **{name: Values("number") for name in (
        "id", "requester_id", "assignee_id", "group_id", "organization_id")},
    **{name: Values("instant") for name in ("created_at", "updated_at", "last_agent_action_at")},
}  # fmt: skip


@dataclass(frozen=True)
class RecordKind:
    """A record kind as rules see it."""

    name: str  # "zendesk.ticket"
    var: str  # short template variable name: "ticket"
    fields: frozenset[str]
    mappings: frozenset[str] = frozenset()  # fields holding open mappings: `custom.anything`
    custom_suffix: str = ""  # Salesforce: any `*__c` field exists
    open: bool = False  # fields unknown in advance (a generic Salesforce object)
    actions: frozenset[str] = ANY_KIND_ACTIONS
    recipients: frozenset[str] = frozenset()  # symbolic recipients: assignee, requester, owner
    links: bool = False  # `set` / `comment` may write to another record of this kind (`record:`)
    # fields whose values are known
    values: dict[str, Values] = field(default_factory=dict, hash=False, compare=False)

    def has_field(self, path: str) -> bool:
        """True when a dotted field path starts at a field this kind has."""
        head, dot, _ = path.partition(".")
        if self.open or head in self.mappings:
            return True
        if dot:  # only mappings have sub-fields
            return False
        return head in self.fields or bool(self.custom_suffix and head.endswith(self.custom_suffix))

    @property
    def all_fields(self) -> frozenset[str]:
        return self.fields | self.mappings


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _sf(
    name: str,
    var: str,
    fields: str,
    mappings: str = "",
    open: bool = False,
    values: dict[str, Values] | None = None,
) -> RecordKind:
    return RecordKind(
        name=name,
        var=var,
        fields=_names(fields),
        mappings=_names(mappings),
        custom_suffix="__c",
        open=open,
        actions=ANY_KIND_ACTIONS | SALESFORCE_ACTIONS,
        recipients=frozenset({"owner"}),
        values=values or {},
    )


KINDS: dict[str, RecordKind] = {
    kind.name: kind
    for kind in (
        RecordKind(
            name="zendesk.ticket",
            var="ticket",
            fields=_names(
                "id subject description status priority type tags requester_id requester_email"
                " assignee_id assignee_email group_id group_name organization_id"
                " organization_name created_at updated_at via_channel agent_touched"
                " last_agent_action_at url"
            ),
            mappings=frozenset({"custom"}),
            actions=ANY_KIND_ACTIONS | ZENDESK_ACTIONS,
            recipients=frozenset({"assignee", "requester"}),
            links=True,
            values=ZENDESK_TICKET_VALUES,
        ),
        _sf(
            "salesforce.opportunity",
            "opportunity",
            "Id Name AccountId OwnerId StageName IsWon IsClosed CloseDate Amount Type"
            " CreatedDate LastModifiedDate SystemModstamp",
            mappings="Account",
            values={
                "IsWon": Values("bool"),
                "IsClosed": Values("bool"),
                "Amount": Values("number"),
                "CloseDate": Values("instant"),
            },
        ),
        _sf("salesforce.account", "account", "Id Name OwnerId Type Industry SystemModstamp"),
        _sf(
            "salesforce.task",
            "task",
            "Id Subject Status IsClosed ActivityDate OwnerId WhatId Description",
        ),
        _sf("salesforce.record", "record", "Id Name OwnerId SystemModstamp", open=True),
        RecordKind(
            name="sharepoint.file",
            var="file",
            fields=_names("id name path folder size mime_type created_at modified_at web_url"),
            actions=ANY_KIND_ACTIONS | {"file_transcript"},
            values={
                "size": Values("number"),
                "created_at": Values("instant"),
                "modified_at": Values("instant"),
            },
        ),
        RecordKind(
            name="sharepoint.item",
            var="item",
            fields=_names("id list created_at modified_at"),
            mappings=frozenset({"fields"}),
        ),
    )
}

# Which kinds can take each action, for messages like "create_task needs salesforce.*".
ACTION_KINDS: dict[str, tuple[str, ...]] = {
    action: tuple(k.name for k in KINDS.values() if action in k.actions)
    for action in sorted(set().union(*(k.actions for k in KINDS.values())))
}

# The kinds whose `set` and `comment` may write to another record of the kind (`record:`).
LINK_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k.links)
