"""Intents into vendor Operations: one small function per action kind (docs/rules.md, Actions).

Each function reads the rendered params, the record's snapshot and the directories, and returns
the operations that carry the intent out. An intent that yields several operations gives each
the intent key plus a suffix (`#copy`, `#42`), so every one is verified on its own. What
cannot be carried out (a missing field, an unknown user, an action the record's system does
not take) raises `ActionError` with the reason the dead letter shows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.daemon.people import ActionError, NothingToDo, People, system_of
from syncd.durations import DurationError, parse_offset
from syncd.model import Intent, Operation, Record, RecordRef
from syncd.rules.conditions import as_instant
from syncd.rules.dispatch import Agent, QueuedTicket, plan_dispatch
from syncd.rules.schema import LINK
from syncd.store.db import Tx

ZENDESK_FIELDS = frozenset(
    {"status", "priority", "type", "assignee_id", "group_id", "assignee_email", "group_name"}
)
SOBJECTS = {
    "salesforce.opportunity": "Opportunity",
    "salesforce.account": "Account",
    "salesforce.task": "Task",
}
DRIVE_PATH = "drive_path"  # an attachment read from SharePoint just before the call
WALL_UNITS = {"minutes", "hours", "days", "weeks"}
QUEUED_TICKET = frozenset({"new", "open"})  # what `dispatch` hands out


@dataclass
class ActionContext:
    """What an action may read while its intent is claimed (inside that transaction)."""

    tx: Tx
    record: Record
    people: People
    roles: Mapping[str, Any]  # the rule's vars, for `role:Name` recipients and owners
    mailbox: str
    now: datetime


Builder = Callable[[ActionContext, Intent], list[Operation]]


def operations(ctx: ActionContext, intent: Intent) -> list[Operation]:
    """The operations that carry `intent` out."""
    builder = BUILDERS.get(intent.action)
    if builder is None:
        raise ActionError(f"unknown action {intent.action!r}")
    found = builder(ctx, intent)
    if not found:
        raise NothingToDo("the action has nothing to do")
    return found


def _op(intent: Intent, system: str, verb: str, target: str, suffix: str = "",
        **payload: Any) -> Operation:  # fmt: skip
    return Operation(intent.key + suffix, system, verb, target, payload)


def _on(intent: Intent, *systems: str) -> str:
    system = system_of(intent.record)
    if system not in systems:
        raise ActionError(f"{intent.action} does not apply to {intent.record.kind}")
    return system


def _sobject(ref: RecordRef) -> str:
    name = SOBJECTS.get(ref.kind)
    if name is None:
        raise ActionError(f"cannot tell the sObject of {ref.kind}")
    return name


def _ticket(intent: Intent) -> str:
    """The ticket the action writes to: the one its `record:` names (an id the engine checked),
    else the rule's own. The intent stays the rule record's, so its key (exactly once) and its
    audit belong to the record that caused it."""
    return str(intent.params.get(LINK) or intent.record.id)


def _texts(values: Any) -> list[str]:
    return [str(v).strip() for v in values or [] if str(v).strip()]


# -- zendesk-only actions --------------------------------------------------------------------
def tag(ctx: ActionContext, intent: Intent) -> list[Operation]:
    _on(intent, "zendesk")
    tags = _texts(intent.params.get("tags"))
    verb = "add_tags" if intent.action == "tag" else "remove_tags"
    return [_op(intent, "zendesk", verb, intent.record.id, tags=tags)] if tags else []


def unassign(ctx: ActionContext, intent: Intent) -> list[Operation]:
    _on(intent, "zendesk")
    fields: dict[str, Any] = {"assignee_id": None}
    if not intent.params.get("keep_group"):
        fields["group_id"] = None
    return [_op(intent, "zendesk", "update", intent.record.id, **fields)]


def comment(ctx: ActionContext, intent: Intent) -> list[Operation]:
    _on(intent, "zendesk")
    body, public = str(intent.params["body"]), bool(intent.params.get("public", False))
    return [_op(intent, "zendesk", "comment", _ticket(intent), body=body, public=public)]


def dispatch(ctx: ActionContext, intent: Intent) -> list[Operation]:
    """Queued tickets of group `queue` to the available agents of group `to` with capacity.

    The queue holds only tickets someone can work on now (`new`, `open`): a request sent back
    to the dispatcher while it waits for the customer (`pending`, `hold`) is handed out again
    when the customer's answer reopens it. An agent's load counts every ticket they hold
    that is not solved, plus what this pass has handed out already. Nothing to hand out is not
    a failure: the intent is skipped."""
    _on(intent, "zendesk")
    params = intent.params
    team = ctx.people.group("zendesk", str(params["to"]))
    users = ctx.people.directory("zendesk").users
    served = (str(params["queue"]), str(params["to"]), str(params["capacity"]))
    if served in ctx.people.served:
        raise NothingToDo(f"nothing to dispatch: {params['queue']} was served in this pass")
    tickets = ctx.people.open_records(ctx.tx, "zendesk", "zendesk.ticket")
    owners = [str(t.fields["assignee_id"]) for t in tickets
              if t.fields.get("assignee_id") is not None]  # fmt: skip
    load = Counter([*owners, *ctx.people.dispatched.values()])
    queue = [
        QueuedTicket(t.ref.id, t.fields.get("priority"), _instant(t.fields.get("created_at")))
        for t in tickets
        if t.fields.get("group_name") == params["queue"]
        and t.fields.get("assignee_id") is None
        and t.fields.get("status") in QUEUED_TICKET
        and t.ref.id not in ctx.people.dispatched
    ]
    agents = [
        Agent(m, available=users[m].active and not users[m].away, load=load.get(m, 0))
        for m in team.member_ids
        if m in users
    ]
    plan = plan_dispatch(queue, agents, capacity=int(params["capacity"]),
                         order=params.get("order") or ("priority", "age"))  # fmt: skip
    ctx.people.served.add(served)
    if not plan.assignments:
        raise NothingToDo("nothing to dispatch: " + (
            f"{len(queue)} queued ticket(s), no agent of {team.name} free" if queue
            else "no queued ticket"))  # fmt: skip
    found = []
    for assignment in plan.assignments:
        ticket = assignment.ticket_id
        ctx.people.dispatched[ticket] = assignment.agent_id
        found.append(_op(intent, "zendesk", "update", ticket, f"#{ticket}",
                         assignee_id=int(assignment.agent_id), group_id=int(team.id)))  # fmt: skip
        if params.get("notify_requester"):
            found.append(_op(intent, "zendesk", "comment", ticket, f"#{ticket}/note",
                             body=str(params["notify_requester"]), public=True))  # fmt: skip
    return found


# -- actions on several systems --------------------------------------------------------------
def set_fields(ctx: ActionContext, intent: Intent) -> list[Operation]:
    system = _on(intent, "zendesk", "salesforce")
    fields = dict(intent.params["fields"])
    if system == "salesforce":
        if LINK in intent.params:
            raise ActionError(f"set: '{LINK}' (another record) works on Zendesk tickets only")
        ref = intent.record
        return [_op(intent, system, "update", _sobject(ref), Id=ref.id, fields=fields)]
    payload: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in fields.items():
        if name.startswith("custom."):
            custom[name.removeprefix("custom.")] = value
        elif name in ZENDESK_FIELDS:
            payload[name] = value
        else:
            raise ActionError(f"zendesk cannot set {name!r}")
    if custom:
        payload["custom_fields"] = custom
    return [_op(intent, system, "update", _ticket(intent), **payload)]


def assign(ctx: ActionContext, intent: Intent) -> list[Operation]:
    system = _on(intent, "zendesk", "salesforce")
    chosen = ctx.people.assignee(ctx.tx, intent.params, ctx.record, ctx.now)
    if system == "salesforce":
        if chosen.user is None:
            raise ActionError("a Salesforce owner must be a user")
        ref = intent.record
        return [_op(intent, system, "update", _sobject(ref), Id=ref.id,
                    fields={"OwnerId": chosen.user.id})]  # fmt: skip
    payload: dict[str, Any] = {}
    if chosen.group is not None:
        payload["group_id"] = int(chosen.group.id)
    if chosen.user is not None:
        payload["assignee_id"] = int(chosen.user.id)
    return [_op(intent, system, "update", intent.record.id, **payload)]


def notify(ctx: ActionContext, intent: Intent) -> list[Operation]:
    params = intent.params
    body = str(params.get("body") or "")
    if params.get("via") == "note":
        _on(intent, "zendesk")
        subject = params.get("subject")
        text = f"{subject}\n\n{body}" if subject else body
        return [_op(intent, "zendesk", "comment", intent.record.id, body=text, public=False)]
    return [_mail(ctx, intent, params.get("to"), params.get("cc"), str(params.get("subject")),
                  body)]  # fmt: skip


def _mail(ctx: ActionContext, intent: Intent, to: Any, cc: Any, subject: str, body: str,
          suffix: str = "") -> Operation:  # fmt: skip
    if "graph" not in ctx.people.connectors:
        raise ActionError("mail needs the [graph] section (Graph sendMail)")
    to_addresses = ctx.people.recipients(_texts(to), ctx.record, ctx.roles)
    if not to_addresses:
        raise NothingToDo(f"no recipient: {_texts(to)} resolve to nobody for {ctx.record.ref}")
    cc_addresses = [a for a in ctx.people.recipients(_texts(cc), ctx.record, ctx.roles)
                    if a.lower() not in {t.lower() for t in to_addresses}]  # fmt: skip
    return _op(intent, "graph", "send_mail", ctx.mailbox, suffix, to=to_addresses,
               cc=cc_addresses, subject=subject, body=body)  # fmt: skip


def create_task(ctx: ActionContext, intent: Intent) -> list[Operation]:
    _on(intent, "salesforce")
    params = intent.params
    fields: dict[str, Any] = {
        "Subject": str(params["subject"]),
        "WhatId": intent.record.id,
        "Status": params.get("status") or "Not Started",
        "Priority": params.get("priority") or "Normal",
    }
    if params.get("due"):
        fields["ActivityDate"] = str(params["due"])[:10]
    if params.get("description"):
        fields["Description"] = str(params["description"])
    if params.get("owner"):
        fields["OwnerId"] = _owner_id(ctx, str(params["owner"]))
    return [_op(intent, "salesforce", "create", "Task", fields=fields)]


def create_event(ctx: ActionContext, intent: Intent) -> list[Operation]:
    _on(intent, "salesforce")
    params = intent.params
    start = datetime.fromisoformat(str(params["start"]))
    length = _wall(str(params.get("duration") or "1h"))
    fields: dict[str, Any] = {
        "Subject": str(params["subject"]),
        "WhatId": intent.record.id,
        "StartDateTime": start.isoformat(),
        "EndDateTime": (start + length).isoformat(),
        "DurationInMinutes": int(length.total_seconds() // 60),
    }
    if params.get("description"):
        fields["Description"] = str(params["description"])
    if params.get("owner"):
        fields["OwnerId"] = _owner_id(ctx, str(params["owner"]))
    return [_op(intent, "salesforce", "create", "Event", fields=fields)]


def _owner_id(ctx: ActionContext, owner: str) -> str:
    """A Salesforce user id for `owner`: the record's owner, a role (rule var) or a user."""
    if owner == "owner":
        found = ctx.record.fields.get("OwnerId")
        if not found:
            raise ActionError(f"{ctx.record.ref} has no OwnerId")
        return str(found)
    if owner.startswith("role:"):
        value = ctx.roles.get(owner.removeprefix("role:").strip())
        if not isinstance(value, str):
            raise ActionError(f"{owner!r} names no single user (a rule var of that name)")
        owner = value
    return ctx.people.user("salesforce", owner.removeprefix("user:").strip()).id


def _wall(text: str) -> timedelta:
    try:
        offset = parse_offset(text)
    except DurationError as exc:
        raise ActionError(str(exc)) from None
    if offset.unit not in WALL_UNITS:
        raise ActionError(f"an event lasts a wall duration (m, h, d, w), not {text!r}")
    return timedelta(**{offset.unit: offset.amount})


def create_ticket(ctx: ActionContext, intent: Intent) -> list[Operation]:
    params = intent.params
    payload: dict[str, Any] = {"subject": str(params["subject"]), "body": str(params["body"])}
    if params.get("requester"):
        found = ctx.people.recipients([str(params["requester"])], ctx.record, ctx.roles)
        if not found:
            raise ActionError(f"requester {params['requester']!r} resolves to nobody")
        payload["requester_email"] = found[0]
    if params.get("group"):
        payload["group_id"] = int(ctx.people.group("zendesk", str(params["group"])).id)
    if params.get("priority"):
        payload["priority"] = str(params["priority"])
    if _texts(params.get("tags")):
        payload["tags"] = _texts(params.get("tags"))
    return [_op(intent, "zendesk", "create_ticket", "", **payload)]


def ensure_folder(ctx: ActionContext, intent: Intent) -> list[Operation]:
    path = str(intent.params["path"]).strip("/")
    if not path:
        raise ActionError("ensure_folder needs a non-empty path")
    subfolders = _texts(intent.params.get("subfolders"))
    return [_op(intent, "graph", "ensure_folder", path, subfolders=subfolders)]


def file_transcript(ctx: ActionContext, intent: Intent) -> list[Operation]:
    """Attach the file to the ticket its name (or path) names; else file it and tell people.

    A number that names no ticket syncd knows (a typo in the meeting's topic, a deleted
    ticket) is "in doubt" too: the file goes to `else_folder` and `else_notify` is told why,
    never dropped and never failed. Syncd reads every ticket from the start of the Zendesk
    export, so a ticket it does not know does not exist (at most it is younger than a poll)."""
    _on(intent, "graph")
    params, fields = intent.params, ctx.record.fields
    name, path = str(fields.get("name") or ""), str(fields.get("path") or "")
    if not path:
        raise ActionError(f"{ctx.record.ref} has no path")
    pattern = re.compile(str(params["ticket_from"]))
    match = pattern.search(name) or pattern.search(path)
    ticket = match.group(1) if match and match.groups() else None
    if ticket is None:
        why = f"No ticket number found in {name!r}."
    else:
        stored = ctx.tx.records.get(RecordRef("zendesk.ticket", ticket))
        if stored is not None and not stored.deleted:
            attachment = {"filename": name, DRIVE_PATH: path}
            return [_op(intent, "zendesk", "comment", ticket, body=f"Transcript: {name}",
                        public=False, attachments=[attachment])]  # fmt: skip
        why = f"{name!r} names ticket {ticket}, but ticket {ticket} was not found" + (
            " (deleted)." if stored is not None else ".")  # fmt: skip
    return _unfiled(ctx, intent, name, path, why)


def _unfiled(ctx: ActionContext, intent: Intent, name: str, path: str,
             why: str) -> list[Operation]:  # fmt: skip
    """`file_transcript`'s fallback: a copy in `else_folder`, a mail to `else_notify`."""
    params = intent.params
    folder = str(params.get("else_folder") or "")
    found = []
    if folder:
        found.append(_op(intent, "graph", "copy_file", path, "#copy", destination=folder))
    if _texts(params.get("else_notify")):
        where = f"A copy is in {folder}." if folder else "It was left where it is."
        link = ctx.record.fields.get("web_url") or path
        body = f"{why}\n\nTranscript: {name} ({link})\n{where}\nPlease file it where it belongs."
        found.append(_mail(ctx, intent, params["else_notify"], [],
                           f"Transcript not filed: {name}", body, "#notify"))  # fmt: skip
    if not found:
        raise ActionError(f"{why} No else_folder or else_notify to fall back to.")
    return found


def _instant(value: Any) -> datetime:
    """A ticket's created_at for queue order; an unreadable one queues last."""
    found = as_instant(value)
    return found if found is not None else datetime.max.replace(tzinfo=UTC)


BUILDERS: dict[str, Builder] = {
    "tag": tag,
    "untag": tag,
    "set": set_fields,
    "assign": assign,
    "unassign": unassign,
    "comment": comment,
    "notify": notify,
    "create_task": create_task,
    "create_event": create_event,
    "create_ticket": create_ticket,
    "ensure_folder": ensure_folder,
    "file_transcript": file_transcript,
    "dispatch": dispatch,
}
