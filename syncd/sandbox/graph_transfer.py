"""Byte transfers that leave Graph for SharePoint's own host: resumable upload sessions and
pre-authenticated download URLs (graph.md §3-4, gotcha 15).

Both URLs live on the sandbox host outside `/v1.0` and carry their own `tempauth`, as SharePoint's
do. An upload URL refuses an `Authorization` header (Graph's docs warn it may 401); fragments
must arrive in order, in multiples of 320 KiB except the last; the final fragment commits the
file (201 new / 200 replaced). Download URLs are HMAC-signed and expire after an hour on the
sandbox clock, so a stale `@microsoft.graph.downloadUrl` fails as it would on SharePoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from syncd.sandbox.core import Request, Response
from syncd.sandbox.graph_common import GraphError, Json, bad_request, iso, parse_iso
from syncd.sandbox.graph_drive import Drive, Item

UPLOAD_PREFIX = "/_api/v2.0/uploadSession/"
DOWNLOAD_PATH = "/_layouts/15/download.aspx"
FRAGMENT_UNIT = 327_680  # 320 KiB
MAX_FRAGMENT = 60 * 1024 * 1024
SESSION_TTL = timedelta(hours=1)  # extended by each fragment (inferred duration)
DOWNLOAD_TTL = timedelta(hours=1)
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class UploadSession:
    id: str
    auth: str
    drive_id: str
    parent_id: str
    name: str
    behavior: str
    expires: datetime
    defer: bool = False
    total: int | None = None
    data: bytearray = field(default_factory=bytearray)

    def status(self) -> Json:
        complete = self.total is not None and len(self.data) == self.total
        ranges = [] if complete else [f"{len(self.data)}-"]
        return {"expirationDateTime": iso(self.expires), "nextExpectedRanges": ranges}

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "auth": self.auth,
            "drive_id": self.drive_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "behavior": self.behavior,
            "expires": iso(self.expires),
            "defer": self.defer,
            "total": self.total,
            "data": base64.b64encode(bytes(self.data)).decode(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UploadSession:
        return cls(
            d["id"],
            d["auth"],
            d["drive_id"],
            d["parent_id"],
            d["name"],
            d["behavior"],
            parse_iso(d["expires"]),
            d["defer"],
            d["total"],
            bytearray(base64.b64decode(d["data"])),
        )


Commit = Callable[[UploadSession, bytes], tuple[Item, int, Drive]]


class Transfers:
    """Upload sessions and signed download links of all drives."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._key = secrets.token_bytes(32)  # never persisted: links die with the process
        self.sessions: dict[str, UploadSession] = {}

    def matches(self, path: str) -> bool:
        return path.startswith(UPLOAD_PREFIX) or path == DOWNLOAD_PATH

    # -- downloads ----------------------------------------------------------------------------

    def download_url(self, base_url: str, drive: Drive, item: Item) -> str:
        expires = int((self._now() + DOWNLOAD_TTL).timestamp())
        sig = self._sign(f"{drive.id}|{item.id}|{expires}")
        return (
            f"{base_url}{DOWNLOAD_PATH}?UniqueId={item.id}&drive={quote(drive.id, safe='')}"
            f"&ApiVersion=2.0&tempauth={expires}.{sig}"
        )

    def download(self, req: Request, drive_of: Callable[[str], Drive]) -> Response:
        """Serve a signed link: the item's current bytes, or 401 once the link expired."""
        if req.method != "GET":
            raise GraphError(405, "invalidRequest", "Only GET is allowed on a download URL.")
        item_id, drive_id = req.arg("UniqueId") or "", req.arg("drive") or ""
        expires, _, sig = (req.arg("tempauth") or "").partition(".")
        valid = expires.isdigit() and hmac.compare_digest(
            sig, self._sign(f"{drive_id}|{item_id}|{expires}")
        )
        if not valid or int(expires) < self._now().timestamp():
            raise GraphError(401, "unauthenticated", "The download link is invalid or expired.")
        item = drive_of(drive_id).get(item_id)
        mime = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
        return Response(200, item.content, {"Content-Type": mime})

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]

    # -- upload sessions ----------------------------------------------------------------------

    def open(
        self, base_url: str, drive: Drive, parent: Item, name: str, behavior: str, defer: bool
    ) -> Json:
        session = UploadSession(
            id=secrets.token_hex(16),
            auth=secrets.token_urlsafe(24),
            drive_id=drive.id,
            parent_id=parent.id,
            name=name,
            behavior=behavior,
            expires=self._now() + SESSION_TTL,
            defer=defer,
        )
        self.sessions[session.id] = session
        url = f"{base_url}{UPLOAD_PREFIX}{session.id}?tempauth={session.auth}"
        return {"uploadUrl": url, **session.status()}

    def upload(
        self, req: Request, commit: Commit, render: Callable[[Drive, Item], Json]
    ) -> Response:
        """Handle a request to an uploadUrl (no Graph token involved)."""
        if req.header("Authorization"):
            raise GraphError(
                401,
                "unauthenticated",
                "Upload URLs are pre-authenticated; requests must not carry an Authorization "
                "header.",
            )
        session = self._session(req)
        if req.method == "GET":
            return Response.json(200, session.status())
        if req.method == "DELETE":
            del self.sessions[session.id]
            return Response.empty(204)
        if req.method == "POST" and session.defer:
            return self._finish(session, commit, render)
        if req.method != "PUT":
            raise GraphError(405, "invalidRequest", f"'{req.method}' is not allowed here.")
        self._append(session, req)
        if len(session.data) == session.total and not session.defer:
            return self._finish(session, commit, render)
        return Response.json(202, session.status())

    def _session(self, req: Request) -> UploadSession:
        session = self.sessions.get(req.path[len(UPLOAD_PREFIX) :])
        if session is None or not hmac.compare_digest(session.auth, req.arg("tempauth") or ""):
            raise GraphError(
                404,
                "itemNotFound",
                "The upload session was not found.",
                inner_code="uploadSessionNotFound",
            )
        if session.expires < self._now():
            del self.sessions[session.id]
            raise GraphError(
                404,
                "itemNotFound",
                "The upload session has expired.",
                inner_code="uploadSessionNotFound",
            )
        return session

    def _append(self, session: UploadSession, req: Request) -> None:
        match = _RANGE.match(req.header("Content-Range") or "")
        if not match:
            raise bad_request("A valid 'Content-Range: bytes start-end/total' header is required.")
        start, end, total = (int(g) for g in match.groups())
        if end < start or end >= total or len(req.body) != end - start + 1:
            raise bad_request("The Content-Range does not match the number of bytes sent.")
        if session.total is not None and total != session.total:
            raise bad_request("The total size in Content-Range changed during the session.")
        if len(req.body) > MAX_FRAGMENT:
            raise GraphError(413, "requestTooLarge", "Fragments must be smaller than 60 MiB.")
        received = len(session.data)
        if start != received:
            inner = "fragmentOverlap" if start < received else "fragmentOutOfOrder"
            raise GraphError(
                416,
                "invalidRange",
                f"Expected the fragment to start at byte {received}.",
                inner_code=inner,
            )
        if end + 1 < total and len(req.body) % FRAGMENT_UNIT:
            raise GraphError(
                416,
                "invalidRange",
                "Fragments other than the last must be a multiple of 327,680 bytes.",
                inner_code="fragmentLengthMismatch",
            )
        session.total = total
        session.data.extend(req.body)
        session.expires = self._now() + SESSION_TTL

    def _finish(
        self, session: UploadSession, commit: Commit, render: Callable[[Drive, Item], Json]
    ) -> Response:
        if session.total is None or len(session.data) != session.total:
            raise bad_request("The upload is not complete.")
        del self.sessions[session.id]
        item, status, drive = commit(session, bytes(session.data))
        return Response.json(status, render(drive, item))

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> list[Json]:
        return [s.to_json() for s in self.sessions.values()]

    def restore(self, data: list[dict[str, Any]]) -> None:
        self.sessions = {d["id"]: UploadSession.from_json(d) for d in data}
