"""SharePoint and its record kinds, as the Microsoft Graph connector (syncd/connectors/graph.py)
reads them: the system (and settings section) is `graph`, the kinds admins write `sharepoint.*`."""

from __future__ import annotations

from syncd.vendors.declare import RecordKind, Values, Vendor, names

FILE = RecordKind(
    name="sharepoint.file",
    var="file",
    fields=names("id name path folder size mime_type created_at modified_at web_url"),
    changed_at=("modified_at",),
    values={
        "size": Values("number"),
        "created_at": Values("instant"),
        "modified_at": Values("instant"),
    },
)
ITEM = RecordKind(
    name="sharepoint.item",
    var="item",
    fields=names("id list created_at modified_at"),
    changed_at=("modified_at",),
    mappings=frozenset({"fields"}),
)

GRAPH = Vendor(system="graph", family="sharepoint", label="SharePoint", kinds=(FILE, ITEM))
