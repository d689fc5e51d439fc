"""Loading the `zendesk` section of a sandbox fixture (format: see `syncd.sandbox.zendesk`).

Fixtures name things the way people do (users by email, groups and organizations by name,
custom fields by title or key); this module resolves those names to ids. Seeded tickets go
through the same validation as the Ticket Import API, so a fixture cannot hold a ticket the
real API would refuse, and their generated_timestamp is their updated_at: a seed is history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.sandbox.zendesk_model import (
    DEFAULT_SETTINGS,
    ROLES,
    ZendeskError,
    ZendeskState,
    fmt_ts,
)
from syncd.sandbox.zendesk_tickets import TicketWriter, new_user, normalize_tags

FIELD_TYPES = ("text", "textarea", "checkbox", "date", "integer", "decimal", "regexp",
               "tagger", "multiselect", "partialcreditcard")


class SeedError(ValueError):
    """The fixture names something that does not exist or is not valid."""


def ensure_user(state: ZendeskState, email: str, stamp: str) -> dict[str, Any]:
    """The account's user with this email, created as an admin if absent (the API user)."""
    user = state.user_by_email(email)
    if user is None:
        uid = state.new_id()
        user = state.users[uid] = new_user(uid, "syncd API", email, "admin", stamp)
    return user


def seed_state(state: ZendeskState, data: Mapping[str, Any], now: datetime, api_email: str) -> None:
    stamp = fmt_ts(now)
    for key, value in (data.get("settings") or {}).items():
        if key not in DEFAULT_SETTINGS or not isinstance(value, int) or value < 1:
            raise SeedError(f"zendesk.settings.{key}: expected one of "
                            f"{sorted(DEFAULT_SETTINGS)} with a positive integer")
        state.settings[key] = value
    for org in data.get("organizations") or []:
        _organization(state, org, stamp)
    for user in data.get("users") or []:
        _user(state, user, stamp)
    for group in data.get("groups") or []:
        _group(state, group, stamp)
    for definition in data.get("ticket_fields") or []:
        _ticket_field(state, definition, stamp)
    writer = TicketWriter(state, now, ensure_user(state, api_email, stamp))
    for index, ticket in enumerate(data.get("tickets") or []):
        try:
            writer.create(_ticket(state, ticket, stamp), imported=True, historical=True)
        except ZendeskError as exc:
            raise SeedError(f"zendesk.tickets[{index}]: {exc.body}") from None


def _check_free_id(table: Mapping[int, Any], spec: Mapping[str, Any], section: str) -> None:
    wanted = spec.get("id")
    if wanted is not None and (not isinstance(wanted, int) or wanted < 1 or wanted in table):
        raise SeedError(f"zendesk.{section}: id {wanted!r} is not a free positive integer")


def _fresh_id(state: ZendeskState, table: Mapping[int, Any], spec: Mapping[str, Any],
              section: str) -> int:
    """The fixture's own id for a new record (or a new one); never one already in use."""
    _check_free_id(table, spec, section)
    return state.claim_id(spec.get("id"))


def _organization(state: ZendeskState, spec: Mapping[str, Any], stamp: str) -> None:
    name = _required(spec, "name", "organizations")
    oid = _fresh_id(state, state.organizations, spec, "organizations")
    state.organizations[oid] = {
        "id": oid, "name": name, "external_id": spec.get("external_id"),
        "domain_names": list(spec.get("domain_names") or []),
        "details": spec.get("details", ""), "notes": spec.get("notes", ""), "group_id": None,
        "tags": normalize_tags(spec.get("tags") or []) or [], "organization_fields": {},
        "created_at": stamp, "updated_at": stamp,
    }


def _user(state: ZendeskState, spec: Mapping[str, Any], stamp: str) -> None:
    name = _required(spec, "name", "users")
    email = spec.get("email")
    role = spec.get("role", "end-user")
    if role not in ROLES:
        raise SeedError(f"zendesk.users[{name}]: role must be one of {ROLES}")
    existing = state.user_by_email(email) if email else None
    uid = existing["id"] if existing else _fresh_id(state, state.users, spec, "users")
    user = new_user(uid, name, email, role, stamp)
    fields = dict(spec.get("user_fields") or {})
    if "away" in spec:
        fields["away"] = bool(spec["away"])
    org = spec.get("organization")
    user.update({
        "organization_id": _org_id(state, org) if org else spec.get("organization_id"),
        "external_id": spec.get("external_id"), "phone": spec.get("phone"),
        "time_zone": spec.get("time_zone", "UTC"), "active": spec.get("active", True),
        "tags": normalize_tags(spec.get("tags") or []) or [], "user_fields": fields,
    })
    state.users[uid] = user


def _group(state: ZendeskState, spec: Mapping[str, Any], stamp: str) -> None:
    name = _required(spec, "name", "groups")
    gid = _fresh_id(state, state.groups, spec, "groups")
    state.groups[gid] = {
        "id": gid, "name": name, "description": spec.get("description", ""),
        "default": bool(spec.get("default", False)), "created_at": stamp, "updated_at": stamp,
    }
    for email in spec.get("members") or []:
        user = state.user_by_email(email)
        if user is None or user["role"] == "end-user":
            raise SeedError(f"zendesk.groups[{name}].members: {email} is not an agent")
        mid = state.new_id()
        state.memberships[mid] = {
            "id": mid, "user_id": user["id"], "group_id": gid,
            "default": not state.group_ids_of(user["id"]),
            "created_at": stamp, "updated_at": stamp,
        }


def _ticket_field(state: ZendeskState, spec: Mapping[str, Any], stamp: str) -> None:
    title = _required(spec, "title", "ticket_fields")
    kind = spec.get("type", "text")
    if kind not in FIELD_TYPES:
        raise SeedError(f"zendesk.ticket_fields[{title}]: type must be one of {FIELD_TYPES}")
    options = None
    if kind in ("tagger", "multiselect"):
        options = [_option(state, o) for o in spec.get("options") or []]
    fid = _fresh_id(state, state.ticket_fields, spec, "ticket_fields")
    state.ticket_fields[fid] = {
        "id": fid, "type": kind, "title": title, "description": spec.get("description", ""),
        "position": len(state.ticket_fields), "active": True,
        "required": bool(spec.get("required", False)), "removable": True,
        "key": spec.get("key"), "custom_field_options": options,
        "created_at": stamp, "updated_at": stamp,
    }


def _option(state: ZendeskState, spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"name": spec, "value": spec.lower().replace(" ", "_")}
    return {"id": state.new_id(), "name": spec["name"], "raw_name": spec["name"],
            "value": spec["value"], "default": False}


def _ticket(state: ZendeskState, spec: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    """A fixture ticket as a Ticket Import API body, names resolved to ids."""
    _check_free_id(state.tickets, spec, "tickets")
    data = {k: v for k, v in spec.items()
            if k not in ("requester", "assignee", "group", "organization", "comments",
                         "custom_fields", "submitter")}
    if isinstance(spec.get("requester"), str):
        data["requester"] = {"email": spec["requester"]}
    for key in ("assignee", "submitter"):
        if spec.get(key):
            data[f"{key}_id"] = _user_id(state, spec[key])
    if spec.get("group"):
        data["group_id"] = _group_id(state, spec["group"])
    if spec.get("organization"):
        data["organization_id"] = _org_id(state, spec["organization"])
    data["custom_fields"] = _custom_values(state, spec.get("custom_fields") or {})
    comments = [
        {**{k: v for k, v in c.items() if k != "author"},
         **({"author_id": _user_id(state, c["author"])} if c.get("author") else {})}
        for c in spec.get("comments") or []
    ]
    if not comments:
        comments = [{"body": spec.get("description") or spec.get("subject") or "(no text)"}]
    data["comments"] = comments
    data.setdefault("created_at", stamp)
    return data


def _custom_values(state: ZendeskState, values: Any) -> list[dict[str, Any]]:
    if isinstance(values, list):
        return values
    fields = state.custom_fields()
    out = []
    for name, value in values.items():
        found = next((f for f in fields if name in (str(f["id"]), f["title"], f["key"])), None)
        if found is None:
            raise SeedError(f"zendesk.tickets: no custom field named {name!r}")
        out.append({"id": found["id"], "value": value})
    return out


def _user_id(state: ZendeskState, ref: Any) -> int:
    if isinstance(ref, int):
        return ref
    user = state.user_by_email(str(ref))
    if user is None:
        raise SeedError(f"zendesk: no user with email {ref!r}")
    return user["id"]


def _group_id(state: ZendeskState, ref: Any) -> int:
    if isinstance(ref, int):
        return ref
    group = state.group_by_name(str(ref))
    if group is None:
        raise SeedError(f"zendesk: no group named {ref!r}")
    return group["id"]


def _org_id(state: ZendeskState, ref: Any) -> int:
    if isinstance(ref, int):
        return ref
    org = next((o for o in state.organizations.values() if o["name"] == ref), None)
    if org is None:
        raise SeedError(f"zendesk: no organization named {ref!r}")
    return org["id"]


def _required(spec: Mapping[str, Any], key: str, section: str) -> str:
    if not isinstance(spec, Mapping) or not spec.get(key):
        raise SeedError(f"zendesk.{section}: every entry needs a {key!r}")
    return str(spec[key])
