"""SharePoint sites: `/sites/root`, `/sites/{hostname}`, `/sites/{site-id}` and
`/sites/{hostname}:/sites/{path}` (trailing colon optional before a further segment), each
followed by nothing, `/drive...` (the default document library), `/drives[/{id}...]` or
`/lists...`.

Site ids look like `contoso.sharepoint.com,<site guid>,<web guid>`. The sandbox holds the
tenant's root site and the syncd site named by `ctx.credentials["graph"]["site_id"]`, each with
one "Documents" library.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.sandbox.core import Request, Response
from syncd.sandbox.graph_common import (
    Json,
    bad_request,
    iso,
    method_not_allowed,
    not_found,
    parse_iso,
    select,
)
from syncd.sandbox.graph_drive import Drive
from syncd.sandbox.graph_items import DriveRoutes
from syncd.sandbox.graph_lists import ListRoutes, SpList

SITE_PROPERTIES = frozenset(
    [
        "id",
        "name",
        "displayName",
        "description",
        "createdDateTime",
        "lastModifiedDateTime",
        "webUrl",
        "root",
        "siteCollection",
        "sharepointIds",
        "drive",
        "drives",
        "lists",
        "eTag",
        "isPersonalSite",
    ]
)
_SITE = re.compile(r"^/(?P<key>[^/:]+)(?::(?P<path>[^:]*)(?::)?)?(?P<rest>.*)$")


@dataclass
class Site:
    id: str
    path: str  # server-relative, "" for the root site, "/sites/syncd" otherwise
    display_name: str
    created: datetime
    drive_id: str
    lists: dict[str, SpList] = field(default_factory=dict)

    @property
    def hostname(self) -> str:
        return self.id.split(",")[0]

    @property
    def web_url(self) -> str:
        return f"https://{self.hostname}{self.path}"

    def render(self) -> Json:
        out: Json = {
            "id": self.id,
            "name": self.path.rsplit("/", 1)[-1] or self.hostname,
            "displayName": self.display_name,
            "description": "",
            "createdDateTime": iso(self.created),
            "lastModifiedDateTime": iso(self.created),
            "webUrl": self.web_url,
            "siteCollection": {"hostname": self.hostname},
            "isPersonalSite": False,
        }
        if not self.path:
            out["root"] = {}
        return out

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "path": self.path,
            "display_name": self.display_name,
            "created": iso(self.created),
            "drive_id": self.drive_id,
            "lists": [sp.to_json() for sp in self.lists.values()],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Site:
        lists = [SpList.from_json(raw) for raw in d["lists"]]
        return cls(
            d["id"],
            d["path"],
            d["display_name"],
            parse_iso(d["created"]),
            d["drive_id"],
            {sp.id: sp for sp in lists},
        )


class SiteRoutes:
    def __init__(
        self,
        sites: Callable[[], dict[str, Site]],
        drives: Callable[[], dict[str, Drive]],
        drive_routes: DriveRoutes,
        list_routes: ListRoutes,
    ) -> None:
        self._sites = sites
        self._drives = drives
        self.drive_routes = drive_routes
        self.list_routes = list_routes

    def handle(self, req: Request, rest: str, app: Json) -> Response:
        """`rest` is the path after `/v1.0/sites`."""
        if rest in ("", "/"):
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(200, {"value": [s.render() for s in self._sites().values()]})
        match = _SITE.match(rest)
        if match is None:
            raise bad_request("Invalid site address.")
        site = self._find(match["key"], match["path"])
        tail = match["rest"]
        if tail in ("", "/"):
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(200, select(req, site.render(), SITE_PROPERTIES, "site"))
        drive = self._drives()[site.drive_id]
        if tail == "/drive" or tail.startswith(("/drive/", "/drive:")):
            return self.drive_routes.handle(req, drive, tail[len("/drive") :], app)
        if tail in ("/drives", "/drives/"):
            if req.method != "GET":
                raise method_not_allowed(req, ["GET"])
            return Response.json(200, {"value": [drive.describe(site.display_name)]})
        if tail.startswith("/drives/"):
            drive_id, _, more = tail[len("/drives/") :].partition("/")
            if drive_id != site.drive_id:
                raise not_found("The drive was not found on this site.")
            return self.drive_routes.handle(req, drive, "/" + more if more else "", app)
        if tail == "/lists" or tail.startswith("/lists/"):
            return self.list_routes.handle(
                req, site.lists, site.id, site.web_url, tail[len("/lists") :], app
            )
        segment = tail.strip("/").split("/")[0]
        raise bad_request(f"Resource not found for the segment '{segment}'.", "BadRequest")

    def _find(self, key: str, path: str | None) -> Site:
        sites = self._sites().values()
        if key == "root":
            wanted_host, wanted_path = None, ""
        elif "," in key:
            found = next((s for s in sites if s.id.casefold() == key.casefold()), None)
            if found is None:
                raise not_found("Requested site could not be found")
            return found
        else:
            wanted_host, wanted_path = key, (path or "").rstrip("/")
        for site in sites:
            host_ok = wanted_host is None or site.hostname.casefold() == wanted_host.casefold()
            if host_ok and site.path.casefold() == wanted_path.casefold():
                return site
        raise not_found("Requested site could not be found")
