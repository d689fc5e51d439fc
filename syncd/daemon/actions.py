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

from syncd.businesstime.durations import DurationError, parse_offset
from syncd.businesstime.instants import as_instant
from syncd.businesstime.spans import TimeMath
from syncd.daemon.dispatch import Agent, QueuedTicket, plan_dispatch
from syncd.daemon.people import (
    ActionError,
    NothingToDo,
    People,
    RecordMiss,
    system_of,
)
from syncd.model import Intent, Operation, Record, RecordRef
from syncd.pathnames import path_problem
from syncd.rules.conditions import Condition, Context, compile_condition
from syncd.rules.language import LINK
from syncd.store.db import Tx
from syncd.vendors.salesforce import KIND_OF_SOBJECT, SOBJECT_OF_KIND

ZENDESK_FIELDS = frozenset(
    {"status", "priority", "type", "assignee_id", "group_id", "assignee_email", "group_name"}
)
DRIVE_PATH = "drive_path"  # an attachment read from SharePoint just before the call
WALL_UNITS = {"minutes", "hours", "days", "weeks"}
QUEUED_TICKET = frozenset({"new", "open"})  # what `dispatch` hands out
# Actions that hand out a queue: the executor plans them after the other intents due in the
# same pass, so they read those intents' writes (a dispatch after a triage).
QUEUE_READERS = frozenset({"dispatch"})
# Actions whose operations read records other than their own (the queue, agents' loads).
READS_OTHERS = frozenset({*QUEUE_READERS, "assign"})
RECORD_WRITES = frozenset({"update", "add_tags", "remove_tags", "comment"})
# Actions that write fields or tags of a Zendesk ticket (`joins`)
JOINS = frozenset({"tag", "untag", "set", "assign", "unassign"})


@dataclass
class ActionContext:
    """What an action may read while its intent is claimed (inside that transaction)."""

    tx: Tx
    record: Record
    people: People
    roles: Mapping[str, Any]  # the rule's vars, for `role:Name` recipients and owners
    mailbox: str
    now: datetime
    math: TimeMath | None = None  # the rule's calendar, for conditions an action tests
    max_attachment_bytes: int = 50 * 1000 * 1000  # `[syncd] max_attachment_mb`


Builder = Callable[[ActionContext, Intent], list[Operation]]


def operations(ctx: ActionContext, intent: Intent, refused: str | None = None) -> list[Operation]:
    """The operations that carry `intent` out; with `refused` (the vendor's reason for refusing
    them), those of the action's `else` path (FALLBACKS)."""
    builder = BUILDERS.get(intent.action)
    if builder is None:
        raise ActionError(f"unknown action {intent.action!r}")
    if refused is not None:
        fallback = FALLBACKS.get(intent.action)
        if fallback is None:
            raise ActionError(refused)
        found = fallback(ctx, intent, refused)
    else:
        found = builder(ctx, intent)
    if not found:
        raise NothingToDo("the action has nothing to do")
    return [Operation(op.key, op.system, op.verb, well_formed(op.target),
                      well_formed(dict(op.payload))) for op in found]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(value: Any) -> Any:
    """`value` with every lone surrogate (valid in JSON, so customers can send one) replaced by
    U+FFFD: what syncd writes to a vendor is text that UTF-8 can carry."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {k: well_formed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [well_formed(v) for v in value]
    return value


def _op(intent: Intent, system: str, verb: str, target: str, suffix: str = "",
        **payload: Any) -> Operation:
    return Operation(intent.key + suffix, system, verb, target, payload)


def _on(intent: Intent, *systems: str) -> str:
    system = system_of(intent.record)
    if system not in systems:
        raise ActionError(f"{intent.action} does not apply to {intent.record.kind}")
    return system


def _sobject(ref: RecordRef) -> str:
    name = SOBJECT_OF_KIND.get(ref.kind)
    if name is None:
        raise ActionError(f"cannot tell the sObject of {ref.kind}")
    return name


def joins(intent: Intent) -> bool:
    """Whether the intent may be claimed with the actions of its `do:` list before it and sent
    in their request (triage's tag and assignment: one ticket update): a write to fields or
    tags of its Zendesk ticket, prepared without reading what an earlier write of the list may
    have changed (an assignment by `mapping` reads the ticket's fields: it waits for their
    write and its answer)."""
    return (intent.action in JOINS and system_of(intent.record) == "zendesk"
            and not (intent.action == "assign" and intent.params.get("strategy") == "mapping"))


def written(op: Operation) -> RecordRef | None:
    """The record an operation changes, when syncd keeps a snapshot of it (read back after the
    write, so later intents of the cycle see it)."""
    if op.verb not in RECORD_WRITES:
        return None
    if op.system == "zendesk" and op.target.isdigit():
        return RecordRef("zendesk.ticket", op.target)
    if op.system == "salesforce" and op.target in KIND_OF_SOBJECT and op.payload.get("Id"):
        return RecordRef(KIND_OF_SOBJECT[op.target], str(op.payload["Id"]))
    return None


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
    # the tag list as of the stamp: the connector sends the whole list, with safe_update (a 409
    # if the ticket changed since), instead of reading the ticket first
    stamp, current = ctx.record.fields.get("updated_at"), ctx.record.fields.get("tags")
    extra: dict[str, Any] = {"updated_stamp": stamp} if stamp else {}
    if stamp and isinstance(current, list):
        extra["current_tags"] = [str(t) for t in current]
    return [_op(intent, "zendesk", verb, intent.record.id, tags=tags, **extra)] if tags else []


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
    group, where = _queue(params["queue"])
    team = ctx.people.group("zendesk", str(params["to"]))
    users = ctx.people.directory("zendesk").users
    served = served_queue(intent)
    if served in ctx.people.served:
        raise NothingToDo(already_served(intent))
    tickets = ctx.people.open_rows(ctx.tx, "zendesk", "zendesk.ticket")
    owners = [str(t["assignee_id"]) for _, t in tickets if t.get("assignee_id") is not None]
    load = Counter([*owners, *ctx.people.dispatched.values()])
    waiting = ctx.tx.records.get_many("zendesk.ticket", [
        i for i, t in tickets
        if t.get("group_name") == group and t.get("assignee_id") is None
        and t.get("status") in QUEUED_TICKET and i not in ctx.people.dispatched
    ])
    queue = [
        QueuedTicket(i, t.fields.get("priority"), _instant(t.fields.get("created_at")))
        for i, t in waiting.items()
        if where.test(Context(t.fields, None, ctx.now, ctx.math))
    ]
    agents = [
        Agent(m, available=users[m].active and not users[m].away, load=load.get(m, 0))
        for m in team.member_ids
        if m in users
    ]
    plan = plan_dispatch(queue, agents, capacity=int(params["capacity"]),
                         order=params.get("order") or ("priority", "age"))
    ctx.people.served.add(served)
    if not plan.assignments:
        raise NothingToDo("nothing to dispatch: " + (
            f"{len(queue)} queued ticket(s), no agent of {team.name} free" if queue
            else "no queued ticket"))
    found = []
    for assignment in plan.assignments:
        ticket = assignment.ticket_id
        ctx.people.dispatched[ticket] = assignment.agent_id
        found.append(_op(intent, "zendesk", "update", ticket, f"#{ticket}",
                         assignee_id=int(assignment.agent_id), group_id=int(team.id)))
        if params.get("notify_requester"):
            found.append(_op(intent, "zendesk", "comment", ticket, f"#{ticket}/note",
                             body=str(params["notify_requester"]), public=True))
    return found


def served_queue(intent: Intent) -> tuple[str, ...]:
    """What a queue reader serves: once served in a pass, its other intents have nothing to do."""
    params = intent.params
    return (str(params["queue"]), str(params["to"]), str(params["capacity"]))


def already_served(intent: Intent) -> str:
    return f"nothing to dispatch: {intent.params['queue']} was served in this pass"


def _queue(spec: Any) -> tuple[str, Condition]:
    """A dispatch's queue: its group, and the condition its tickets meet (`where`, tested on
    each ticket as it stands; a bare group name takes every ticket)."""
    if isinstance(spec, Mapping):
        return str(spec["group"]), compile_condition(spec.get("where"))
    return str(spec), compile_condition(None)


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
                    fields={"OwnerId": chosen.user.id})]
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
                  body)]


def _mail(ctx: ActionContext, intent: Intent, to: Any, cc: Any, subject: str, body: str,
          suffix: str = "") -> Operation:
    if "graph" not in ctx.people.connectors:
        raise ActionError("mail needs the [graph] section (Graph sendMail)")
    to_addresses = ctx.people.recipients(_texts(to), ctx.record, ctx.roles)
    if not to_addresses:
        raise NothingToDo(f"no recipient: {_texts(to)} resolve to nobody for {ctx.record.ref}")
    cc_addresses = [a for a in ctx.people.recipients(_texts(cc), ctx.record, ctx.roles)
                    if a.lower() not in {t.lower() for t in to_addresses}]
    return _op(intent, "graph", "send_mail", ctx.mailbox, suffix, to=to_addresses,
               cc=cc_addresses, subject=one_line(subject), body=body)


_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*")


def one_line(text: str) -> str:
    """A subject is one line: line breaks from data (a ticket subject) become one space."""
    return _LINE_BREAKS.sub(" ", text).strip()


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
    payload: dict[str, Any] = {"subject": one_line(str(params["subject"])),
                               "body": str(params["body"])}
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
    for folder in (path, *(f"{path}/{s.strip('/')}" for s in subfolders)):
        _safe_path(folder)
    return [_op(intent, "graph", "ensure_folder", path, subfolders=subfolders)]


def _safe_path(path: str) -> None:
    """Refuse a drive path with a segment that is not one safe name (pathnames.py)."""
    problem = path_problem(path)
    if problem is not None:
        raise ActionError(problem)


def file_transcript(ctx: ActionContext, intent: Intent) -> list[Operation]:
    """Attach the file to the ticket its name (or path) names; else file it and tell people.

    A number that names no ticket (a typo in the meeting's topic, a deleted ticket), or a
    ticket of another organisation than the client the file names (`organization`), is "in
    doubt": the file goes to `else_folder` and `else_notify` is told why, never dropped and
    never failed. A ticket syncd has not read (younger than the export's last minute) is
    looked up at Zendesk once before deciding (RecordMiss)."""
    _on(intent, "graph")
    name, path, ticket = _transcript(ctx, intent)
    size = ctx.record.fields.get("size")
    if isinstance(size, int) and size > ctx.max_attachment_bytes:  # never read it whole
        why = (f"{name!r} is {size:,} bytes, over the {ctx.max_attachment_bytes:,} syncd "
               "attaches or copies ([syncd] max_attachment_mb).")
        return _unfiled(ctx, intent, name, path, why, copy=False)
    if ticket is None:
        return _unfiled(ctx, intent, name, path, f"No ticket number found in {name!r}.")
    ref = RecordRef("zendesk.ticket", ticket)
    stored = ctx.tx.records.get(ref)
    if stored is None and ref not in ctx.people.looked_up:
        raise RecordMiss(ref, f"ticket {ticket} is not known yet")
    if stored is None or stored.deleted:
        why = f"{name!r} names ticket {ticket}, but ticket {ticket} was not found" + (
            " (deleted)." if stored is not None else ".")
        return _unfiled(ctx, intent, name, path, why)
    client = str(intent.params.get("organization") or "").strip()
    owner = str(stored.fields.get("organization_name") or "").strip()
    if client and owner.casefold() != client.casefold():
        why = (f"{name!r} names ticket {ticket} and the client {client!r}, but ticket {ticket} "
               f"belongs to {owner!r}." if owner else
               f"{name!r} names ticket {ticket} and the client {client!r}, but ticket {ticket} "
               "belongs to no organisation.")
        return _unfiled(ctx, intent, name, path, why)
    attachment = {"filename": name, DRIVE_PATH: path}
    return [_op(intent, "zendesk", "comment", ticket, body=f"Transcript: {name}",
                public=False, attachments=[attachment])]


def transcript_refused(ctx: ActionContext, intent: Intent, reason: str) -> list[Operation]:
    """The ticket refused the attachment (closed, deleted, no permission): the `else` path,
    with Zendesk's reason, so that no transcript ends only in the dead-letter list."""
    name, path, ticket = _transcript(ctx, intent)
    why = f"Zendesk refused to attach {name!r} to ticket {ticket}: {reason}"
    return _unfiled(ctx, intent, name, path, why)


def _transcript(ctx: ActionContext, intent: Intent) -> tuple[str, str, str | None]:
    """The file's name, its path and the ticket number `ticket_from` finds (name, then path)."""
    fields = ctx.record.fields
    name, path = str(fields.get("name") or ""), str(fields.get("path") or "")
    if not path:
        raise ActionError(f"{ctx.record.ref} has no path")
    pattern = re.compile(str(intent.params["ticket_from"]))
    match = pattern.search(name) or pattern.search(path)
    return name, path, match.group(1) if match and match.groups() else None


def _unfiled(ctx: ActionContext, intent: Intent, name: str, path: str, why: str,
             copy: bool = True) -> list[Operation]:
    """`file_transcript`'s fallback: a copy in `else_folder`, a mail to `else_notify`. A file
    too large to attach is not copied either (a copy reads it whole): it stays where it is."""
    params = intent.params
    folder = str(params.get("else_folder") or "") if copy else ""
    refused = path_problem(folder) if folder else None
    if refused is not None:  # a name built from the data: never a copy anywhere else
        if not _texts(params.get("else_notify")):
            raise ActionError(f"{why} The else_folder is refused: {refused}.")
        why, folder = f"{why} The else_folder is refused: {refused}.", ""
    found = []
    if folder:
        found.append(_op(intent, "graph", "copy_file", path, "#copy", destination=folder))
    if _texts(params.get("else_notify")):
        where = f"A copy is in {folder}." if folder else "It was left where it is."
        link = ctx.record.fields.get("web_url") or path
        body = f"{why}\n\nTranscript: {name} ({link})\n{where}\nPlease file it where it belongs."
        found.append(_mail(ctx, intent, params["else_notify"], [],
                           f"Transcript not filed: {name}", body, "#notify"))
    if not found:
        raise ActionError(f"{why} No else_folder or else_notify to fall back to.")
    return found


def _instant(value: Any) -> datetime:
    """A ticket's created_at for queue order; an unreadable one queues last."""
    found = as_instant(value)
    return found if found is not None else datetime.max.replace(tzinfo=UTC)


Fallback = Callable[[ActionContext, Intent, str], list[Operation]]

# Actions with an `else` path: when the vendor refuses the intent's operations for good (not a
# retry), these build what is done instead, given the vendor's reason.
FALLBACKS: dict[str, Fallback] = {"file_transcript": transcript_refused}

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
