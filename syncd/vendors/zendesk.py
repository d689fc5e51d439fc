"""Zendesk and its record kinds, as its connector (syncd/connectors/zendesk.py) reads them."""

from __future__ import annotations

from syncd.vendors.declare import RecordKind, Values, Vendor, names

# Zendesk's documented ticket enums (Tickets API: status, priority, type).
TICKET_VALUES = {
    "status": Values("choice", ("new", "open", "pending", "hold", "solved", "closed")),
    "priority": Values("choice", ("low", "normal", "high", "urgent")),
    "type": Values("choice", ("problem", "incident", "question", "task")),
    "agent_touched": Values("bool"),
    **{name: Values("number") for name in (
        "id", "requester_id", "assignee_id", "group_id", "organization_id")},
    **{name: Values("instant") for name in ("created_at", "updated_at", "last_agent_action_at")},
}

TICKET = RecordKind(
    name="zendesk.ticket",
    var="ticket",
    fields=names(
        "id subject description status priority type tags requester_id requester_email"
        " assignee_id assignee_email group_id group_name organization_id"
        " organization_name created_at updated_at via_channel agent_touched"
        " last_agent_action_at url"
    ),
    changed_at=("updated_at",),
    mappings=frozenset({"custom"}),
    recipients={"assignee": "assignee_email", "requester": "requester_email"},
    values=TICKET_VALUES,
)

ZENDESK = Vendor(
    system="zendesk",
    family="zendesk",
    label="Zendesk",
    kinds=(TICKET,),
    assignee_field="assignee_id",
    groups=True,
)
