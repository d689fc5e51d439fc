"""The emulated org's metadata: sObjects, their fields and types, record ids, value formats.

Salesforce checks every write and every SOQL filter against the object's describe. The
emulator does the same from these tables, so a connector that writes an unknown field, sends a
malformed date or filters a date field with a string fails here as it would in production.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

TEXT_TYPES = frozenset({"string", "textarea", "picklist", "email", "phone", "url"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
ID_TYPES = frozenset({"id", "reference"})


class SfError(Exception):
    """A Salesforce REST error: HTTP status plus one `[{"message","errorCode","fields"}]` item."""

    def __init__(
        self, status: int, code: str, message: str, fields: Iterable[str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields) if fields is not None else None

    def rest_body(self) -> list[dict[str, Any]]:
        """Top-level REST error list (`errorCode`)."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def record_error(self) -> dict[str, Any]:
        """Per-record error inside composite results (`statusCode`, always `fields`)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


# --- record ids -----------------------------------------------------------------------------

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase  # ASCII order
_SUFFIX_CHARS = string.ascii_uppercase + "012345"
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")


def id18(id15: str) -> str:
    """The case-insensitive 18-character form: three checksum chars encode the capitals."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if ch.isupper())
        suffix += _SUFFIX_CHARS[bits]
    return id15 + suffix


def normalize_id(value: Any) -> str | None:
    """Canonical 18-char id for a 15- or 18-char id (any case for 18), None if malformed."""
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        return None
    if len(value) == 15:
        return id18(value)
    chars = list(value[:15])
    for block, code in enumerate(value[15:].upper()):
        bits = _SUFFIX_CHARS.find(code)
        if bits < 0:
            return None
        for i in range(5):
            pos = block * 5 + i
            upper = bool(bits >> i & 1)
            if upper and chars[pos].isdigit():
                return None
            chars[pos] = chars[pos].upper() if upper else chars[pos].lower()
    return id18("".join(chars))


def make_id(prefix: str, serial: int) -> str:
    """An 18-char id: key prefix, pod "Sb", a reserved 0 and a base62 serial."""
    digits = ""
    while serial:
        serial, rem = divmod(serial, 62)
        digits = _BASE62[rem] + digits
    return id18(f"{prefix}Sb0{digits.rjust(9, '0')}")


# --- value formats --------------------------------------------------------------------------

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?"
)


def format_datetime(when: datetime) -> str:
    """Salesforce's wire format, millisecond precision, always UTC: 2025-03-31T14:02:11.000+0000."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


@lru_cache(maxsize=65536)
def parse_datetime(text: str) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 value (no offset means UTC), None if invalid."""
    if not _DATETIME_RE.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@lru_cache(maxsize=65536)
def parse_date(text: str) -> date | None:
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


# --- fields and objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str  # id reference string textarea picklist email phone url boolean int double ...
    length: int = 0
    required: bool = False  # must be present after defaults are applied on create
    createable: bool = True
    updateable: bool = True
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    polymorphic: bool = False  # SOQL sees the parent as the generic "Name" entity
    external_id: bool = False
    unique: bool = False  # no two live records share a value (case-insensitive)
    custom: bool = False
    picklist: tuple[str, ...] = ()

    @property
    def filterable(self) -> bool:
        """Long text areas cannot appear in WHERE or ORDER BY."""
        return self.type != "textarea"


@dataclass(frozen=True)
class SObjectDef:
    name: str
    key_prefix: str
    fields: Mapping[str, FieldDef]  # by lower-cased name, in describe order
    soft_delete: bool = True  # has IsDeleted and a recycle bin (queryAll sees it)
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    relationships: Mapping[str, FieldDef] = field(default_factory=dict)  # by lower-cased name

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        return self.relationships.get(name.lower())


def _f(name: str, type_: str, length: int = 0, **kw: Any) -> FieldDef:
    if "ref" in kw:
        refs = kw.pop("ref")
        kw["reference_to"] = (refs,) if isinstance(refs, str) else tuple(refs)
        kw.setdefault("relationship_name", name[:-2] if name.endswith("Id") else None)
    if kw.pop("ro", False):
        kw.update(createable=False, updateable=False)
    return FieldDef(name, type_, length, **kw)


def _audit(soft_delete: bool) -> list[FieldDef]:
    fields = [
        _f("CreatedDate", "datetime", ro=True),
        _f("CreatedById", "reference", ref="User", ro=True),
        _f("LastModifiedDate", "datetime", ro=True),
        _f("LastModifiedById", "reference", ref="User", ro=True),
        _f("SystemModstamp", "datetime", ro=True),
    ]
    if soft_delete:
        fields.insert(0, _f("IsDeleted", "boolean", ro=True))
    return fields


STAGES: dict[str, tuple[int, str]] = {  # StageName -> (default Probability, ForecastCategoryName)
    "Prospecting": (10, "Pipeline"),
    "Qualification": (10, "Pipeline"),
    "Needs Analysis": (20, "Pipeline"),
    "Value Proposition": (50, "Pipeline"),
    "Id. Decision Makers": (60, "Pipeline"),
    "Perception Analysis": (70, "Pipeline"),
    "Proposal/Price Quote": (75, "Pipeline"),
    "Negotiation/Review": (90, "Pipeline"),
    "Closed Won": (100, "Closed"),
    "Closed Lost": (0, "Omitted"),
}
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
CLOSED_TASK_STATUSES = frozenset({"Completed"})
PRIORITIES = ("High", "Normal", "Low")

_OWNER = _f("OwnerId", "reference", ref="User")
_ACTIVITY_OWNER = _f("OwnerId", "reference", ref=("User", "Group"), polymorphic=True)
_WHAT = _f("WhatId", "reference", ref=("Account", "Opportunity"), polymorphic=True)
_WHO = _f("WhoId", "reference", ref="Contact", polymorphic=True)

_STANDARD: dict[str, tuple[str, list[FieldDef], dict[str, Any]]] = {
    "Account": ("001", [
        _f("Name", "string", 255, required=True),
        _f("Type", "picklist", 255),
        _f("Industry", "picklist", 255),
        _f("ParentId", "reference", ref="Account"),
        _f("Phone", "phone", 40),
        _f("Website", "url", 255),
        _f("BillingCity", "string", 40),
        _f("BillingCountry", "string", 80),
        _f("NumberOfEmployees", "int"),
        _f("AnnualRevenue", "currency"),
        _f("Description", "textarea", 32000),
        _OWNER,
    ], {}),
    "Contact": ("003", [
        _f("FirstName", "string", 40),
        _f("LastName", "string", 80, required=True),
        _f("Name", "string", 121, ro=True),
        _f("Email", "email", 80),
        _f("Phone", "phone", 40),
        _f("Title", "string", 128),
        _f("Department", "string", 80),
        _f("AccountId", "reference", ref="Account"),
        _f("Description", "textarea", 32000),
        _OWNER,
    ], {}),
    "User": ("005", [
        _f("Username", "string", 80, required=True, unique=True),
        _f("FirstName", "string", 40),
        _f("LastName", "string", 80, required=True),
        _f("Name", "string", 121, ro=True),
        _f("Alias", "string", 8),
        _f("Email", "email", 128, required=True),
        _f("IsActive", "boolean"),
        _f("Title", "string", 80),
        _f("Department", "string", 80),
        _f("Phone", "phone", 40),
        _f("ManagerId", "reference", ref="User"),
        _f("ProfileId", "reference", ref="Profile", relationship_name=None),
        _f("UserRoleId", "reference", ref="UserRole", relationship_name=None),
        _f("TimeZoneSidKey", "picklist", 40),
    ], {"soft_delete": False, "deletable": False}),
    "Group": ("00G", [
        _f("Name", "string", 40, required=True),
        _f("DeveloperName", "string", 80),
        _f("Type", "picklist", 40, picklist=("Regular", "Queue")),
        _f("Email", "email", 255),
        _f("DoesSendEmailToMembers", "boolean"),
        _OWNER,
    ], {"soft_delete": False}),
    "GroupMember": ("011", [
        _f("GroupId", "reference", ref="Group", required=True, updateable=False),
        _f("UserOrGroupId", "reference", ref=("User", "Group"), polymorphic=True,
           required=True, updateable=False),
    ], {"soft_delete": False, "updateable": False}),
    "Opportunity": ("006", [
        _f("Name", "string", 120, required=True),
        _f("AccountId", "reference", ref="Account"),
        _f("StageName", "picklist", 255, required=True, picklist=tuple(STAGES)),
        _f("CloseDate", "date", required=True),
        _f("Amount", "currency"),
        _f("Probability", "percent"),
        _f("Type", "picklist", 255),
        _f("LeadSource", "picklist", 255),
        _f("NextStep", "string", 255),
        _f("ForecastCategoryName", "picklist", 255),
        _f("IsClosed", "boolean", ro=True),
        _f("IsWon", "boolean", ro=True),
        _f("Description", "textarea", 32000),
        _OWNER,
    ], {}),
    "Task": ("00T", [
        _f("Subject", "string", 255),
        _f("Status", "picklist", 255, required=True, picklist=TASK_STATUSES),
        _f("Priority", "picklist", 40, required=True, picklist=PRIORITIES),
        _f("ActivityDate", "date"),
        _ACTIVITY_OWNER, _WHAT, _WHO,
        _f("AccountId", "reference", ref="Account", ro=True),
        _f("Type", "picklist", 40),
        _f("TaskSubtype", "picklist", 40, updateable=False, picklist=("Task", "Email", "Call")),
        _f("IsClosed", "boolean", ro=True),
        _f("CompletedDateTime", "datetime", ro=True),
        _f("ReminderDateTime", "datetime"),
        _f("IsReminderSet", "boolean"),
        _f("Description", "textarea", 32000),
    ], {}),
    "Event": ("00U", [
        _f("Subject", "string", 255),
        _f("StartDateTime", "datetime"),
        _f("EndDateTime", "datetime"),
        _f("ActivityDateTime", "datetime"),
        _f("ActivityDate", "date"),
        _f("DurationInMinutes", "int"),
        _f("IsAllDayEvent", "boolean"),
        _ACTIVITY_OWNER, _WHAT, _WHO,
        _f("AccountId", "reference", ref="Account", ro=True),
        _f("Location", "string", 255),
        _f("ShowAs", "picklist", 40, picklist=("Busy", "Free", "OutOfOffice")),
        _f("Type", "picklist", 40),
        _f("Description", "textarea", 32000),
    ], {}),
}

# The generic parent of a polymorphic relationship (Task.What, Task.Owner, ...): SOQL allows
# only these fields on it; `Type` is the parent's sObject name.
NAME_ENTITY = SObjectDef(
    "Name",
    "",
    {
        f.name.lower(): f
        for f in (
            _f("Id", "id", ro=True),
            _f("Name", "string", 255, ro=True),
            _f("Type", "picklist", 40, ro=True),
            _f("Alias", "string", 8, ro=True),
            _f("Email", "email", 128, ro=True),
            _f("FirstName", "string", 40, ro=True),
            _f("LastName", "string", 80, ro=True),
            _f("IsActive", "boolean", ro=True),
            _f("Phone", "phone", 40, ro=True),
            _f("Title", "string", 80, ro=True),
            _f("Username", "string", 80, ro=True),
        )
    },
    soft_delete=False,
)

CUSTOM_TYPES = frozenset(
    {"string", "textarea", "picklist", "email", "phone", "url", "boolean", "int", "double",
     "currency", "percent", "date", "datetime", "reference"}
)


def custom_field(spec: str | Mapping[str, Any]) -> FieldDef:
    """A custom field from seed settings: "Name__c" (text 255) or {"name", "type", ...}."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"custom field {spec!r}: give a name or a mapping with a name")
    name = str(spec.get("name", ""))
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name) or "__" in name[:-3]:
        raise ValueError(f"custom field name {name!r} must look like Some_Name__c")
    type_ = str(spec.get("type", "string"))
    if type_ not in CUSTOM_TYPES:
        known = sorted(CUSTOM_TYPES)
        raise ValueError(f"custom field {name}: type {type_!r} is not one of {known}")
    kw: dict[str, Any] = {
        "length": int(spec.get("length", 255 if type_ in TEXT_TYPES else 0)),
        "external_id": bool(spec.get("external_id", False)),
        "unique": bool(spec.get("unique", False)),
        "custom": True,
        "required": bool(spec.get("required", False)),
    }
    if type_ == "reference":
        target = spec.get("reference_to")
        if target not in _STANDARD:
            known = list(_STANDARD)
            raise ValueError(f"custom field {name}: reference_to must name one of {known}")
        kw.update(reference_to=(target,), relationship_name=name[:-3] + "__r")
    return FieldDef(name, type_, **kw)


class Catalog:
    """The org's objects, with the custom fields declared in seed settings."""

    def __init__(self, custom_fields: Mapping[str, Iterable[str | Mapping[str, Any]]]) -> None:
        unknown = [name for name in custom_fields if name not in _STANDARD]
        if unknown:
            raise ValueError(f"custom_fields: unknown sObject(s) {unknown}; know {list(_STANDARD)}")
        self.objects: dict[str, SObjectDef] = {}
        self._by_prefix: dict[str, SObjectDef] = {}
        for name, (prefix, own, opts) in _STANDARD.items():
            soft = opts.get("soft_delete", True)
            fields = [_f("Id", "id", ro=True), *own, *_audit(soft)]
            if name == "GroupMember":  # GroupMember carries no audit fields but SystemModstamp
                fields = [f for f in fields if f.name in ("Id", "GroupId", "UserOrGroupId",
                                                          "SystemModstamp")]
            fields += [custom_field(spec) for spec in custom_fields.get(name, ())]
            self._add(SObjectDef(name, prefix, _index(fields), **opts))

    def _add(self, obj: SObjectDef) -> None:
        relationships = {
            f.relationship_name.lower(): f for f in obj.fields.values() if f.relationship_name
        }
        obj = replace(obj, relationships=relationships)
        self.objects[obj.name.lower()] = obj
        self._by_prefix[obj.key_prefix] = obj

    def get(self, name: str) -> SObjectDef | None:
        return self.objects.get(name.lower())

    def by_id(self, record_id: str) -> SObjectDef | None:
        return self._by_prefix.get(record_id[:3])

    def target(self, ref: FieldDef) -> SObjectDef | None:
        """The object a relationship leads to in SOQL (the Name entity if polymorphic)."""
        if ref.polymorphic:
            return NAME_ENTITY
        return self.get(ref.reference_to[0]) if ref.reference_to else None


def _index(fields: Iterable[FieldDef]) -> dict[str, FieldDef]:
    out: dict[str, FieldDef] = {}
    for f in fields:
        if f.name.lower() in out:
            raise ValueError(f"field {f.name} declared twice")
        out[f.name.lower()] = f
    return out
