"""The Zendesk emulator's state: records as plain dicts, id counters, timestamps, errors and the
JSON views Zendesk answers with.

Records are stored without their `url` and without derived keys; the `*_view` functions add
those from the request's base URL, so a sandbox restored on another port still answers with
its own absolute URLs.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from syncd.sandbox.core import Request, Response

TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ACCOUNT_ID = 21900001  # job_status create results carry the account id (recorded responses)
FIRST_OBJECT_ID = 360_000_000_001  # users, groups, comments, audits...: one account-wide space
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_TYPES = ("problem", "incident", "question", "task")
ROLES = ("end-user", "agent", "admin")
SYSTEM_FIELDS = (  # (type, title) of the system ticket fields every account lists
    ("subject", "Subject"),
    ("description", "Description"),
    ("status", "Status"),
    ("tickettype", "Type"),
    ("priority", "Priority"),
    ("group", "Group"),
    ("assignee", "Assignee"),
)
DEFAULT_SETTINGS: dict[str, int] = {"rate_limit_per_minute": 700, "incremental_per_minute": 10}
VIA_API = {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}}


# -- time -----------------------------------------------------------------------------------
def fmt_ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime(TS_FORMAT)


def parse_ts(value: Any) -> datetime | None:
    """ISO-8601 (with Z, an offset, or a bare date) to an aware UTC datetime; None if not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def unix(ts: str) -> int:
    parsed = parse_ts(ts)
    return int(parsed.timestamp()) if parsed else 0


# -- errors ---------------------------------------------------------------------------------
class ZendeskError(Exception):
    """An answer in Zendesk's own error shape; raised anywhere, turned into a Response once."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body

    def response(self) -> Response:
        return Response.json(self.status, self.body)


def not_found() -> ZendeskError:
    return ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid_endpoint() -> ZendeskError:
    return ZendeskError(404, {"error": "InvalidEndpoint", "description": "Not found"})


def bad_request(error: str, description: str) -> ZendeskError:
    return ZendeskError(400, {"error": error, "description": description})


Details = dict[str, list[dict[str, str]]]


def record_invalid(details: Details) -> ZendeskError:
    return ZendeskError(
        422,
        {"error": "RecordInvalid", "description": "Record validation errors", "details": details},
    )


def invalid(field_name: str, description: str, error: str = "InvalidValue") -> ZendeskError:
    return record_invalid({field_name: [{"description": description, "error": error}]})


def forbidden() -> ZendeskError:
    return ZendeskError(
        403,
        {"error": "Forbidden", "description": "You do not have access to this page. Please "
         "contact the account owner of this help desk for further help."},
    )


# -- state ----------------------------------------------------------------------------------
@dataclass
class ZendeskState:
    """Everything one emulated Zendesk account holds. Ticket ids count from 1 (they are
    per-account in Zendesk); every other object shares one large id space."""

    settings: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[int, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    ticket_fields: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    audits: dict[int, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[int, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratings: dict[int, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_object_id: int = FIRST_OBJECT_ID
    next_ticket_id: int = 1

    def new_id(self) -> int:
        self.next_object_id += 1
        return self.next_object_id - 1

    def new_ticket_id(self) -> int:
        self.next_ticket_id += 1
        return self.next_ticket_id - 1

    def claim_id(self, wanted: Any, *, ticket: bool = False) -> int:
        """An id given by a fixture, or a fresh one; the counters never hand it out again."""
        if wanted is None:
            return self.new_ticket_id() if ticket else self.new_id()
        value = int(wanted)
        if ticket:
            self.next_ticket_id = max(self.next_ticket_id, value + 1)
        elif value >= self.next_object_id:
            self.next_object_id = value + 1
        return value

    @classmethod
    def empty(cls, now: datetime) -> ZendeskState:
        """A new account: no data yet, but the system ticket fields every account lists."""
        state, stamp = cls(), fmt_ts(now)
        for position, (kind, title) in enumerate(SYSTEM_FIELDS):
            fid = state.new_id()
            state.ticket_fields[fid] = {
                "id": fid, "type": kind, "title": title, "description": "", "position": position,
                "active": True, "required": False, "removable": False, "key": None,
                "custom_field_options": None, "created_at": stamp, "updated_at": stamp,
            }
        return state

    # -- lookups ----------------------------------------------------------------------------
    def user_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if (u["email"] or "").lower() == wanted), None)

    def group_by_name(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.groups.values() if g["name"] == name), None)

    def group_ids_of(self, user_id: int) -> list[int]:
        return [m["group_id"] for m in self.memberships.values() if m["user_id"] == user_id]

    def default_group_of(self, user_id: int) -> int | None:
        rows = [m for m in self.memberships.values() if m["user_id"] == user_id]
        chosen = next((m for m in rows if m["default"]), rows[0] if rows else None)
        return chosen["group_id"] if chosen else None

    def custom_fields(self) -> list[dict[str, Any]]:
        return sorted(
            (f for f in self.ticket_fields.values() if f["removable"]), key=lambda f: f["id"]
        )

    def live_ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket = self.tickets.get(ticket_id)
        if ticket is None or ticket["deleted"]:
            raise not_found()
        return ticket

    # -- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        tables = {name: list(getattr(self, name).values()) for name in _TABLES}
        return {
            **tables,
            "settings": dict(self.settings),
            "uploads": list(self.uploads.values()),
            "jobs": list(self.jobs.values()),
            "idempotency": self.idempotency,
            "blobs": {str(k): base64.b64encode(v).decode() for k, v in self.blobs.items()},
            "next_object_id": self.next_object_id,
            "next_ticket_id": self.next_ticket_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ZendeskState:
        state = cls()
        for name in _TABLES:
            getattr(state, name).update({row["id"]: row for row in data.get(name, [])})
        state.settings.update(data.get("settings", {}))
        state.uploads = {row["token"]: row for row in data.get("uploads", [])}
        state.jobs = {row["id"]: row for row in data.get("jobs", [])}
        state.idempotency = dict(data.get("idempotency", {}))
        state.blobs = {int(k): base64.b64decode(v) for k, v in data.get("blobs", {}).items()}
        state.next_object_id = int(data.get("next_object_id", FIRST_OBJECT_ID))
        state.next_ticket_id = int(data.get("next_ticket_id", 1))
        return state


_TABLES = (
    "users", "groups", "memberships", "organizations", "ticket_fields", "tickets", "comments",
    "audits", "attachments", "ratings",
)


# -- one API call ---------------------------------------------------------------------------
@dataclass
class Call:
    """What a route handler needs: the state, the request, the acting user and the clock."""

    state: ZendeskState
    req: Request
    match: re.Match[str]
    actor: dict[str, Any]
    now: datetime

    @property
    def base(self) -> str:
        return self.req.base_url

    @property
    def stamp(self) -> str:
        return fmt_ts(self.now)

    def path_id(self, group: str = "id") -> int:
        return int(self.match.group(group))

    def body(self, root: str) -> dict[str, Any]:
        """The JSON object under `root`, or Zendesk's 400 for a missing/invalid body."""
        data = self.req.json()
        if not isinstance(data, dict) or not isinstance(data.get(root), dict):
            raise bad_request("InvalidValue", f"Parameter {root} is required and must be an object")
        return data[root]

    def ids_param(self, name: str = "ids") -> list[int]:
        raw = self.req.arg(name) or ""
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts:
            raise bad_request("InvalidValue", f"Parameter {name} is required")
        if len(parts) > 100:
            raise bad_request(
                "TooManyValues",
                f"Too many values specified for parameter '{name}'. Maximum allowed is 100.",
            )
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise bad_request("InvalidValue", f"Parameter {name} must be a list of ids") from None


# -- views ----------------------------------------------------------------------------------
# Every account has one system custom ticket status per status category; tickets carry its
# id in `custom_status_id` (seen in every recorded ticket). The ids are the sandbox's own.
CUSTOM_STATUS_IDS = {s: 18_000_000 + n for n, s in enumerate(STATUSES, 1)}


def ticket_view(
    state: ZendeskState, t: dict[str, Any], base: str, *, exported: bool = False
) -> dict[str, Any]:
    """A ticket as Zendesk renders it; `generated_timestamp` only in the incremental export
    (recorded: a ticket shown has none)."""
    custom = [
        {"id": f["id"], "value": t["custom_fields"].get(str(f["id"]))}
        for f in state.custom_fields()
    ]
    return {
        "url": f"{base}/api/v2/tickets/{t['id']}.json",
        "id": t["id"],
        "external_id": t["external_id"],
        "via": t["via"],
        "created_at": t["created_at"],
        "updated_at": t["updated_at"],
        **({"generated_timestamp": t["generated_timestamp"]} if exported else {}),
        "type": t["type"],
        "subject": t["subject"],
        "raw_subject": t["subject"],
        "description": t["description"],
        "priority": t["priority"],
        "status": "deleted" if t["deleted"] else t["status"],
        "recipient": None,
        "requester_id": t["requester_id"],
        "submitter_id": t["submitter_id"],
        "assignee_id": t["assignee_id"],
        "organization_id": t["organization_id"],
        "group_id": t["group_id"],
        "collaborator_ids": list(t["collaborator_ids"]),
        "follower_ids": list(t["follower_ids"]),
        "email_cc_ids": list(t["email_cc_ids"]),
        "forum_topic_id": None,
        "problem_id": t["problem_id"],
        "has_incidents": False,
        "is_public": t["is_public"],
        "due_at": t["due_at"],
        "tags": list(t["tags"]),
        "custom_fields": custom,
        "satisfaction_rating": t["satisfaction_rating"],
        "sharing_agreement_ids": [],
        "custom_status_id": CUSTOM_STATUS_IDS.get(t["status"], CUSTOM_STATUS_IDS["open"]),
        "fields": [dict(c) for c in custom],
        "followup_ids": [],
        "ticket_form_id": t["ticket_form_id"],
        "brand_id": t["brand_id"],
        "allow_channelback": False,
        "allow_attachments": True,
        "from_messaging_channel": False,
    }


def user_view(state: ZendeskState, u: dict[str, Any], base: str) -> dict[str, Any]:
    staff = u["role"] != "end-user"
    return {
        "id": u["id"],
        "url": f"{base}/api/v2/users/{u['id']}.json",
        "name": u["name"],
        "email": u["email"],
        "created_at": u["created_at"],
        "updated_at": u["updated_at"],
        "time_zone": u["time_zone"],
        "iana_time_zone": u["iana_time_zone"],
        "phone": u["phone"],
        "shared_phone_number": None,
        "photo": None,
        "report_csv": u["role"] == "admin",
        "locale": "en-US",
        "locale_id": 1,
        "organization_id": u["organization_id"],
        "role": u["role"],
        "role_type": None,
        "custom_role_id": None,
        "moderator": staff,
        "ticket_restriction": None if staff else "requested",
        "only_private_comments": False,
        "restricted_agent": False,
        "verified": True,
        "external_id": u["external_id"],
        "tags": list(u["tags"]),
        "alias": "",
        "active": u["active"],
        "shared": False,
        "shared_agent": False,
        "suspended": u["suspended"],
        "last_login_at": None,
        "two_factor_auth_enabled": False,
        "signature": None,
        "details": "",
        "notes": "",
        "default_group_id": state.default_group_of(u["id"]) if staff else None,
        "user_fields": dict(u["user_fields"]),
    }


def group_view(g: dict[str, Any], base: str) -> dict[str, Any]:
    return {"url": f"{base}/api/v2/groups/{g['id']}.json", "is_public": True, "deleted": False, **g}


def membership_view(m: dict[str, Any], base: str) -> dict[str, Any]:
    return {"url": f"{base}/api/v2/group_memberships/{m['id']}.json", **m}


def organization_view(o: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "url": f"{base}/api/v2/organizations/{o['id']}.json",
        "shared_tickets": False,
        "shared_comments": False,
        **o,
    }


def ticket_field_view(f: dict[str, Any], base: str) -> dict[str, Any]:
    """As recorded: `custom_field_options` only on fields that have options."""
    shown = {k: v for k, v in f.items() if k != "custom_field_options" or v is not None}
    return {
        "url": f"{base}/api/v2/ticket_fields/{f['id']}.json",
        **shown,
        "raw_title": f["title"],
        "raw_description": f["description"],
        "title_in_portal": f["title"],
        "raw_title_in_portal": f["title"],
        "visible_in_portal": not f["removable"],
        "editable_in_portal": False,
        "required_in_portal": False,
        "collapsed_for_agents": False,
        "regexp_for_validation": None,
        "tag": None,
        "agent_description": None,
    }


def attachment_view(a: dict[str, Any], base: str) -> dict[str, Any]:
    content_url = f"{base}/attachments/token/{a['content_token']}/?name={quote(a['file_name'])}"
    return {
        "url": f"{base}/api/v2/attachments/{a['id']}.json",
        "id": a["id"],
        "file_name": a["file_name"],
        "content_url": content_url,
        "mapped_content_url": content_url,
        "content_type": a["content_type"],
        "size": a["size"],
        "width": None,
        "height": None,
        "inline": False,
        "deleted": False,
        "malware_access_override": False,
        "malware_scan_result": "malware_not_found",
        "thumbnails": [],
    }


def comment_view(state: ZendeskState, c: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "id": c["id"],
        "type": "Comment",
        "author_id": c["author_id"],
        "body": c["body"],
        "html_body": c["html_body"],
        "plain_body": c["body"],
        "public": c["public"],
        "attachments": [attachment_view(state.attachments[a], base) for a in c["attachment_ids"]],
        "audit_id": c["audit_id"],
        "via": c["via"],
        "created_at": c["created_at"],
        "metadata": {"system": {}, "custom": {}},
    }


def audit_view(state: ZendeskState, a: dict[str, Any], base: str) -> dict[str, Any]:
    events = []
    for event in a["events"]:
        if event["type"] == "Comment":
            view = comment_view(state, state.comments[event["id"]], base)
            events.append({k: view[k] for k in _COMMENT_EVENT_KEYS})
        else:
            events.append(dict(event))
    return {
        "id": a["id"],
        "ticket_id": a["ticket_id"],
        "created_at": a["created_at"],
        "author_id": a["author_id"],
        "metadata": {
            "system": {"client": "syncd-sandbox", "ip_address": "127.0.0.1", "location": None},
            "custom": dict(a.get("custom") or {}),
        },
        "via": a["via"],
        "events": events,
    }


_COMMENT_EVENT_KEYS = (
    "id", "type", "author_id", "body", "html_body", "plain_body", "public", "attachments",
    "audit_id",
)


def rating_view(r: dict[str, Any], base: str) -> dict[str, Any]:
    return {"url": f"{base}/api/v2/satisfaction_ratings/{r['id']}.json", **r}
