"""SharePoint and mail through Microsoft Graph: msal for the token, httpx for the calls.

Token. `msal.ConfidentialClientApplication` (client credentials) against the configured
authority; `instance_discovery=False` when its host is not a Microsoft login host (a national
cloud mirror, the sandbox), and a `PinnedSession` as msal's `http_client` so its TLS trust is
syncd's. msal caches the token and judges its expiry on real time; syncd also notes, on its
injected clock, when the token it got expires (`expires_in`, less a minute), and drops it from
msal's cache then: on an accelerated or simulated clock the token has expired long before
msal would notice, and Graph would answer a 401 first. A 401 from Graph (a token revoked or
expired early) drops the cached one and the call is made once more with a new token.

Calls. One httpx client with `verify` from the configured CA bundle, the configured proxy and
`trust_env=False` (the configuration wins over HTTPS_PROXY / SSL_CERT_FILE). Every request goes
through `http.httpx_send`: the Graph budget governor, then classified errors.

Polling. Delta on the drive root (SharePoint offers delta on the root only), keeping files
below the watched folders (all files when none is configured), and per configured SharePoint
list (`items/delta?expand=fields`); each only when asked for its kind (`sharepoint.file`,
`sharepoint.item`), so a daemon whose rules read no SharePoint polls nothing here. The cursor
is JSON holding, per scope, the link to continue from: a nextLink while an enumeration is
under way (so a crash resumes mid-way), the deltaLink once it is complete; a scope not polled
keeps its link. A 410 Gone (`resyncRequired`) restarts a full enumeration from its
`Location`, or, when Graph sends none, from a fresh delta as on a first sync (logged
`graph_delta_restarted`); every item comes again, which the store absorbs. Items with a
`deleted` facet become `Record(deleted=True)` (whatever their folder: a tombstone carries no
path; the store ignores ids it never saw).

Folder paths. Delta answers carry no `parentReference.path`, only the parent's id: syncd keeps
each folder's name and parent id as delta shows them (a folder not seen yet is read once), so
a path is always derived from what delta said last. A renamed or moved folder comes in delta
alone, without its descendants: its files are then listed and come again with their new
path. A GET answer's `parentReference.path` is percent-encoded by Graph
(`/drive/root:/Clients/Acme%20Corp`) and is decoded before any comparison with
`watched_folders` or a `folder:` condition. A rename made while syncd was stopped reaches the
files below it when they next change.

Verbs (`Operation.target` is a path in the drive, or a mailbox for `send_mail`):
- `ensure_folder` `{"subfolders"?: [...]}`: each path segment (and each subfolder) is created
  with `conflictBehavior: fail`; 409 `nameAlreadyExists` means it is there. Verify: a GET of
  each folder.
- `upload` `{"content_b64", "conflict"?: "replace"}`: a simple PUT up to 4 MiB, else an upload
  session in fragments of a multiple of 327,680 bytes (no Authorization on the upload URL).
  With `replace` it is idempotent. Verify: the file exists with the same size.
- `copy_file` `{"destination": folder path, "name"?}`: download then upload (works across
  drives and needs no async copy monitor); verify as for upload.
- `send_mail` `{"to": [...], "cc"?: [...], "subject", "body", "content_type"?: "Text"}`:
  sendMail with `internetMessageHeaders: x-syncd-key` (for recipients' systems) and a
  single-value extended property carrying the key: Graph keeps no internet headers on the
  Sent Items copy, but it can filter Sent Items by an extended property, so verify searches
  Sent Items for it. Exchange files the copy a moment after the 202: verify right after a send
  may still say absent, which is why the executor verifies only after a crash or an unknown
  answer, not immediately.

`download(path)` reads a file's bytes (for the executor's `file_transcript`).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, unquote, urlsplit

import httpx
import msal
import requests
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from syncd.clock import Clock
from syncd.connectors.base import (
    Directory,
    DirectoryUser,
    Page,
    TtlCache,
    absent,
    dispatch,
    done,
    fetch_each,
)
from syncd.connectors.http import (
    Governor,
    PermanentError,
    RetryableError,
    RetryPolicy,
    default_lane,
    error_from_transport,
    httpx_send,
    redact,
)
from syncd.connectors.tls import (
    NO_PROXY,
    SYSTEM_TRUST,
    PinnedSession,
    ca_bundle,
    httpx_verify,
    proxies,
)
from syncd.logs import get_logger
from syncd.model import Operation, Outcome, Record, RecordRef
from syncd.pathnames import encoded
from syncd.settings import GraphSection, ProxySection, TlsSection
from syncd.vendors.graph import FILE, ITEM

T = TypeVar("T")
FRAGMENT = 327_680  # upload-session fragments are multiples of 320 KiB
SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024
# A named property in the PS_PUBLIC_STRINGS set: filterable on Sent Items, unlike headers.
KEY_PROPERTY = "String {00020329-0000-0000-C000-000000000046} Name SyncdKey"
KEY_HEADER = "x-syncd-key"
GONE = frozenset({410})
TOKEN_MARGIN = timedelta(minutes=1)  # a token this close to its expiry is not used
FILE_KIND, ITEM_KIND = FILE.name, ITEM.name
log = get_logger("syncd.connectors.graph")


@dataclass(frozen=True)
class Folder:
    """A drive folder as delta last showed it: its name and its parent's id (None: the root)."""

    name: str
    parent_id: str | None


def _authority(settings: GraphSection) -> str:
    base = settings.authority.rstrip("/")
    return base if base.endswith("/" + settings.tenant_id) else f"{base}/{settings.tenant_id}"


def _path(path: str) -> str:
    """Each segment percent-encoded on its own; an unsafe one is refused (pathnames.py)."""
    try:
        return encoded(path)
    except ValueError as exc:
        raise PermanentError("graph", None, "invalidName", str(exc)) from None


class GraphConnector:
    system = "graph"
    # Not settings: tests and tools may set them on an instance.
    requests_per_minute = 600.0  # syncd's share of the app's Graph throttling budget
    page_size = 200
    fragment_size = 10 * FRAGMENT
    directory_ttl_s = 900.0
    timeout_s = 60.0
    extra_fields: frozenset[str] = frozenset()

    def __init__(
        self,
        settings: GraphSection,
        clock: Clock,
        tls: TlsSection = SYSTEM_TRUST,
        proxy: ProxySection = NO_PROXY,
    ) -> None:
        if settings.client_secret is None:
            raise ValueError("graph is not configured (section [graph] and its client secret)")
        self.settings = settings
        self.clock = clock
        self.governor = Governor.per_minute("graph", clock, self.requests_per_minute)
        self.retry = RetryPolicy(self.governor)
        self._app: msal.ConfidentialClientApplication | None = None
        self._token_until: datetime | None = None  # on the clock: when the token expires
        self.kinds = frozenset({FILE_KIND} | ({ITEM_KIND} if settings.lists else set()))
        self._ca_bundle, self._proxies = ca_bundle(tls), proxies(proxy)  # msal's, made later
        self.http = httpx.Client(
            verify=httpx_verify(self._ca_bundle),
            proxy=proxy.https,
            trust_env=False,
            timeout=self.timeout_s,
        )
        self._drive = f"{settings.base_url}/drives/{settings.drive_id}"
        self._directory = TtlCache(self._load_directory, clock, self.directory_ttl_s)
        self._folders: dict[str, Folder] = {}  # id -> as delta (or a GET) last showed it
        self._handlers: dict[str, Callable[[Operation], Outcome]] = {
            "ensure_folder": self._ensure_folder,
            "upload": self._upload,
            "copy_file": self._copy_file,
            "send_mail": self._send_mail,
        }
        self._verifiers: dict[str, Callable[[Operation], Outcome]] = {
            "ensure_folder": self._verify_folders,
            "upload": self._verify_file,
            "copy_file": self._verify_file,
            "send_mail": self._verify_mail,
        }

    def close(self) -> None:
        self.http.close()

    # -- transport -------------------------------------------------------------------------
    def _msal(self) -> msal.ConfidentialClientApplication:
        """The msal app, made on first use: it reads the authority's OpenID configuration."""
        if self._app is None:
            settings = self.settings
            assert settings.client_secret is not None  # checked when made
            authority = _authority(settings)
            session = PinnedSession(verify=self._ca_bundle or True, proxies=self._proxies)
            self._app = msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=settings.client_secret.get_secret_value(),
                authority=authority,
                instance_discovery=urlsplit(authority).hostname in WELL_KNOWN_AUTHORITY_HOSTS,
                http_client=session,
            )
        return self._app

    def _drop_token(self) -> None:
        if self._app is not None:
            self._app.remove_tokens_for_client()
        self._token_until = None

    def _token(self) -> str:
        now = self.clock.now()
        if self._token_until is not None and now >= self._token_until:
            self._drop_token()  # expired on the clock, though maybe not yet for msal
        try:
            result = self._msal().acquire_token_for_client(scopes=[self.settings.scope])
        except requests.RequestException as exc:
            raise error_from_transport("graph", "POST", exc) from None
        except ValueError as exc:  # msal: the authority's OpenID configuration is unusable
            raise PermanentError("graph", None, "authority", redact(str(exc))) from None
        if "access_token" in result:
            if result.get("token_source") == "identity_provider":  # a new one, not the cache's
                lifetime = timedelta(seconds=int(result.get("expires_in") or 0))
                self._token_until = now + lifetime - TOKEN_MARGIN
            return str(result["access_token"])
        error = str(result.get("error", "token_error"))
        message = str(result.get("error_description", "")).splitlines()[0][:200]
        cls = (
            RetryableError
            if error in ("temporarily_unavailable", "server_error")
            else (PermanentError)
        )
        raise cls("graph", None, error, message)

    def _request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool = True,
        authorize: bool = True,
        passthrough: frozenset[int] = frozenset(),
        sink: BinaryIO | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One Graph call under the retry policy, with a fresh token after a 401 (`sink`: the
        body streamed into it, httpx_send)."""
        extra_headers = dict(kwargs.pop("headers", None) or {})

        def once() -> httpx.Response:
            headers = dict(extra_headers)
            if authorize:
                headers["Authorization"] = f"Bearer {self._token()}"
            request = self.http.build_request(method, url, headers=headers, **kwargs)
            return httpx_send(self.governor, self.http, request, passthrough=passthrough,
                              sink=sink)

        return self.retry.call(once, idempotent=idempotent, reauth=self._drop_token)

    def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        return dict(self._request("GET", url, **kwargs).json())

    def _exists(self, url: str) -> dict[str, Any] | None:
        try:
            return self._get_json(url)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    # -- reading ---------------------------------------------------------------------------
    def _scopes(self, kinds: Collection[str]) -> dict[str, str]:
        """Delta scope name -> the URL that starts its first enumeration, for `kinds`."""
        top = f"?$top={self.page_size}"
        scopes = {"drive": f"{self._drive}/root/delta{top}"} if FILE_KIND in kinds else {}
        for name in self.settings.lists if ITEM_KIND in kinds else ():
            scopes[f"list:{name}"] = (
                f"{self.settings.base_url}/sites/{self.settings.site_id}/lists/{quote(name)}"
                f"/items/delta{top}&expand=fields"
            )
        return scopes

    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]:
        state: dict[str, str] = json.loads(cursor) if cursor else {}
        for scope, start in self._scopes(self.kinds if kinds is None else kinds).items():
            url = state.get(scope, start)
            lane = "poll" if scope in state else "backfill"
            while True:
                with default_lane(lane):
                    resp = self._request("GET", url, passthrough=GONE)
                    if resp.status_code == 410:
                        url = self._resync(scope, resp, start)
                        lane = "backfill"
                        continue
                    body = resp.json()
                    records = self._page_records(scope, body.get("value", []))
                next_link = body.get("@odata.nextLink")
                state[scope] = next_link or body["@odata.deltaLink"]
                yield Page(records, json.dumps(state, sort_keys=True))
                if not next_link:
                    break
                url = next_link

    def _resync(self, scope: str, resp: httpx.Response, start: str) -> str:
        """Where to go on after a 410 Gone: Graph's `Location` (a full enumeration) if it gave
        one, else a fresh delta from the start, as on a first sync. Either way every item comes
        again (the store absorbs those it has) and the new deltaLink replaces the stored one."""
        location = resp.headers.get("Location")
        restart = "from Location" if location else "fresh delta: no Location header"
        log.warning("graph_delta_restarted", scope=scope, status=410, restart=restart)
        return location or start

    def _page_records(self, scope: str, items: Sequence[Mapping[str, Any]]) -> list[Record]:
        """A delta page's records. Folder items are taken in first (delta shows a folder, not
        its files, when it is renamed or moved): the files below a folder whose name or parent
        changed are read again, so that they carry their new path."""
        if scope != "drive":
            return [r for r in (self._record(scope, i) for i in items) if r is not None]
        moved = [str(i["id"]) for i in items if "folder" in i and self._track_folder(i)]
        for item in items:
            if "deleted" in item:
                self._folders.pop(str(item["id"]), None)
        records = [r for r in (self._record(scope, i) for i in items) if r is not None]
        seen = {r.ref.id for r in records}
        for folder_id in moved:
            for item in self._descendant_files(folder_id):
                record = self._record(scope, item)
                if record is not None and record.ref.id not in seen:
                    seen.add(record.ref.id)
                    records.append(record)
        return records

    def _track_folder(self, item: Mapping[str, Any]) -> bool:
        """Remember a folder's name and parent; True if it was known with another (renamed or
        moved: its descendants' paths changed)."""
        parent = (item.get("parentReference") or {}).get("id")
        now = Folder("" if "root" in item else str(item.get("name", "")),
                     None if "root" in item or parent is None else str(parent))
        before = self._folders.get(str(item["id"]))
        self._folders[str(item["id"])] = now
        return before is not None and before != now

    def _descendant_files(self, folder_id: str) -> Iterator[Mapping[str, Any]]:
        """Every file below a folder, by listing its children (delta on a folder other than the
        root is not offered by SharePoint), the folders met tracked on the way."""
        pending = [folder_id]
        while pending:
            url: str | None = f"{self._drive}/items/{quote(pending.pop())}/children"
            while url:
                page = self._get_json(url)
                for item in page.get("value", []):
                    if "folder" in item:
                        self._track_folder(item)
                        pending.append(str(item["id"]))
                    elif "file" in item:
                        yield item
                url = page.get("@odata.nextLink")

    def fetch(self, ref: RecordRef) -> Record | None:
        with default_lane("escalation"):
            if ref.kind == FILE_KIND:
                item = self._exists(f"{self._drive}/items/{quote(ref.id)}")
                return self._record("drive", item) if item else None
            list_name, _, item_id = ref.id.rpartition("/")
            item = self._exists(
                f"{self.settings.base_url}/sites/{self.settings.site_id}/lists/{quote(list_name)}"
                f"/items/{quote(item_id)}?expand=fields"
            )
            return self._record(f"list:{list_name}", item) if item else None

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        return fetch_each(self.fetch, refs)

    def directory(self, max_age_s: float | None = None) -> Directory:
        return self._directory.get(max_age_s)

    def download_to(self, path: str, sink: BinaryIO) -> None:
        """A file's bytes streamed into `sink`: Graph answers 302 to a pre-authenticated URL,
        fetched without our token."""
        with default_lane("escalation"):
            url = f"{self._drive}/root:/{_path(path)}:/content"
            location = self._request("GET", url, sink=sink).headers.get("Location")
            if location is not None:
                self._request("GET", location, authorize=False, sink=sink)

    def download(self, path: str) -> bytes:
        """A (small) file's bytes, in memory."""
        sink = io.BytesIO()
        self.download_to(path, sink)
        return sink.getvalue()

    def _record(self, scope: str, item: Mapping[str, Any]) -> Record | None:
        now = self.clock.now()
        if scope.startswith("list:"):
            name = scope[len("list:") :]
            fields = {
                "id": item["id"],
                "list": name,
                "fields": dict(item.get("fields") or {}),
                "created_at": item.get("createdDateTime"),
                "modified_at": item.get("lastModifiedDateTime"),
            }
            ref = RecordRef(ITEM_KIND, f"{name}/{item['id']}")
            return Record(ref, fields, now, deleted="deleted" in item)
        ref = RecordRef(FILE_KIND, str(item["id"]))
        if "deleted" in item:
            return Record(ref, {"id": item["id"], "name": item.get("name")}, now, deleted=True)
        if "file" not in item:
            return None  # folders are not records
        folder = self._folder_of(item)
        watched = self.settings.watched_folders
        if watched and not any(folder == w or folder.startswith(w + "/") for w in watched):
            return None
        return Record(
            ref,
            {
                "id": item["id"],
                "name": item["name"],
                "path": f"{folder}/{item['name']}" if folder else item["name"],
                "folder": folder,
                "size": item.get("size"),
                "mime_type": (item.get("file") or {}).get("mimeType"),
                "created_at": item.get("createdDateTime"),
                "modified_at": item.get("lastModifiedDateTime"),
                "web_url": item.get("webUrl"),
            },
            now,
        )

    def _folder_of(self, item: Mapping[str, Any]) -> str:
        """The path below the drive root of the folder holding `item` ("" for the root). A GET
        answer carries it as `parentReference.path`, an API path that Graph percent-encodes
        (`/drive/root:/Clients/Acme%20Corp`); a delta answer carries only the parent's id,
        resolved through the folders delta showed."""
        parent = item.get("parentReference") or {}
        if parent.get("path") is not None:
            return unquote(str(parent["path"]).partition("root:")[2]).strip("/")
        if not parent.get("id"):
            return ""  # no parent named (Graph's documented delta examples): the drive root
        return self._folder_path(str(parent["id"]))

    def _folder_path(self, folder_id: str) -> str:
        """A folder's path from the tracked folders, each unknown one read once (a GET)."""
        names: list[str] = []
        current: str | None = folder_id
        seen: set[str] = set()
        while current is not None and current not in seen:  # a cycle would be Graph's bug
            seen.add(current)
            folder = self._folders.get(current)
            if folder is None:
                item = self._get_json(f"{self._drive}/items/{quote(current)}")
                self._track_folder(item)
                folder = self._folders[current]
            if folder.parent_id is None:
                break
            names.append(folder.name)
            current = folder.parent_id
        return "/".join(reversed(names))

    def _load_directory(self) -> Directory:
        base = self.settings.base_url
        url: str | None = f"{base}/users?$select=id,displayName,mail,accountEnabled"
        users: list[dict[str, Any]] = []
        while url:
            page = self._get_json(url)
            users.extend(page.get("value", []))
            url = page.get("@odata.nextLink")
        return Directory(
            users={
                u["id"]: DirectoryUser(
                    id=u["id"],
                    name=u.get("displayName") or "",
                    email=u.get("mail"),
                    active=u.get("accountEnabled", True) is not False,
                )
                for u in users
            }
        )

    # -- writing ---------------------------------------------------------------------------
    def execute(self, op: Operation) -> Outcome:
        return dispatch(op, self._handlers, "graph")

    def verify(self, op: Operation) -> Outcome:
        return dispatch(op, self._verifiers, "graph verify")

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]:
        return [self.execute(op) for op in ops]

    def _folders_of(self, op: Operation) -> list[str]:
        """The folders `ensure_folder` makes: each prefix of the path, then the subfolders."""
        parts = [p for p in op.target.strip("/").split("/") if p]
        paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return paths + [f"{paths[-1]}/{s.strip('/')}" for s in op.payload.get("subfolders") or []]

    def _ensure_folder(self, op: Operation) -> Outcome:
        for path in self._folders_of(op):
            parent, _, name = path.rpartition("/")
            url = (
                f"{self._drive}/root:/{_path(parent)}:/children"
                if parent
                else (f"{self._drive}/root/children")
            )
            body = {"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
            try:
                self._request("POST", url, json=body)
            except PermanentError as exc:
                if exc.status != 409 or exc.code != "nameAlreadyExists":
                    raise
        return done(path=op.target.strip("/"))

    def _upload(self, op: Operation) -> Outcome:
        content = base64.b64decode(op.payload["content_b64"])
        item = self._put_file(op.target, content, op.payload.get("conflict", "replace"))
        return done(id=item.get("id"), size=item.get("size"))

    def _put_file(self, path: str, content: bytes, conflict: str) -> dict[str, Any]:
        address = f"{self._drive}/root:/{_path(path)}:"
        idempotent = conflict == "replace"
        if len(content) <= SIMPLE_UPLOAD_MAX:
            return self._request(
                "PUT",
                f"{address}/content",
                params={"@microsoft.graph.conflictBehavior": conflict},
                content=content,
                idempotent=idempotent,
            ).json()
        session = self._request(
            "POST",
            f"{address}/createUploadSession",
            json={"item": {"@microsoft.graph.conflictBehavior": conflict}},
        ).json()
        upload_url = session["uploadUrl"]
        step = max(FRAGMENT, self.fragment_size // FRAGMENT * FRAGMENT)
        answer: dict[str, Any] = {}
        for start in range(0, len(content), step):
            chunk = content[start : start + step]
            end = start + len(chunk) - 1
            answer = self._request(
                "PUT",
                upload_url,
                authorize=False,  # the upload URL carries its own auth; a token may 401
                content=chunk,
                headers={"Content-Range": f"bytes {start}-{end}/{len(content)}"},
                idempotent=idempotent,
            ).json()
        return answer

    def _copy_file(self, op: Operation) -> Outcome:
        content = self.download(op.target)
        name = op.payload.get("name") or op.target.rstrip("/").rpartition("/")[2]
        destination = f"{op.payload['destination'].strip('/')}/{name}"
        item = self._put_file(destination, content, "replace")
        return done(id=item.get("id"), path=destination, size=item.get("size"))

    def _send_mail(self, op: Operation) -> Outcome:
        payload = op.payload
        mailbox = op.target or self.settings.mailbox

        def recipients(key: str) -> list[dict[str, Any]]:
            return [{"emailAddress": {"address": a}} for a in payload.get(key) or []]

        message = {
            "subject": payload["subject"],
            "body": {
                "contentType": payload.get("content_type", "Text"),
                "content": payload["body"],
            },
            "toRecipients": recipients("to"),
            "ccRecipients": recipients("cc"),
            "internetMessageHeaders": [{"name": KEY_HEADER, "value": op.key}],
            "singleValueExtendedProperties": [{"id": KEY_PROPERTY, "value": op.key}],
        }
        self._request(
            "POST",
            f"{self.settings.base_url}/users/{quote(str(mailbox))}/sendMail",
            json={"message": message, "saveToSentItems": True},
            idempotent=False,  # a repeated sendMail is a second mail
        )
        return done(mailbox=mailbox)

    # -- verifying -------------------------------------------------------------------------
    def _verify_folders(self, op: Operation) -> Outcome:
        for path in self._folders_of(op):
            item = self._exists(f"{self._drive}/root:/{_path(path)}")
            if item is None or "folder" not in item:
                return absent("folder missing", path=path)
        return done(path=op.target.strip("/"))

    def _verify_file(self, op: Operation) -> Outcome:
        if op.verb == "copy_file":
            name = op.payload.get("name") or op.target.rstrip("/").rpartition("/")[2]
            path = f"{op.payload['destination'].strip('/')}/{name}"
            size = (self._exists(f"{self._drive}/root:/{_path(op.target)}") or {}).get("size")
        else:
            path = op.target
            size = len(base64.b64decode(op.payload["content_b64"]))
        item = self._exists(f"{self._drive}/root:/{_path(path)}")
        if item is None or item.get("size") != size:
            return absent("file missing or different", path=path)
        return done(id=item["id"], path=path)

    def _verify_mail(self, op: Operation) -> Outcome:
        mailbox = op.target or self.settings.mailbox
        key = op.key.replace("'", "''")
        page = self._get_json(
            f"{self.settings.base_url}/users/{quote(str(mailbox))}/mailFolders/SentItems/messages",
            params={
                "$filter": f"singleValueExtendedProperties/any(ep: ep/id eq '{KEY_PROPERTY}' "
                f"and ep/value eq '{key}')",
                "$select": "id",
            },
        )
        found = page.get("value") or []
        return done(message_id=found[0]["id"]) if found else absent("not in Sent Items")
