"""Ticket writes as Zendesk performs them: validate everything first (a 422 changes nothing),
then apply, bump `updated_at`/`generated_timestamp` from the sandbox clock, and record an audit
naming who changed what.

Zendesk's own side effects that rules depend on are emulated: an assignee pulls in their
default group and opens a new ticket, a group change drops an assignee who is not a member,
solving an unassigned ticket assigns the solver, a requester's reply reopens a pending or
solved ticket, and a dropdown field's value is also a tag.
"""

from __future__ import annotations

import copy
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.sandbox.zendesk_model import (
    EPOCH,
    PRIORITIES,
    STATUSES,
    TICKET_TYPES,
    VIA_API,
    Details,
    ZendeskError,
    ZendeskState,
    fmt_ts,
    invalid,
    parse_ts,
    record_invalid,
)

# Fields whose changes an audit reports, in Zendesk's event order.
TRACKED = (
    "subject", "status", "priority", "type", "requester_id", "assignee_id", "group_id",
    "organization_id", "tags", "due_at", "problem_id", "brand_id", "ticket_form_id",
)
_ID_FIELDS = {
    "requester_id": "users", "submitter_id": "users", "assignee_id": "users",
    "group_id": "groups", "organization_id": "organizations", "problem_id": "tickets",
    "brand_id": None, "ticket_form_id": None,
}
_USER_LISTS = ("collaborator_ids", "follower_ids", "email_cc_ids")
_TAG_RE = re.compile(r"<[^>]+>")


def normalize_tags(value: Any) -> list[str] | None:
    """Zendesk tags: lower case, no spaces (a space separates two tags), no duplicates."""
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        items = [part for v in value for part in str(v).split()]
    else:
        return None
    out: list[str] = []
    for tag in (t.strip().lower() for t in items):
        if tag and tag not in out:
            out.append(tag)
    return out


def event_value(name: str, value: Any) -> Any:
    """Audit events carry ids as strings and tags as lists, as Zendesk's do."""
    if value is None or name == "tags" or isinstance(value, list | bool):
        return value
    return str(value)


@dataclass
class _Plan:
    """A validated change, not yet applied."""

    ticket: dict[str, Any]
    errors: Details = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    new_requester: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the audit's metadata.custom

    def error(self, name: str, description: str, code: str = "InvalidValue") -> None:
        self.errors.setdefault(name, []).append({"description": description, "error": code})


class TicketWriter:
    """Applies ticket writes for one acting user at one instant of the sandbox clock."""

    def __init__(self, state: ZendeskState, now: datetime, actor: dict[str, Any]) -> None:
        self.state = state
        self.now = now
        self.actor = actor

    @property
    def stamp(self) -> str:
        return fmt_ts(self.now)

    # -- public operations -------------------------------------------------------------------
    def create(
        self, data: dict[str, Any], *, imported: bool = False, historical: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """New ticket + its creation audit. `imported`: Ticket Import API semantics (own
        timestamps, comment list, no automatic status rules); `historical`: a fixture, whose
        generated_timestamp is its updated_at instead of now."""
        plan = self._plan(None, data, imported=imported)
        if not plan.comments:
            plan.error("description", "Description: cannot be blank", "BlankValue")
        self._raise(plan)
        ticket = plan.ticket
        ticket["id"] = self.state.claim_id(data.get("id") if historical else None, ticket=True)
        self._settle_requester(plan)
        first = plan.comments[0]
        ticket["description"] = first["body"]
        created = self._import_time(data.get("created_at")) if imported else self.stamp
        ticket["created_at"] = created
        for comment in plan.comments:
            comment.setdefault("created_at", created)
        ticket["updated_at"] = (
            self._import_time(data["updated_at"]) if imported and data.get("updated_at")
            else max([created, *(c["created_at"] for c in plan.comments)])
        )
        ticket["generated_timestamp"] = (
            int(parse_ts(ticket["updated_at"]).timestamp())  # type: ignore[union-attr]
            if historical else int(self.now.timestamp())
        )
        ticket["is_public"] = any(c["public"] for c in plan.comments)
        self.state.tickets[ticket["id"]] = ticket
        events = [
            {"id": self.state.new_id(), "type": "Create", "field_name": name,
             "value": event_value(name, value)}
            for name, value in self._tracked(ticket).items()
            if value not in (None, [])
        ]
        audit = self._record_audit(ticket, [first], events, author=first["author_id"],
                                   at=created)
        for later in plan.comments[1:]:
            self._record_audit(ticket, [later], [], author=later["author_id"],
                               at=later["created_at"])
        return ticket, audit

    def update(self, ticket_id: int, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """PUT semantics: absent keys stay as they are; `comment` adds one; `tags` replaces."""
        before = self._writable(ticket_id, data)
        plan = self._plan(before, data)
        self._raise(plan)
        self._settle_requester(plan)
        return self._commit(before, plan)

    def change_tags(self, ticket_id: int, op: str, data: dict[str, Any]) -> dict[str, Any]:
        """The additive tag endpoints: add (PUT), set (POST), remove (DELETE)."""
        before = self._writable(ticket_id, data)
        tags = normalize_tags(data.get("tags"))
        if tags is None:
            raise invalid("tags", "Tags: must be a list of strings")
        current = list(before["tags"])
        if op == "add":
            new = current + [t for t in tags if t not in current]
        elif op == "remove":
            new = [t for t in current if t not in tags]
        else:
            new = tags
        plan = _Plan(ticket=copy.deepcopy(before))
        plan.ticket["tags"] = new
        return self._commit(before, plan)[0]

    def delete(self, ticket_id: int) -> None:
        """Soft delete: the ticket leaves every list but shows in the incremental export as
        status "deleted"."""
        ticket = self.state.live_ticket(ticket_id)
        ticket["deleted"] = True
        self._touch(ticket)

    def rate(self, ticket_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the ticket's satisfaction rating (solved/closed tickets only)."""
        ticket = self.state.live_ticket(ticket_id)
        score = data.get("score")
        if score not in ("good", "bad"):
            raise invalid("score", "Score: is not valid (good or bad)")
        if ticket["status"] not in ("solved", "closed"):
            raise invalid("ticket", "Ticket: must be solved before it can be rated")
        rating_id = (ticket["satisfaction_rating"] or {}).get("id") or self.state.new_id()
        old = self.state.ratings.get(rating_id)
        rating = {
            "id": rating_id, "assignee_id": ticket["assignee_id"], "group_id": ticket["group_id"],
            "requester_id": ticket["requester_id"], "ticket_id": ticket["id"], "score": score,
            "comment": str(data.get("comment") or ""), "reason": None,
            "created_at": old["created_at"] if old else self.stamp, "updated_at": self.stamp,
        }
        self.state.ratings[rating_id] = rating
        ticket["satisfaction_rating"] = {
            "id": rating_id, "score": score, "comment": rating["comment"]
        }
        self._touch(ticket)
        event = {"id": self.state.new_id(), "type": "SatisfactionRating", "score": score,
                 "assignee_id": ticket["assignee_id"], "body": rating["comment"]}
        self._record_audit(ticket, [], [event], author=ticket["requester_id"], at=self.stamp)
        return rating

    # -- validation ----------------------------------------------------------------------------
    def _writable(self, ticket_id: int, data: dict[str, Any]) -> dict[str, Any]:
        ticket = self.state.live_ticket(ticket_id)
        if ticket["status"] == "closed":
            raise invalid("status", "Status: closed prevents ticket update", "ClosedPreventsUpdate")
        if data.get("safe_update"):
            stamp = parse_ts(data.get("updated_stamp"))
            if stamp is None:
                raise invalid("updated_stamp", "Updated stamp: is required with safe_update")
            if parse_ts(ticket["updated_at"]) > stamp:  # type: ignore[operator]
                raise ZendeskError(409, {
                    "error": "UpdateConflict",
                    "description": "The ticket was updated since updated_stamp; "
                                   "reload it and retry.",
                })
        return ticket

    def _raise(self, plan: _Plan) -> None:
        if plan.errors:
            raise record_invalid(plan.errors)

    def _plan(
        self, before: dict[str, Any] | None, data: dict[str, Any], *, imported: bool = False
    ) -> _Plan:
        plan = _Plan(ticket=copy.deepcopy(before) if before else self._blank())
        t = plan.ticket
        self._enums(plan, before, data)
        if "subject" in data:
            t["subject"] = None if data["subject"] is None else str(data["subject"])
        if "external_id" in data:
            t["external_id"] = None if data["external_id"] is None else str(data["external_id"])
        if "due_at" in data:
            due = parse_ts(data["due_at"])
            if data["due_at"] is not None and due is None:
                plan.error("due_at", "Due at: is not a valid date")
            t["due_at"] = fmt_ts(due) if due else None
        self._ids(plan, data)
        self._people(plan, data)
        if "tags" in data:
            tags = normalize_tags(data["tags"])
            if tags is None:
                plan.error("tags", "Tags: must be a list of strings")
            else:
                t["tags"] = tags
        for key in ("custom_fields", "fields"):
            if key in data:
                self._custom_fields(plan, data[key])
        for key, adding in (("additional_tags", True), ("remove_tags", False)):
            if key in data:
                self._tag_delta(plan, data[key], adding)
        if "metadata" in data:
            if isinstance(data["metadata"], dict):
                plan.metadata = copy.deepcopy(data["metadata"])
            else:
                plan.error("metadata", "Metadata: must be an object")
        self._comments(plan, data, creating=before is None, imported=imported)
        self._assignment(plan, before, data)
        if not imported:
            self._automatic_status(plan, before, data)
        return plan

    def _blank(self) -> dict[str, Any]:
        return {
            "id": None, "external_id": None, "via": VIA_API, "type": None, "subject": None,
            "description": None, "priority": None, "status": "new", "requester_id": None,
            "submitter_id": self.actor["id"], "assignee_id": None, "organization_id": None,
            "group_id": None, "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
            "problem_id": None, "is_public": True, "due_at": None, "tags": [],
            "custom_fields": {}, "satisfaction_rating": None, "ticket_form_id": None,
            "brand_id": None, "deleted": False,
        }

    def _enums(self, plan: _Plan, before: dict[str, Any] | None, data: dict[str, Any]) -> None:
        for key, allowed, nullable in (
            ("status", STATUSES, False), ("priority", PRIORITIES, True),
            ("type", TICKET_TYPES, True),
        ):
            if key not in data:
                continue
            value = data[key]
            label = key.capitalize()
            if (value is None and not nullable) or (value is not None and value not in allowed):
                plan.error(key, f"{label}: {value!r} is not a valid value")
            elif key == "status" and value == "new" and before and before["status"] != "new":
                plan.error(key, "Status: cannot be set back to New")
            else:
                plan.ticket[key] = value

    def _ids(self, plan: _Plan, data: dict[str, Any]) -> None:
        for key, table in _ID_FIELDS.items():
            if key not in data:
                continue
            value = self._as_id(plan, key, data[key])
            if value is not None and table is not None and value not in getattr(self.state, table):
                plan.error(key.removesuffix("_id"), f"{_label(key)}: is invalid")
                continue
            if key == "assignee_id" and value is not None and (
                self.state.users[value]["role"] == "end-user"
            ):
                plan.error("assignee", "Assignee: is not an agent")
                continue
            plan.ticket[key] = value
        if "assignee_email" in data:
            user = self.state.user_by_email(str(data["assignee_email"] or ""))
            if user is None or user["role"] == "end-user":
                plan.error("assignee", "Assignee: is invalid")
            else:
                plan.ticket["assignee_id"] = user["id"]

    def _as_id(self, plan: _Plan, key: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not str(value).isdigit():
            plan.error(key.removesuffix("_id"), f"{_label(key)}: is not a valid id")
            return None
        return int(value)

    def _people(self, plan: _Plan, data: dict[str, Any]) -> None:
        for key in _USER_LISTS:
            if key not in data:
                continue
            values = data[key] if isinstance(data[key], list) else [None]
            ids = [self._as_id(plan, key, v) for v in values]
            if any(i not in self.state.users for i in ids):
                plan.error(key, f"{_label(key)}: contains an unknown user")
            else:
                plan.ticket[key] = ids
        requester = data.get("requester")
        if isinstance(requester, dict) and requester.get("email"):
            user = self.state.user_by_email(str(requester["email"]))
            if user is not None:
                plan.ticket["requester_id"] = user["id"]
            else:
                plan.new_requester = {"email": str(requester["email"]),
                                      "name": str(requester.get("name") or requester["email"])}
        elif requester is not None:
            plan.error("requester", "Requester: must have an email")

    def _custom_fields(self, plan: _Plan, items: Any) -> None:
        if not isinstance(items, list):
            plan.error("custom_fields", "Custom fields: must be a list of {id, value}")
            return
        for item in items:
            fid = item.get("id") if isinstance(item, dict) else None
            definition = self.state.ticket_fields.get(fid) if isinstance(fid, int) else None
            if definition is None or not definition["removable"]:
                plan.error("custom_fields", f"Custom field {fid!r}: does not exist")
                continue
            ok, value = _coerce(definition, item.get("value"))
            if not ok:
                plan.error("custom_fields",
                           f"{definition['title']}: {item.get('value')!r} is not a valid value")
                continue
            old = plan.ticket["custom_fields"].get(str(fid))
            plan.ticket["custom_fields"][str(fid)] = value
            if definition["type"] == "tagger":
                tags = [t for t in plan.ticket["tags"] if t != old]
                plan.ticket["tags"] = tags + ([value] if value and value not in tags else [])

    def _tag_delta(self, plan: _Plan, value: Any, adding: bool) -> None:
        tags = normalize_tags(value)
        if tags is None:
            plan.error("tags", "Tags: must be a list of strings")
            return
        current = plan.ticket["tags"]
        plan.ticket["tags"] = (
            current + [t for t in tags if t not in current] if adding
            else [t for t in current if t not in tags]
        )

    def _comments(
        self, plan: _Plan, data: dict[str, Any], *, creating: bool, imported: bool
    ) -> None:
        specs: list[Any] = []
        if imported and "comments" in data:
            specs = data["comments"] if isinstance(data["comments"], list) else [None]
        elif "comment" in data:
            specs = [data["comment"]]
        elif creating and data.get("description"):
            specs = [{"body": data["description"]}]
        for spec in specs:
            comment = self._comment(plan, spec, creating=creating, imported=imported)
            if comment is not None:
                plan.comments.append(comment)

    def _comment(
        self, plan: _Plan, spec: Any, *, creating: bool, imported: bool
    ) -> dict[str, Any] | None:
        if not isinstance(spec, dict):
            plan.error("comment", "Comment: must be an object")
            return None
        html = spec.get("html_body")
        body = spec.get("body") or spec.get("value") or (
            _TAG_RE.sub("", html).strip() if isinstance(html, str) else None
        )
        if not isinstance(body, str) or not body.strip():
            plan.error("comment", "Comment: body cannot be blank", "BlankValue")
            return None
        author = self._as_id(plan, "author_id", spec.get("author_id"))
        if author is not None and author not in self.state.users:
            plan.error("comment", "Comment: author is invalid")
            return None
        public = spec.get("public", True)
        if not isinstance(public, bool):
            plan.error("comment", "Comment: public must be true or false")
        uploads = spec.get("uploads") or []
        taken = {token for c in plan.comments for token in c["uploads"]}
        if not isinstance(uploads, list) or not all(
            isinstance(u, str) and u in self.state.uploads and u not in taken for u in uploads
        ):
            plan.error("uploads", "Uploads: contains an invalid or expired token")
            uploads = []
        comment: dict[str, Any] = {
            "body": body, "html_body": html if isinstance(html, str) else f"<p>{body}</p>",
            "public": public, "author_id": author, "explicit_author": author is not None,
            "uploads": list(uploads),
        }
        if imported and spec.get("created_at"):
            at = parse_ts(spec["created_at"])
            if at is None or at > self.now:
                plan.error("comment", "Comment: created_at must be a past timestamp")
            else:
                comment["created_at"] = fmt_ts(max(at, EPOCH))
        if author is None:
            comment["author_id"] = None if creating else self.actor["id"]
        return comment

    def _assignment(
        self, plan: _Plan, before: dict[str, Any] | None, data: dict[str, Any]
    ) -> None:
        """Zendesk keeps assignee and group consistent: see the module docstring."""
        t = plan.ticket
        assignee_given = "assignee_id" in data or "assignee_email" in data
        group_given = "group_id" in data
        assignee, group = t["assignee_id"], t["group_id"]
        if assignee is None or "assignee" in plan.errors or "group" in plan.errors:
            return
        member_of = self.state.group_ids_of(assignee)
        if group_given and group is not None and assignee_given and group not in member_of:
            plan.error("assignee", "Assignee: is not a member of the group")
        elif assignee_given and (group is None or group not in member_of):
            t["group_id"] = self.state.default_group_of(assignee)
        elif group_given and group is not None and group not in member_of:
            t["assignee_id"] = None

    def _automatic_status(
        self, plan: _Plan, before: dict[str, Any] | None, data: dict[str, Any]
    ) -> None:
        t = plan.ticket
        if "status" in data:
            if t["status"] == "solved" and t["assignee_id"] is None and self._staff(self.actor):
                t["assignee_id"] = self.actor["id"]
                t["group_id"] = t["group_id"] or self.state.default_group_of(self.actor["id"])
            return
        if t["status"] == "new" and t["assignee_id"] is not None:
            t["status"] = "open"
        replies = [c for c in plan.comments if c["public"] and c["author_id"] is not None]
        if before and t["status"] in ("pending", "solved") and any(
            not self._staff(self.state.users[c["author_id"]]) for c in replies
        ):
            t["status"] = "open"

    @staticmethod
    def _staff(user: dict[str, Any]) -> bool:
        return user["role"] in ("agent", "admin")

    def _import_time(self, value: Any) -> str:
        parsed = parse_ts(value)
        return fmt_ts(max(parsed, EPOCH)) if parsed else self.stamp

    # -- applying ------------------------------------------------------------------------------
    def _settle_requester(self, plan: _Plan) -> None:
        """Create the end-user a `requester: {email, name}` named, and fill the defaults that
        depend on the requester."""
        t = plan.ticket
        if plan.new_requester is not None:
            uid = self.state.new_id()
            self.state.users[uid] = new_user(uid, plan.new_requester["name"],
                                             plan.new_requester["email"], "end-user", self.stamp)
            t["requester_id"] = uid
        if t["requester_id"] is None:
            t["requester_id"] = self.actor["id"]
        if t["organization_id"] is None:
            t["organization_id"] = self.state.users[t["requester_id"]]["organization_id"]
        for comment in plan.comments:
            if comment["author_id"] is None:
                comment["author_id"] = t["requester_id"]

    def _commit(
        self, before: dict[str, Any], plan: _Plan
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        after = plan.ticket
        old, new = self._tracked(before), self._tracked(after)
        events = [
            {"id": self.state.new_id(), "type": "Change", "field_name": name,
             "value": event_value(name, new[name]),
             "previous_value": event_value(name, old.get(name))}
            for name in new
            if new[name] != old.get(name)
        ]
        comments = plan.comments
        if not events and not comments:
            after_view = {"id": None, "ticket_id": before["id"], "created_at": self.stamp,
                          "author_id": self.actor["id"], "via": VIA_API, "events": []}
            return before, after_view
        for comment in comments:
            comment["created_at"] = self.stamp
        after["is_public"] = after["is_public"] or any(c["public"] for c in comments)
        before.update(after)
        self._touch(before)
        explicit = next((c["author_id"] for c in comments if c["explicit_author"]), None)
        audit = self._record_audit(before, comments, events, author=explicit or self.actor["id"],
                                   at=self.stamp, metadata=plan.metadata)
        return before, audit

    def _tracked(self, ticket: dict[str, Any]) -> dict[str, Any]:
        values = {name: ticket[name] for name in TRACKED}
        values.update({fid: v for fid, v in sorted(ticket["custom_fields"].items())})
        return values

    def _touch(self, ticket: dict[str, Any]) -> None:
        ticket["updated_at"] = self.stamp
        ticket["generated_timestamp"] = int(self.now.timestamp())

    def _record_audit(
        self, ticket: dict[str, Any], comments: list[dict[str, Any]],
        events: list[dict[str, Any]], *, author: int, at: str,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One audit; `metadata` is the update's custom metadata (Zendesk "Setting Metadata"):
        invisible to people, kept as the audit's metadata.custom."""
        audit_id = self.state.new_id()
        comment_events = [self._store_comment(ticket, c, audit_id) for c in comments]
        audit = {"id": audit_id, "ticket_id": ticket["id"], "created_at": at,
                 "author_id": author, "via": VIA_API, "events": comment_events + events,
                 "custom": dict(metadata or {})}
        self.state.audits[audit_id] = audit
        return audit

    def _store_comment(
        self, ticket: dict[str, Any], spec: dict[str, Any], audit_id: int
    ) -> dict[str, Any]:
        attachment_ids = [a for token in spec["uploads"]
                          for a in self.state.uploads.pop(token)["attachment_ids"]]
        comment_id = self.state.new_id()
        self.state.comments[comment_id] = {
            "id": comment_id, "ticket_id": ticket["id"], "author_id": spec["author_id"],
            "body": spec["body"], "html_body": spec["html_body"], "public": spec["public"],
            "attachment_ids": attachment_ids, "audit_id": audit_id, "via": VIA_API,
            "created_at": spec["created_at"],
        }
        return {"type": "Comment", "id": comment_id}


def new_user(uid: int, name: str, email: str | None, role: str, stamp: str) -> dict[str, Any]:
    return {
        "id": uid, "name": name, "email": email, "role": role, "active": True,
        "suspended": False, "organization_id": None, "time_zone": "UTC",
        "iana_time_zone": "Etc/UTC", "phone": None, "external_id": None, "tags": [],
        "user_fields": {}, "created_at": stamp, "updated_at": stamp,
    }


def upload_token() -> str:
    return secrets.token_urlsafe(18)[:25]


def _label(key: str) -> str:
    return key.removesuffix("_id").removesuffix("_ids").replace("_", " ").capitalize()


def _coerce(definition: dict[str, Any], value: Any) -> tuple[bool, Any]:
    """Check a custom field value against its field type; (valid, value to store)."""
    if value is None:
        return True, None
    kind = definition["type"]
    options = [o["value"] for o in definition.get("custom_field_options") or []]
    if kind == "checkbox":
        return isinstance(value, bool), value
    if kind == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit())
        return ok, int(value) if ok else value
    if kind == "decimal":
        try:
            return not isinstance(value, bool), float(value)
        except (TypeError, ValueError):
            return False, value
    if kind == "date":
        ok = isinstance(value, str) and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
        return ok, value
    if kind == "tagger":
        return value in options, value
    if kind == "multiselect":
        ok = isinstance(value, list) and all(v in options for v in value)
        return ok, value
    return isinstance(value, str | int | float), str(value)
