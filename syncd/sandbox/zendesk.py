"""The Zendesk Support API emulator (`/api/v2/...`), as unkind as the real one.

It follows shared/reference/zendesk.md: zenpy talks to it unmodified through
ZENPY_FORCE_SCHEME/ZENPY_FORCE_NETLOC. Absent keys on a PUT change nothing, `tags` replaces
while the tag endpoints and `additional_tags`/`remove_tags` add and remove, bulk writes answer
a job status that must be polled, `safe_update` answers 409 on a stale `updated_stamp`, every
answer carries rate-limit headers and an exhausted budget answers 429 with an integer
Retry-After (the incremental exports have their own 10/min bucket), the incremental export
hides the last minute and side-loads what its tickets refer to (`include=users,organizations`),
the group memberships side-load their users and groups (`include=users,groups`), and errors
come in Zendesk's shapes. Every timestamp comes from the
sandbox clock; rate-limit windows run on real time.

Authentication: HTTP Basic `{email}/token:{token}` or `Authorization: Bearer {token}` with the
credentials in sandbox.json's `zendesk` section. The API user is the account user with that
email; it is created as an admin on first use unless the fixture defines it (an `agent` API
user is refused the Ticket Import API, as in Zendesk).

Seeding (the `zendesk` section of a fixture posted to /_sandbox/seed). Every section is
optional; within an entry, keys marked `?` are optional. Ids are assigned when absent (an id
already in use is refused); references are by email or name, or by id. A user whose email
already exists is updated, not duplicated.

    zendesk:
      settings:                       # per-minute budgets (defaults: Enterprise plan)
        rate_limit_per_minute: 700
        incremental_per_minute: 10
      organizations:
        - {name: Acme, id?: 9001, external_id?: "crm-1", domain_names?: [acme.example],
           tags?: [vip]}
      users:
        - {name: Ann Agent, email: ann@example.com,
           role: agent,                       # end-user (default) | agent | admin
           id?: 1001, away?: true,            # stored as user_fields.away
           organization?: Acme, external_id?: "x", time_zone?: UTC, phone?: "+1...",
           tags?: [...], user_fields?: {...}, active?: true}
      groups:
        - {name: First Responders, id?: 2001, description?: "...",
           members: [ann@example.com]}        # agents/admins; a user's first group is default
      ticket_fields:
        - {title: Product, type: tagger, key?: product, id?: 3001,
           options: [{name: Widget, value: widget}]}   # or options: [Widget] (value "widget")
          # types: text textarea checkbox date integer decimal regexp tagger multiselect
      tickets:
        - id?: 42
          subject: Printer on fire
          description?: "..."                 # used as the first comment when none are given
          status?: open                       # new|open|pending|hold|solved|closed
          priority?: high                     # low|normal|high|urgent
          type?: incident                     # problem|incident|question|task
          requester?: carl@customer.example   # unknown emails become end-users
          assignee?: ann@example.com          # pulls in the assignee's default group
          group?: First Responders
          organization?: Acme                 # default: the requester's
          tags?: [vip]
          custom_fields?: {Product: widget}   # by title, key or id; or [{id, value}]
          external_id?: "..."
          due_at?: "2026-03-05T12:00:00Z"
          created_at?: "2026-03-01T08:00:00Z" # default: the sandbox clock
          updated_at?: "..."                  # default: latest comment; also the ticket's
                                              # generated_timestamp (incremental export)
          comments?:
            - {author: carl@customer.example, body: "It is still burning", public?: true,
               created_at?: "2026-03-01T08:00:00Z"}

      webhooks:                       # outgoing, see zendesk_webhooks.py
        - {endpoint: "https://127.0.0.1:8788/webhooks/zendesk", signing_secret: "...",
           id?: "01HV...", status?: active, ca_bundle?: /path/ca.pem, name?: syncd}

A fixture's `clock` (top level) is applied before this section, so defaults use it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from syncd.sandbox.core import BadJson, Request, Response, Vendor
from syncd.sandbox.zendesk_model import (
    Call,
    ZendeskError,
    ZendeskState,
    attachment_view,
    audit_view,
    comment_view,
    fmt_ts,
    group_view,
    invalid_endpoint,
    membership_view,
    not_found,
    organization_view,
    rating_view,
    ticket_field_view,
    ticket_view,
    user_view,
)
from syncd.sandbox.zendesk_reads import (
    incremental_cursor,
    incremental_time,
    paginate,
    rating_rows,
    show,
    show_many,
    sorted_rows,
)
from syncd.sandbox.zendesk_search import search, search_users
from syncd.sandbox.zendesk_seed import SeedError, ensure_user, seed_state
from syncd.sandbox.zendesk_webhooks import (
    WebhookSeedError,
    WebhookSender,
    audited,
    webhook_view,
)
from syncd.sandbox.zendesk_writes import (
    change_tags,
    create_many,
    create_ticket,
    delete_ticket,
    delete_upload,
    destroy_many,
    import_many,
    import_ticket,
    rate_ticket,
    show_job,
    update_many,
    update_ticket,
    upload,
)

API_PREFIX = "/api/v2"
DOWNLOAD_PREFIX = "/attachments/token/"
Handler = Callable[[Call], Response]


# -- read handlers ----------------------------------------------------------------------------
def _ticket_view(call: Call) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda t: ticket_view(call.state, t, call.base)


def _exported_view(call: Call) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda t: ticket_view(call.state, t, call.base, exported=True)


def _user_view(call: Call) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda u: user_view(call.state, u, call.base)


def _tickets(call: Call) -> Response:
    """List Tickets; `?external_id=` narrows it to the tickets carrying that external id."""
    external_id = call.req.arg("external_id")
    live = (t for t in call.state.tickets.values() if not t["deleted"]
            and (external_id is None or t["external_id"] == external_id))
    return paginate(call, "tickets", sorted_rows(live), _ticket_view(call))


def _ticket(call: Call) -> Response:
    ticket = call.state.live_ticket(call.path_id())
    return Response.json(200, {"ticket": _ticket_view(call)(ticket)})


def _comments(call: Call) -> Response:
    ticket = call.state.live_ticket(call.path_id())
    rows = sorted_rows(c for c in call.state.comments.values() if c["ticket_id"] == ticket["id"])
    descending = call.req.arg("sort_order") == "desc"
    return paginate(call, "comments", rows[::-1] if descending else rows,
                    lambda c: comment_view(call.state, c, call.base), descending=descending)


def _ticket_audits(call: Call) -> Response:
    ticket = call.state.live_ticket(call.path_id())
    rows = sorted_rows(a for a in call.state.audits.values() if a["ticket_id"] == ticket["id"])
    return paginate(call, "audits", rows, lambda a: audit_view(call.state, a, call.base))


def _audit(call: Call) -> Response:
    ticket = call.state.live_ticket(call.path_id())
    audit = call.state.audits.get(int(call.match.group("audit")))
    if audit is None or audit["ticket_id"] != ticket["id"]:
        raise not_found()
    return Response.json(200, {"audit": audit_view(call.state, audit, call.base)})


def _all_audits(call: Call) -> Response:
    """Account-wide audits, newest first (deleted tickets' audits are left out)."""
    rows = sorted_rows(a for a in call.state.audits.values()
                       if not call.state.tickets[a["ticket_id"]]["deleted"])[::-1]
    return paginate(call, "audits", rows, lambda a: audit_view(call.state, a, call.base),
                    descending=True)


def _tags(call: Call) -> Response:
    ticket = call.state.live_ticket(call.path_id())
    return Response.json(200, {"tags": list(ticket["tags"]), "next_page": None,
                               "previous_page": None, "count": len(ticket["tags"])})


def _users(call: Call) -> Response:
    roles = set(call.req.query.get("role", []) + call.req.query.get("role[]", []))
    rows = sorted_rows(u for u in call.state.users.values() if not roles or u["role"] in roles)
    return paginate(call, "users", rows, _user_view(call))


def _memberships_where(call: Call, key: str) -> Response:
    show(call.state.users if key == "user_id" else call.state.groups, call.path_id())
    rows = sorted_rows(m for m in call.state.memberships.values() if m[key] == call.path_id())
    return paginate(call, "group_memberships", rows, lambda m: membership_view(m, call.base))


def _memberships(call: Call) -> Response:
    """GET /group_memberships: with `include=users,groups`, each page side-loads the users and
    groups its memberships link, each once (the side-load Zendesk's own apps and clients use:
    node-zendesk's GroupMemberships `sideLoadMap`, PwshZendesk's `-SideLoad 'users',
    'groups'`); other names are ignored."""
    state = call.state
    resp = paginate(call, "group_memberships", sorted_rows(state.memberships.values()),
                    lambda m: membership_view(m, call.base))
    wanted = {n.strip() for n in (call.req.arg("include") or "").split(",")} & {"users",
                                                                               "groups"}
    if not wanted:
        return resp
    body = json.loads(resp.body)
    page = body["group_memberships"]
    if "users" in wanted:
        body["users"] = [_user_view(call)(state.users[i])
                         for i in sorted({m["user_id"] for m in page}) if i in state.users]
    if "groups" in wanted:
        body["groups"] = [group_view(state.groups[i], call.base)
                          for i in sorted({m["group_id"] for m in page}) if i in state.groups]
    return Response.json(200, body)


def _group_users(call: Call) -> Response:
    show(call.state.groups, call.path_id())
    ids = {m["user_id"] for m in call.state.memberships.values()
           if m["group_id"] == call.path_id()}
    return paginate(call, "users", sorted_rows(call.state.users[i] for i in ids),
                    _user_view(call))


def _user_groups(call: Call) -> Response:
    show(call.state.users, call.path_id())
    groups = [call.state.groups[g] for g in call.state.group_ids_of(call.path_id())]
    return paginate(call, "groups", sorted_rows(groups), lambda g: group_view(g, call.base))


def _attachment(call: Call) -> Response:
    found = show(call.state.attachments, call.path_id())
    return Response.json(200, {"attachment": attachment_view(found, call.base)})


def _listing(table: str, key: str, view: Callable[[dict[str, Any], str], dict[str, Any]]
             ) -> Handler:
    return lambda call: paginate(call, key, sorted_rows(getattr(call.state, table).values()),
                                 lambda r: view(r, call.base))


def _one(table: str, key: str, view: Callable[[dict[str, Any], str], dict[str, Any]]) -> Handler:
    return lambda call: Response.json(
        200, {key: view(show(getattr(call.state, table), call.path_id()), call.base)})


J = r"(?:\.json)?"
ID = r"/(?P<id>\d+)"
# (method, path pattern under /api/v2, handler, counts against the incremental export budget)
ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("GET", f"/tickets{J}", _tickets, False),
    ("POST", f"/tickets{J}", create_ticket, False),
    ("GET", f"/tickets/show_many{J}",
     lambda c: show_many(c, "tickets", c.state.tickets, _ticket_view(c)), False),
    ("POST", f"/tickets/create_many{J}", create_many, False),
    ("PUT", f"/tickets/update_many{J}", update_many, False),
    ("DELETE", f"/tickets/destroy_many{J}", destroy_many, False),
    ("GET", f"/tickets{ID}{J}", _ticket, False),
    ("PUT", f"/tickets{ID}{J}", update_ticket, False),
    ("DELETE", f"/tickets{ID}{J}", delete_ticket, False),
    ("GET", f"/tickets{ID}/comments{J}", _comments, False),
    ("GET", f"/tickets{ID}/audits{J}", _ticket_audits, False),
    ("GET", rf"/tickets{ID}/audits/(?P<audit>\d+){J}", _audit, False),
    ("GET", f"/tickets{ID}/tags{J}", _tags, False),
    ("PUT", f"/tickets{ID}/tags{J}", change_tags("add"), False),
    ("POST", f"/tickets{ID}/tags{J}", change_tags("set"), False),
    ("DELETE", f"/tickets{ID}/tags{J}", change_tags("remove"), False),
    ("POST", f"/tickets{ID}/satisfaction_rating{J}", rate_ticket, False),
    ("GET", f"/ticket_audits{J}", _all_audits, False),
    ("POST", f"/imports/tickets{J}", import_ticket, False),
    ("POST", f"/imports/tickets/create_many{J}", import_many, False),
    ("GET", rf"/job_statuses/(?P<job>[\w-]+){J}", show_job, False),
    ("POST", f"/uploads{J}", upload, False),
    ("DELETE", rf"/uploads/(?P<token>[\w-]+){J}", delete_upload, False),
    ("GET", f"/attachments{ID}{J}", _attachment, False),
    ("GET", f"/users{J}", _users, False),
    ("GET", f"/users/me{J}", lambda c: Response.json(200, {"user": {
        **_user_view(c)(c.actor), "authenticity_token": secrets.token_urlsafe(64)}}),
     False),
    ("GET", f"/users/show_many{J}", lambda c: show_many(
        c, "users", c.state.users, _user_view(c)), False),
    ("GET", f"/users/search{J}", search_users, False),
    ("GET", f"/users{ID}{J}", lambda c: Response.json(
        200, {"user": _user_view(c)(show(c.state.users, c.path_id()))}), False),
    ("GET", f"/users{ID}/group_memberships{J}", lambda c: _memberships_where(c, "user_id"),
     False),
    ("GET", f"/users{ID}/groups{J}", _user_groups, False),
    ("GET", f"/groups{J}", _listing("groups", "groups", group_view), False),
    ("GET", f"/groups{ID}{J}", _one("groups", "group", group_view), False),
    ("GET", f"/groups{ID}/memberships{J}", lambda c: _memberships_where(c, "group_id"), False),
    ("GET", f"/groups{ID}/users{J}", _group_users, False),
    ("GET", f"/group_memberships{J}", _memberships, False),
    ("GET", f"/group_memberships{ID}{J}",
     _one("memberships", "group_membership", membership_view), False),
    ("GET", f"/organizations{J}",
     _listing("organizations", "organizations", organization_view), False),
    ("GET", f"/organizations/show_many{J}", lambda c: show_many(
        c, "organizations", c.state.organizations, lambda o: organization_view(o, c.base)),
     False),
    ("GET", f"/organizations{ID}{J}",
     _one("organizations", "organization", organization_view), False),
    ("GET", f"/ticket_fields{J}",
     _listing("ticket_fields", "ticket_fields", ticket_field_view), False),
    ("GET", f"/ticket_fields{ID}{J}",
     _one("ticket_fields", "ticket_field", ticket_field_view), False),
    ("GET", f"/satisfaction_ratings{J}", lambda c: paginate(
        c, "satisfaction_ratings", rating_rows(c), lambda r: rating_view(r, c.base)), False),
    ("GET", f"/satisfaction_ratings{ID}{J}",
     _one("ratings", "satisfaction_rating", rating_view), False),
    ("GET", f"/search{J}", search, False),
    ("GET", f"/incremental/tickets/cursor{J}", lambda c: incremental_cursor(c, _exported_view(c)),
     True),
    ("GET", f"/incremental/tickets{J}", lambda c: incremental_time(c, _exported_view(c)), True),
]
_COMPILED = [(m, re.compile(API_PREFIX + p), h, inc) for m, p, h, inc in ROUTES]
_WEBHOOKS = re.compile(f"{API_PREFIX}/webhooks{J}")  # outgoing webhooks: the vendor's own list


# Zendesk's 403 (an agent on an admins-only endpoint, such as the incremental exports), as
# quoted in zenpy issue #336 and dust-tt/dust#8860.
FORBIDDEN = {"error": "Forbidden", "description": "You do not have access to this page. Please "
             "contact the account owner of this help desk for further help."}


class ZendeskVendor(Vendor):
    name: ClassVar[str] = "zendesk"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.state = ZendeskState.empty(self.ctx.clock.now())
        self.webhooks = WebhookSender()  # outgoing: zendesk_webhooks.py

    def matches(self, path: str) -> bool:
        return path.startswith(API_PREFIX + "/") or path.startswith(DOWNLOAD_PREFIX)

    def handle(self, req: Request) -> Response:
        if req.path.startswith(DOWNLOAD_PREFIX):
            return self._download(req)
        try:
            handler, match, incremental = self._route(req)
            actor = self._authenticate(req)
            if incremental and actor["role"] != "admin":
                raise ZendeskError(403, FORBIDDEN)  # "Allowed For: Admins"
        except ZendeskError as exc:
            return exc.response()
        limit_headers, refusal = self._spend_budget(incremental)
        if refusal is not None:
            return refusal
        call = Call(self.state, req, match, actor, self.ctx.clock.now())
        first_id = self.state.next_object_id
        try:
            resp = handler(call)
        except ZendeskError as exc:
            resp = exc.response()
        except BadJson as exc:
            resp = _invalid_json(str(exc))
        resp.headers.update(limit_headers)
        if req.method != "GET" and "/imports/" not in req.path:  # triggers skip imports
            changed = audited(self.state.audits, first_id, self.state.next_object_id)
            if changed:
                self.webhooks.invoke(changed, call.now)
        return resp

    def error_response(self, status: int, retry_after: int | None = None) -> Response:
        """Zendesk's answers for injected faults, in the shapes clients meet in production:
        JSON errors from the API, plain text from the rate limiter and the maintenance page,
        HTML from the load balancer."""
        retry = {"Retry-After": str(retry_after if retry_after is not None else 60)}
        if status == 429:
            return Response.text(429, "Number of allowed API requests per minute exceeded",
                                 retry)
        if status == 503:
            return Response.text(503, "Service Unavailable: Zendesk is down for maintenance.",
                                 retry)
        if status in (502, 504):
            return Response(status, b"<html><body><h1>Bad Gateway</h1></body></html>",
                            {"Content-Type": "text/html"})
        shapes: dict[int, dict[str, Any]] = {
            400: _invalid_json_body("The request body could not be parsed"),
            401: {"error": "Couldn't authenticate you"},
            403: FORBIDDEN,
            404: {"error": "RecordNotFound", "description": "Not found"},
            409: {"error": "UpdateConflict", "description": "The record was updated meanwhile."},
            422: {"error": "RecordInvalid", "description": "Record validation errors",
                  "details": {}},
        }
        body = shapes.get(status, {"error": "InternalError",
                                   "description": "Something went wrong. Please try again."})
        return Response.json(status, body)

    def reset(self) -> None:
        self.state = ZendeskState.empty(self.ctx.clock.now())
        self.webhooks.reset()

    def seed(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise SeedError("the zendesk section of a fixture is a mapping")
        try:
            self.webhooks.seed(data.get("webhooks") or [], fmt_ts(self.ctx.clock.now()))
        except WebhookSeedError as exc:
            raise SeedError(str(exc)) from None
        seed_state(self.state, data, self.ctx.clock.now(), self._api_email())

    def snapshot(self) -> dict[str, Any]:
        return self.state.to_json()

    def restore(self, data: Mapping[str, Any]) -> None:
        self.state = ZendeskState.from_json(dict(data))

    # -- internals -----------------------------------------------------------------------------
    def _route(self, req: Request) -> tuple[Handler, re.Match[str], bool]:
        listing = _WEBHOOKS.fullmatch(req.path)
        if listing and req.method == "GET":
            return self._list_webhooks, listing, False
        for method, pattern, handler, incremental in _COMPILED:
            match = pattern.fullmatch(req.path)
            if match and method == req.method:
                return handler, match, incremental
        raise invalid_endpoint()

    def _list_webhooks(self, call: Call) -> Response:
        """The Webhooks API's list ("Allowed for: Admins"); see zendesk_webhooks.py."""
        if call.actor["role"] != "admin":
            raise ZendeskError(403, FORBIDDEN)
        owner = str(call.actor["id"])
        return Response.json(200, {"webhooks": [webhook_view(h, owner)
                                                for h in self.webhooks.listed()],
                                   "meta": {"has_more": False}})

    def _api_email(self) -> str:
        return str(self.ctx.credentials.get("zendesk", {}).get("email", ""))

    def _authenticate(self, req: Request) -> dict[str, Any]:
        token = str(self.ctx.credentials.get("zendesk", {}).get("token", ""))
        scheme, _, value = (req.header("Authorization") or "").partition(" ")
        presented = ""
        if scheme.lower() == "basic":
            try:
                user, _, presented = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = ""
            if user.lower() != f"{self._api_email().lower()}/token":
                presented = ""
        elif scheme.lower() == "bearer":
            presented = value.strip()
        if not token or not hmac.compare_digest(presented.encode(), token.encode()):
            raise ZendeskError(401, {"error": "Couldn't authenticate you"})
        return ensure_user(self.state, self._api_email(), fmt_ts(self.ctx.clock.now()))

    def _spend_budget(self, incremental: bool) -> tuple[dict[str, str], Response | None]:
        """Take one request from the account budget (and the export budget): the headers
        every answer carries, and the 429 to send instead when a budget is spent."""
        limit = self.state.settings["rate_limit_per_minute"]
        allowed, remaining, reset = self.ctx.limiter.take("zendesk", limit)
        headers = {
            "X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
            "ratelimit-limit": str(limit), "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(reset),
        }
        if not allowed:
            return headers, Response.text(
                429, "Number of allowed API requests per minute exceeded",
                {**headers, "Retry-After": str(reset)})
        if incremental:
            export_limit = self.state.settings["incremental_per_minute"]
            # no header tells the export's own budget: real export answers carry none
            allowed, _, resets = self.ctx.limiter.take("zendesk:incremental", export_limit)
            if not allowed:
                return headers, Response.json(429, {
                    "error": "APIRateLimitExceeded",
                    "description": "Number of allowed incremental export API requests per "
                                   "minute exceeded",
                }, {**headers, "Retry-After": str(resets)})
        return headers, None

    def _download(self, req: Request) -> Response:
        """An attachment's content_url: a capability URL, served without API auth."""
        token = req.path[len(DOWNLOAD_PREFIX):].strip("/")
        found = next((a for a in self.state.attachments.values()
                      if a["content_token"] == token), None)
        if found is None:
            return Response.json(404, {"error": "RecordNotFound", "description": "Not found"})
        return Response(200, self.state.blobs[found["id"]], {
            "Content-Type": found["content_type"],
            "Content-Disposition": f'attachment; filename="{found["file_name"]}"',
        })


def _invalid_json_body(detail: str) -> dict[str, Any]:
    return {"error": "InvalidJSON", "description": f"The request body is not valid JSON: {detail}"}


def _invalid_json(detail: str) -> Response:
    return ZendeskError(400, _invalid_json_body(detail)).response()
