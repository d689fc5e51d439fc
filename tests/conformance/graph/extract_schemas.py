"""Extract, from Microsoft Graph's published v1.0 metadata, the JSON Schemas of the resources
syncd reads and writes, into `graph-v1.0-subset.schema.json` next to this script.

    python extract_schemas.py cleanMetadata.xml <commit> > graph-v1.0-subset.schema.json

The input is `clean_v10_metadata/cleanMetadata.xml` of microsoftgraph/msgraph-metadata, the
CSDL from which that repository generates `openapi/v1.0/openapi.yaml`. Types are mapped as that
OpenAPI does (Edm.String -> string, Edm.Int64 -> integer, Edm.DateTimeOffset -> date-time
string, enums -> strings, `Collection(T)` -> array, a base type's properties inherited, every
property nullable unless `Nullable="false"`). Navigation properties are left out except those
syncd expands (`listItem.fields`). Objects accept only their declared properties and instance
annotations (keys holding "@"); an open type with nothing declared but its id (the list item
`fieldValueSet`, whose properties are the list's columns) accepts any.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from typing import Any

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ROOTS = ("driveItem", "listItem", "user", "message", "uploadSession")
EXPANDED = {("listItem", "fields")}
SCALARS = {
    "Edm.String": {"type": "string"}, "Edm.Boolean": {"type": "boolean"},
    "Edm.Int16": {"type": "integer"}, "Edm.Int32": {"type": "integer"},
    "Edm.Int64": {"type": "integer"}, "Edm.Byte": {"type": "integer"},
    "Edm.Double": {"type": "number"}, "Edm.Single": {"type": "number"},
    "Edm.Decimal": {"type": "number"},
    "Edm.DateTimeOffset": {"type": "string", "format": "date-time"},
    "Edm.Date": {"type": "string"}, "Edm.TimeOfDay": {"type": "string"},
    "Edm.Duration": {"type": "string"}, "Edm.Guid": {"type": "string"},
    "Edm.Binary": {"type": "string"}, "Edm.Stream": {"type": "string"},
}


def extract(csdl: str, commit: str) -> dict[str, Any]:
    root = ET.fromstring(csdl)
    schema = next(s for s in root.iter(f"{EDM}Schema") if s.get("Namespace") == "microsoft.graph")
    types = {t.get("Name"): t for t in schema if t.tag in (f"{EDM}EntityType",
                                                          f"{EDM}ComplexType")}
    enums = {t.get("Name") for t in schema if t.tag == f"{EDM}EnumType"}
    defs: dict[str, Any] = {}

    def ref(type_name: str) -> dict[str, Any]:
        if type_name.startswith("Collection("):
            return {"type": "array", "items": ref(type_name[len("Collection("):-1])}
        if type_name in SCALARS:
            return dict(SCALARS[type_name])
        name = type_name.removeprefix("graph.").removeprefix("microsoft.graph.")
        if name in enums:
            return {"type": "string"}
        if name not in defs:
            defs[name] = {}  # placeholder: recursion
            defs[name] = build(name)
        return {"$ref": f"#/$defs/{name}"}

    def build(name: str) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        chain, node = [], types[name]
        while node is not None:
            chain.append(node)
            base = node.get("BaseType")
            node = types[base.removeprefix("graph.")] if base else None
        for node in reversed(chain):
            for prop in node:
                navigation = prop.tag == f"{EDM}NavigationProperty"
                if prop.tag != f"{EDM}Property" and not (
                        navigation and (node.get("Name"), prop.get("Name")) in EXPANDED):
                    continue
                schema_of = ref(prop.get("Type", ""))
                if prop.get("Nullable", "true") != "false":
                    schema_of = {"anyOf": [schema_of, {"type": "null"}]}
                properties[prop.get("Name", "")] = schema_of
        open_type = types[name].get("OpenType") == "true" and set(properties) <= {"id"}
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if not open_type:
            out["patternProperties"] = {"@": {}}
            out["additionalProperties"] = False
        return out

    for name in ROOTS:
        ref(name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "source": {"repository": "https://github.com/microsoftgraph/msgraph-metadata",
                   "path": "clean_v10_metadata/cleanMetadata.xml", "commit": commit,
                   "licence": "MIT"},
        "$defs": dict(sorted(defs.items())),
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8-sig") as f:
        json.dump(extract(f.read(), sys.argv[2]), sys.stdout, indent=1)
    sys.stdout.write("\n")
