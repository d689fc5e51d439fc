"""SharePoint lists under `/sites/{site}/lists`: enough for an "Arrivals" list a rule polls.

Routes: `GET/POST /lists`, `GET /lists/{list-id|title}`, `GET /lists/{l}/columns`,
`GET/POST /lists/{l}/items` (`expand=fields` or `expand=fields(select=A,B)` adds the field
values; without it items carry none, as on Graph), `GET/DELETE /lists/{l}/items/{id}`,
`GET/PATCH /lists/{l}/items/{id}/fields` and `GET /lists/{l}/items/delta`.

Columns are declared in Graph's shape (`{"name": "Arrival", "dateTime": {}}`; facets `text`,
`number`, `dateTime`, `boolean`, `choice` with `choices`) or as a bare name for a text column.
Field writes are checked against them: an unknown field or a wrongly typed value is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.sandbox.core import Request, Response
from syncd.sandbox.graph_common import (
    GraphError,
    Json,
    bad_request,
    iso,
    method_not_allowed,
    new_guid,
    not_found,
    paged,
    parse_iso,
    query_arg,
    select,
)
from syncd.sandbox.graph_delta import Feed, delta

TYPES = ("text", "number", "dateTime", "boolean", "choice")
SYSTEM_FIELDS = ("id", "Created", "Modified", "ContentType", "@odata.etag")
LIST_PROPERTIES = frozenset(
    [
        "id",
        "name",
        "displayName",
        "description",
        "createdDateTime",
        "lastModifiedDateTime",
        "webUrl",
        "list",
        "parentReference",
        "createdBy",
        "lastModifiedBy",
        "eTag",
        "columns",
        "items",
        "drive",
        "contentTypes",
        "system",
        "sharepointIds",
    ]
)
ITEM_PROPERTIES = frozenset(
    [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "webUrl",
        "eTag",
        "createdBy",
        "lastModifiedBy",
        "parentReference",
        "contentType",
        "fields",
        "sharepointIds",
        "deleted",
    ]
)
_EXPAND = re.compile(r"^fields(?:\(\$?select=(?P<select>[^)]*)\))?$")


@dataclass
class Column:
    name: str
    type: str = "text"
    choices: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_guid)

    @classmethod
    def parse(cls, raw: Any) -> Column:
        """A bare name (text) or Graph's columnDefinition shape."""
        if isinstance(raw, str) and raw:
            return cls(raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise bad_request("Each column needs a 'name'.")
        kinds = [t for t in TYPES if t in raw] or ["text"]
        facet = raw.get(kinds[0])
        choices = facet.get("choices") if isinstance(facet, dict) else None
        return cls(raw["name"], kinds[0], [str(c) for c in choices or []])

    def render(self) -> Json:
        facet: Json = {"choices": self.choices} if self.type == "choice" else {}
        return {
            "id": self.id,
            "name": self.name,
            "displayName": self.name,
            "columnGroup": "Custom Columns",
            self.type: facet,
        }

    def check(self, value: Any) -> Any:
        """The stored form of `value`, or a 400 when it does not fit the column."""
        if value is None:
            return None
        ok = {
            "text": isinstance(value, str),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "choice": isinstance(value, str) and (not self.choices or value in self.choices),
            "dateTime": isinstance(value, str),
        }[self.type]
        if ok and self.type == "dateTime":
            try:
                return iso(parse_iso(value))
            except ValueError:
                ok = False
        if not ok:
            raise bad_request(f"The value for field '{self.name}' is not a valid {self.type}.")
        return value


@dataclass
class ListItem:
    id: str
    fields: dict[str, Any]
    created: datetime
    modified: datetime
    changed: datetime
    guid: str = field(default_factory=new_guid)
    version: int = 1
    seq: int = 0
    deleted: bool = False


@dataclass
class SpList:
    id: str
    name: str
    description: str
    created: datetime
    web_url: str
    columns: list[Column]
    items: dict[str, ListItem] = field(default_factory=dict)
    next_id: int = 1
    feed: Feed = field(default_factory=Feed)

    def column(self, name: str) -> Column:
        found = next((c for c in self.columns if c.name == name), None)
        if found is None:
            raise bad_request(f"Field '{name}' is not recognized.")
        return found

    def clean(self, fields: Any) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise bad_request("'fields' must be an object of column values.")
        return {k: self.column(k).check(v) for k, v in fields.items() if k not in SYSTEM_FIELDS}

    def add(self, fields: Any, now: datetime) -> ListItem:
        values = self.clean(fields)
        item = ListItem(str(self.next_id), values, now, now, now, seq=self.feed.bump())
        self.items[item.id] = item
        self.next_id += 1
        return item

    def update(self, item: ListItem, fields: Any, now: datetime) -> None:
        item.fields.update(self.clean(fields))
        item.version += 1
        item.modified = item.changed = now
        item.seq = self.feed.bump()

    def remove(self, item: ListItem, now: datetime) -> None:
        item.deleted = True
        item.modified = item.changed = now
        item.seq = self.feed.bump()

    def get(self, item_id: str) -> ListItem:
        item = self.items.get(item_id)
        if item is None or item.deleted:
            raise not_found()
        return item

    def to_json(self) -> Json:
        cols = [
            {"name": c.name, c.type: {"choices": c.choices} if c.choices else {}}
            for c in self.columns
        ]
        items = [
            {
                "id": i.id,
                "fields": i.fields,
                "created": iso(i.created),
                "modified": iso(i.modified),
                "changed": iso(i.changed),
                "guid": i.guid,
                "version": i.version,
                "seq": i.seq,
                "deleted": i.deleted,
            }
            for i in self.items.values()
        ]
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "created": iso(self.created),
            "web_url": self.web_url,
            "columns": cols,
            "items": items,
            "next_id": self.next_id,
            "feed": self.feed.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SpList:
        items = {
            i["id"]: ListItem(
                i["id"],
                i["fields"],
                parse_iso(i["created"]),
                parse_iso(i["modified"]),
                parse_iso(i["changed"]),
                i["guid"],
                i["version"],
                i["seq"],
                i["deleted"],
            )
            for i in d["items"]
        }
        return cls(
            d["id"],
            d["name"],
            d["description"],
            parse_iso(d["created"]),
            d["web_url"],
            [Column.parse(c) for c in d["columns"]],
            items,
            d["next_id"],
            Feed.from_json(d["feed"]),
        )


def new_list(body: Any, site_url: str, now: datetime) -> SpList:
    """A list from a create-list body or a seed entry (`name`/`displayName`, `columns`)."""
    if not isinstance(body, dict):
        raise bad_request("The list definition must be an object.")
    name = body.get("displayName") or body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("A list needs a 'displayName'.")
    columns = [Column("Title"), *(Column.parse(c) for c in body.get("columns") or [])]
    return SpList(
        new_guid(),
        name,
        str(body.get("description", "")),
        now,
        f"{site_url}/Lists/{name.replace(' ', '')}",
        columns,
    )


class ListRoutes:
    """HTTP routes under `/sites/{site}/lists`."""

    def __init__(self, now: Callable[[], datetime], max_age_s: Callable[[], float]) -> None:
        self._now = now
        self._max_age_s = max_age_s

    def handle(
        self,
        req: Request,
        lists: dict[str, SpList],
        site_id: str,
        site_url: str,
        rest: str,
        app: Json,
    ) -> Response:
        parts = [p for p in rest.split("/") if p]
        if not parts:
            return self._collection(req, lists, site_id, site_url, app)
        sp = self._find(lists, parts[0])
        tail = parts[1:]
        if not tail:
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(
                200, select(req, self._render_list(sp, site_id, app), LIST_PROPERTIES, "list")
            )
        if tail == ["columns"]:
            return Response.json(200, {"value": [c.render() for c in sp.columns]})
        if tail[0] != "items" or len(tail) > 3:
            raise bad_request(f"Resource not found for the segment '{tail[0]}'.", "BadRequest")
        render = self._item_renderer(req, sp, site_id, app)
        if len(tail) == 1:
            return self._items(req, sp, render)
        if tail[1] == "delta" and len(tail) == 2:
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(
                200,
                delta(
                    req,
                    sp.feed,
                    f"list:{sp.id}",
                    sp.items.values(),
                    render,
                    self._now(),
                    self._max_age_s(),
                ),
            )
        item = sp.get(tail[1])
        if len(tail) == 3:
            if tail[2] != "fields":
                raise bad_request(f"Resource not found for the segment '{tail[2]}'.", "BadRequest")
            return self._fields(req, sp, item)
        if req.method == "GET":
            return Response.json(200, render(item))
        if req.method == "DELETE":
            sp.remove(item, self._now())
            return Response.empty(204)
        raise method_not_allowed(req, ["GET", "DELETE"])

    def _collection(
        self, req: Request, lists: dict[str, SpList], site_id: str, site_url: str, app: Json
    ) -> Response:
        if req.method == "POST":
            sp = new_list(req.json(), site_url, self._now())
            if any(other.name.casefold() == sp.name.casefold() for other in lists.values()):
                raise GraphError(
                    409,
                    "nameAlreadyExists",
                    f"A list named '{sp.name}' already exists on this site.",
                )
            lists[sp.id] = sp
            return Response.json(201, self._render_list(sp, site_id, app))
        if req.method != "GET":
            raise method_not_allowed(req, ["GET", "POST"])
        rows = sorted(lists.values(), key=lambda s: s.id)
        return Response.json(
            200,
            paged(
                req,
                rows,
                lambda s: s.id,
                lambda s: select(req, self._render_list(s, site_id, app), LIST_PROPERTIES, "list"),
                200,
                999,
            ),
        )

    def _items(self, req: Request, sp: SpList, render: Callable[[ListItem], Json]) -> Response:
        if req.method == "POST":
            body = req.json()
            fields = body.get("fields", {}) if isinstance(body, dict) else None
            return Response.json(201, render(sp.add(fields, self._now())))
        if req.method != "GET":
            raise method_not_allowed(req, ["GET", "POST"])
        if query_arg(req, "filter") is not None:
            raise bad_request("The sandbox does not emulate $filter on list items.", "notSupported")
        rows = sorted((i for i in sp.items.values() if not i.deleted), key=lambda i: int(i.id))
        return Response.json(
            200, paged(req, rows, lambda i: f"{int(i.id):012d}", render, 200, 5000)
        )

    def _fields(self, req: Request, sp: SpList, item: ListItem) -> Response:
        if req.method == "PATCH":
            sp.update(item, req.json(), self._now())
        elif req.method != "GET":
            raise method_not_allowed(req, ["GET", "PATCH"])
        return Response.json(200, _fields_of(sp, item, None))

    @staticmethod
    def _find(lists: dict[str, SpList], key: str) -> SpList:
        """Lists are addressed by id or by title (case-insensitive), as on Graph."""
        for sp in lists.values():
            if key.casefold() in (sp.id.casefold(), sp.name.casefold()):
                return sp
        raise not_found("The list was not found.")

    def _render_list(self, sp: SpList, site_id: str, app: Json) -> Json:
        who = {"application": app, "user": {"displayName": "SharePoint App"}}
        modified = max((i.modified for i in sp.items.values()), default=sp.created)
        return {
            "id": sp.id,
            "name": sp.name.replace(" ", ""),
            "displayName": sp.name,
            "description": sp.description,
            "createdDateTime": iso(sp.created),
            "lastModifiedDateTime": iso(modified),
            "webUrl": sp.web_url,
            "eTag": f'"{sp.id},{sp.feed.seq}"',
            "createdBy": who,
            "lastModifiedBy": who,
            "list": {"contentTypesEnabled": False, "hidden": False, "template": "genericList"},
            "parentReference": {"siteId": site_id},
        }

    def _item_renderer(
        self, req: Request, sp: SpList, site_id: str, app: Json
    ) -> Callable[[ListItem], Json]:
        expand = query_arg(req, "expand")
        match = _EXPAND.match(expand) if expand else None
        if expand and not match:
            raise bad_request(f"Could not expand '{expand}' on type 'microsoft.graph.listItem'.")
        wanted = match["select"].split(",") if match and match["select"] else None

        def render(item: ListItem) -> Json:
            if item.deleted:
                return {
                    "id": item.id,
                    "lastModifiedDateTime": iso(item.modified),
                    "deleted": {"state": "deleted"},
                }
            who = {"application": app, "user": {"displayName": "SharePoint App"}}
            out: Json = {
                "@odata.etag": f'"{item.guid},{item.version}"',
                "id": item.id,
                "createdDateTime": iso(item.created),
                "lastModifiedDateTime": iso(item.modified),
                "eTag": f'"{item.guid},{item.version}"',
                "webUrl": f"{sp.web_url}/DispForm.aspx?ID={item.id}",
                "createdBy": who,
                "lastModifiedBy": who,
                "parentReference": {"id": sp.id, "siteId": site_id},
                "contentType": {"id": "0x0100", "name": "Item"},
            }
            if match:
                out["fields"] = _fields_of(sp, item, wanted)
            return select(req, out, ITEM_PROPERTIES, "listItem")

        return render


def _fields_of(sp: SpList, item: ListItem, wanted: list[str] | None) -> Json:
    values: Json = {
        "@odata.etag": f'"{item.guid},{item.version}"',
        "id": item.id,
        "ContentType": "Item",
        "Created": iso(item.created),
        "Modified": iso(item.modified),
    }
    values.update({c.name: item.fields[c.name] for c in sp.columns if c.name in item.fields})
    if wanted is None:
        return values
    return {k: v for k, v in values.items() if k in wanted or k == "@odata.etag"}
