"""Zendesk through zenpy: incremental ticket export, collision-safe tags, batched updates, comments
with uploads, ticket creation with an idempotency key.

Host. zenpy builds `https://{subdomain}.{domain}/api/v2` and lets the process-wide variables
ZENPY_FORCE_SCHEME / ZENPY_FORCE_NETLOC override it. A configured `netloc` (a custom host, the
sandbox) is applied to this client's own API objects instead: `subdomain.domain` is the netloc
split at its first dot and `protocol` is the scheme, so nothing global changes and another
zenpy client in the process keeps its own host. Only a netloc without a dot (`localhost:8443`)
cannot be split; for it the variables are set, and a conflicting value is refused.

Polling. Cursor-based incremental export: `start_time` (an attribute, 0: all history) on the
first poll, then the stored `after_cursor`; one `Page` per export page, whose cursor is the
page's `after_cursor`. The export has its own 10 requests/minute budget (a governor bucket of
its own, of which syncd spends `export_share`, all of it by default) and leaves out
changes of the last minute: a ticket changed now shows up one minute later, and `fetch`
(show) is the way to see a ticket fresh. Deleted tickets come with status "deleted" and
become `Record(deleted=True)`. Cost per page: one export call. It asks
for `include=users,organizations` (the export side-loads the tickets' users and
organizations), so requesters' and assignees' emails and organization names come with it;
only an id the side-load left out costs a `users/show_many` or `organizations/show_many`
call (per 100). Groups and agents come from the cached directory, field definitions are read
once a ticket carries a custom field.

Reference data. The directory (agents with their away flag, groups, memberships: one call,
the memberships side-loading their users and groups) is kept `directory_ttl_s` (15 minutes by
default: an agent's away flag is seen within it), and read again, thoroughly (three listings),
at most once a minute when something is missing from it: a ticket in a group it does not
know, an assignee email or group name an update names, an author of an agent's action who is
not in it. Field definitions likewise, for a field id or name not in them.

`agent_touched` / `last_agent_action_at` (an agent's public comment, status change or
(re)assignment after creation, by anyone but syncd's own API user) need the ticket's audits:
one more call per ticket (per 100 audits). The export does not carry them, so `poll` leaves
them out and `fetch` fills them in (`extra_fields`); the daemon calls `fetch` (`fetch_many` for
the tickets due at one poll: their fields by `tickets/show_many`, 100 a call) before a timer
fires, which is when a ladder's `until: {agent_touched: true}` must be right, and leaves the
audits out (`extras=False`) when no rule of the due timers reads them.

Verbs (`Operation.target` is the ticket id; `create_ticket` has none):
- `add_tags` / `remove_tags` `{"tags": [...], "updated_stamp"?, "current_tags"?}`: one
  ticket update (PUT /tickets/{id}) carrying the whole tag list, `current_tags` (the list as
  of `updated_stamp`) with the change, sent with `safe_update` and that stamp, so a tag added
  meanwhile earns a 409, and the ticket is read again and the list computed anew, never
  overwritten; without `current_tags` the ticket is read first. The update answers the
  ticket as saved, so the write costs no read-back (the tag endpoints answer only the tag
  list). Verify: all present / none present.
- `update` `{"status", "priority", "type", "assignee_id", "group_id", "assignee_email",
  "group_name", "custom_fields": {id|key|title: value}, "updated_stamp"?}`: with
  `updated_stamp` the update is a `safe_update` and a 409 answers `error="conflict"` (not
  retryable: re-read and re-plan). Verify: every given field has the given value.
  `execute_many` sends consecutive tag changes and updates without `updated_stamp` of one
  ticket (a rule's tag and assignment) as one update, each op with its outcome and verified
  alone; runs of three or more updates of distinct tickets go through `update_many` (100 a
  job), and the job status is polled on the clock (fewer go one by one: a job costs the call
  and at least one status read).
- `comment` `{"body", "public": bool, "attachments": [{"filename", "content_b64",
  "content_type"?}]}`: attachments are uploaded first, then the comment goes on with the
  tokens. The operation key travels as the audit's custom metadata (`{"ticket": {"metadata":
  {"syncd_key": key}}}`, Zendesk's "Setting Metadata" on ticket updates), invisible to
  customers and agents; verify finds the audit with that key. A marker in the body was the
  alternative, but a public comment would show it to the customer.
- `create_ticket` `{"subject", "body", "public"?, "requester_email"?, "priority"?, "type"?,
  "tags"?, "group_id"?, "custom_fields"?}`: sent with `Idempotency-Key: <key>` (zenpy takes
  no per-call headers; `http.request_headers` adds it to exactly that request through the
  session) and `external_id = key`. Zendesk replays an idempotent create for two hours only,
  so verify looks the ticket up by external_id, which lasts.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

from zenpy import Zenpy
from zenpy.lib.api import BaseApi
from zenpy.lib.api_objects import Comment, Ticket, User

from syncd.clock import Clock
from syncd.connectors.base import (
    MISS_REFRESH_S,
    Directory,
    DirectoryGroup,
    DirectoryUser,
    Dropdown,
    Page,
    TtlCache,
    absent,
    dispatch,
    done,
    failed,
    refused,
)
from syncd.connectors.http import (
    Bucket,
    Governor,
    MeteredSession,
    PermanentError,
    RetryableError,
    RetryPolicy,
    VendorError,
    default_lane,
    request_headers,
)
from syncd.connectors.tls import NO_PROXY, SYSTEM_TRUST, ca_bundle, proxies
from syncd.model import Operation, Outcome, Record, RecordRef
from syncd.settings import ProxySection, TlsSection, ZendeskSection
from syncd.vendors.zendesk import TICKET

T = TypeVar("T")
KIND = TICKET.name
UPDATE_FIELDS = ("status", "priority", "type", "assignee_id", "group_id")
AGENT_ACTION_FIELDS = frozenset({"status", "assignee_id", "group_id"})
BATCH_MAX = 100
BATCH_MIN = 3  # a job costs its update_many and one status read or more: it pays from three
METADATA_KEY = "syncd_key"
TAG_VERBS = frozenset({"add_tags", "remove_tags"})
TAG_ATTEMPTS = 3  # a tag change re-read after a 409 this many times before waiting
SIDELOADS = ("users", "organizations")  # what the export carries beside its tickets
DROPDOWN_TYPES = ("tagger", "multiselect")  # fields whose values are their options'


@dataclass(frozen=True)
class Webhook:
    """A webhook of the account (Webhooks API): where it sends, and whether it is on."""

    id: str
    name: str
    endpoint: str
    active: bool


def pin_host(client: Zenpy, scheme: str, netloc: str) -> None:
    """Point this client's API objects at `scheme://netloc` (see the module docstring)."""
    sub, dot, domain = netloc.partition(".")
    if not dot:
        for var, value in (("ZENPY_FORCE_SCHEME", scheme), ("ZENPY_FORCE_NETLOC", netloc)):
            if os.environ.setdefault(var, value) != value:
                raise ValueError(f"{var} is already set to another host; use a dotted netloc")
        return
    for api in vars(client).values():
        if isinstance(api, BaseApi):
            api.subdomain, api.domain, api.protocol = sub, domain, scheme


def _bucket(path: str) -> str:
    return "incremental" if "/incremental/" in path else "default"


def _field_key(definition: Mapping[str, Any]) -> str:
    """`custom.<key>`: the field's key when it has one, else its title in snake case."""
    key = definition.get("key")
    if key:
        return str(key)
    return re.sub(r"[^0-9a-z]+", "_", str(definition.get("title", "")).lower()).strip("_")


class ZendeskConnector:
    system = "zendesk"
    kinds = frozenset({KIND})
    # Not settings: tests and tools may set them on an instance.
    page_size = 1000  # export page size (the first request only: zenpy drops it after)
    start_time = 0  # unix seconds where the first export starts
    away_field = "away"  # a checkbox user field marking an agent away
    job_poll_s = 1.0
    job_timeout_s = 120.0
    timeout_s = 60.0
    extra_fields = frozenset({"agent_touched", "last_agent_action_at"})  # from the audits

    def __init__(
        self,
        settings: ZendeskSection,
        clock: Clock,
        tls: TlsSection = SYSTEM_TRUST,
        proxy: ProxySection = NO_PROXY,
    ) -> None:
        if settings.token is None:
            raise ValueError("zendesk is not configured (section [zendesk] and its token)")
        self.settings = settings
        self.clock = clock
        share = settings.rate_share
        export_share = settings.export_share
        export_rate = settings.incremental_per_minute * export_share
        self.governor = Governor.per_minute(
            "zendesk",
            clock,
            settings.plan_rate_per_minute * share,
            share=share,
            incremental=Bucket(export_rate, max(1.0, export_rate), export_share),
        )
        self.retry = RetryPolicy(self.governor)
        session = MeteredSession(
            self.governor,
            verify=ca_bundle(tls) or True,
            proxies=proxies(proxy),
            bucket_of=_bucket,
        )
        self.client = Zenpy(
            subdomain=settings.subdomain,
            email=settings.email,
            token=settings.token.get_secret_value(),
            session=session,
            disable_cache=True,  # zenpy's object cache would answer `fetch` with stale tickets
            timeout=self.timeout_s,
        )
        if settings.netloc:
            pin_host(self.client, settings.scheme, settings.netloc)
        host = settings.netloc or f"{settings.subdomain}.zendesk.com"
        self._agent_url = f"{settings.scheme}://{host}/agent/tickets/"
        self._directory = TtlCache(self._load_directory, clock, settings.directory_ttl_s)
        self._fields = TtlCache(self._load_fields, clock, settings.directory_ttl_s)
        self._emails: dict[int, str | None] = {}
        self._my_id: str | None = None
        self._orgs: dict[int, str | None] = {}
        self._handlers: dict[str, Callable[[Operation], Outcome]] = {
            "add_tags": self._one_write,
            "remove_tags": self._one_write,
            "update": self._one_write,
            "comment": self._comment,
            "create_ticket": self._create_ticket,
        }
        self._verifiers: dict[str, Callable[[Operation], Outcome]] = {
            "add_tags": self._verify_tags,
            "remove_tags": self._verify_tags,
            "update": self._verify_update,
            "comment": self._verify_comment,
            "create_ticket": self._verify_create,
        }

    def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        return self.retry.call(fn, idempotent=idempotent)

    def _dicts(self, fn: Callable[[], Iterable[Any]]) -> list[dict[str, Any]]:
        """Read a zenpy listing (all its pages) as plain dicts, retrying as a whole."""
        return self._call(lambda: [item.to_dict() for item in fn()])

    # -- reading ---------------------------------------------------------------------------
    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]:
        """The export's pages read as JSON through zenpy's request path (its URL, session and
        error checks), never turned into zenpy objects: syncd maps the tickets' JSON itself."""
        lane = "backfill" if cursor is None else "poll"
        api = self.client.tickets
        export = api.endpoint.incremental
        url: str | None = api._build_url(
            export.cursor(cursor=cursor, include=SIDELOADS) if cursor
            else export.cursor_start(start_time=self.start_time, per_page=self.page_size,
                                     include=SIDELOADS)
        )
        while url:
            with default_lane(lane):
                page = self._call(lambda url=url: api._get(url, raw_response=True).json())
                self._side_loaded(page)
                records = self._records(list(page.get("tickets") or []))
            cursor = page.get("after_cursor") or cursor
            yield Page(records, str(cursor or ""))
            url = None if page.get("end_of_stream") else page.get("after_url")

    def _side_loaded(self, page: Mapping[str, Any]) -> None:
        """Remember the emails and organization names the export page side-loaded."""
        self._emails.update({int(u["id"]): u.get("email") for u in page.get("users") or []})
        self._orgs.update({int(o["id"]): o.get("name") for o in page.get("organizations") or []})

    def fetch(self, ref: RecordRef) -> Record | None:
        return self.fetch_many([ref])[ref]

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        """The tickets as they are now (`tickets/show_many`, 100 a call), each with its audits
        read for `agent_touched` if `extras`; None for a ticket that no longer exists."""
        ids = list(dict.fromkeys(int(ref.id) for ref in refs))
        found: dict[int, Record] = {}
        with default_lane("escalation"):
            for start in range(0, len(ids), BATCH_MAX):
                chunk = ids[start : start + BATCH_MAX]
                tickets = self._dicts(lambda chunk=chunk: self.client.tickets(ids=chunk))
                for record in self._records([t for t in tickets if t.get("id") in chunk]):
                    found[int(record.ref.id)] = record
            if not extras:
                return {ref: found.get(int(ref.id)) for ref in refs}
            for ticket_id, record in list(found.items()):
                try:
                    last = self._last_agent_action(ticket_id, record.fields.get("requester_id"))
                except PermanentError as exc:
                    if exc.status != 404:
                        raise
                    del found[ticket_id]  # deleted since the show: gone
                    continue
                touched = {"agent_touched": last is not None, "last_agent_action_at": last}
                found[ticket_id] = Record(record.ref, {**record.fields, **touched},
                                          record.observed_at, record.deleted)
        return {ref: found.get(int(ref.id)) for ref in refs}

    def directory(self, max_age_s: float | None = None) -> Directory:
        """The cached directory; `max_age_s` after a miss (somebody or some group it lacks):
        then a reload is thorough (`_load_directory`)."""
        if max_age_s is None:
            return self._directory.get()
        return self._directory.get(max_age_s, lambda: self._load_directory(thorough=True))

    def field_names(self) -> frozenset[str]:
        """The `custom.<key>` names of the account's ticket fields, as records carry them."""
        return frozenset(self._fields.get().values())

    def dropdowns(self) -> dict[str, Dropdown]:
        """The dropdown fields by `custom.<key>` name, with their option values (read now)."""
        return {
            _field_key(f): Dropdown(str(f.get("title")),
                                    tuple(str(o["value"]) for o in f["custom_field_options"]))
            for f in self._dicts(self.client.ticket_fields)
            if f.get("removable", True) and f.get("type") in DROPDOWN_TYPES
            and f.get("custom_field_options") is not None
        }

    def webhooks(self) -> list[Webhook]:
        """The account's webhooks (admins only), for doctor: is one pointing at syncd?"""
        return [Webhook(str(w.get("id")), str(w.get("name")), str(w.get("endpoint")),
                        w.get("status") == "active")
                for w in self._dicts(self.client.webhooks)]

    def _find(self, look: Callable[[Directory], T | None]) -> T | None:
        """`look` in the directory, read again (at most once a minute) if it finds nothing."""
        found = look(self.directory())
        return found if found is not None else look(self.directory(MISS_REFRESH_S))

    def _records(self, tickets: list[dict[str, Any]]) -> list[Record]:
        directory = self.directory()
        if any(str(t.get("group_id")) not in directory.groups for t in tickets
               if t.get("group_id")):
            directory = self.directory(MISS_REFRESH_S)  # a group created since the last read
        fields = self._field_names(tickets)
        self._learn(self._emails, "users",
                    (t[key] for t in tickets for key in ("requester_id", "assignee_id")
                     if t.get(key)))
        self._learn(
            self._orgs,
            "organizations",
            (t["organization_id"] for t in tickets if t.get("organization_id")),
        )
        now = self.clock.now()
        return [
            Record(
                RecordRef(KIND, str(t["id"])),
                self._normalise(t, directory, fields),
                now,
                deleted=t.get("status") == "deleted",
            )
            for t in tickets
        ]

    def _field_names(self, tickets: list[dict[str, Any]]) -> Mapping[int, str]:
        """Field definitions, read only once a ticket carries custom fields (and again, at
        most once a minute, for a field created since)."""
        ids = {int(cf["id"]) for t in tickets for cf in t.get("custom_fields") or []}
        if not ids:
            return {}
        fields = self._fields.get()
        return fields if ids <= fields.keys() else self._fields.get(MISS_REFRESH_S)

    def _normalise(
        self, t: Mapping[str, Any], directory: Directory, fields: Mapping[int, str]
    ) -> dict[str, Any]:
        group = directory.groups.get(str(t.get("group_id")))
        return {
            "id": t["id"],
            "subject": t.get("subject"),
            "description": t.get("description"),
            "status": t.get("status"),
            "priority": t.get("priority"),
            "type": t.get("type"),
            "tags": list(t.get("tags") or []),
            "requester_id": t.get("requester_id"),
            "requester_email": self._emails.get(t.get("requester_id") or 0),
            "assignee_id": t.get("assignee_id"),
            "assignee_email": self._emails.get(t.get("assignee_id") or 0),
            "group_id": t.get("group_id"),
            "group_name": group.name if group else None,
            "organization_id": t.get("organization_id"),
            "organization_name": self._orgs.get(t.get("organization_id") or 0),
            "created_at": t.get("created_at"),
            "updated_at": t.get("updated_at"),
            "via_channel": (t.get("via") or {}).get("channel"),
            "custom": {
                fields[int(cf["id"])]: cf.get("value")
                for cf in t.get("custom_fields") or []
                if int(cf["id"]) in fields
            },
            "url": f"{self._agent_url}{t['id']}",
        }

    def _learn(self, known: dict[int, str | None], what: str, ids: Iterable[int]) -> None:
        """Emails of users, or names of organizations, the side-loads did not carry: 100 a
        call (`show_many`), each asked once."""
        api = self.client.users if what == "users" else self.client.organizations
        value = "email" if what == "users" else "name"
        missing = sorted({int(i) for i in ids} - set(known))
        for start in range(0, len(missing), BATCH_MAX):
            chunk = missing[start : start + BATCH_MAX]
            rows = self._dicts(lambda chunk=chunk: api(ids=chunk))
            known.update({int(r["id"]): r.get(value) for r in rows})
            known.update({i: None for i in chunk if i not in known})

    def _last_agent_action(self, ticket_id: int, requester_id: Any = None) -> str | None:
        """When an agent (not syncd itself) last commented publicly, changed the status or
        reassigned the ticket after creating it; None if never. An author of such an event who
        is neither in the directory nor the requester may be an agent added since it was read:
        it is read again (at most once a minute) before the event is ruled out."""
        audits = self._dicts(lambda: self.client.tickets.audits(ticket_id))
        acted = [
            audit
            for audit in audits[1:]  # the first audit is the ticket's creation
            if any(_is_agent_action(e) for e in audit.get("events") or [])
        ]
        authors = {str(a.get("author_id")) for a in acted}
        directory, me = self.directory(), self._me()
        if authors - set(directory.users) - {str(requester_id), me}:
            directory = self.directory(MISS_REFRESH_S)
        last: str | None = None
        for audit in acted:
            author = str(audit.get("author_id"))
            if author in directory.users and author != me:
                last = max(last or "", str(audit["created_at"]))
        return last

    def _me(self) -> str:
        """syncd's own API user's id (`users/me`, read once: it does not change)."""
        if self._my_id is None:
            self._my_id = str(self._call(lambda: self.client.users.me()).id)
        return self._my_id

    def _load_directory(self, thorough: bool = False) -> Directory:
        """Agents (with their away flag), groups and memberships, in one listing: the group
        memberships with their users and groups side-loaded (`include=users,groups`). Every
        agent and admin belongs to a group ("All team members must belong to at least one
        group", Zendesk help, "Managing groups"), so each comes with it; a group without
        members does not, so after a miss (somebody or some group the copy lacks) the reload
        is `thorough`: agents, groups and memberships listed apart, as before side-loading.
        What a host does not side-load (users, or users without their `user_fields`, the away
        flag; groups) is listed apart too."""
        if thorough:
            staff = self._dicts(lambda: self.client.users(role=["agent", "admin"]))
            groups = self._dicts(self.client.groups)
            memberships = self._dicts(self.client.group_memberships)
        else:
            memberships, loaded = self._listing(self.client.group_memberships,
                                                "group_memberships", ("users", "groups"))
            users, groups = loaded["users"], loaded["groups"]
            staff = [u for u in users or [] if u.get("role") in ("agent", "admin")]
            if users is None or any("user_fields" not in u for u in staff):
                staff = self._dicts(lambda: self.client.users(role=["agent", "admin"]))
            if groups is None:
                groups = self._dicts(self.client.groups)
        members: dict[str, set[str]] = {}
        for m in memberships:
            members.setdefault(str(m["group_id"]), set()).add(str(m["user_id"]))
        self._emails.update({int(u["id"]): u.get("email") for u in staff})
        return Directory(
            users={
                str(u["id"]): DirectoryUser(
                    id=str(u["id"]),
                    name=u.get("name") or "",
                    email=u.get("email"),
                    active=bool(u.get("active", True)) and not u.get("suspended"),
                    away=bool((u.get("user_fields") or {}).get(self.away_field)),
                    group_ids=frozenset(g for g, ids in members.items() if str(u["id"]) in ids),
                )
                for u in staff
            },
            groups={
                str(g["id"]): DirectoryGroup(
                    str(g["id"]), g["name"], frozenset(members.get(str(g["id"]), ()))
                )
                for g in groups
            },
        )

    def _listing(self, api: BaseApi, key: str, include: Sequence[str]
                 ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]] | None]]:
        """A listing's rows (all pages, 100 a page by cursor) and the records its pages
        side-load (`include`), each once; None for a name no page carried (a host that ignores
        the side-load). zenpy drops side-loads when its cache is off, so the pages are read as
        JSON through its session (metered, errors classified as for any zenpy call)."""
        rows: list[dict[str, Any]] = []
        loaded: dict[str, dict[Any, dict[str, Any]] | None] = dict.fromkeys(include)
        url: str | None = api._build_url(api.endpoint(include=list(include)))
        params: dict[str, Any] | None = {"page[size]": BATCH_MAX}
        while url:
            page = self._call(lambda url=url, params=params: api.session.get(
                url, params=params, timeout=self.timeout_s)).json()
            rows += page.get(key) or []
            for name in include:
                if name in page:
                    found = loaded[name] = loaded[name] or {}
                    found.update({r["id"]: r for r in page[name] or []})
            more = (page.get("meta") or {}).get("has_more")
            url, params = ((page.get("links") or {}).get("next") if more else None), None
        return rows, {name: None if found is None else list(found.values())
                      for name, found in loaded.items()}

    def _load_fields(self) -> dict[int, str]:
        """Custom ticket field id -> `custom.<key>` name."""
        defs = self._dicts(self.client.ticket_fields)
        return {int(f["id"]): _field_key(f) for f in defs if f.get("removable", True)}

    # -- writing ---------------------------------------------------------------------------
    def execute(self, op: Operation) -> Outcome:
        return dispatch(op, self._handlers, "zendesk")

    def verify(self, op: Operation) -> Outcome:
        return dispatch(op, self._verifiers, "zendesk verify")

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Consecutive writes to one ticket that can share an update (`_shares_update`: a rule's
        tag and assignment) go out as one ticket update, each op with its outcome. Then runs
        of plain updates (no `updated_stamp`, one per ticket) go through `update_many` jobs of
        up to 100, once a run has `BATCH_MIN`; anything else is executed alone. Order is kept:
        a run ends at the first op that cannot join it."""
        outcomes: list[Outcome] = []
        run: list[Operation] = []

        def flush() -> None:
            outcomes.extend(self._run_batch(run) if len(run) >= BATCH_MIN
                            else map(self.execute, run))
            run.clear()

        for group in _ticket_groups(ops):
            op = group[0]
            batchable = len(group) == 1 and op.verb == "update" and not op.payload.get(
                "updated_stamp")
            if not batchable or len(run) == BATCH_MAX or op.target in {o.target for o in run}:
                flush()
            if batchable:
                run.append(op)
            elif len(group) == 1:
                outcomes.append(self.execute(op))
            else:  # one update for the group: its errors become outcomes as `execute`'s do
                outcomes.extend([dispatch(op, {op.verb: lambda _, g=group: self._write(g)},
                                          "zendesk")] * len(group))
        flush()
        return outcomes

    def _run_batch(self, ops: Sequence[Operation]) -> list[Outcome]:
        """One `update_many` job for `ops` (distinct tickets); an Outcome per op, in order."""
        out: dict[int, Outcome] = {}
        pending: list[tuple[int, Operation, Ticket]] = []
        results: dict[str, dict[str, Any]] = {}
        job_id = ""
        with default_lane("escalation"):
            for index, op in enumerate(ops):
                try:
                    pending.append((index, op, self._ticket_changes(op)))
                except (KeyError, TypeError, ValueError) as exc:
                    out[index] = refused(f"zendesk update: bad payload ({exc})")
            try:
                if pending:
                    job = self._call(lambda: self.client.tickets.update([t for _, _, t in pending]))
                    job_id = str(job.id)
                    results = {str(r.get("id")): r for r in self._await_job(job_id)}
            except VendorError as exc:
                out.update({index: failed(exc) for index, _, _ in pending})
                pending = []
        for index, op, _ in pending:
            result = results.get(op.target)
            if result is None:
                out[index] = Outcome(ok=False, retryable=True, error="no result in job status")
            elif result.get("success"):
                out[index] = done(ticket_id=int(op.target), job_id=job_id)
            else:
                error = f"{result.get('error', 'failed')}: {result.get('details', '')}"
                out[index] = refused(error, ticket_id=int(op.target))
        return [out[i] for i in range(len(ops))]

    def _await_job(self, job_id: str) -> list[dict[str, Any]]:
        """Poll a job status on the clock until it completes; its per-item results."""
        waited = 0.0
        while True:
            job = self._call(lambda: self.client.job_status(id=job_id)).to_dict()
            if job.get("status") in ("completed", "failed"):
                return list(job.get("results") or [])
            if waited >= self.job_timeout_s:
                raise RetryableError("zendesk", None, "job_timeout", f"job {job_id} still running")
            self.clock.sleep(self.job_poll_s)
            waited += self.job_poll_s

    def _one_write(self, op: Operation) -> Outcome:
        return self._write([op])

    def _write(self, ops: Sequence[Operation]) -> Outcome:
        """`ops` (writes to one ticket: field updates, tag changes) as one ticket update, whose
        answer (the ticket as saved) comes back as the outcome's `record`.

        Tags go as the ticket's whole list (an update's `tags` replaces it: Zendesk's tags
        guide) computed from `current_tags`, the list as of `updated_stamp`, and sent with
        `safe_update` and that stamp: if anyone changed the ticket since (an agent's tag),
        Zendesk answers 409, and the ticket is read again and the list computed anew, so no
        tag is lost. Without a known list (or after a 409) the ticket is read first. A lone
        update with its own `updated_stamp` answers a 409 with `error="conflict"` (the
        executor re-reads the record and plans again) instead."""
        ticket_id = int(ops[0].target)
        tagging = [op for op in ops if op.verb in TAG_VERBS]
        first = (tagging or ops)[0].payload
        stamp = first.get("updated_stamp")
        base = first.get("current_tags") if stamp else None
        for _ in range(TAG_ATTEMPTS):
            if tagging and base is None:
                shown = self._show(ops[0])
                if shown is None:
                    return refused("ticket not found", ticket_id=ticket_id)
                stamp, base = shown.get("updated_at"), list(shown.get("tags") or [])
            ticket = Ticket(id=ticket_id)
            for op in ops:
                if op.verb == "update":
                    self._ticket_changes(op, ticket)
            if tagging:
                ticket.tags = _changed_tags(base or [], tagging)
            if stamp:
                ticket.safe_update = True
                ticket.updated_stamp = str(stamp)
            try:
                # a field update repeated after an unseen success conflicts with itself (409);
                # a tag change then reads the ticket again and finds its tags there
                audit = self._call(lambda ticket=ticket: self.client.tickets.update(ticket),
                                   idempotent=bool(tagging) or not stamp)
            except PermanentError as exc:
                if exc.status != 409:
                    raise
                if not tagging:
                    return Outcome(ok=False, retryable=False, error="conflict",
                                   detail=exc.detail())
                base = None  # changed meanwhile: read it again
                continue
            saved = self._saved(audit)
            detail: dict[str, Any] = {"ticket_id": ticket_id}
            if tagging and saved is not None:
                detail["tags"] = list(saved.fields.get("tags") or [])
            return Outcome(ok=True, detail=detail, record=saved)
        return Outcome(ok=False, retryable=True, error="ticket kept changing (409 each time)",
                       detail={"ticket_id": ticket_id})

    def _saved(self, audit: Any) -> Record | None:
        """The ticket a single-ticket write answers (`{"ticket": ..., "audit": ...}`: zenpy's
        TicketAudit), as a poll would record it."""
        ticket = getattr(audit, "ticket", None)
        if ticket is None:
            return None
        return self._records([ticket.to_dict()])[0]

    def _ticket_changes(self, op: Operation, ticket: Ticket | None = None) -> Ticket:
        """A zenpy Ticket carrying only the fields `op` sets (zenpy sends only those); with
        `ticket`, those fields are set on it (several updates in one request)."""
        payload = op.payload
        ticket = ticket if ticket is not None else Ticket(id=int(op.target))
        values = {name: payload[name] for name in UPDATE_FIELDS if name in payload}
        if payload.get("assignee_email"):
            email = str(payload["assignee_email"])
            user = self._find(lambda d: d.user_by_email(email))
            if user is None:
                raise ValueError(f"no agent with email {email!r}")
            values["assignee_id"] = int(user.id)
        if payload.get("group_name"):
            name = str(payload["group_name"])
            group = self._find(lambda d: d.group_by_name(name))
            if group is None:
                raise ValueError(f"no group named {name!r}")
            values["group_id"] = int(group.id)
        for name, value in values.items():
            setattr(ticket, name, value)
        if payload.get("custom_fields"):
            ticket.custom_fields = [*(ticket.custom_fields or []),
                                    *self._custom_values(payload["custom_fields"])]
        return ticket

    def _custom_values(self, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        named = [str(n) for n in values if not str(n).isdigit()]
        ids = {name: fid for fid, name in self._fields.get().items()}
        if set(named) - ids.keys():  # a field created since the definitions were read
            ids = {name: fid for fid, name in self._fields.get(MISS_REFRESH_S).items()}
        out = []
        for name, value in values.items():
            fid = int(name) if str(name).isdigit() else ids.get(str(name))
            if fid is None:
                raise ValueError(f"unknown ticket field {name!r}")
            out.append({"id": fid, "value": value})
        return out

    def _comment(self, op: Operation) -> Outcome:
        tokens = [self._upload(a) for a in op.payload.get("attachments") or []]
        ticket = Ticket(id=int(op.target))
        ticket.comment = Comment(
            body=str(op.payload["body"]),
            public=bool(op.payload.get("public", False)),
            uploads=tokens or None,
        )
        ticket.metadata = {METADATA_KEY: op.key}
        audit = self._call(lambda: self.client.tickets.update(ticket), idempotent=False)
        return Outcome(ok=True, detail={"ticket_id": int(op.target),
                                        "audit_id": getattr(audit.audit, "id", None)},
                       record=self._saved(audit))

    def _upload(self, attachment: Mapping[str, Any]) -> str:
        """An attachment's upload token. A `file` (the executor's spooled copy) is streamed, and
        read again from its start by a retry."""
        spool = attachment.get("file")

        def body() -> Any:
            return _Rewound(spool) if spool is not None else base64.b64decode(
                attachment["content_b64"])

        upload = self._call(
            lambda: self.client.attachments.upload(
                body(),
                # zenpy pastes `filename=<name>` into the query unencoded: `#`, `&`, `+` and
                # `%2e` would cut or rename the file. Encoded here, requests keeps it as is.
                target_name=quote(attachment["filename"], safe=""),
                content_type=attachment.get("content_type"),
            )
        )
        return str(upload.token)

    def _create_ticket(self, op: Operation) -> Outcome:
        payload = op.payload
        ticket = Ticket(
            subject=payload["subject"],
            comment=Comment(body=str(payload["body"]), public=bool(payload.get("public", True))),
            external_id=op.key,
        )
        for name in ("priority", "type", "group_id", "tags"):
            if payload.get(name) is not None:
                setattr(ticket, name, payload[name])
        if payload.get("requester_email"):
            ticket.requester = User(email=payload["requester_email"])
        if payload.get("custom_fields"):
            ticket.custom_fields = self._custom_values(payload["custom_fields"])
        with request_headers({"Idempotency-Key": op.key}):
            audit = self._call(lambda: self.client.tickets.create(ticket))
        return done(ticket_id=audit.ticket.id)

    # -- verifying -------------------------------------------------------------------------
    def _show(self, op: Operation) -> dict[str, Any] | None:
        try:
            return self._call(lambda: self.client.tickets(id=int(op.target))).to_dict()
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def _verify_tags(self, op: Operation) -> Outcome:
        ticket = self._show(op)
        if ticket is None:
            return absent("ticket not found")
        have = {t.lower() for t in ticket.get("tags") or []}
        wanted = {str(t).lower() for t in op.payload["tags"]}
        ok = wanted <= have if op.verb == "add_tags" else not (wanted & have)
        return done(ticket_id=ticket["id"]) if ok else absent("tags differ", tags=sorted(have))

    def _verify_update(self, op: Operation) -> Outcome:
        ticket = self._show(op)
        if ticket is None:
            return absent("ticket not found")
        wanted = self._ticket_changes(op).to_dict(serialize=True)
        custom = {int(c["id"]): c.get("value") for c in ticket.get("custom_fields") or []}
        differs = [
            name
            for name, value in wanted.items()
            if name not in ("id", "custom_fields") and ticket.get(name) != value
        ] + [
            f"custom_fields.{c['id']}"
            for c in wanted.get("custom_fields") or []
            if custom.get(int(c["id"])) != c["value"]
        ]
        return absent("fields differ", fields=differs) if differs else done(ticket_id=ticket["id"])

    def _verify_comment(self, op: Operation) -> Outcome:
        try:
            audits = self._dicts(lambda: self.client.tickets.audits(int(op.target)))
        except PermanentError as exc:
            if exc.status == 404:
                return absent("ticket not found")
            raise
        for audit in audits:
            custom = (audit.get("metadata") or {}).get("custom") or {}
            if custom.get(METADATA_KEY) == op.key:
                return done(ticket_id=int(op.target), audit_id=audit.get("id"))
        return absent("no audit carries this key")

    def _verify_create(self, op: Operation) -> Outcome:
        # `external_id` filters server-side; the comparison guards against a host that ignores it
        tickets = self._dicts(lambda: self.client.tickets(external_id=op.key))
        found = [t["id"] for t in tickets if t.get("external_id") == op.key]
        return done(ticket_id=found[0]) if found else absent("no ticket with this external_id")


def _shares_update(op: Operation) -> bool:
    """Whether `op` may share one ticket update with the writes to its ticket next to it: a tag
    change, or an update without a stamp of its own (whose 409 would mean "plan again")."""
    return op.verb in TAG_VERBS or (op.verb == "update" and not op.payload.get("updated_stamp"))


def _ticket_groups(ops: Sequence[Operation]) -> Iterator[list[Operation]]:
    """`ops` in order, consecutive ones that join (`_shares_update`) on one ticket grouped."""
    group: list[Operation] = []
    for op in ops:
        if group and not (_shares_update(op) and _shares_update(group[0])
                          and op.target == group[0].target):
            yield group
            group = []
        group.append(op)
    if group:
        yield group


def _changed_tags(tags: Sequence[str], changes: Iterable[Operation]) -> list[str]:
    """The tag list after `changes` (add_tags, remove_tags, in order); Zendesk's tags are
    case-insensitive."""
    found = [str(t) for t in tags]
    for op in changes:
        wanted = [str(t) for t in op.payload["tags"]]
        if op.verb == "add_tags":
            have = {t.lower() for t in found}
            found += [t for t in dict.fromkeys(wanted) if t.lower() not in have]
        else:
            drop = {t.lower() for t in wanted}
            found = [t for t in found if t.lower() not in drop]
    return found


def _is_agent_action(event: Mapping[str, Any]) -> bool:
    if event.get("type") == "Comment":
        return bool(event.get("public"))
    return event.get("type") == "Change" and event.get("field_name") in AGENT_ACTION_FIELDS


class _Rewound:
    """A file handed to zenpy, which closes what it uploads: rewound for each try, never closed
    here (the executor closes it), with its length so requests sends a Content-Length."""

    def __init__(self, spool: BinaryIO) -> None:
        self._spool = spool
        spool.seek(0, 2)
        self._size = spool.tell()
        spool.seek(0)

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        return self._spool.read(size)

    def tell(self) -> int:
        return self._spool.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._spool.seek(offset, whence)

    def close(self) -> None:
        """zenpy closes what it sent; the executor owns the file."""
