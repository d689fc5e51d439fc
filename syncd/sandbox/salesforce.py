"""Salesforce REST API emulator: OAuth token endpoint, API versions, limits, and the REST
resources (query, sObjects, composite collections) over an in-memory org.

Seeding the sandbox — the `salesforce` section of a fixture
-----------------------------------------------------------
Every key is optional; seeding adds to what is there (`POST /_sandbox/reset` empties the org)::

    salesforce:
      settings:
        token_lifetime_s: 7200        # access tokens expire this long after issue (sandbox clock)
        daily_api_limit: 15000        # rolling 24 h on the sandbox clock; then 403
                                      # REQUEST_LIMIT_EXCEEDED
        per_app_api_limit: 250        # the connected app's own allocation (default: none);
                                      # Sforce-Limit-Info then also says
                                      # "per-app-api-usage=N/250(appName=...)", and past it 403
        connected_app_name: syncd     # the appName that header names
        run_as_username: ann@acme.example   # client_credentials acts as this user
                                      # (default: the built-in integration user)
        jwt_public_key_pem: "-----BEGIN PUBLIC KEY-----..."  # RSA public key or certificate
                                      # that verifies JWT bearer assertions (RS256)
        org_kind: production          # or sandbox: a JWT's `aud` must be the org's login host,
                                      # https://login.salesforce.com (production) or
                                      # https://test.salesforce.com (sandbox), or the URL the
                                      # sandbox is reached at (its "My Domain"); else 400
                                      # invalid_grant "audience is invalid"
        custom_fields:                # per sObject (a later seed replaces that sObject's
                                      # list); a bare name is Text(255)
          # types: string textarea picklist email phone url boolean int double currency
          # percent date datetime reference; options: length, external_id, unique, required
          Opportunity: [Week_0_Date__c]
          Task:
            - {name: Syncd_Key__c, type: string, external_id: true, unique: true}
            - {name: Due__c, type: date}
            - {name: Partner__c, type: reference, reference_to: Account}  # Partner__r.Name
      users:          [{Username, Email, Name | FirstName+LastName, IsActive, ...}]
      groups:         [{Name, Type: Regular | Queue, ...}]
      group_members:  [{GroupId, UserOrGroupId}]
      accounts:       [{Name, ...}]
      contacts:       [{LastName | Name, AccountId, ...}]
      opportunities:  [{Name, StageName, CloseDate, AccountId, OwnerId, ...}]
      tasks:          [{Subject, Status, WhatId, OwnerId, ...}]
      events:         [{Subject, StartDateTime, DurationInMinutes | EndDateTime, ...}]
      records:        {Opportunity: [...], Task: [...]}   # the same, by sObject name

The objects carry the standard fields the real ones have (`salesforce_objects.json`: Account,
Contact, Opportunity and Event from describes recorded against a real org, the others from the
Object Reference), so describe, SOQL and writes accept and refuse what Salesforce does: e.g.
`LastAmountChangedHistory.Name` on Opportunity is INVALID_FIELD (OpportunityHistory has no
Name). Objects that are only reference targets (Campaign, Profile, UserRole, OpportunityHistory
...) are described and queryable but hold no records; a lookup to one takes any id of its type.

Records use API field names (any case) and are validated like API writes, with three
allowances for describing history: `Id` may be given (15 or 18 characters, the object's key
prefix: 001 Account, 003 Contact, 005 User, 00G Group, 011 GroupMember, 006 Opportunity,
00T Task, 00U Event), otherwise one is assigned; the audit fields `CreatedDate`,
`CreatedById`, `LastModifiedDate`, `LastModifiedById`, `SystemModstamp` (default: the sandbox
clock) and `IsDeleted: true` (a record in the recycle bin) may be set; a person's `Name` is
split into FirstName/LastName. A record may carry `"@key": "acme"`, and any lookup field of a
later or earlier record may then say `"@acme"` instead of an id. Lookups must point at records
that exist. Derived fields (Opportunity IsWon/IsClosed/Probability, Task IsClosed, Event
times, Name) are computed. The org always holds one active user, the integration user
(Username `integration@syncd-sandbox.example`), which owns records created without an owner.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from syncd.sandbox.core import Request, Response, SandboxContext, Vendor
from syncd.sandbox.salesforce_auth import LOGIN_HOSTS, AuthConfig, Sessions, load_public_key
from syncd.sandbox.salesforce_composite import composite
from syncd.sandbox.salesforce_rest import Call, Cursors, RestApi
from syncd.sandbox.salesforce_schema import Catalog, SfError, SObjectDef, id18, normalize_id
from syncd.sandbox.salesforce_store import Store, not_found

ORG_ID = id18("00DSb0000001Syn")
ORG_CREATED = datetime(2020, 1, 1, tzinfo=UTC)  # the org, and its integration user, predate data
INTEGRATION_USERNAME = "integration@syncd-sandbox.example"
OLDEST_VERSION, NEWEST_VERSION = 31, 62
# Salesforce's front end refuses a request line ("GET /services/...?q=... HTTP/1.1") longer
# than this with 414 before the API sees it: a query's field list goes in a composite body.
MAX_REQUEST_LINE = 16384
_VERSION_RE = re.compile(r"v(\d+)\.0")
_SEED_KEYS = {  # fixture key -> sObject, in the order records are created
    "users": "User", "groups": "Group", "group_members": "GroupMember",
    "accounts": "Account", "contacts": "Contact", "opportunities": "Opportunity",
    "tasks": "Task", "events": "Event",
}
_FAULT_ERRORS = {
    400: ("JSON_PARSER_ERROR", "Unexpected character at [line:1, column:1]"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."),
}


@dataclass
class Settings:
    token_lifetime_s: int = 7200
    daily_api_limit: int = 15000
    per_app_api_limit: int | None = None
    connected_app_name: str = "syncd"
    run_as_username: str | None = None
    jwt_public_key_pem: str | None = None
    org_kind: str = "production"
    custom_fields: dict[str, list[Any]] = field(default_factory=dict)

    def merge(self, data: Mapping[str, Any]) -> Settings:
        unknown = set(data) - set(asdict(self))
        if unknown:
            raise ValueError(f"salesforce.settings: unknown keys {sorted(unknown)}")
        merged = Settings(**{**asdict(self), **data})
        merged.custom_fields = {**self.custom_fields, **data.get("custom_fields", {})}
        if merged.per_app_api_limit is not None and merged.per_app_api_limit <= 0:
            raise ValueError("salesforce.settings: per_app_api_limit must be > 0")
        if merged.token_lifetime_s <= 0 or merged.daily_api_limit <= 0:
            raise ValueError("salesforce.settings: token_lifetime_s, daily_api_limit must be > 0")
        if merged.jwt_public_key_pem:
            load_public_key(merged.jwt_public_key_pem)
        if merged.org_kind not in LOGIN_HOSTS:
            raise ValueError(f"salesforce.settings: org_kind must be one of {list(LOGIN_HOSTS)}")
        return merged


def _version_label(version: int) -> str:
    """Release name of an API version: 60.0 is Spring '24, 61.0 Summer '24, 62.0 Winter '25."""
    index = version - 60
    season = ("Spring", "Summer", "Winter")[index % 3]
    return f"{season} '{24 + (index + 1) // 3}"


class SalesforceVendor(Vendor):
    name = "salesforce"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self.sessions = Sessions()
        self.cursors = Cursors()
        self._calls: deque[datetime] = deque()
        self.reset()

    # -- Vendor interface

    def matches(self, path: str) -> bool:
        return path == "/services" or path.startswith("/services/")

    def reset(self) -> None:
        self.settings = Settings()
        self.catalog = Catalog({})
        self.store = Store(self.catalog)
        self.sessions.clear()
        self.cursors.clear()
        self._calls.clear()
        user = self.store.new_id(self.catalog.objects["user"])
        self.store.create(self.catalog.objects["user"], {
            "Username": INTEGRATION_USERNAME, "Email": INTEGRATION_USERNAME,
            "FirstName": "Sandbox", "LastName": "Integration", "Alias": "integ",
        }, ORG_CREATED, user, record_id=user, seeding=True)
        self.integration_user_id = user

    def seed(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise ValueError("the salesforce section of a fixture is a mapping")
        unknown = set(data) - {"settings", "records", *_SEED_KEYS}
        if unknown:
            raise ValueError(f"salesforce: unknown keys {sorted(unknown)}")
        previous = (self.settings, self.catalog, self.store)
        try:
            self._apply_settings(self.settings.merge(data.get("settings") or {}))
            batches: dict[str, list[Mapping[str, Any]]] = {}
            for key, sobject in _SEED_KEYS.items():
                batches.setdefault(sobject, []).extend(_records_list(data.get(key), key))
            for name, rows in (data.get("records") or {}).items():
                obj = self.catalog.get(name)
                if obj is None:
                    raise ValueError(f"salesforce.records: unknown sObject {name!r}")
                batches.setdefault(obj.name, []).extend(_records_list(rows, f"records.{name}"))
            self._load(batches)
        except BaseException:  # a fixture loads completely or not at all
            self.settings, self.catalog, self.store = previous
            raise

    def snapshot(self) -> dict[str, Any]:
        return {"settings": asdict(self.settings), "store": self.store.snapshot(),
                "integration_user_id": self.integration_user_id}

    def restore(self, data: Mapping[str, Any]) -> None:
        self.settings = Settings().merge(data.get("settings") or {})
        self.catalog = Catalog(self.settings.custom_fields)
        self.store = Store(self.catalog)
        self.store.restore(data.get("store") or {})
        self.integration_user_id = data.get("integration_user_id", self.integration_user_id)
        self.sessions.clear()
        self.cursors.clear()

    def error_response(self, status: int, retry_after: int | None = None) -> Response:
        code, message = _FAULT_ERRORS.get(status, ("UNKNOWN_EXCEPTION", (
            "An unexpected error occurred. Please include this ErrorId if you contact support: "
            "1958394582-41235 (-1237568452)")))
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Response.json(status, [{"message": message, "errorCode": code}], headers)

    def handle(self, req: Request) -> Response:
        if len(f"{req.method} {req.raw_path} HTTP/1.1".encode()) > MAX_REQUEST_LINE:
            return Response.text(414, "URI Too Long")
        try:
            return self._dispatch(req)
        except SfError as exc:
            return Response.json(exc.status, exc.rest_body())

    # -- dispatch

    def _dispatch(self, req: Request) -> Response:
        parts = _segments(req)
        if [p.lower() for p in parts[:3]] == ["services", "oauth2", "token"] and len(parts) == 3:
            return self.sessions.token_endpoint(req, self._auth_config(req), self._user_named,
                                                self._run_as(), self.ctx.clock.now())
        if parts == ["services", "data"]:
            return Response.json(200, self._versions())
        match = _VERSION_RE.fullmatch(parts[2]) if len(parts) >= 3 and parts[1] == "data" else None
        if match is None or not OLDEST_VERSION <= int(match.group(1)) <= NEWEST_VERSION:
            raise not_found()
        call = self._authenticate(req, f"{match.group(1)}.0")
        usage = self._spend(call.now)
        try:
            api = RestApi(self.catalog, self.store, self.cursors)
            below = [p.lower() for p in parts[3:]]
            if below == ["limits"]:
                resp = self._limits(call)
            elif below == ["composite"]:
                resp = composite(call, api.route)
            else:
                resp = api.route(call, parts[3:])
        except SfError as exc:
            resp = Response.json(exc.status, exc.rest_body())
        resp.headers["Sforce-Limit-Info"] = usage
        return resp

    def _versions(self) -> list[dict[str, str]]:
        return [{"label": _version_label(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                for v in range(OLDEST_VERSION, NEWEST_VERSION + 1)]

    def _authenticate(self, req: Request, version: str) -> Call:
        header = req.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        now = self.ctx.clock.now()
        session = self.sessions.check(token.strip(), now) if scheme.lower() in (
            "bearer", "oauth") else None
        if session is None:
            raise SfError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return Call(req, version, session.user_id, now)

    def _spend(self, now: datetime) -> str:
        """Count one API request against the rolling 24-hour limits (the org's and, when set,
        the connected app's: every call here is syncd's app); the Sforce-Limit-Info value."""
        limit, app_limit = self.settings.daily_api_limit, self.settings.per_app_api_limit
        while self._calls and self._calls[0] <= now - timedelta(days=1):
            self._calls.popleft()
        if len(self._calls) >= min(limit, app_limit or limit):
            raise SfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self._calls.append(now)
        usage = f"api-usage={len(self._calls)}/{limit}"
        if app_limit is not None:
            app = self.settings.connected_app_name
            usage += f"; per-app-api-usage={len(self._calls)}/{app_limit}(appName={app})"
        return usage

    def _limits(self, call: Call) -> Response:
        if call.req.method not in ("GET", "HEAD"):
            raise SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{call.req.method}' not "
                          "allowed. Allowed are GET,HEAD")
        limit = self.settings.daily_api_limit
        return Response.json(200, {
            "DailyApiRequests": {"Max": limit, "Remaining": limit - len(self._calls)},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
            "FileStorageMB": {"Max": 20, "Remaining": 20},
        })

    # -- auth helpers

    def _auth_config(self, req: Request) -> AuthConfig:
        creds = self.ctx.credentials.get("salesforce", {})
        pem = self.settings.jwt_public_key_pem
        return AuthConfig(
            client_id=creds.get("client_id", ""), client_secret=creds.get("client_secret", ""),
            public_key=load_public_key(pem) if pem else None,
            lifetime_s=self.settings.token_lifetime_s,
            instance_url=creds.get("instance_url") or req.base_url, org_id=ORG_ID,
            org_kind=self.settings.org_kind)

    def _user_named(self, username: str) -> Mapping[str, Any] | None:
        users = self.store.find_by(self.catalog.objects["user"],
                                   self.catalog.objects["user"].fields["username"], username)
        return users[0] if users else None

    def _run_as(self) -> Mapping[str, Any] | None:
        if self.settings.run_as_username:
            return self._user_named(self.settings.run_as_username)
        found = self.store.lookup(self.integration_user_id)
        return found[1] if found else None

    # -- seeding

    def _apply_settings(self, settings: Settings) -> None:
        if settings.custom_fields != self.settings.custom_fields:
            catalog = Catalog(settings.custom_fields)
            store = Store(catalog)
            store.restore(self.store.snapshot())
            self.catalog, self.store = catalog, store
            self.cursors.clear()
        self.settings = settings

    def _load(self, batches: Mapping[str, list[Mapping[str, Any]]]) -> None:
        """Create fixture records in dependency order, resolving "@key" lookups; all or none."""
        now = self.ctx.clock.now()
        keys: dict[str, str] = {}
        planned: list[tuple[str, int, str, dict[str, Any]]] = []
        for sobject, rows in batches.items():
            obj = self.catalog.objects[sobject.lower()]
            for index, row in enumerate(rows):
                body = dict(row)
                key = body.pop("@key", None)
                given = body.pop("Id", None) or body.pop("id", None)
                record_id = normalize_id(given) if given else self.store.new_id(obj)
                if record_id is None or record_id[:3] != obj.key_prefix:
                    raise ValueError(f"{sobject}[{index}]: Id {given!r} is not a {sobject} id "
                                     f"(prefix {obj.key_prefix})")
                if record_id in self.store.tables[obj.name]:
                    raise ValueError(f"{sobject}[{index}]: Id {given!r} already exists")
                if key is not None:
                    if f"@{key}" in keys:
                        raise ValueError(f"{sobject}[{index}]: duplicate @key {key!r}")
                    keys[f"@{key}"] = record_id
                planned.append((sobject, index, record_id, body))
        with self.store.atomic():
            for sobject, index, record_id, body in planned:
                obj = self.catalog.objects[sobject.lower()]
                try:
                    self.store.create(obj, _resolve_keys(obj, index, body, keys), now,
                                      self.integration_user_id, record_id=record_id,
                                      seeding=True)
                except SfError as exc:
                    raise ValueError(f"{sobject}[{index}]: {exc.code}: {exc.message}") from None
            for sobject, index, record_id, _ in planned:
                obj = self.catalog.objects[sobject.lower()]
                rec = self.store.tables[obj.name][record_id]
                try:
                    self.store.check_references(obj, rec, list(rec))
                except SfError as exc:
                    raise ValueError(f"{sobject}[{index}]: {exc.code}: {exc.message} "
                                     f"{exc.fields or ''}") from None


def _segments(req: Request) -> list[str]:
    """Path segments, each percent-decoded on its own so an encoded "/" stays in its value."""
    raw = urlsplit(req.raw_path).path
    return [unquote(p) for p in raw.split("/") if p]


def _records_list(value: Any, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"salesforce.{where} must be a list of records")
    return value


def _resolve_keys(obj: SObjectDef, index: int, body: Mapping[str, Any],
                  keys: Mapping[str, str]) -> dict[str, Any]:
    """Lookup fields written "@key" take the id of the fixture record with that key."""
    out = {}
    for name, value in body.items():
        fdef = obj.field(name)
        if fdef and fdef.type == "reference" and isinstance(value, str) and value[:1] == "@":
            if value not in keys:
                raise ValueError(f"{obj.name}[{index}].{name}: no record has @key {value[1:]!r}")
            value = keys[value]
        out[name] = value
    return out
