"""Salesforce through simple-salesforce, after syncd's own OAuth call.

Auth. simple-salesforce's login URLs are fixed to `https://{domain}.salesforce.com`, so syncd
posts to the configured `token_url` itself: the JWT bearer flow (RS256 assertion signed with
PyJWT) when a username and private key are configured, else client credentials. The answer's
`access_token` and `instance_url` build `Salesforce(instance_url=, session_id=, session=,
version=)`. A direct session gets no refresh from simple-salesforce; here the metered session
turns a 401 `INVALID_SESSION_ID` into a `PermanentError` before simple-salesforce's
`SalesforceExpiredSession` would, and the connector re-authenticates once and repeats the call
(a 401 was never carried out, so repeating even a create is safe).

Polling. Each configured sObject asked for by its kind (`salesforce.opportunity`, `.account`,
`.task`; `salesforce.record` for any other) by SOQL over `queryAll` (deleted rows come back with
`IsDeleted` and become `Record(deleted=True)`), the first pages of up to five sObjects in one
`/composite` call (counted once against the daily limit; a poll of three objects costs one
call, not three):
`SELECT <all fields, plus each parent's name field> FROM X WHERE SystemModstamp >= since -
lookback ORDER BY SystemModstamp, Id`, paged by `nextRecordsUrl` (`page_size` via
Sforce-Query-Options). Parents come from describe: a reference with a `relationshipName` and
one target that has a name field (itself described, in one composite call), never a
polymorphic one (Task.What) nor a history row (Opportunity.LastAmountChangedHistory, whose
OpportunityHistory has no Name: asking for it is INVALID_FIELD); `parent_fields` adds such
paths when a rule reads them. A subrequest that fails fails that object's poll only: the
others' pages still come, then the poll raises (logged, counted, retried next cycle from the
failed object's unchanged cursor), and a refused field list is described afresh.
Stamps tie and transactions commit late, hence the look-back; the cursor remembers, per
object, the newest stamp and every (Id, SystemModstamp) seen within the look-back window, and
rows already seen are skipped. So a resumed poll repeats nothing and a row committed late with
an older stamp is still found. Field lists come from `describe` (cached). API usage is read
from `Sforce-Limit-Info` by the governor; the budget is a share of the daily limit
(`[salesforce] daily_api_requests` times `share`, spread over the day, an hour's worth saved up),
never more than the org says is left times `share` (`api-usage=N/M`), nor more than the
connected app's own allocation when the org sets one (`per-app-api-usage=N/M`, syncd's alone:
the budget is then paced to that allocation).

A field list whose GET request line would pass Salesforce's 16,384 bytes (orgs with many
custom fields) goes in a composite body instead of the URL (`fetch`).

Verbs (`Operation.target` is the sObject name, e.g. "Task"):
- `create` `{"fields": {...}}`: POST with `key_field = op.key` (the key field need not be an
  External ID); not repeated blindly; verify finds the row by SOQL on the key field.
- `upsert_by_key` `{"fields": {...}}`: upsert on `key_field` (an External ID) through
  `PATCH composite/sobjects/X/{key_field}`, so the key (which holds "/") stays out of URLs:
  idempotent, retried freely; verify as for create.
- `update` `{"Id": ..., "fields": {...}}`: PATCH; verify re-reads and compares the fields.
- `execute_many` sends the three verbs through composite collections, grouped by verb and
  sObject (200 a request, `allOrNone: false`), one Outcome per record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import jwt
from simple_salesforce import Salesforce, format_soql

from syncd.clock import Clock
from syncd.connectors.base import (
    Directory,
    DirectoryGroup,
    DirectoryUser,
    Page,
    TtlCache,
    absent,
    dispatch,
    done,
    failed,
    fetch_each,
    refused,
)
from syncd.connectors.http import (
    Governor,
    MeteredSession,
    PermanentError,
    RetryableError,
    RetryPolicy,
    VendorError,
    default_lane,
)
from syncd.connectors.tls import NO_PROXY, SYSTEM_TRUST, ca_bundle, proxies
from syncd.logs import get_logger
from syncd.model import Operation, Outcome, Record, RecordRef
from syncd.settings import ProxySection, SalesforceSection, TlsSection
from syncd.vendors.salesforce import SOBJECT_OF_KIND, kind_of_sobject

T = TypeVar("T")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
COLLECTION_MAX = 200
COMPOSITE_QUERIES = 5  # query subrequests Salesforce allows in one composite call
COMPOSITE_MAX = 25  # subrequests in one composite call
MAX_REQUEST_LINE = 16384  # bytes of "GET <path?query> HTTP/1.1" Salesforce accepts
COLLECTION_VERBS = ("create", "update", "upsert_by_key")
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"
REFUSED_SELECT = ("INVALID_FIELD", "INVALID_TYPE")  # the cached describe is out of date
log = get_logger("syncd.connectors.salesforce")


def audience(settings: SalesforceSection) -> str:
    """The JWT bearer `aud`: `jwt_audience`, else the login host of `token_url`
    (login.salesforce.com, test.salesforce.com for a sandbox org, or a My Domain)."""
    return settings.jwt_audience or login_host(settings.token_url)


def login_host(token_url: str) -> str:
    """The origin the token endpoint answers for: what Salesforce checks the JWT `aud` against."""
    parts = urlsplit(token_url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class _Schema:
    """Describe of each polled sObject, and the name field of each parent they point at."""

    objects: Mapping[str, Mapping[str, Any]]
    name_fields: Mapping[str, str | None]


def _parent_target(f: Mapping[str, Any]) -> str | None:
    """The one sObject a reference field leads to, if its parent is worth naming: not
    polymorphic, not a history row, reachable by a relationship name."""
    targets = f.get("referenceTo") or []
    if (f.get("type") != "reference" or not f.get("relationshipName") or len(targets) != 1
            or f.get("polymorphicForeignKey") or str(targets[0]).endswith("History")):
        return None
    return str(targets[0])


@dataclass
class _ObjectCursor:
    """Where one sObject's poll stands: the newest stamp, and (Id -> stamp) of every row seen
    within the look-back window before it."""

    since: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)

    def advance(self, row_id: str, stamp: str, lookback: timedelta) -> None:
        at = parse_stamp(stamp)
        self.seen[row_id] = stamp
        if self.since is None or at > self.since:
            self.since = at
            floor = at - lookback
            self.seen = {i: s for i, s in self.seen.items() if parse_stamp(s) >= floor}


def parse_stamp(text: str) -> datetime:
    """Salesforce's `2025-03-31T14:02:11.000+0000` as an aware datetime."""
    return datetime.strptime(text, STAMP_FORMAT).astimezone(UTC)


def _soql_datetime(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dump_cursor(cursors: Mapping[str, _ObjectCursor]) -> str:
    return json.dumps(
        {
            name: {"since": c.since.isoformat() if c.since else None, "seen": c.seen}
            for name, c in cursors.items()
        },
        sort_keys=True,
    )


def _load_cursor(text: str | None) -> dict[str, _ObjectCursor]:
    if not text:
        return {}
    data = json.loads(text)
    return {
        name: _ObjectCursor(
            datetime.fromisoformat(c["since"]) if c.get("since") else None, dict(c["seen"])
        )
        for name, c in data.items()
    }


def _plain(value: Any) -> Any:
    """A record without simple-salesforce's OrderedDicts and the `attributes` entries."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class SalesforceConnector:
    system = "salesforce"
    # Not settings: tests and tools may set them on an instance.
    key_field = "Syncd_Key__c"
    page_size = 2000  # query batch size, 200..2000
    directory_ttl_s = 900.0
    extra_fields: frozenset[str] = frozenset()

    def __init__(
        self,
        settings: SalesforceSection,
        clock: Clock,
        tls: TlsSection = SYSTEM_TRUST,
        proxy: ProxySection = NO_PROXY,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.governor = Governor.per_minute(
            "salesforce",
            clock,
            settings.daily_api_requests * settings.share / 1440.0,
            share=settings.share,
            burst_minutes=60.0,  # a daily quota: an hour's share may be spent at once
        )
        self.retry = RetryPolicy(self.governor)
        self.session = MeteredSession(
            self.governor, verify=ca_bundle(tls) or True, proxies=proxies(proxy)
        )
        self._sf: Salesforce | None = None
        self.kinds = frozenset(kind_of_sobject(name) for name in settings.objects)
        self._describe = TtlCache(self._load_describe, clock, self.directory_ttl_s)
        self._redescribed: set[str] = set()  # refused sObjects described afresh since
        self._directory = TtlCache(self._load_directory, clock, self.directory_ttl_s)
        self._handlers: dict[str, Callable[[Operation], Outcome]] = {
            "create": self._create,
            "upsert_by_key": self._upsert,
            "update": self._update,
        }
        self._verifiers: dict[str, Callable[[Operation], Outcome]] = {
            "create": self._verify_key,
            "upsert_by_key": self._verify_key,
            "update": self._verify_update,
        }

    # -- auth ------------------------------------------------------------------------------
    def _token_form(self) -> dict[str, str]:
        cfg = self.settings
        if cfg.username and cfg.private_key:
            now = self.clock.now()
            claims = {
                "iss": cfg.client_id,
                "sub": cfg.username,
                "aud": audience(cfg),
                "exp": int((now + timedelta(minutes=3)).timestamp()),
            }
            key = cfg.private_key.get_secret_value()
            return {
                "grant_type": JWT_GRANT,
                "assertion": jwt.encode(claims, key, algorithm="RS256"),
            }
        if not cfg.client_secret:
            raise ValueError("salesforce needs a client secret, or a username and private key")
        return {
            "grant_type": "client_credentials",
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret.get_secret_value(),
        }

    def _client(self) -> Salesforce:
        """The client, authenticating first when there is no session (callers retry)."""
        if self._sf is None:
            answer = self.session.post(self.settings.token_url, data=self._token_form()).json()
            self._sf = Salesforce(
                instance_url=answer.get("instance_url") or self.settings.instance_url,
                session_id=answer["access_token"],
                session=self.session,
                version=self.settings.api_version,
            )
        return self._sf

    def _call(self, fn: Callable[[Salesforce], T], *, idempotent: bool = True) -> T:
        """Run `fn` with the client under the retry policy; re-authenticate once on a 401."""
        return self.retry.call(
            lambda: fn(self._client()), idempotent=idempotent, reauth=self._forget_session
        )

    def _forget_session(self) -> None:
        self._sf = None

    # -- reading ---------------------------------------------------------------------------
    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]:
        lane = "backfill" if cursor is None else "poll"
        state = _load_cursor(cursor)
        lookback = timedelta(seconds=self.settings.lookback_s)
        headers = {"Sforce-Query-Options": f"batchSize={self.page_size}"}
        wanted = self.kinds if kinds is None else kinds
        objects = [name for name in self.settings.objects if kind_of_sobject(name) in wanted]
        failures: list[VendorError] = []
        for start in range(0, len(objects), COMPOSITE_QUERIES):
            chunk = objects[start : start + COMPOSITE_QUERIES]
            soql = {}
            for name in chunk:
                position = state.setdefault(name, _ObjectCursor())
                soql[name] = self._select(name)
                if position.since is not None:
                    since = _soql_datetime(position.since - lookback)
                    soql[name] += f" WHERE SystemModstamp >= {since}"
                soql[name] += " ORDER BY SystemModstamp, Id"
            with default_lane(lane):
                answers = self._call(lambda sf, q=soql: self._first_pages(sf, q, headers))
            for name in chunk:
                position, answer = state[name], answers[name]
                if isinstance(answer, VendorError):
                    failures.append(answer)
                    log.warning("salesforce_object_poll_failed", sobject=name, error=str(answer))
                    continue
                self._redescribed.discard(name)
                while True:
                    fresh = [
                        row
                        for row in answer["records"]
                        if position.seen.get(row["Id"]) != row["SystemModstamp"]
                    ]
                    for row in fresh:
                        position.advance(row["Id"], row["SystemModstamp"], lookback)
                    yield Page([self._record(name, row) for row in fresh], _dump_cursor(state))
                    if answer.get("done", True):
                        break
                    with default_lane(lane):
                        answer = self._call(
                            lambda sf, url=answer["nextRecordsUrl"]: sf.query_more(
                                url, identifier_is_url=True, headers=headers
                            )
                        )
        if failures:
            self._refresh_describe_after(failures)
            first = failures[0]
            polled = [n for n in objects if not any(e.message.startswith(f"query of {n}:")
                                                    for e in failures)]
            raise type(first)(
                "salesforce", first.status, first.code,
                f"{first.message} ({len(failures)} of {len(objects)} sObjects failed; "
                f"polled: {', '.join(polled) or 'none'})",
            )

    def _refresh_describe_after(self, failures: Sequence[VendorError]) -> None:
        """A query refused for its fields or type: read describe afresh next time, once per
        sObject until it polls again (a refusal that describe cannot cure, a wrong
        `parent_fields` path, must not cost a describe every poll)."""
        refused = {e.message.partition(":")[0].removeprefix("query of ")
                   for e in failures if e.code in REFUSED_SELECT}
        if refused - self._redescribed:
            self._redescribed |= refused
            self._describe = TtlCache(self._load_describe, self.clock,
                                      self.directory_ttl_s)

    def _first_pages(
        self, sf: Salesforce, soql: Mapping[str, str], headers: Mapping[str, str]
    ) -> dict[str, dict[str, Any] | VendorError]:
        """The first page of each query in ONE composite call, which Salesforce counts once
        against the daily limit: a poll costs one call, not one per watched sObject. A
        subrequest's failure is that query's answer, not the call's."""
        base = f"/services/data/v{self.settings.api_version}"
        request = [
            {
                "method": "GET",
                "url": f"{base}/queryAll/?{urlencode({'q': text})}",
                "referenceId": name,
                "httpHeaders": dict(headers),
            }
            for name, text in soql.items()
        ]
        answer = sf.restful(
            "composite",
            method="POST",
            data=json.dumps({"allOrNone": False, "compositeRequest": request}),
        )
        pages: dict[str, dict[str, Any] | VendorError] = {}
        for item in answer["compositeResponse"]:
            body, status = item.get("body"), int(item.get("httpStatusCode", 0))
            if status != 200:
                error = body[0] if isinstance(body, list) and body else {}
                kind = RetryableError if status >= 500 else PermanentError
                pages[str(item.get("referenceId"))] = kind(
                    "salesforce",
                    status,
                    str(error.get("errorCode", "COMPOSITE_SUBREQUEST")),
                    f"query of {item.get('referenceId')}: {error.get('message', body)}",
                )
            else:
                pages[str(item["referenceId"])] = body
        return pages

    def fetch(self, ref: RecordRef) -> Record | None:
        name = self._object_of(ref)
        soql = self._select(name) + format_soql(" WHERE Id = {}", ref.id)
        with default_lane("escalation"):
            rows = self._call(lambda sf: self._query_all(sf, name, soql)["records"])
        return self._record(name, rows[0]) if rows else None

    def _query_all(self, sf: Salesforce, name: str, soql: str) -> dict[str, Any]:
        """`queryAll` by GET, or in a composite body when the request line would be too long
        for Salesforce (414): a long field list of an org with many custom fields."""
        path = f"/services/data/v{self.settings.api_version}/queryAll/?{urlencode({'q': soql})}"
        if len(f"GET {path} HTTP/1.1") <= MAX_REQUEST_LINE:
            return dict(sf.query(soql, include_deleted=True))
        answer = self._first_pages(sf, {name: soql}, {})[name]
        if isinstance(answer, VendorError):
            raise answer
        return answer

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        return fetch_each(self.fetch, refs)

    def directory(self, max_age_s: float | None = None) -> Directory:
        return self._directory.get(max_age_s)

    def describe(self, sobject: str) -> dict[str, Any]:
        """Salesforce's describe of any sObject (not only the polled ones), read afresh."""
        return self._call(lambda sf: _plain(sf.restful(f"sobjects/{sobject}/describe")))

    def _record(self, sobject: str, row: Mapping[str, Any]) -> Record:
        fields = _plain(row)
        return Record(
            RecordRef(kind_of_sobject(sobject), str(row["Id"])),
            fields,
            self.clock.now(),
            deleted=bool(fields.get("IsDeleted")),
        )

    def _object_of(self, ref: RecordRef) -> str:
        named = SOBJECT_OF_KIND.get(ref.kind)
        if named:
            return named
        prefixes = {d["keyPrefix"]: name for name, d in self._describe.get().objects.items()}
        if ref.id[:3] not in prefixes:
            raise ValueError(f"no configured sObject has ids like {ref.id!r}")
        return prefixes[ref.id[:3]]

    def _select(self, sobject: str) -> str:
        """SELECT of every field of `sobject`, each named parent's name field (`Account.Name`)
        and the configured `parent_fields` of `sobject`."""
        schema = self._describe.get()
        fields = schema.objects[sobject]["fields"]
        names = [f["name"] for f in fields]
        for f in fields:
            target = _parent_target(f)
            name_field = schema.name_fields.get(target) if target else None
            if name_field:
                names.append(f"{f['relationshipName']}.{name_field}")
        for path in self.settings.parent_fields:
            owner, _, rest = path.partition(".")
            if owner == sobject and rest:
                names.append(rest)
        return f"SELECT {', '.join(dict.fromkeys(names))} FROM {sobject}"

    def _load_describe(self) -> _Schema:
        objects = {name: self.describe(name) for name in self.settings.objects}
        targets = sorted({t for d in objects.values() for f in d["fields"]
                          if (t := _parent_target(f))})
        return _Schema(objects, self._name_fields(targets))

    def _name_fields(self, sobjects: Sequence[str]) -> dict[str, str | None]:
        """Each sObject's name field (Account: Name, Case: CaseNumber; None when it has none
        or cannot be described), from describes sent 25 to a composite call."""
        base = f"/services/data/v{self.settings.api_version}"
        found: dict[str, str | None] = {}
        for start in range(0, len(sobjects), COMPOSITE_MAX):
            request = [
                {"method": "GET", "url": f"{base}/sobjects/{name}/describe", "referenceId": name}
                for name in sobjects[start : start + COMPOSITE_MAX]
            ]
            body = {"allOrNone": False, "compositeRequest": request}
            answer = self._call(lambda sf, b=body: sf.restful("composite", method="POST", json=b))
            for item in answer["compositeResponse"]:
                described = item.get("body")
                ok = int(item.get("httpStatusCode", 0)) == 200 and isinstance(described, Mapping)
                fields = described.get("fields", ()) if ok else ()
                found[str(item.get("referenceId"))] = next(
                    (str(f["name"]) for f in fields if f.get("nameField")), None
                )
        return found

    def _load_directory(self) -> Directory:
        def rows(soql: str) -> list[dict[str, Any]]:
            return self._call(lambda sf: [_plain(r) for r in sf.query_all(soql)["records"]])

        users = rows("SELECT Id, Name, Email, IsActive FROM User")
        groups = rows("SELECT Id, Name, Type FROM Group")
        members = rows("SELECT GroupId, UserOrGroupId FROM GroupMember")
        by_group: dict[str, set[str]] = {}
        for m in members:
            by_group.setdefault(m["GroupId"], set()).add(m["UserOrGroupId"])
        return Directory(
            users={
                u["Id"]: DirectoryUser(
                    id=u["Id"],
                    name=u.get("Name") or "",
                    email=u.get("Email"),
                    active=bool(u.get("IsActive")),
                    group_ids=frozenset(g for g, ids in by_group.items() if u["Id"] in ids),
                )
                for u in users
            },
            groups={
                g["Id"]: DirectoryGroup(g["Id"], g["Name"], frozenset(by_group.get(g["Id"], ())))
                for g in groups
            },
        )

    # -- writing ---------------------------------------------------------------------------
    def execute(self, op: Operation) -> Outcome:
        return dispatch(op, self._handlers, "salesforce")

    def verify(self, op: Operation) -> Outcome:
        return dispatch(op, self._verifiers, "salesforce verify")

    def _keyed(self, op: Operation) -> dict[str, Any]:
        return {**op.payload["fields"], self.key_field: op.key}

    def _create(self, op: Operation) -> Outcome:
        data = self._keyed(op)
        answer = self._call(lambda sf: getattr(sf, op.target).create(data), idempotent=False)
        return done(id=answer["id"])

    def _upsert(self, op: Operation) -> Outcome:
        return self._collection("upsert_by_key", op.target, [op], [0])[0]

    def _update(self, op: Operation) -> Outcome:
        data = dict(op.payload["fields"])
        self._call(lambda sf: getattr(sf, op.target).update(op.payload["Id"], data))
        return done(id=op.payload["Id"])

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]:
        """Creates and updates through composite collections, grouped by (verb, sObject)."""
        outcomes: dict[int, Outcome] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        for index, op in enumerate(ops):
            if op.verb in COLLECTION_VERBS:
                groups.setdefault((op.verb, op.target), []).append(index)
            else:
                outcomes[index] = self.execute(op)
        for (verb, sobject), indexes in groups.items():
            for start in range(0, len(indexes), COLLECTION_MAX):
                chunk = indexes[start : start + COLLECTION_MAX]
                outcomes.update(self._collection(verb, sobject, [ops[i] for i in chunk], chunk))
        return [outcomes[i] for i in range(len(ops))]

    def _collection(
        self, verb: str, sobject: str, ops: list[Operation], indexes: list[int]
    ) -> dict[int, Outcome]:
        """One composite collections request (`allOrNone: false`): POST creates, PATCH
        updates, PATCH .../{key_field} upserts by key (the key in the body, never in a URL)."""
        kind = {"type": sobject}
        try:
            if verb == "update":
                records = [
                    {"attributes": kind, "id": op.payload["Id"], **op.payload["fields"]}
                    for op in ops
                ]
            else:
                records = [{"attributes": kind, **self._keyed(op)} for op in ops]
        except (KeyError, TypeError) as exc:
            return {i: refused(f"salesforce {verb}: bad payload ({exc})") for i in indexes}
        path, method = {
            "create": ("composite/sobjects", "POST"),
            "update": ("composite/sobjects", "PATCH"),
            "upsert_by_key": (f"composite/sobjects/{sobject}/{self.key_field}", "PATCH"),
        }[verb]
        body = {"allOrNone": False, "records": records}
        try:
            with default_lane("escalation"):
                results = self._call(
                    lambda sf: sf.restful(path, method=method, json=body),
                    idempotent=verb != "create",
                )
        except VendorError as exc:
            return {i: failed(exc) for i in indexes}
        out: dict[int, Outcome] = {}
        for index, result in zip(indexes, results, strict=True):
            if result.get("success"):
                out[index] = done(id=result.get("id"), created=result.get("created"))
            else:
                errors = result.get("errors") or [{}]
                message = f"{errors[0].get('statusCode', '')}: {errors[0].get('message', '')}"
                out[index] = refused(message)
        return out

    # -- verifying -------------------------------------------------------------------------
    def _verify_key(self, op: Operation) -> Outcome:
        soql = format_soql(
            f"SELECT Id FROM {op.target} WHERE {self.key_field} = {{}}", op.key
        )
        rows = self._call(lambda sf: sf.query(soql)["records"])
        return done(id=rows[0]["Id"]) if rows else absent("no record carries this key")

    def _verify_update(self, op: Operation) -> Outcome:
        wanted = dict(op.payload["fields"])
        soql = format_soql(
            f"SELECT Id, {', '.join(wanted)} FROM {op.target} WHERE Id = {{}}", op.payload["Id"]
        )
        rows = self._call(lambda sf: sf.query(soql)["records"])
        if not rows:
            return absent("record not found")
        differs = [name for name, value in wanted.items() if rows[0].get(name) != value]
        return absent("fields differ", fields=differs) if differs else done(id=rows[0]["Id"])
