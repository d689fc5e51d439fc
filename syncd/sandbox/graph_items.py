"""HTTP routes of one drive: `/drives/{drive-id}...` (also reached as `/sites/{site}/drive...`).

Items are addressed by id (`/items/{id}`), by path from the root (`/root:/a/b`, trailing colon
optional, `/root:/a/b:/children`) or by path below an item (`/items/{id}:/name.vtt:/content`).
After the address: nothing (GET, PATCH rename/move, DELETE), `/children` (GET paged, POST a
folder), `/content` (GET -> 302 to a signed URL, PUT simple upload of at most 4 MiB),
`/createUploadSession` and `/delta`. Uploads by path create missing parent folders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from syncd.sandbox.core import Request, Response
from syncd.sandbox.graph_common import (
    GraphError,
    Json,
    bad_request,
    method_not_allowed,
    paged,
    query_arg,
    select,
)
from syncd.sandbox.graph_delta import delta
from syncd.sandbox.graph_drive import ITEM_PROPERTIES, Drive, Item, behavior_of, check_name
from syncd.sandbox.graph_transfer import Transfers, UploadSession

SIMPLE_UPLOAD_MAX = 4 * 1024 * 1024
_ADDRESS = re.compile(r"^/(?:root|items/(?P<id>[^/:]+))(?P<after>.*)$")
_BEHAVIOR = "@microsoft.graph.conflictBehavior"
_ALLOWED = {"/children": ["GET", "POST"], "/content": ["GET", "PUT"], "/delta": ["GET"]}
_VERBS = ("", "/createUploadSession", *_ALLOWED)


@dataclass(frozen=True)
class Address:
    """Where a request points inside a drive."""

    base: Item
    segments: list[str]  # path below `base`, possibly not existing yet
    verb: str  # "" | "/children" | "/content" | "/createUploadSession" | "/delta"


class DriveRoutes:
    def __init__(
        self, now: Callable[[], datetime], max_age_s: Callable[[], float], transfers: Transfers
    ) -> None:
        self._now = now
        self._max_age_s = max_age_s
        self.transfers = transfers

    def handle(self, req: Request, drive: Drive, rest: str, app: Json) -> Response:
        if rest in ("", "/"):
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(200, drive.describe("syncd"))
        where = _address(drive, rest)
        if where.verb == "/content" and req.method == "PUT":
            return self._put_content(req, drive, where, app)
        if where.verb == "/createUploadSession":
            return self._create_session(req, drive, where)
        if where.verb == "/children" and req.method == "POST":
            return self._create_child(req, drive, drive.resolve(where.base, where.segments), app)
        item = drive.resolve(where.base, where.segments)
        if where.verb == "":
            return self._item(req, drive, item, app)
        if req.method != "GET":
            raise method_not_allowed(req, _ALLOWED[where.verb])
        if where.verb == "/children":
            return self._children(req, drive, item, app)
        if where.verb == "/content":
            if item.is_folder:
                raise bad_request("Folders have no content to download.")
            return Response.empty(
                302, {"Location": self.transfers.download_url(req.base_url, drive, item)}
            )
        return self._delta(req, drive, item, app)

    # -- single item --------------------------------------------------------------------------

    def render(self, req: Request, drive: Drive, item: Item, app: Json) -> Json:
        out = drive.render(item, app)
        if not item.is_folder:
            out["@microsoft.graph.downloadUrl"] = self.transfers.download_url(
                req.base_url, drive, item
            )
        return select(req, out, ITEM_PROPERTIES, "driveItem")

    def _item(self, req: Request, drive: Drive, item: Item, app: Json) -> Response:
        if req.method == "GET":
            return Response.json(200, self.render(req, drive, item, app))
        if req.method not in ("DELETE", "PATCH"):
            raise method_not_allowed(req, ["GET", "PATCH", "DELETE"])
        etag = drive.render(item, app)["eTag"]
        if req.header("If-Match") not in (None, "*", etag):
            raise GraphError(412, "resourceModified", "ETag does not match current item's value.")
        if req.method == "DELETE":
            drive.delete(item, self._now())
            return Response.empty(204)
        body = req.json()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a driveItem object.")
        parent_ref = body.get("parentReference") or {}
        parent_id = parent_ref.get("id") if isinstance(parent_ref, dict) else None
        parent = drive.get(parent_id) if parent_id else drive.items[item.parent_id or item.id]
        if not parent.is_folder:
            raise bad_request("The new parent must be a folder.")
        name = check_name(body.get("name", item.name))
        drive.rename_or_move(item, name, parent, self._now())
        return Response.json(200, self.render(req, drive, item, app))

    # -- folders and listings -----------------------------------------------------------------

    def _children(self, req: Request, drive: Drive, item: Item, app: Json) -> Response:
        if query_arg(req, "filter") is not None:
            raise bad_request("The sandbox does not emulate $filter on children.", "notSupported")
        rows = sorted(drive.children(item), key=_order)
        return Response.json(
            200, paged(req, rows, _order, lambda i: self.render(req, drive, i, app), 200, 1000)
        )

    def _create_child(self, req: Request, drive: Drive, parent: Item, app: Json) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a driveItem object.")
        if not parent.is_folder:
            raise bad_request("Items can only be created inside a folder.")
        name = check_name(body.get("name"))
        behavior = behavior_of(body.get(_BEHAVIOR, req.arg(_BEHAVIOR)), "fail")
        if isinstance(body.get("folder"), dict):
            item, status = drive.make_folder(parent, name, behavior, self._now())
        elif isinstance(body.get("file"), dict):
            item, status = drive.put_file(parent, name, b"", behavior, self._now())
        else:
            raise bad_request("A 'folder' or 'file' facet is required to create an item.")
        return Response.json(status, self.render(req, drive, item, app))

    def _delta(self, req: Request, drive: Drive, scope: Item, app: Json) -> Response:
        if not scope.is_folder:
            raise bad_request("Delta is only supported on the root or a folder.")

        def render(item: Item) -> Json:
            out = select(req, drive.render(item, app, in_delta=True), ITEM_PROPERTIES, "driveItem")
            if item.deleted:
                out.update(id=item.id, deleted={"state": "deleted"})
            return out

        rows = [i for i in drive.items.values() if drive.in_scope(i, scope)]
        body = delta(req, drive.feed, scope.id, rows, render, self._now(), self._max_age_s())
        return Response.json(200, body)

    # -- uploads ------------------------------------------------------------------------------

    def _target(self, drive: Drive, where: Address) -> tuple[Item, str, Item | None]:
        """(parent, name, existing item) for an upload to `where`."""
        if not where.segments:
            if where.base.is_folder:
                raise bad_request("Cannot upload content to a folder.")
            parent = drive.items[where.base.parent_id or ""]
            return parent, where.base.name, where.base
        *folders, name = where.segments
        parent = drive.ensure_folders(where.base, folders, self._now())
        return parent, check_name(name), drive.child(parent, name)

    def _put_content(self, req: Request, drive: Drive, where: Address, app: Json) -> Response:
        if len(req.body) > SIMPLE_UPLOAD_MAX:
            raise GraphError(
                413,
                "requestTooLarge",
                "The request is too large for a simple upload; use an upload "
                "session for files over 4 MB.",
            )
        parent, name, _ = self._target(drive, where)
        behavior = behavior_of(req.arg(_BEHAVIOR), "replace")
        item, status = drive.put_file(parent, name, req.body, behavior, self._now())
        return Response.json(status, self.render(req, drive, item, app))

    def _create_session(self, req: Request, drive: Drive, where: Address) -> Response:
        if req.method != "POST":
            raise method_not_allowed(req, ["POST"])
        body = req.json() if req.body else {}
        spec = body.get("item", {}) if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise bad_request("'item' must be a driveItemUploadableProperties object.")
        parent, name, existing = self._target(drive, where)
        behavior = behavior_of(spec.get(_BEHAVIOR, req.arg(_BEHAVIOR)), "replace")
        if existing is not None and (behavior == "fail" or existing.is_folder):
            raise GraphError(
                409, "nameAlreadyExists", f"The specified item name '{name}' already exists."
            )
        defer = bool(body.get("deferCommit", False)) if isinstance(body, dict) else False
        session = self.transfers.open(req.base_url, drive, parent, name, behavior, defer)
        return Response.json(200, session)

    def commit(self, drive: Drive, session: UploadSession, data: bytes) -> tuple[Item, int]:
        """Turn a completed upload session into a file (the name is checked again now)."""
        parent = drive.get(session.parent_id)
        return drive.put_file(parent, session.name, data, session.behavior, self._now())


def _order(item: Item) -> str:
    return f"{item.name.casefold()}\x00{item.id}"


def _address(drive: Drive, rest: str) -> Address:
    match = _ADDRESS.match(rest)
    if match is None:
        segment = rest.strip("/").split("/")[0]
        raise bad_request(f"Resource not found for the segment '{segment}'.", "BadRequest")
    base = drive.get(match["id"]) if match["id"] else drive.root
    after = match["after"]
    segments: list[str] = []
    if after.startswith(":"):
        path, _, after = after[1:].partition(":")
        segments = [s for s in path.split("/") if s]
    verb = after.rstrip("/")
    if verb not in _VERBS:
        raise bad_request(f"Resource not found for the segment '{verb.strip('/')}'.", "BadRequest")
    return Address(base, segments, verb)
