"""The REST resources under /services/data/vXX.X/: query, sObjects, collections, describe.

Each handler takes an authenticated `Call` and answers as Salesforce does: status codes,
bodies, `nextRecordsUrl` paths, per-record results of collections (200 even when some fail)
and errors as `[{"message","errorCode","fields"}]` lists raised as `SfError`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncd.sandbox.core import Request, Response
from syncd.sandbox.salesforce_schema import (
    Catalog,
    FieldDef,
    SfError,
    SObjectDef,
    format_datetime,
    id18,
    normalize_id,
    parse_datetime,
)
from syncd.sandbox.salesforce_store import Store, not_found
from syncd.sandbox.soql import run_query

DEFAULT_BATCH, MIN_BATCH = 2000, 200
MAX_COLLECTION = 200
MAX_OPEN_CURSORS = 10  # Salesforce keeps 10 open query cursors per user, dropping the oldest
REPLICATION_DAYS, DELETE_LOG_DAYS = 30, 15
_ROLLED_BACK = SfError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not "
                       "all records were valid and the request was using AllOrNone header")


class _RollBack(Exception):
    """Unwinds an allOrNone collection after its per-record results are known."""


@dataclass(frozen=True)
class Call:
    """One authenticated API request."""

    req: Request
    version: str  # "59.0"
    user_id: str
    now: datetime

    @property
    def base(self) -> str:
        return f"/services/data/v{self.version}"


@dataclass
class Cursor:
    rows: list[dict[str, Any]]
    total: int
    batch: int


class Cursors:
    """Open query locators; a query's rows are fixed when it runs, as in Salesforce."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, Cursor] = OrderedDict()

    def clear(self) -> None:
        self._open.clear()

    def open(self, cursor: Cursor) -> str:
        locator = id18("01g" + secrets.token_hex(6).upper())
        self._open[locator] = cursor
        while len(self._open) > MAX_OPEN_CURSORS:
            self._open.popitem(last=False)
        return locator

    def page(self, call: Call, locator: str, start: int) -> dict[str, Any]:
        """One page; the locator closes after its last page."""
        cursor = self._open.get(locator)
        if cursor is None or start < 0 or start > len(cursor.rows):
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        end = start + cursor.batch
        out: dict[str, Any] = {"totalSize": cursor.total, "done": end >= len(cursor.rows)}
        if end < len(cursor.rows):
            out["nextRecordsUrl"] = f"{call.base}/query/{locator}-{end}"
        else:
            del self._open[locator]
        out["records"] = cursor.rows[start:end]
        return out


def allow(req: Request, *methods: str) -> None:
    """405 unless the method is one the resource takes (HEAD goes with GET)."""
    accepted = set(methods) | ({"HEAD"} if "GET" in methods else set())
    if req.method not in accepted:
        raise SfError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. "
                      f"Allowed are {','.join(sorted(accepted))}")


def json_body(req: Request) -> Any:
    """The body as JSON, or Salesforce's JSON_PARSER_ERROR with line and column."""
    if not req.body.strip():
        raise SfError(400, "JSON_PARSER_ERROR",
                      "No content to map due to end-of-input at [line:1, column:0]")
    try:
        return json.loads(req.body)
    except UnicodeDecodeError:
        raise SfError(400, "JSON_PARSER_ERROR", "Invalid UTF-8 in the request body") from None
    except json.JSONDecodeError as exc:
        where = f"at [line:{exc.lineno}, column:{exc.colno}]"
        if exc.pos >= len(exc.doc):
            raise SfError(400, "JSON_PARSER_ERROR", f"Unexpected end-of-input {where}") from None
        ch = exc.doc[exc.pos]
        raise SfError(400, "JSON_PARSER_ERROR", (
            f"Unexpected character ('{ch}' (code {ord(ch)})): expected a valid value (number, "
            f"String, array, object, 'true', 'false' or 'null') {where}")) from None


def object_body(req: Request, sobject: str) -> dict[str, Any]:
    body = json_body(req)
    if not isinstance(body, dict):
        token = "START_ARRAY" if isinstance(body, list) else "VALUE"
        raise SfError(400, "JSON_PARSER_ERROR",
                      f"Cannot deserialize instance of {sobject} out of {token} token")
    return body


def no_column(name: str, entity: str) -> SfError:
    return SfError(400, "INVALID_FIELD", (
        f"No such column '{name}' on entity '{entity}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference your "
        "WSDL or the describe call for the appropriate names."))


def render(obj: SObjectDef, rec: Mapping[str, Any], base: str,
           fields: list[FieldDef] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {"type": obj.name,
                                          "url": f"{base}/sobjects/{obj.name}/{rec['Id']}"}}
    for fdef in fields if fields is not None else obj.fields.values():
        out[fdef.name] = rec.get(fdef.name)
    return out


def field_list(obj: SObjectDef, spec: str) -> list[FieldDef]:
    fields = []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        fdef = obj.field(name)
        if fdef is None:
            raise no_column(name, obj.name)
        fields.append(fdef)
    return fields


class RestApi:
    """Handlers for one request against the org's catalog and records."""

    def __init__(self, catalog: Catalog, store: Store, cursors: Cursors) -> None:
        self.catalog = catalog
        self.store = store
        self.cursors = cursors

    def route(self, call: Call, rest: list[str]) -> Response:
        head = rest[0].lower() if rest else ""
        if not rest:
            allow(call.req, "GET")
            return Response.json(200, self.resources(call))
        if head in ("query", "queryall") and len(rest) <= 2:
            allow(call.req, "GET")
            if len(rest) == 2:
                return Response.json(200, self.more(call, rest[1]))
            return Response.json(200, self.query(call, include_deleted=head == "queryall"))
        if head == "sobjects":
            return self.sobjects(call, rest[1:])
        if head == "composite" and len(rest) >= 2 and rest[1].lower() == "sobjects":
            return self.collections(call, rest[2:])
        raise not_found()

    def resources(self, call: Call) -> dict[str, str]:
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        return {name: f"{call.base}/{name}" for name in names}

    # -- query

    def query(self, call: Call, *, include_deleted: bool) -> dict[str, Any]:
        text = call.req.arg("q")
        if not text:
            raise SfError(400, "MALFORMED_QUERY", "A query string has to be specified")
        result = run_query(text, self.catalog, self.store, call.now,
                           include_deleted=include_deleted, url_prefix=call.base)
        batch = batch_size(call.req)
        if len(result.records) <= batch:
            return {"totalSize": result.total_size, "done": True, "records": result.records}
        locator = self.cursors.open(Cursor(result.records, result.total_size, batch))
        return self.cursors.page(call, locator, 0)

    def more(self, call: Call, token: str) -> dict[str, Any]:
        locator, _, start = token.rpartition("-")
        if not locator or not start.isdigit():
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.cursors.page(call, locator, int(start))

    # -- sObjects

    def sobjects(self, call: Call, rest: list[str]) -> Response:
        if not rest:
            allow(call.req, "GET")
            return Response.json(200, self.describe_global(call))
        obj = self.catalog.get(rest[0])
        if obj is None:
            raise not_found()
        if len(rest) == 1:
            allow(call.req, "GET", "POST")
            if call.req.method == "POST":
                new_id = self.store.create(obj, object_body(call.req, obj.name), call.now,
                                           call.user_id)
                return Response.json(201, {"id": new_id, "success": True, "errors": []})
            return Response.json(200, {"objectDescribe": self.summary(call, obj),
                                       "recentItems": []})
        if len(rest) == 2:
            return self.sobject_item(call, obj, rest[1])
        if len(rest) == 3:
            return self.by_external_id(call, obj, rest[1], rest[2])
        raise not_found()

    def sobject_item(self, call: Call, obj: SObjectDef, item: str) -> Response:
        special: dict[str, Callable[[Call, SObjectDef], Any]] = {
            "describe": self.describe, "updated": self.updated, "deleted": self.deleted}
        if item.lower() in special:
            allow(call.req, "GET")
            return Response.json(200, special[item.lower()](call, obj))
        if normalize_id(item) is None:
            raise SfError(404, "NOT_FOUND",
                          f"Provided external ID field does not exist or is not accessible: {item}")
        allow(call.req, "GET", "PATCH", "DELETE")
        if call.req.method == "PATCH":
            self.store.update(obj, item, object_body(call.req, obj.name), call.now, call.user_id)
            return Response.empty(204)
        if call.req.method == "DELETE":
            self.store.delete(obj, item, call.now, call.user_id)
            return Response.empty(204)
        rec = self.store.live(obj, item)
        spec = call.req.arg("fields")
        fields = field_list(obj, spec) if spec else None
        return Response.json(200, render(obj, rec, call.base, fields))

    def external_field(self, obj: SObjectDef, name: str) -> FieldDef:
        fdef = obj.field(name)
        if fdef is None or not fdef.external_id:
            raise SfError(404, "NOT_FOUND",
                          f"Provided external ID field does not exist or is not accessible: {name}")
        return fdef

    def by_external_id(self, call: Call, obj: SObjectDef, name: str, value: str) -> Response:
        allow(call.req, "GET", "PATCH", "DELETE")
        fdef = self.external_field(obj, name)
        matches = self.store.find_by(obj, fdef, value)
        if len(matches) > 1:
            return Response.json(300, [f"{call.base}/sobjects/{obj.name}/{m['Id']}"
                                       for m in matches])
        if call.req.method == "PATCH":
            body = object_body(call.req, obj.name)
            if any(key.lower() == fdef.name.lower() for key in body):
                raise SfError(400, "INVALID_FIELD", f"The field {fdef.name} is specified in the "
                              "URL and must not also be in the request body", [fdef.name])
            record_id, created = self.upsert(call, obj, fdef, value, body, matches)
            if created:
                return Response.json(201, {"id": record_id, "success": True, "errors": [],
                                           "created": True})
            return Response.empty(204)
        if not matches:
            raise not_found()
        if call.req.method == "DELETE":
            self.store.delete(obj, matches[0]["Id"], call.now, call.user_id)
            return Response.empty(204)
        return Response.json(200, render(obj, matches[0], call.base))

    def upsert(self, call: Call, obj: SObjectDef, fdef: FieldDef, value: Any,
               body: Mapping[str, Any], matches: list[dict[str, Any]]) -> tuple[str, bool]:
        if matches:
            return self.store.update(obj, matches[0]["Id"], body, call.now, call.user_id), False
        record = {**body, fdef.name: value}
        return self.store.create(obj, record, call.now, call.user_id), True

    # -- getUpdated / getDeleted

    def window(self, call: Call) -> tuple[datetime, datetime]:
        """start/end of a replication call, whole minutes, end capped at now."""
        bounds = []
        for name in ("start", "end"):
            raw = call.req.arg(name) or ""
            when = parse_datetime(raw)
            if when is None:
                raise SfError(400, "INVALID_REPLICATION_DATE",
                              f"{name}Date: could not parse '{raw}' as an ISO-8601 dateTime")
            bounds.append(when.replace(second=0, microsecond=0))
        start, end = bounds
        now = call.now.replace(second=0, microsecond=0)
        if end <= start:
            raise SfError(400, "INVALID_REPLICATION_DATE",
                          "EndDate must chronologically follow the StartDate")
        if start < now - timedelta(days=REPLICATION_DAYS):
            raise SfError(400, "INVALID_REPLICATION_DATE",
                          f"startDate cannot be more than {REPLICATION_DAYS} days ago")
        return start, min(end, now)

    def updated(self, call: Call, obj: SObjectDef) -> dict[str, Any]:
        start, latest = self.window(call)
        ids = [r["Id"] for r in self.store.scan(obj.name, False)
               if start <= _instant(r["SystemModstamp"]) < latest]
        return {"ids": ids, "latestDateCovered": format_datetime(latest)}

    def deleted(self, call: Call, obj: SObjectDef) -> dict[str, Any]:
        start, latest = self.window(call)
        earliest = (call.now - timedelta(days=DELETE_LOG_DAYS)).replace(second=0, microsecond=0)
        found = [{"id": d["id"], "deletedDate": d["deletedDate"]} for d in self.store.deletions
                 if d["type"] == obj.name
                 and max(start, earliest) <= _instant(d["deletedDate"]) < latest]
        return {"deletedRecords": found, "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(latest)}

    # -- describe

    def summary(self, call: Call, obj: SObjectDef) -> dict[str, Any]:
        url = f"{call.base}/sobjects/{obj.name}"
        return {
            "name": obj.name, "label": obj.label or obj.name,
            "labelPlural": obj.label_plural or obj.name, "keyPrefix": obj.key_prefix,
            "custom": False,
            "createable": obj.createable, "updateable": obj.updateable,
            "deletable": obj.deletable, "queryable": True, "replicateable": True,
            "urls": {"sobject": url, "describe": f"{url}/describe",
                     "rowTemplate": f"{url}/{{ID}}"},
        }

    def describe_global(self, call: Call) -> dict[str, Any]:
        return {"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
                "sobjects": [self.summary(call, o) for o in self.catalog.objects.values()]}

    def describe(self, call: Call, obj: SObjectDef) -> dict[str, Any]:
        return {**self.summary(call, obj), "fields": [_describe_field(f)
                                                      for f in obj.fields.values()]}

    # -- composite sObject collections

    def collections(self, call: Call, rest: list[str]) -> Response:
        if not rest:
            allow(call.req, "POST", "PATCH", "DELETE")
            if call.req.method == "DELETE":
                return Response.json(200, self.delete_many(call))
            return Response.json(200, self.write_many(call, None))
        obj = self.catalog.get(rest[0])
        if obj is None:
            raise not_found()
        if len(rest) == 1:
            allow(call.req, "GET")
            return Response.json(200, self.retrieve_many(call, obj))
        if len(rest) == 2:
            allow(call.req, "PATCH")
            upsert = (obj, self.external_field(obj, rest[1]))
            return Response.json(200, self.write_many(call, upsert))
        raise not_found()

    def write_many(self, call: Call, upsert: tuple[SObjectDef, FieldDef] | None
                   ) -> list[dict[str, Any]]:
        body = object_body(call.req, "SObjectCollection")
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SfError(400, "JSON_PARSER_ERROR", "records must be a list of sObjects")
        _check_count(len(records))

        def one(item: dict[str, Any]) -> dict[str, Any]:
            if upsert is not None:
                return self.upsert_item(call, *upsert, item)
            if call.req.method == "POST":
                new_id = self.store.create(self.item_type(item), item, call.now, call.user_id)
                return {"id": new_id, "success": True, "errors": []}
            return self.update_item(call, item)

        def item_id(index: int) -> str | None:
            if call.req.method == "POST":
                return None
            return next((v for k, v in records[index].items() if k.lower() == "id"), None)

        return self.each(records, one, bool(body.get("allOrNone")), item_id)

    def item_type(self, item: Mapping[str, Any]) -> SObjectDef:
        attributes = item.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        obj = self.catalog.get(name) if isinstance(name, str) else None
        if obj is None:
            raise SfError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return obj

    def update_item(self, call: Call, item: dict[str, Any]) -> dict[str, Any]:
        record_id = next((item[k] for k in item if k.lower() == "id"), None)
        fields = {k: v for k, v in item.items() if k.lower() != "id"}
        if not record_id:
            raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call")
        if normalize_id(record_id) is None:
            raise SfError(400, "MALFORMED_ID", f"malformed id {record_id}")
        updated = self.store.update(self.item_type(item), record_id, fields, call.now,
                                    call.user_id)
        return {"id": updated, "success": True, "errors": []}

    def upsert_item(self, call: Call, obj: SObjectDef, fdef: FieldDef,
                    item: dict[str, Any]) -> dict[str, Any]:
        if self.item_type(item) is not obj:
            raise SfError(400, "INVALID_TYPE", f"records must all be of type {obj.name}")
        key = next((k for k in item if k.lower() == fdef.name.lower()), None)
        if key is None or item[key] in (None, ""):
            raise SfError(400, "MISSING_ARGUMENT", f"{fdef.name} not specified", [fdef.name])
        fields = {k: v for k, v in item.items() if k != key}
        matches = self.store.find_by(obj, fdef, str(item[key]))
        if len(matches) > 1:
            raise SfError(400, "DUPLICATE_EXTERNAL_ID", (
                f"{fdef.name}: more than one record found for external id field: "
                f"{[m['Id'] for m in matches]}"), [fdef.name])
        record_id, created = self.upsert(call, obj, fdef, item[key], fields, matches)
        return {"id": record_id, "success": True, "errors": [], "created": created}

    def delete_many(self, call: Call) -> list[dict[str, Any]]:
        ids = [i for i in (call.req.arg("ids") or "").split(",") if i]
        if not ids:
            raise SfError(400, "MISSING_ARGUMENT", "ids parameter is required")
        _check_count(len(ids))

        def one(record_id: str) -> dict[str, Any]:
            canonical = normalize_id(record_id)
            obj = self.catalog.by_id(canonical) if canonical else None
            if obj is None:
                raise SfError(400, "MALFORMED_ID", f"malformed id {record_id}")
            return {"id": self.store.delete(obj, record_id, call.now, call.user_id),
                    "success": True, "errors": []}

        all_or_none = (call.req.arg("allOrNone") or "false").lower() == "true"
        return self.each(ids, one, all_or_none, lambda index: ids[index])

    def each(self, items: list[Any], op: Callable[[Any], dict[str, Any]], all_or_none: bool,
             item_id: Callable[[int], str | None]) -> list[dict[str, Any]]:
        """Per-record results in request order; with allOrNone any failure undoes them all.
        Failures name the record's id when the request did (updates, deletes)."""
        results: list[dict[str, Any]] = []

        def failed(index: int, error: SfError) -> dict[str, Any]:
            known = item_id(index)
            body = {"success": False, "errors": [error.record_error()]}
            return {"id": known, **body} if known else body

        try:
            with self.store.atomic():
                for index, item in enumerate(items):
                    try:
                        results.append(op(item))
                    except SfError as exc:
                        results.append(failed(index, exc))
                if all_or_none and not all(r["success"] for r in results):
                    raise _RollBack
        except _RollBack:
            results = [r if not r["success"] else failed(i, _ROLLED_BACK)
                       for i, r in enumerate(results)]
        return results

    def retrieve_many(self, call: Call, obj: SObjectDef) -> list[dict[str, Any] | None]:
        ids = [i for i in (call.req.arg("ids") or "").split(",") if i]
        spec = call.req.arg("fields")
        if not ids or not spec:
            raise SfError(400, "MISSING_ARGUMENT", "ids and fields parameters are required")
        _check_count(len(ids))
        fields = field_list(obj, spec)
        out: list[dict[str, Any] | None] = []
        for record_id in ids:
            found = self.store.lookup(record_id)
            out.append(render(obj, found[1], call.base, fields)
                       if found and found[0] is obj else None)
        return out


def batch_size(req: Request) -> int:
    """`Sforce-Query-Options: batchSize=N`, held to Salesforce's 200..2000."""
    match = re.search(r"batchSize\s*=\s*(\d+)", req.header("Sforce-Query-Options") or "")
    if match is None:
        return DEFAULT_BATCH
    return max(MIN_BATCH, min(DEFAULT_BATCH, int(match.group(1))))


def _check_count(count: int) -> None:
    if count > MAX_COLLECTION:
        raise SfError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than "
                      f"{MAX_COLLECTION} records into this call")


def _instant(stamp: str) -> datetime:
    when = parse_datetime(stamp)
    assert when is not None
    return when


def _describe_field(fdef: FieldDef) -> dict[str, Any]:
    return {
        "name": fdef.name, "label": fdef.label or fdef.name, "type": fdef.type,
        "length": fdef.length, "nillable": fdef.nillable,
        "createable": fdef.createable, "updateable": fdef.updateable,
        "defaultedOnCreate": fdef.defaulted, "calculated": fdef.calculated,
        "nameField": fdef.name_field, "namePointing": fdef.polymorphic,
        "externalId": fdef.external_id, "unique": fdef.unique, "custom": fdef.custom,
        "filterable": fdef.filterable, "sortable": fdef.sortable,
        "referenceTo": list(fdef.reference_to), "relationshipName": fdef.relationship_name,
        "polymorphicForeignKey": fdef.polymorphic,
        "picklistValues": [{"active": True, "defaultValue": False, "label": v, "validFor": None,
                            "value": v} for v in fdef.picklist],
        "restrictedPicklist": bool(fdef.picklist),
    }
