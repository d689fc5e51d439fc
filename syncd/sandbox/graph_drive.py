"""A SharePoint document library (Graph `drive`) and its driveItems, without HTTP.

SharePoint names are case-insensitive ("acme" collides with "Acme"), so every lookup folds case.
Deleted items stay as tombstones so delta can report them and scope checks can still walk their
former parents. Each change takes a number from the drive's `Feed`; so do the changed item's
ancestors, whose cTag changes too, which is why Graph's delta returns parents of changed items.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from syncd.sandbox.graph_common import (
    GraphError,
    Json,
    bad_request,
    iso,
    new_guid,
    new_item_id,
    not_found,
    parse_iso,
)
from syncd.sandbox.graph_delta import Feed

QUOTA_TOTAL = 27_487_790_694_400  # 25 TiB, a SharePoint site's default storage
_ILLEGAL = re.compile(r'["*:<>?/\\|\x00-\x1f\x7f-\x9f]')  # with control characters, as PnP's check
# names SharePoint reserves ("Restrictions and limitations in OneDrive and SharePoint")
_RESERVED = re.compile(r"(?i)(\.lock|con|prn|aux|nul|com[0-9]|lpt[0-9]|desktop\.ini)")
BEHAVIORS = ("fail", "replace", "rename")

# driveItem properties a client may $select (Graph driveItem resource, v1.0).
ITEM_PROPERTIES = frozenset(
    [
        "id",
        "name",
        "eTag",
        "cTag",
        "size",
        "createdDateTime",
        "lastModifiedDateTime",
        "webUrl",
        "parentReference",
        "file",
        "folder",
        "root",
        "deleted",
        "createdBy",
        "lastModifiedBy",
        "fileSystemInfo",
        "description",
        "shared",
        "sharepointIds",
        "package",
        "image",
        "photo",
        "video",
        "audio",
        "specialFolder",
        "remoteItem",
        "malware",
        "publication",
        "listItem",
        "children",
        "thumbnails",
        "permissions",
        "versions",
        "content",
        "searchResult",
        "@microsoft.graph.downloadUrl",
    ]
)


@dataclass
class Item:
    id: str
    name: str
    parent_id: str | None
    is_folder: bool
    created: datetime
    modified: datetime
    changed: datetime  # last time delta saw a change (own or a descendant's)
    guid: str = field(default_factory=new_guid)
    version: int = 1
    content: bytes = b""
    seq: int = 0
    deleted: bool = False

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "parent_id": self.parent_id,
            "is_folder": self.is_folder,
            "created": iso(self.created),
            "modified": iso(self.modified),
            "changed": iso(self.changed),
            "guid": self.guid,
            "version": self.version,
            "content": base64.b64encode(self.content).decode(),
            "seq": self.seq,
            "deleted": self.deleted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(
            id=data["id"],
            name=data["name"],
            parent_id=data["parent_id"],
            is_folder=data["is_folder"],
            created=parse_iso(data["created"]),
            modified=parse_iso(data["modified"]),
            changed=parse_iso(data["changed"]),
            guid=data["guid"],
            version=data["version"],
            content=base64.b64decode(data["content"]),
            seq=data["seq"],
            deleted=data["deleted"],
        )


def check_name(name: Any) -> str:
    """SharePoint's naming rules, enforced as Graph does (400)."""
    if not isinstance(name, str) or not name.strip() or name in (".", ".."):
        raise bad_request("The name of the item is missing or empty.")
    if _ILLEGAL.search(name) or name != name.strip() or len(name) > 255:
        raise bad_request(f"The provided name '{name}' contains illegal characters or spaces.")
    if _RESERVED.fullmatch(name) or name.startswith("~$") or "_vti_" in name.lower():
        raise bad_request(f"The provided name '{name}' is not allowed.")
    return name


def numbered(name: str, n: int, is_folder: bool) -> str:
    """Graph's `rename` conflict behaviour: "Acme 1", "report 1.pdf"."""
    if is_folder or "." not in name.strip(".")[1:]:
        return f"{name} {n}"
    stem, ext = name.rsplit(".", 1)
    return f"{stem} {n}.{ext}"


def quick_xor_hash(data: bytes) -> str:
    """OneDrive's QuickXorHash: bytes XORed into a 160-bit ring at 11-bit steps, then the
    length XORed into the last 8 bytes. Byte i lands at bit (11*i) mod 160, a cycle of 160
    bytes, so 160-byte blocks are folded first to keep multi-megabyte files fast."""
    folded = 0
    for start in range(0, len(data), 160):
        folded ^= int.from_bytes(data[start : start + 160], "little")
    ring = 0
    mask = (1 << 160) - 1
    for index, byte in enumerate(folded.to_bytes(160, "little")):
        if byte:
            shift = (index * 11) % 160
            ring ^= ((byte << shift) | (byte >> (160 - shift))) & mask
    out = bytearray(ring.to_bytes(20, "little"))
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= b
    return base64.b64encode(bytes(out)).decode()


class Drive:
    """One document library: a tree of items under a root folder."""

    def __init__(self, drive_id: str, site_id: str, site_url: str, now: datetime) -> None:
        self.id = drive_id
        self.site_id = site_id
        self.web_url = f"{site_url}/Shared%20Documents"
        self.created = now
        self.feed = Feed()
        self.items: dict[str, Item] = {}
        self._kids: dict[str, dict[str, str]] = {}
        root = Item(new_item_id(), "root", None, True, now, now, now)
        self.root_id = root.id
        self._index(root)
        self.touch(root, now)

    # -- lookups ------------------------------------------------------------------------------

    @property
    def root(self) -> Item:
        return self.items[self.root_id]

    def get(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None or item.deleted:
            raise not_found()
        return item

    def child(self, parent: Item, name: str) -> Item | None:
        child_id = self._kids.get(parent.id, {}).get(name.casefold())
        return self.items[child_id] if child_id else None

    def children(self, parent: Item) -> list[Item]:
        return [self.items[i] for i in self._kids.get(parent.id, {}).values()]

    def resolve(self, base: Item, segments: list[str]) -> Item:
        item = base
        for name in segments:
            found = self.child(item, name) if item.is_folder else None
            if found is None:
                raise not_found()
            item = found
        return item

    def ancestors(self, item: Item) -> Iterator[Item]:
        while item.parent_id is not None:
            item = self.items[item.parent_id]
            yield item

    def in_scope(self, item: Item, scope: Item) -> bool:
        return item.id == scope.id or any(a.id == scope.id for a in self.ancestors(item))

    def path(self, item: Item) -> str:
        """Path below the root, "/Clients/Acme"; "" for the root."""
        names = [a.name for a in self.ancestors(item)][:-1]
        return "".join(f"/{n}" for n in reversed([item.name, *names])) if item.parent_id else ""

    def used(self) -> int:
        return sum(len(i.content) for i in self.items.values() if not i.deleted)

    # -- changes ------------------------------------------------------------------------------

    def touch(self, item: Item, now: datetime) -> None:
        """Record a change of `item` (and so of its ancestors) for delta."""
        for changed in (item, *self.ancestors(item)):
            changed.seq = self.feed.bump()
            changed.changed = now

    def add(
        self, parent: Item, name: str, is_folder: bool, now: datetime, content: bytes = b""
    ) -> Item:
        item = Item(
            new_item_id(), check_name(name), parent.id, is_folder, now, now, now, content=content
        )
        self._index(item)
        self.touch(item, now)
        return item

    def unique_name(self, parent: Item, name: str, is_folder: bool) -> str:
        n, candidate = 1, name
        while self.child(parent, candidate) is not None:
            candidate, n = numbered(name, n, is_folder), n + 1
        return candidate

    def make_folder(
        self, parent: Item, name: str, behavior: str, now: datetime
    ) -> tuple[Item, int]:
        """Create a folder: 201 new, 200 when `replace` meets an existing folder (Graph keeps
        it and its contents), 409 for `fail`."""
        existing = self.child(parent, name)
        if existing is None:
            return self.add(parent, name, True, now), 201
        if behavior == "rename":
            return self.add(parent, self.unique_name(parent, name, True), True, now), 201
        if behavior == "replace" and existing.is_folder:
            return existing, 200
        raise conflict(name)

    def ensure_folders(self, base: Item, segments: list[str], now: datetime) -> Item:
        """Walk `segments` below `base`, creating missing folders (path-based uploads do)."""
        if not base.is_folder:
            raise bad_request("Items can only be created inside a folder.")
        item = base
        for name in segments:
            found = self.child(item, check_name(name))
            if found is not None and not found.is_folder:
                raise conflict(name)
            item = found or self.add(item, name, True, now)
        return item

    def put_file(
        self, parent: Item, name: str, data: bytes, behavior: str, now: datetime
    ) -> tuple[Item, int]:
        """Write a file under `parent`: 201 created, 200 replaced, 409 on `fail` or a folder."""
        existing = self.child(parent, name)
        if existing is not None and behavior == "rename":
            name, existing = self.unique_name(parent, name, False), None
        if existing is None:
            return self.add(parent, name, False, now, data), 201
        if behavior == "fail" or existing.is_folder:
            raise conflict(name)
        self.write(existing, data, now)
        return existing, 200

    def write(self, item: Item, data: bytes, now: datetime) -> None:
        item.content = data
        item.version += 1
        item.modified = now
        self.touch(item, now)

    def rename_or_move(self, item: Item, name: str, parent: Item, now: datetime) -> None:
        if item.parent_id is None:
            raise GraphError(403, "accessDenied", "The root folder cannot be renamed or moved.")
        if any(a.id == item.id for a in (parent, *self.ancestors(parent))):
            raise bad_request("A folder cannot be moved into itself.")
        clash = self.child(parent, name)
        if clash is not None and clash.id != item.id:
            raise conflict(name)
        self._unindex(item)
        item.name, item.parent_id = name, parent.id
        self._index(item)
        item.version += 1
        item.modified = now
        self.touch(item, now)

    def delete(self, item: Item, now: datetime) -> None:
        """Delete `item` and everything below it; each leaves a tombstone for delta."""
        if item.parent_id is None:
            raise GraphError(403, "accessDenied", "The root folder cannot be deleted.")
        for doomed in self._subtree(item):
            self._unindex(doomed)
            doomed.deleted = True
            doomed.modified = now
            self.touch(doomed, now)

    def _subtree(self, item: Item) -> list[Item]:
        out = [item]
        for kid in self.children(item):
            out.extend(self._subtree(kid))
        return out

    def _index(self, item: Item) -> None:
        self.items[item.id] = item
        if item.parent_id is not None and not item.deleted:
            self._kids.setdefault(item.parent_id, {})[item.name.casefold()] = item.id

    def _unindex(self, item: Item) -> None:
        if item.parent_id is not None:
            self._kids.get(item.parent_id, {}).pop(item.name.casefold(), None)

    # -- rendering ----------------------------------------------------------------------------

    def render(self, item: Item, app: Json, *, in_delta: bool = False) -> Json:
        """driveItem JSON. Delta answers omit `parentReference.path` (Graph: track by id)."""
        ref: Json = {"driveType": "documentLibrary", "driveId": self.id, "siteId": self.site_id}
        if item.parent_id is not None:
            ref["id"] = item.parent_id
            if not in_delta:
                # an API path, percent-encoded as Graph encodes it (a space is %20)
                parent_path = quote(self.path(self.items[item.parent_id]), safe="/")
                ref["path"] = f"/drives/{self.id}/root:{parent_path}"
        if item.deleted:
            return {
                "id": item.id,
                "name": item.name,
                "parentReference": ref,
                "lastModifiedDateTime": iso(item.modified),
                "deleted": {"state": "deleted"},
            }
        who = {"application": app, "user": {"displayName": "SharePoint App"}}
        out: Json = {
            "id": item.id,
            "name": item.name,
            "eTag": f'"{{{item.guid.upper()}}},{item.version}"',
            "cTag": f'"c:{{{item.guid.upper()}}},{item.seq}"',
            "createdDateTime": iso(item.created),
            "lastModifiedDateTime": iso(item.modified),
            "webUrl": self.web_url + quote(self.path(item)),
            "size": self._size(item),
            "createdBy": who,
            "lastModifiedBy": who,
            "parentReference": ref,
            "fileSystemInfo": {
                "createdDateTime": iso(item.created),
                "lastModifiedDateTime": iso(item.modified),
            },
        }
        if item.is_folder:
            out["folder"] = {"childCount": len(self._kids.get(item.id, {}))}
        else:
            mime = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
            out["file"] = {
                "mimeType": mime,
                "hashes": {"quickXorHash": quick_xor_hash(item.content)},
            }
        if item.parent_id is None:
            out["root"] = {}
        return out

    def _size(self, item: Item) -> int:
        if not item.is_folder:
            return len(item.content)
        return sum(self._size(k) for k in self.children(item))

    def describe(self, owner: str) -> Json:
        """The drive resource itself."""
        used = self.used()
        return {
            "id": self.id,
            "name": "Documents",
            "description": "",
            "driveType": "documentLibrary",
            "createdDateTime": iso(self.created),
            "lastModifiedDateTime": iso(self.root.changed),
            "webUrl": self.web_url,
            "createdBy": {"user": {"displayName": "System Account"}},
            "owner": {"group": {"displayName": owner}},
            "quota": {
                "deleted": 0,
                "remaining": QUOTA_TOTAL - used,
                "state": "normal",
                "total": QUOTA_TOTAL,
                "used": used,
            },
        }

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "site_id": self.site_id,
            "web_url": self.web_url,
            "created": iso(self.created),
            "root_id": self.root_id,
            "feed": self.feed.to_json(),
            "items": [i.to_json() for i in self.items.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Drive:
        drive = cls.__new__(cls)
        drive.id, drive.site_id, drive.web_url = data["id"], data["site_id"], data["web_url"]
        drive.created = parse_iso(data["created"])
        drive.root_id = data["root_id"]
        drive.feed = Feed.from_json(data["feed"])
        drive.items, drive._kids = {}, {}
        for raw in data["items"]:
            drive._index(Item.from_json(raw))
        return drive


def conflict(name: str) -> GraphError:
    return GraphError(409, "nameAlreadyExists", f"The specified item name '{name}' already exists.")


def behavior_of(value: Any, default: str) -> str:
    """`@microsoft.graph.conflictBehavior`, validated."""
    if value is None:
        return default
    if value not in BEHAVIORS:
        raise bad_request(f"Invalid value '{value}' for @microsoft.graph.conflictBehavior.")
    return str(value)
