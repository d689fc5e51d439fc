"""The org's records: validated writes, derived fields, audit stamps, cascading deletes, undo.

Every write goes through the checks Salesforce makes (unknown and read-only fields, value
types, required fields, lookups to missing, deleted or inactive records, unique values) before
anything changes, so a failed call leaves no trace. `atomic()` undoes a group of writes, which
is how composite `allOrNone` rolls back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from syncd.sandbox.salesforce_schema import (
    CLOSED_TASK_STATUSES,
    NUMBER_TYPES,
    STAGES,
    TEXT_TYPES,
    Catalog,
    FieldDef,
    SfError,
    SObjectDef,
    format_datetime,
    make_id,
    normalize_id,
    parse_date,
    parse_datetime,
)

# Fields a fixture may set although the API computes them, to describe history.
SEEDABLE = frozenset({"IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                      "LastModifiedById", "SystemModstamp", "Name"})
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CASCADE = {"Account": (("Contact", "AccountId"), ("Opportunity", "AccountId"))}
_ACTIVITIES = ("Task", "Event")
Record = dict[str, Any]


def not_found() -> SfError:
    return SfError(404, "NOT_FOUND", "The requested resource does not exist")


def entity_deleted() -> SfError:
    return SfError(404, "ENTITY_IS_DELETED", "entity is deleted")


class Store:
    """Records by sObject and id, in creation order, plus the log of deletions."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.tables: dict[str, dict[str, Record]] = {name: {} for name in self._names()}
        self.deletions: list[dict[str, str]] = []  # {"id", "type", "deletedDate"}
        self.serial = 1_000_000
        self._undo: list[tuple[str, str, Record | None]] | None = None

    def _names(self) -> list[str]:
        return [obj.name for obj in self.catalog.objects.values()]

    # -- reading (the soql.Source protocol)

    def scan(self, sobject: str, include_deleted: bool) -> Iterable[Record]:
        rows = self.tables[sobject].values()
        return rows if include_deleted else (r for r in rows if not r.get("IsDeleted"))

    def lookup(self, record_id: str) -> tuple[SObjectDef, Record] | None:
        """A live record by id (any case, 15 or 18 chars)."""
        canonical = normalize_id(record_id)
        obj = self.catalog.by_id(canonical) if canonical else None
        rec = self.tables[obj.name].get(canonical or "") if obj else None
        if obj is None or rec is None or rec.get("IsDeleted"):
            return None
        return obj, rec

    def live(self, obj: SObjectDef, record_id: str) -> Record:
        """The live record, else 404 NOT_FOUND or ENTITY_IS_DELETED as Salesforce answers."""
        canonical = normalize_id(record_id)
        rec = self.tables[obj.name].get(canonical or "")
        if rec is None:
            if canonical and any(d["id"] == canonical for d in self.deletions):
                raise entity_deleted()
            raise not_found()
        if rec.get("IsDeleted"):
            raise entity_deleted()
        return rec

    def find_by(self, obj: SObjectDef, fdef: FieldDef, value: str) -> list[Record]:
        folded = value.casefold()
        return [r for r in self.scan(obj.name, False)
                if r.get(fdef.name) is not None and str(r[fdef.name]).casefold() == folded]

    # -- writing

    def create(self, obj: SObjectDef, body: Mapping[str, Any], now: datetime, user_id: str,
               *, record_id: str | None = None, seeding: bool = False) -> str:
        if not obj.createable:
            raise SfError(400, "INVALID_TYPE_FOR_OPERATION",
                          f"entity type cannot be inserted: {obj.name}")
        values = self._values(obj, body, creating=True, seeding=seeding)
        rec: Record = {f.name: False if f.type == "boolean" else None
                       for f in obj.fields.values()}
        rec.update(_defaults(obj, user_id))
        if seeding and "Name" in values and obj.field("LastName"):
            rec.update(_split_name(values.pop("Name")))
        rec.update(values)
        rec["Id"] = record_id or self.new_id(obj)
        _stamp_created(obj, rec, format_datetime(now), user_id)
        self._finish(obj, rec, set(values) | {"Id"}, now, check_refs=not seeding)
        self._put(obj.name, rec["Id"], rec)
        if rec.get("IsDeleted"):
            self.deletions.append({"id": rec["Id"], "type": obj.name,
                                   "deletedDate": rec["SystemModstamp"]})
        return rec["Id"]

    def update(self, obj: SObjectDef, record_id: str, body: Mapping[str, Any], now: datetime,
               user_id: str) -> str:
        current = self.live(obj, record_id)
        if not obj.updateable:
            raise SfError(400, "INVALID_TYPE_FOR_OPERATION",
                          f"entity type cannot be updated: {obj.name}")
        values = self._values(obj, body, creating=False, seeding=False)
        rec = dict(current)
        rec.update(values)
        stamp = format_datetime(now)
        rec.update(LastModifiedDate=stamp, LastModifiedById=user_id, SystemModstamp=stamp)
        self._finish(obj, rec, set(values), now, check_refs=True)
        self._put(obj.name, rec["Id"], rec)
        return rec["Id"]

    def delete(self, obj: SObjectDef, record_id: str, now: datetime, user_id: str) -> str:
        rec = self.live(obj, record_id)
        if not obj.deletable:
            raise SfError(400, "INVALID_TYPE_FOR_OPERATION",
                          f"entity type cannot be deleted: {obj.name}")
        doomed = self._cascade(obj.name, rec["Id"])
        stamp = format_datetime(now)
        for type_name, doomed_id in doomed:
            self._remove(type_name, doomed_id, stamp, user_id)
        self._clear_lookups({doomed_id for _, doomed_id in doomed}, stamp, user_id)
        return rec["Id"]

    def new_id(self, obj: SObjectDef) -> str:
        self.serial += 1
        return make_id(obj.key_prefix, self.serial)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Undo every write made inside the block if it raises."""
        if self._undo is not None:
            yield
            return
        self._undo = []
        deletions, serial = len(self.deletions), self.serial
        try:
            yield
        except BaseException:
            for sobject, record_id, previous in reversed(self._undo):
                if previous is None:
                    self.tables[sobject].pop(record_id, None)
                else:
                    self.tables[sobject][record_id] = previous
            del self.deletions[deletions:]
            self.serial = serial
            raise
        finally:
            self._undo = None

    # -- persistence

    def snapshot(self) -> dict[str, Any]:
        return {"serial": self.serial, "deletions": list(self.deletions),
                "records": {name: list(rows.values()) for name, rows in self.tables.items()}}

    def restore(self, data: Mapping[str, Any]) -> None:
        self.serial = int(data.get("serial", self.serial))
        self.deletions = [dict(d) for d in data.get("deletions", [])]
        for name, rows in data.get("records", {}).items():
            obj = self.catalog.get(name)
            if obj is None:
                raise ValueError(f"state holds unknown sObject {name}")
            blank = {f.name: False if f.type == "boolean" else None for f in obj.fields.values()}
            self.tables[obj.name] = {
                row["Id"]: {**blank, **{k: v for k, v in row.items() if k in blank}}
                for row in rows
            }

    # -- internals

    def _put(self, sobject: str, record_id: str, rec: Record | None) -> None:
        table = self.tables[sobject]
        if self._undo is not None:
            previous = table.get(record_id)
            self._undo.append((sobject, record_id, dict(previous) if previous else None))
        if rec is None:
            table.pop(record_id, None)
        else:
            table[record_id] = rec

    def _values(self, obj: SObjectDef, body: Mapping[str, Any], *, creating: bool,
                seeding: bool) -> Record:
        """The body's fields under canonical names, coerced to their types."""
        values: Record = {}
        locked: list[str] = []
        for key, raw in body.items():
            if key == "attributes":
                continue
            fdef = obj.field(key)
            if fdef is None:
                raise SfError(400, "INVALID_FIELD",
                              f"No such column '{key}' on sobject of type {obj.name}")
            allowed = fdef.createable if creating else fdef.updateable
            if not allowed and not (seeding and fdef.name in SEEDABLE):
                locked.append(fdef.name)
                continue
            values[fdef.name] = coerce(fdef, raw)
        if locked:
            raise SfError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", (
                f"Unable to create/update fields: {', '.join(locked)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set."), locked)
        return values

    def _finish(self, obj: SObjectDef, rec: Record, changed: set[str], now: datetime,
                *, check_refs: bool) -> None:
        """Derived fields, then required, reference and uniqueness checks."""
        _derive(obj, rec, changed, now)
        if obj.name in _ACTIVITIES:
            rec["AccountId"] = self._activity_account(rec)
        missing = [f.name for f in obj.fields.values() if f.required and rec.get(f.name) is None]
        if missing:
            raise SfError(400, "REQUIRED_FIELD_MISSING",
                          f"Required fields are missing: [{', '.join(missing)}]", missing)
        if check_refs:
            self.check_references(obj, rec, changed)
        self._check_unique(obj, rec, changed)

    def check_references(self, obj: SObjectDef, rec: Record, names: Iterable[str]) -> None:
        for name in names:
            fdef = obj.field(name)
            value = rec.get(name)
            if fdef is None or fdef.type != "reference" or value is None:
                continue
            target = self.catalog.by_id(value)
            if target is None or target.name not in fdef.reference_to:
                if any(self.catalog.get(t) for t in fdef.reference_to):
                    raise _malformed_id(fdef, value)
                continue  # a type the sandbox does not know: any well-formed id passes
            if target.stub:
                continue  # Profile, UserRole...: described, not emulated; any id of it passes
            found = self.tables[target.name].get(value)
            if found is None:
                raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                              [fdef.name])
            if found.get("IsDeleted"):
                raise SfError(400, "ENTITY_IS_DELETED", "entity is deleted", [fdef.name])
            if fdef.name == "OwnerId":
                _check_owner(obj, target, found)

    def _check_unique(self, obj: SObjectDef, rec: Record, changed: set[str]) -> None:
        for name in changed:
            fdef = obj.field(name)
            if fdef is None or not fdef.unique or rec.get(name) is None:
                continue
            for other in self.find_by(obj, fdef, str(rec[name])):
                if other["Id"] != rec["Id"]:
                    raise SfError(400, "DUPLICATE_VALUE", (
                        f"duplicate value found: {fdef.name} duplicates value on record with id: "
                        f"{other['Id']}"), [fdef.name])

    def _activity_account(self, rec: Record) -> str | None:
        """Task/Event.AccountId: the account of WhatId, else of the WhoId contact."""
        for ref in (rec.get("WhatId"), rec.get("WhoId")):
            found = self.lookup(ref) if ref else None
            if found is None:
                continue
            obj, parent = found
            if obj.name == "Account":
                return parent["Id"]
            if parent.get("AccountId"):
                return parent["AccountId"]
        return None

    def _cascade(self, sobject: str, record_id: str) -> list[tuple[str, str]]:
        """The record and every child Salesforce deletes with it (contacts, deals, activities,
        group memberships), parents first."""
        doomed = [(sobject, record_id)]
        seen = {record_id}
        i = 0
        while i < len(doomed):
            parent_type, parent_id = doomed[i]
            i += 1
            children = [*_CASCADE.get(parent_type, ()), *((a, f) for a in _ACTIVITIES
                                                         for f in ("WhatId", "WhoId"))]
            children += [("GroupMember", "GroupId"), ("GroupMember", "UserOrGroupId")]
            for child_type, fname in children:
                for child in self.scan(child_type, False):
                    if child.get(fname) == parent_id and child["Id"] not in seen:
                        seen.add(child["Id"])
                        doomed.append((child_type, child["Id"]))
        return doomed

    def _remove(self, sobject: str, record_id: str, stamp: str, user_id: str) -> None:
        obj = self.catalog.get(sobject)
        assert obj is not None
        if obj.soft_delete:
            rec = dict(self.tables[sobject][record_id])
            rec.update(IsDeleted=True, SystemModstamp=stamp, LastModifiedDate=stamp,
                       LastModifiedById=user_id)
            self._put(sobject, record_id, rec)
        else:
            self._put(sobject, record_id, None)
        self.deletions.append({"id": record_id, "type": sobject, "deletedDate": stamp})

    def _clear_lookups(self, gone: set[str], stamp: str, user_id: str) -> None:
        """Lookups to deleted records become null, as Salesforce's default lookup option does."""
        for obj in self.catalog.objects.values():
            refs = [f.name for f in obj.fields.values() if f.type == "reference"]
            for rec in list(self.scan(obj.name, False)):
                hit = [name for name in refs if rec.get(name) in gone]
                if hit:
                    new = dict(rec, SystemModstamp=stamp)
                    new.update(dict.fromkeys(hit))
                    self._put(obj.name, rec["Id"], new)


def _stamp_created(obj: SObjectDef, rec: Record, stamp: str, user_id: str) -> None:
    """Audit fields of a new record; a fixture may have given them to describe history."""
    if obj.field("CreatedDate"):
        rec["CreatedDate"] = rec["CreatedDate"] or stamp
        rec["CreatedById"] = rec["CreatedById"] or user_id
        rec["LastModifiedDate"] = rec["LastModifiedDate"] or rec["CreatedDate"]
        rec["LastModifiedById"] = rec["LastModifiedById"] or rec["CreatedById"]
        stamp = rec["LastModifiedDate"]
    rec["SystemModstamp"] = rec["SystemModstamp"] or stamp


def _check_owner(obj: SObjectDef, target: SObjectDef, owner: Record) -> None:
    if target.name == "User" and not owner.get("IsActive"):
        raise SfError(400, "INACTIVE_OWNER_OR_USER", (
            f"operation performed with inactive user [{owner['Id']}] as owner of "
            f"{obj.name.lower()}"), ["OwnerId"])
    if target.name == "Group" and owner.get("Type") != "Queue":
        raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                      ["OwnerId"])


def _malformed_id(fdef: FieldDef, value: Any) -> SfError:
    return SfError(400, "MALFORMED_ID", f"{fdef.name}: id value of incorrect type: {value}",
                   [fdef.name])


def _cannot_deserialize(fdef: FieldDef, value: Any) -> SfError:
    token = ("VALUE_TRUE" if value is True else "VALUE_FALSE" if value is False
             else "VALUE_STRING" if isinstance(value, str)
             else "VALUE_NUMBER_INT" if isinstance(value, int)
             else "VALUE_NUMBER_FLOAT" if isinstance(value, float)
             else "START_ARRAY" if isinstance(value, list) else "START_OBJECT")
    return SfError(400, "JSON_PARSER_ERROR", (
        f"Cannot deserialize instance of {fdef.type} from {token} value {value} or request may "
        f"be missing a required field"), [fdef.name])


def coerce(fdef: FieldDef, value: Any) -> Any:
    """A JSON value as stored for the field's type; raises Salesforce's error when it is not."""
    if value is None:
        return False if fdef.type == "boolean" else None
    kind = fdef.type
    if kind in TEXT_TYPES:
        return _text(fdef, value)
    if kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
    elif kind in NUMBER_TYPES and not isinstance(value, bool):
        number = _number(value)
        if number is not None and kind != "int":
            return number
        if number is not None and number.is_integer():
            return int(number)
    elif kind == "date" and isinstance(value, str) and parse_date(value):
        return value
    elif kind == "datetime" and isinstance(value, str) and (when := parse_datetime(value)):
        return format_datetime(when)
    elif kind in ("id", "reference"):
        canonical = normalize_id(value)
        if canonical is None:
            raise _malformed_id(fdef, value)
        return canonical
    raise _cannot_deserialize(fdef, value)


def _text(fdef: FieldDef, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _cannot_deserialize(fdef, value)
    text = str(value)
    if text == "":
        return None  # Salesforce stores empty text as null
    if fdef.length and len(text) > fdef.length:
        raise SfError(400, "STRING_TOO_LONG", (
            f"{fdef.name}: data value too large: {text[:80]} (max length={fdef.length})"),
            [fdef.name])
    if fdef.type == "email" and not _EMAIL_RE.fullmatch(text):
        raise SfError(400, "INVALID_EMAIL_ADDRESS", f"{fdef.name}: invalid email address: {text}",
                      [fdef.name])
    return text


def _number(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _defaults(obj: SObjectDef, user_id: str) -> Record:
    defaults: dict[str, Record] = {
        "Task": {"Status": "Not Started", "Priority": "Normal", "TaskSubtype": "Task"},
        "Event": {"ShowAs": "Busy"},
        "User": {"IsActive": True, "TimeZoneSidKey": "GMT"},
        "Group": {"Type": "Regular"},
    }
    out = dict(defaults.get(obj.name, {}))
    if obj.field("OwnerId"):
        out["OwnerId"] = user_id
    return out


def _split_name(full: Any) -> Record:
    """A fixture's "Name" for a person: last word is LastName, the rest FirstName."""
    first, _, last = str(full).strip().rpartition(" ")
    return {"FirstName": first or None, "LastName": last}


def _derive(obj: SObjectDef, rec: Record, changed: set[str], now: datetime) -> None:
    """Fields Salesforce computes: names, stage flags and defaults, closed tasks, event times."""
    if obj.field("LastName"):
        rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        if obj.name == "User" and not rec.get("Alias") and rec.get("LastName"):
            rec["Alias"] = str(rec["LastName"])[:8]
    if obj.name == "Opportunity":
        _derive_opportunity(rec, changed)
    elif obj.name == "Task":
        closed = rec.get("Status") in CLOSED_TASK_STATUSES
        if closed and not rec.get("IsClosed"):
            rec["CompletedDateTime"] = format_datetime(now)
        elif not closed:
            rec["CompletedDateTime"] = None
        rec["IsClosed"] = closed
    elif obj.name == "Event":
        _derive_event(rec, changed)
    elif obj.name == "Group" and not rec.get("DeveloperName") and rec.get("Name"):
        rec["DeveloperName"] = re.sub(r"\W+", "_", str(rec["Name"])).strip("_")


def _derive_opportunity(rec: Record, changed: set[str]) -> None:
    stage = rec.get("StageName")
    rec["IsClosed"] = stage in ("Closed Won", "Closed Lost")
    rec["IsWon"] = stage == "Closed Won"
    if "StageName" in changed and stage in STAGES:
        probability, category = STAGES[stage]
        if "Probability" not in changed:
            rec["Probability"] = float(probability)
        if "ForecastCategoryName" not in changed:
            rec["ForecastCategoryName"] = category


def _derive_event(rec: Record, changed: set[str]) -> None:
    """Keep StartDateTime/ActivityDateTime, EndDateTime and DurationInMinutes consistent."""
    if "ActivityDateTime" in changed and "StartDateTime" not in changed:
        rec["StartDateTime"] = rec.get("ActivityDateTime")
    start = parse_datetime(rec["StartDateTime"]) if rec.get("StartDateTime") else None
    if start is None and rec.get("IsAllDayEvent") and rec.get("ActivityDate"):
        start = parse_datetime(f"{rec['ActivityDate']}T00:00:00Z")
    if start is None:
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: "
                      "[StartDateTime]", ["StartDateTime"])
    end = parse_datetime(rec["EndDateTime"]) if rec.get("EndDateTime") else None
    minutes = rec.get("DurationInMinutes")
    if end is not None and ("EndDateTime" in changed or minutes is None):
        minutes = int((end - start).total_seconds() // 60)
    elif minutes is not None:
        end = start + timedelta(minutes=minutes)
    elif rec.get("IsAllDayEvent"):
        minutes, end = 1440, start + timedelta(days=1)
    else:
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: "
                      "[DurationInMinutes]", ["DurationInMinutes"])
    if end is None or end < start:
        raise SfError(400, "FIELD_INTEGRITY_EXCEPTION",
                      "End Date/Time: End Date/Time must be after Start Date/Time",
                      ["EndDateTime"])
    rec.update(StartDateTime=format_datetime(start), ActivityDateTime=format_datetime(start),
               EndDateTime=format_datetime(end), DurationInMinutes=minutes,
               ActivityDate=start.date().isoformat())
