"""Microsoft Graph `/v1.0` emulator: SharePoint sites, drives and lists, users and mail, `$batch`.

Every `/v1.0` request needs a bearer token issued by the identity emulator (`identity.py`);
missing, unknown or expired tokens answer 401 `InvalidAuthenticationToken`. Each authenticated
request (and each request inside a `$batch`) spends one unit of a per-app budget of
`rate_limit_per_minute` on real time; past it Graph answers 429 with an integer `Retry-After`
(`activityLimitReached` on SharePoint resources, `TooManyRequests` elsewhere). Upload-session
and download URLs are SharePoint's, outside `/v1.0`, and carry their own `tempauth`.

Seeding (the `graph` section of a sandbox fixture; every key optional, applied in this order,
adding to what exists):

    settings:
      token_lifetime_s: 3599          # access-token lifetime, sandbox clock
      delta_token_max_age_s: 2592000  # older delta/next links answer 410 resyncRequired (30 d)
      rate_limit_per_minute: 600      # per app, real time
      sent_items_delay_s: 0           # sent mail shows in Sent Items this long after sending
    app_roles: [Sites.ReadWrite.All, Mail.Send, Mail.Read, User.Read.All]   # the default:
                                      # the app permissions in tokens issued from now on;
                                      # a request no role grants answers Graph's 403
    users:                            # the mailbox user from sandbox.json always exists
      - {userPrincipalName: ana@contoso.example, mail?: ..., displayName?: ..., id?: ...}
                                      # mail defaults to the UPN; null = no mailbox
    folders:                          # in the syncd site's "Documents" library
      - Clients/Acme/Meetings
    files:                            # parents are created; an existing file is replaced
      - path: Transcripts/ZD-123 Acme.vtt
        content: "WEBVTT ..."         # text (UTF-8), or content_base64: for bytes
        created_at?: 2024-05-01T09:00:00Z   # createdDateTime; modified_at? defaults to it
    lists:                            # on the syncd site; an existing list (by name) is reused
      - name: Arrivals
        columns: [Name, {name: Arrival, dateTime: {}}, {name: Seats, number: {}},
                  {name: Status, choice: {choices: [planned, arrived]}}, {name: VIP, boolean: {}}]
        items: [{fields: {Title: ..., Arrival: 2024-05-01T09:00:00Z, ...}}]

Unspecified timestamps come from the sandbox clock at seeding time (the fixture's `clock` key
is applied first). The syncd site (`credentials.site_id`) lives at `/sites/syncd` of its host,
next to the host's root site; both have one "Documents" library, the syncd one with
`credentials.drive_id`. `snapshot()` holds all of it, file bytes in base64 and sent mail
included, never tokens.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from syncd.sandbox.core import BadJson, Request, Response, SandboxContext, Vendor
from syncd.sandbox.graph_common import (
    GraphError,
    Json,
    b64url,
    bad_request,
    error_body,
    method_not_allowed,
    parse_iso,
)
from syncd.sandbox.graph_drive import Drive, Item
from syncd.sandbox.graph_items import DriveRoutes
from syncd.sandbox.graph_lists import ListRoutes, new_list
from syncd.sandbox.graph_mail import Mailboxes, User
from syncd.sandbox.graph_sites import Site, SiteRoutes
from syncd.sandbox.graph_transfer import DOWNLOAD_PATH, Transfers, UploadSession
from syncd.sandbox.identity import DEFAULT_ROLES, DEFAULT_TOKEN_LIFETIME_S, Grant, IdentityVendor

SITE_PATH = "/sites/syncd"
MAX_BATCH = 20
_BATCH_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)
_STATUS_CODES = {
    400: ("invalidRequest", "The request is malformed or incorrect."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("accessDenied", "The caller does not have permission to perform the action."),
    404: ("itemNotFound", "The resource could not be found."),
    409: ("conflict", "The request conflicts with the current state."),
    429: ("TooManyRequests", "Too many requests."),
    500: ("generalException", "An unspecified error has occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Try again later."),
    504: ("gatewayTimeout", "The service did not answer in time."),
}


@dataclass
class Settings:
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
    delta_token_max_age_s: int = 30 * 24 * 3600
    rate_limit_per_minute: int = 600
    sent_items_delay_s: int = 0

    def update(self, raw: Mapping[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in raw.items():
            if key not in known:
                raise ValueError(f"unknown graph setting {key!r}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"graph setting {key!r} must be a non-negative integer")
            setattr(self, key, value)


# Application permissions (any one of them) per kind of request, and the 403 Graph answers
# without one: Exchange's `ErrorAccessDenied` for mail, SharePoint's `accessDenied` for sites
# and drives, Entra's `Authorization_RequestDenied` for the directory.
_SITES_WRITE = frozenset({"Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All",
                          "Files.ReadWrite.All"})
_SITES_READ = _SITES_WRITE | {"Sites.Read.All", "Files.Read.All"}
_USERS_READ = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
                         "Directory.ReadWrite.All"})
_MAIL_SEND = frozenset({"Mail.Send"})
_MAIL_READ = frozenset({"Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"})
_DENIED = {
    "mail": ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
    "sites": ("accessDenied", "Access denied"),
    "users": ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
}


def _authorize(method: str, segment: str, more: str, roles: frozenset[str]) -> None:
    """403 unless the token's roles grant this request (Graph's permissions reference)."""
    parts = [p for p in more.split("/") if p]
    if segment in ("sites", "drives"):
        needed, kind = (_SITES_READ if method == "GET" else _SITES_WRITE), "sites"
    elif segment == "users" and len(parts) >= 2 and parts[1] == "sendMail":
        needed, kind = _MAIL_SEND, "mail"
    elif segment == "users" and len(parts) >= 2 and parts[1] in ("messages", "mailFolders"):
        needed, kind = (_MAIL_READ if method == "GET" else frozenset({"Mail.ReadWrite"})), "mail"
    elif segment == "users":
        needed, kind = _USERS_READ, "users"
    else:
        return
    if not needed & roles:
        raise GraphError(403, *_DENIED[kind])


class GraphVendor(Vendor):
    name = "graph"

    def __init__(self, ctx: SandboxContext, identity: IdentityVendor) -> None:
        super().__init__(ctx)
        self.tokens = identity.tokens
        self.transfers = Transfers(ctx.clock.now)
        self.drive_routes = DriveRoutes(ctx.clock.now, self._max_age, self.transfers)
        self.site_routes = SiteRoutes(
            lambda: self.sites,
            lambda: self.drives,
            self.drive_routes,
            ListRoutes(ctx.clock.now, self._max_age),
        )
        self.mailboxes = Mailboxes(ctx.clock.now, lambda: self.settings.sent_items_delay_s)
        self.reset()

    # -- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        creds = self.ctx.credentials["graph"]
        now = self.ctx.clock.now()
        self.settings = Settings()
        self.tokens.lifetime_s = self.settings.token_lifetime_s
        self.tokens.roles = DEFAULT_ROLES
        host = creds["site_id"].split(",")[0]
        root_id = ",".join(
            [host, *(str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{k}.{host}")) for k in ("site", "web"))]
        )
        root_drive = "b!" + b64url(uuid.uuid5(uuid.NAMESPACE_DNS, f"drive.{host}").bytes * 2)
        self.sites = {
            root_id: Site(root_id, "", "Communication site", now, root_drive),
            creds["site_id"]: Site(creds["site_id"], SITE_PATH, "syncd", now, creds["drive_id"]),
        }
        self.drives = {
            site.drive_id: Drive(site.drive_id, site.id, site.web_url, now)
            for site in self.sites.values()
        }
        self.transfers.sessions = {}
        self.mailboxes.messages = []
        self.mailboxes.users = {}
        self.mailboxes.add_user(
            User.parse({"userPrincipalName": creds["mailbox"], "displayName": "syncd"})
        )

    @property
    def _site(self) -> Site:
        return self.sites[self.ctx.credentials["graph"]["site_id"]]

    def _max_age(self) -> float:
        return float(self.settings.delta_token_max_age_s)

    def seed(self, data: Mapping[str, Any]) -> None:
        """Load a fixture section (format in the module docstring); bad entries raise ValueError."""
        try:
            self._seed(data)
        except GraphError as err:
            raise ValueError(f"graph seed: {err.message}") from err

    def _seed(self, data: Mapping[str, Any]) -> None:
        now = self.ctx.clock.now()
        self.settings.update(data.get("settings") or {})
        self.tokens.lifetime_s = self.settings.token_lifetime_s
        if "app_roles" in data:
            roles = data["app_roles"]
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise ValueError("graph app_roles: a list of permission names")
            self.tokens.roles = tuple(roles)
        for raw in data.get("users") or []:
            self.mailboxes.add_user(User.parse(raw))
        drive = self.drives[self._site.drive_id]
        for path in data.get("folders") or []:
            drive.ensure_folders(drive.root, _segments(path), now)
        for raw in data.get("files") or []:
            self._seed_file(drive, raw, now)
        for raw in data.get("lists") or []:
            sp = next(
                (
                    s
                    for s in self._site.lists.values()
                    if isinstance(raw, dict) and s.name == raw.get("name")
                ),
                None,
            )
            if sp is None:
                sp = new_list(raw, self._site.web_url, now)
                self._site.lists[sp.id] = sp
            for item in raw.get("items") or []:
                sp.add(item.get("fields", {}) if isinstance(item, dict) else None, now)

    def _seed_file(self, drive: Drive, raw: Any, now: datetime) -> None:
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            raise ValueError("graph seed: each file needs a 'path'")
        *folders, name = _segments(raw["path"])
        if "content_base64" in raw:
            try:
                data = base64.b64decode(raw["content_base64"], validate=True)
            except (binascii.Error, TypeError) as exc:
                raise ValueError(f"graph seed: bad content_base64 for {raw['path']}") from exc
        else:
            data = str(raw.get("content", "")).encode()
        parent = drive.ensure_folders(drive.root, folders, now)
        item, _ = drive.put_file(parent, name, data, "replace", now)
        if raw.get("created_at"):
            item.created = item.modified = parse_iso(raw["created_at"])
        if raw.get("modified_at"):
            item.modified = parse_iso(raw["modified_at"])

    def snapshot(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "sites": [s.to_json() for s in self.sites.values()],
            "drives": [d.to_json() for d in self.drives.values()],
            "mailboxes": self.mailboxes.snapshot(),
            "uploads": self.transfers.snapshot(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.settings = Settings()
        self.settings.update(data.get("settings", {}))
        self.tokens.lifetime_s = self.settings.token_lifetime_s
        self.sites = {s.id: s for s in (Site.from_json(raw) for raw in data["sites"])}
        self.drives = {d.id: d for d in (Drive.from_json(raw) for raw in data["drives"])}
        self.mailboxes.restore(data.get("mailboxes", {}))
        self.transfers.restore(data.get("uploads", []))

    def mail(self) -> list[dict[str, Any]]:
        return [m.outgoing() for m in self.mailboxes.messages]

    # -- HTTP ---------------------------------------------------------------------------------

    def matches(self, path: str) -> bool:
        return path == "/v1.0" or path.startswith("/v1.0/") or self.transfers.matches(path)

    def error_response(self, status: int, retry_after: int | None = None) -> Response:
        code, message = _STATUS_CODES.get(status, ("generalException", "The request failed."))
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return self._answer(None, GraphError(status, code, message, headers=headers))

    def handle(self, req: Request) -> Response:
        try:
            response = self._route(req)
        except GraphError as err:
            response = self._answer(req, err)
        except BadJson as exc:
            response = self._answer(req, bad_request(f"Invalid JSON in the request body: {exc}"))
        return self._stamp(req, response)

    def _route(self, req: Request) -> Response:
        if req.path == DOWNLOAD_PATH:
            return self.transfers.download(req, self._drive)
        if self.transfers.matches(req.path):
            return self.transfers.upload(req, self._commit, self._render_committed)
        grant = self._authenticate(req)
        if req.path == "/v1.0/$batch":
            return self._batch(req, grant)
        self._throttle(req.path, grant)
        return self._dispatch(req, grant)

    def _authenticate(self, req: Request) -> Grant:
        scheme, _, token = (req.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated("Access token is empty.")
        grant = self.tokens.lookup(token.strip())
        if grant is None:
            raise _unauthenticated("CompactToken parsing failed with error code: 80049217")
        if grant.expires_at <= self.ctx.clock.now():
            raise _unauthenticated("Lifetime validation failed, the token is expired.")
        return grant

    def _throttle(self, path: str, grant: Grant) -> None:
        allowed, _, reset = self.ctx.limiter.take(
            f"graph:{grant.client_id}", self.settings.rate_limit_per_minute
        )
        if allowed:
            return
        sharepoint = path.startswith(("/v1.0/sites", "/v1.0/drives"))
        code = "activityLimitReached" if sharepoint else "TooManyRequests"
        raise GraphError(
            429,
            code,
            "The request has been throttled.",
            inner_code="throttledRequest" if sharepoint else None,
            headers={"Retry-After": str(max(int(reset), 1))},
        )

    def _dispatch(self, req: Request, grant: Grant) -> Response:
        app = {"id": grant.client_id, "displayName": "syncd"}
        rest = req.path[len("/v1.0") :]
        segment, _, more = rest.lstrip("/").partition("/")
        _authorize(req.method, segment, more, grant.roles)
        if segment == "sites":
            return self.site_routes.handle(req, rest[len("/sites") :], app)
        if segment == "drives":
            if not more:
                if req.method != "GET":
                    raise method_not_allowed(req, ["GET"])
                return Response.json(
                    200, {"value": [d.describe("syncd") for d in self.drives.values()]}
                )
            drive_id, _, sub = more.partition("/")
            return self.drive_routes.handle(
                req, self._drive(drive_id), f"/{sub}" if sub else "", app
            )
        if segment == "users":
            return self.mailboxes.handle(req, [p for p in more.split("/") if p])
        if segment == "me":
            raise bad_request(
                "/me request is only valid with delegated authentication flow.", "BadRequest"
            )
        raise bad_request(f"Resource not found for the segment '{segment}'.", "BadRequest")

    def _drive(self, drive_id: str) -> Drive:
        drive = self.drives.get(drive_id)
        if drive is None:
            raise GraphError(404, "itemNotFound", "The drive could not be found.")
        return drive

    def _commit(self, session: UploadSession, data: bytes) -> tuple[Item, int, Drive]:
        drive = self._drive(session.drive_id)
        item, status = self.drive_routes.commit(drive, session, data)
        return item, status, drive

    def _render_committed(self, drive: Drive, item: Item) -> Json:
        return drive.render(
            item, {"id": self.ctx.credentials["graph"]["client_id"], "displayName": "syncd"}
        )

    def _answer(self, req: Request | None, err: GraphError) -> Response:
        request_id = str(uuid.uuid4())
        client_id = (req.header("client-request-id") if req else None) or request_id
        body = error_body(err, self.ctx.clock.now(), request_id, client_id)
        return Response.json(err.status, body, {"request-id": request_id, **err.headers})

    def _stamp(self, req: Request, response: Response) -> Response:
        """Graph's correlation headers on every answer."""
        request_id = response.headers.setdefault("request-id", str(uuid.uuid4()))
        response.headers["client-request-id"] = req.header("client-request-id") or request_id
        return response

    # -- $batch -------------------------------------------------------------------------------

    def _batch(self, req: Request, grant: Grant) -> Response:
        """JSON batching (graph.md §7): up to 20 requests, `dependsOn` ordering, 424 after a
        failed dependency, each request throttled on its own. Answers come back in a different
        order than asked, as Graph allows, so clients must match them by id."""
        if req.method != "POST":
            raise method_not_allowed(req, ["POST"])
        requests = _batch_requests(req.json())
        status_of: dict[str, int] = {}
        answers = []
        for entry in _execution_order(requests):
            failed = [d for d in entry.get("dependsOn", []) if status_of[d] >= 400]
            if failed:
                response = self._answer(
                    req,
                    GraphError(
                        424,
                        "FailedDependency",
                        f"The request depends on request {failed[0]}, which failed.",
                    ),
                )
            else:
                response = self._inner(req, entry, grant)
            status_of[entry["id"]] = response.status
            answers.append(_batch_answer(entry["id"], response))
        return Response.json(200, {"responses": answers[::-1]})

    def _inner(self, outer: Request, entry: Mapping[str, Any], grant: Grant) -> Response:
        parts = urlsplit(entry["url"])
        headers = http.client.HTTPMessage()
        for key, value in (entry.get("headers") or {}).items():
            headers[key] = str(value)
        inner = Request(
            method=entry["method"].upper(),
            path="/v1.0/" + unquote(parts.path).lstrip("/"),
            raw_path="/v1.0/" + entry["url"].lstrip("/"),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=_inner_body(entry, headers),
            base_url=outer.base_url,
        )
        try:
            if inner.path == "/v1.0/$batch":
                raise bad_request("A batch request cannot contain another batch.", "BadRequest")
            self._throttle(inner.path, grant)
            return self._stamp(inner, self._dispatch(inner, grant))
        except GraphError as err:
            return self._answer(inner, err)
        except BadJson as exc:
            return self._answer(inner, bad_request(f"Invalid JSON in the request body: {exc}"))


def _unauthenticated(message: str) -> GraphError:
    return GraphError(
        401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": _WWW_AUTHENTICATE}
    )


def _segments(path: Any) -> list[str]:
    if not isinstance(path, str) or not path.strip("/"):
        raise ValueError(f"graph seed: bad path {path!r}")
    return [s for s in path.split("/") if s]


def _batch_error(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _batch_requests(body: Any) -> list[dict[str, Any]]:
    """Validate a batch payload; anything malformed fails the whole batch with 400."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise _batch_error("Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(requests) > MAX_BATCH:
        raise _batch_error(f"A batch can contain at most {MAX_BATCH} requests.")
    seen: set[str] = set()
    for entry in requests:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise _batch_error("Each request needs a string 'id'.")
        rid = entry["id"]
        if rid in seen:
            raise _batch_error(f"Request id '{rid}' is duplicated.")
        seen.add(rid)
        url, method = entry.get("url"), entry.get("method")
        if not isinstance(method, str) or method.upper() not in _BATCH_METHODS:
            raise _batch_error(f"Request id '{rid}' has an invalid method.")
        if not isinstance(url, str) or not url or urlsplit(url).scheme:
            raise _batch_error(f"Request id '{rid}' needs a relative 'url'.")
        headers = entry.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise _batch_error(f"Request id '{rid}' has invalid 'headers'.")
        if "body" in entry and not any(k.lower() == "content-type" for k in headers or {}):
            raise _batch_error(
                f"Write request id : {rid} does not contain Content-Type header or body."
            )
        depends = entry.get("dependsOn", [])
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise _batch_error(f"Request id '{rid}' has an invalid 'dependsOn'.")
    ids = {e["id"] for e in requests}
    for entry in requests:
        missing = [d for d in entry.get("dependsOn", []) if d not in ids]
        if missing:
            raise _batch_error(f"Request id '{entry['id']}' depends on unknown id '{missing[0]}'.")
    return requests


def _execution_order(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests in an order where each comes after what it depends on; a cycle is a 400."""
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    pending = list(requests)
    while pending:
        ready = [e for e in pending if set(e.get("dependsOn", [])) <= done]
        if not ready:
            raise _batch_error("The dependsOn references form a cycle.")
        for entry in ready:
            order.append(entry)
            done.add(entry["id"])
            pending.remove(entry)
    return order


def _inner_body(entry: Mapping[str, Any], headers: http.client.HTTPMessage) -> bytes:
    """JSON bodies travel as objects; other content types as base64 strings."""
    if "body" not in entry:
        return b""
    body = entry["body"]
    if "json" in (headers.get("Content-Type") or "").lower() or not isinstance(body, str):
        return json.dumps(body).encode()
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        return body.encode()


def _batch_answer(rid: str, response: Response) -> Json:
    answer: Json = {"id": rid, "status": response.status, "headers": dict(response.headers)}
    if response.body:
        if "json" in response.headers.get("Content-Type", ""):
            answer["body"] = json.loads(response.body)
        else:
            answer["body"] = base64.b64encode(response.body).decode()
    return answer
