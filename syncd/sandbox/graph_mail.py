"""Users and their mail: `/users`, `sendMail`, Sent Items.

`POST /users/{id|upn}/sendMail` answers 202 with no body (graph.md §6) and keeps the message:
what recipients get (with its `internetMessageHeaders`, whose names must start with `x-`/`X-`,
else 400) is what `/_sandbox/mail` shows; the sender's Sent Items copy is readable through
`/users/{u}/messages` and `/users/{u}/mailFolders/SentItems/messages` unless
`saveToSentItems` is false, and appears only `sent_items_delay_s` (sandbox clock) after sending.

Real Graph, followed here on purpose: the Sent Items copy carries no `internetMessageHeaders`
(Microsoft: "internet headers just do not exist on the copy in Sent Items",
microsoftgraph/microsoft-graph-docs#12726, #18761), and `$filter` on `internetMessageHeaders`
is rejected. To find a sent message by a key, set a `singleValueExtendedProperties` entry on the
message when sending and filter with
`singleValueExtendedProperties/any(ep: ep/id eq 'String {guid} Name Key' and ep/value eq 'v')`
(Graph's singlevaluelegacyextendedproperty-get; `eq`, `startswith`, `contains` on the value;
the Name part of the id is case-sensitive, the value is not). Also emulated: `subject eq '...'`,
`$search="text"` / `$search="subject:text"` (not combinable with `$filter`, as on Graph), and
`$expand=singleValueExtendedProperties($filter=id eq '...')`. Other filters answer 400.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.sandbox.core import Request, Response
from syncd.sandbox.graph_common import (
    GraphError,
    Json,
    b64url,
    bad_request,
    iso,
    method_not_allowed,
    new_guid,
    paged,
    parse_iso,
    query_arg,
    select,
)

FOLDERS = ("Inbox", "Drafts", "SentItems", "DeletedItems", "Outbox", "JunkEmail", "Archive")
USER_PROPERTIES = frozenset(
    [
        "id",
        "displayName",
        "userPrincipalName",
        "mail",
        "givenName",
        "surname",
        "jobTitle",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "businessPhones",
        "accountEnabled",
    ]
)
MESSAGE_PROPERTIES = frozenset(
    [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "isRead",
        "isDraft",
        "webLink",
        "inferenceClassification",
        "body",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "flag",
        "internetMessageHeaders",
        "singleValueExtendedProperties",
        "uniqueBody",
    ]
)
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STR = r"'((?:[^']|'')*)'"
_PROP_FILTER = re.compile(
    rf"^singleValueExtendedProperties/any\((\w+):\s*\1/id eq {_STR} and "
    rf"(?:\1/value eq {_STR}|(startswith|contains)\(\1/value,\s*{_STR}\))\)$",
    re.IGNORECASE,
)
_SUBJECT_FILTER = re.compile(rf"^subject eq {_STR}$", re.IGNORECASE)
_PROP_EXPAND = re.compile(
    rf"^singleValueExtendedProperties(?:\(\$filter=id eq {_STR}\))?$", re.IGNORECASE
)
_PROP_ID = re.compile(r"^(\w+)\s+\{([0-9a-fA-F-]{36})\}\s+Name\s+(.+)$")


@dataclass
class User:
    id: str
    upn: str
    mail: str | None
    display_name: str

    def render(self) -> Json:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "userPrincipalName": self.upn,
            "mail": self.mail,
            "businessPhones": [],
            "givenName": None,
            "surname": None,
            "jobTitle": None,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
        }

    @classmethod
    def parse(cls, raw: Any) -> User:
        """A seed entry or stored user: `userPrincipalName` required, the rest optional."""
        if not isinstance(raw, dict) or not isinstance(raw.get("userPrincipalName"), str):
            raise bad_request("A user needs a 'userPrincipalName'.")
        upn = raw["userPrincipalName"]
        return cls(
            str(raw.get("id") or new_guid()),
            upn,
            raw.get("mail", upn),
            str(raw.get("displayName") or upn.split("@")[0]),
        )


@dataclass
class Message:
    id: str
    user_id: str
    sender: str
    sender_name: str
    sent: datetime
    subject: str
    body_type: str
    content: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    headers: list[tuple[str, str]]
    props: list[tuple[str, str]]
    saved: bool
    internet_id: str = field(default_factory=lambda: f"<{secrets.token_hex(12)}@sandbox.local>")
    conversation_id: str = field(default_factory=lambda: "AAQk" + b64url(secrets.token_bytes(24)))

    def to_json(self) -> Json:
        kept = {k: v for k, v in vars(self).items() if k != "sent"}
        return {**kept, "sent": _precise(self.sent)}  # to the microsecond, as /_sandbox/mail

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        fields = {
            **d,
            "sent": parse_iso(d["sent"]),
            "headers": [tuple(h) for h in d["headers"]],
            "props": [tuple(p) for p in d["props"]],
        }
        return cls(**fields)

    def outgoing(self) -> Json:
        """The `/_sandbox/mail` view: what the recipients received, `sent_at` to the
        microsecond (benchmarks measure latency from it; Graph's own fields keep whole seconds)."""
        return {
            "sent_at": _precise(self.sent),
            "from": self.sender,
            "to": list(self.to),
            "cc": list(self.cc),
            "subject": self.subject,
            "body": self.content,
            "headers": dict(self.headers),
        }


def _precise(when: datetime) -> str:
    """`when` in UTC to the microsecond, `Z` (the sandbox's own records, not Graph's fields)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Mailboxes:
    """Users and every message they sent."""

    def __init__(self, now: Callable[[], datetime], delay_s: Callable[[], float]) -> None:
        self._now = now
        self._delay_s = delay_s
        self.users: dict[str, User] = {}
        self.messages: list[Message] = []
        self.folder_ids = {
            name.casefold(): "AAMkAD" + b64url(name.encode() * 3) for name in FOLDERS
        }

    def add_user(self, user: User) -> None:
        clash = self.find(user.upn)
        if clash is not None:
            del self.users[clash.id]
        self.users[user.id] = user

    def find(self, key: str) -> User | None:
        folded = key.casefold()
        return next(
            (u for u in self.users.values() if folded in (u.id.casefold(), u.upn.casefold())), None
        )

    # -- routes -------------------------------------------------------------------------------

    def handle(self, req: Request, parts: list[str]) -> Response:
        """`parts` follow `/users`: [], [user], [user, "sendMail"], [user, "messages", ...]."""

        def user_json(user: User) -> Json:
            return select(req, user.render(), USER_PROPERTIES, "user")

        if not parts:
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            rows = sorted(self.users.values(), key=lambda u: u.id)
            return Response.json(200, paged(req, rows, lambda u: u.id, user_json, 100, 999))
        user = self.find(parts[0])
        if user is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{parts[0]}' does not exist or one of its queried "
                f"reference-property objects are not present.",
            )
        rest = parts[1:]
        if not rest:
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(200, user_json(user))
        if user.mail is None:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        if rest == ["sendMail"]:
            if req.method != "POST":
                raise method_not_allowed(req, ["POST"])
            self._send(req, user)
            return Response.empty(202)
        if rest[0] == "messages" and len(rest) <= 2:
            return self._messages(req, user, None, rest[1:])
        if rest[0] == "mailFolders":
            return self._folders(req, user, rest[1:])
        raise bad_request(f"Resource not found for the segment '{rest[0]}'.", "BadRequest")

    def _folders(self, req: Request, user: User, rest: list[str]) -> Response:
        if req.method != "GET":
            raise method_not_allowed(req, ["GET"])
        if not rest:
            return Response.json(200, {"value": [self._folder_json(user, n) for n in FOLDERS]})
        name = next(
            (
                n
                for n in FOLDERS
                if rest[0].casefold() in (n.casefold(), self.folder_ids[n.casefold()].casefold())
            ),
            None,
        )
        if name is None:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        if len(rest) == 1:
            return Response.json(200, self._folder_json(user, name))
        if rest[1] == "messages" and len(rest) <= 3:
            return self._messages(req, user, name, rest[2:])
        raise bad_request(f"Resource not found for the segment '{rest[1]}'.", "BadRequest")

    def _folder_json(self, user: User, name: str) -> Json:
        count = len(self._visible(user)) if name == "SentItems" else 0
        display = {
            "SentItems": "Sent Items",
            "DeletedItems": "Deleted Items",
            "JunkEmail": "Junk Email",
        }.get(name, name)
        return {
            "id": self.folder_ids[name.casefold()],
            "displayName": display,
            "parentFolderId": "AAMkAD" + b64url(b"msgfolderroot"),
            "childFolderCount": 0,
            "unreadItemCount": 0,
            "totalItemCount": count,
            "isHidden": False,
        }

    def _visible(self, user: User) -> list[Message]:
        cutoff = self._now() - timedelta(seconds=self._delay_s())
        return [m for m in self.messages if m.user_id == user.id and m.saved and m.sent <= cutoff]

    def _messages(self, req: Request, user: User, folder: str | None, rest: list[str]) -> Response:
        if req.method != "GET":
            raise method_not_allowed(req, ["GET"])
        rows = [] if folder not in (None, "SentItems") else self._visible(user)
        render = self._message_renderer(req)
        if rest:
            found = next((m for m in rows if m.id == rest[0]), None)
            if found is None:
                raise GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            return Response.json(200, render(found))
        rows = sorted(_query(req, rows), key=lambda m: (iso(m.sent), m.id))
        return Response.json(
            200, paged(req, rows, lambda m: f"{iso(m.sent)}|{m.id}", render, 10, 1000)
        )

    def _message_renderer(self, req: Request) -> Callable[[Message], Json]:
        expand = query_arg(req, "expand")
        match = _PROP_EXPAND.match(expand) if expand else None
        if expand and not match:
            raise bad_request(
                f"Could not expand '{expand}' on type 'microsoft.graph.message'.", "BadRequest"
            )
        wanted = _unquote(match[1]) if match and match[1] is not None else None

        def render(msg: Message) -> Json:
            out = select(req, self._message_json(msg), MESSAGE_PROPERTIES, "message")
            if match:
                out["singleValueExtendedProperties"] = [
                    {"id": pid, "value": value}
                    for pid, value in msg.props
                    if wanted is None or _prop_key(pid) == _prop_key(wanted)
                ]
            return out

        return render

    def _message_json(self, msg: Message) -> Json:
        def people(addresses: list[str]) -> list[Json]:
            return [{"emailAddress": {"name": a, "address": a}} for a in addresses]

        me = {"emailAddress": {"name": msg.sender_name, "address": msg.sender}}
        return {
            "@odata.etag": f'W/"{msg.id[-16:]}"',
            "id": msg.id,
            "createdDateTime": iso(msg.sent),
            "lastModifiedDateTime": iso(msg.sent),
            "changeKey": msg.id[-16:],
            "categories": [],
            "receivedDateTime": iso(msg.sent),
            "sentDateTime": iso(msg.sent),
            "hasAttachments": False,
            "internetMessageId": msg.internet_id,
            "subject": msg.subject,
            "bodyPreview": msg.content[:255],
            "importance": "normal",
            "parentFolderId": self.folder_ids["sentitems"],
            "conversationId": msg.conversation_id,
            "isDeliveryReceiptRequested": False,
            "isReadReceiptRequested": False,
            "isRead": True,
            "isDraft": False,
            "inferenceClassification": "focused",
            "body": {"contentType": msg.body_type, "content": msg.content},
            "sender": me,
            "from": me,
            "toRecipients": people(msg.to),
            "ccRecipients": people(msg.cc),
            "bccRecipients": people(msg.bcc),
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"},
        }

    # -- sending ------------------------------------------------------------------------------

    def _send(self, req: Request, user: User) -> None:
        body = req.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict):
            raise bad_request("The 'message' parameter is required.", "ErrorInvalidParameter")
        to, cc, bcc = (
            _recipients(message, k) for k in ("toRecipients", "ccRecipients", "bccRecipients")
        )
        if not (to or cc or bcc):
            raise bad_request(
                "At least one recipient is required, but none were found.", "ErrorInvalidRecipients"
            )
        content = message.get("body") or {}
        if not isinstance(content, dict):
            raise bad_request("'body' must be an itemBody object.")
        body_type = str(content.get("contentType", "Text"))
        if body_type.casefold() not in ("text", "html"):
            raise bad_request(f"Invalid body contentType '{body_type}'.")
        save = body.get("saveToSentItems", True)
        if not isinstance(save, bool):
            raise bad_request("'saveToSentItems' must be a boolean.")
        self.messages.append(
            Message(
                id="AAMkAG" + b64url(secrets.token_bytes(33)),
                user_id=user.id,
                sender=user.mail or user.upn,
                sender_name=user.display_name,
                sent=self._now(),
                subject=str(message.get("subject") or ""),
                body_type=body_type.capitalize() if body_type.casefold() == "text" else "HTML",
                content=str(content.get("content") or ""),
                to=to,
                cc=cc,
                bcc=bcc,
                headers=_headers(message.get("internetMessageHeaders")),
                props=_props(message.get("singleValueExtendedProperties")),
                saved=save,
            )
        )

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> Json:
        users = [
            {"id": u.id, "userPrincipalName": u.upn, "mail": u.mail, "displayName": u.display_name}
            for u in self.users.values()
        ]
        return {"users": users, "messages": [m.to_json() for m in self.messages]}

    def restore(self, data: dict[str, Any]) -> None:
        self.users = {}
        for raw in data.get("users", []):
            self.add_user(User.parse(raw))
        self.messages = [Message.from_json(m) for m in data.get("messages", [])]


def _recipients(message: dict[str, Any], key: str) -> list[str]:
    raw = message.get(key) or []
    if not isinstance(raw, list):
        raise bad_request(f"'{key}' must be a list of recipients.")
    out = []
    for entry in raw:
        address = entry.get("emailAddress", {}).get("address") if isinstance(entry, dict) else None
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise bad_request(
                f"At least one recipient isn't valid., Recipient '{address}' is not "
                f"resolved. All recipients must be resolved before a message can "
                f"be submitted.",
                "ErrorInvalidRecipients",
            )
        out.append(address)
    return out


def _headers(raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("'internetMessageHeaders' must be a list.")
    out = []
    for header in raw:
        name = header.get("name") if isinstance(header, dict) else None
        if not isinstance(name, str) or not name.lower().startswith("x-"):
            raise bad_request(
                f"The internet message header name '{name}' should start with 'x-' or 'X-'.",
                "InvalidInternetMessageHeader",
            )
        out.append((name, str(header.get("value", ""))))
    return out


def _props(raw: Any) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), str) for p in raw
    ):
        raise bad_request("'singleValueExtendedProperties' must be a list of {id, value}.")
    for prop in raw:
        if _prop_key(prop["id"]) is None:
            raise bad_request(
                f"The property id '{prop['id']}' is not valid.", "ErrorInvalidProperty"
            )
    return [(p["id"], str(p.get("value", ""))) for p in raw]


def _prop_key(prop_id: str) -> tuple[str, str, str] | None:
    """Extended property ids compare with type and GUID case-insensitive, Name exact."""
    match = _PROP_ID.match(prop_id.strip())
    if match:
        return match[1].casefold(), match[2].casefold(), match[3]
    kind, _, tag = prop_id.strip().partition(" ")
    return (kind.casefold(), "", tag.casefold()) if tag.lower().startswith("0x") else None


def _unquote(literal: str) -> str:
    return literal.replace("''", "'")


def _query(req: Request, rows: list[Message]) -> list[Message]:
    """Apply the `$filter` / `$search` forms this emulator knows (see module docstring)."""
    text_filter, search = query_arg(req, "filter"), query_arg(req, "search")
    if text_filter and search:
        raise bad_request(
            "Query option 'Filter' is not allowed with 'Search'.", "ErrorInvalidUrlQuery"
        )
    if search:
        term = search.strip().strip('"').casefold()
        field_name, _, value = (
            term.partition(":") if term.startswith("subject:") else ("", "", term)
        )
        return [
            m
            for m in rows
            if value in m.subject.casefold() or (not field_name and value in m.content.casefold())
        ]
    if not text_filter:
        return rows
    subject = _SUBJECT_FILTER.match(text_filter.strip())
    if subject:
        return [m for m in rows if m.subject == _unquote(subject[1])]
    prop = _PROP_FILTER.match(text_filter.strip())
    if prop is None:
        raise bad_request(
            "The query filter contains one or more invalid nodes.", "ErrorInvalidUrlQueryFilter"
        )
    key = _prop_key(_unquote(prop[2]))
    op, value = ("eq", prop[3]) if prop[3] is not None else (prop[4].lower(), prop[5])
    wanted = _unquote(value).casefold()
    tests = {"eq": str.__eq__, "startswith": str.startswith, "contains": str.__contains__}
    return [
        m
        for m in rows
        if any(_prop_key(pid) == key and tests[op](val.casefold(), wanted) for pid, val in m.props)
    ]
