"""The emulated org's metadata: sObjects, their fields and types, record ids, value formats.

Salesforce checks every write and every SOQL filter against the object's describe. The
emulator does the same from these tables, so a connector that writes an unknown field, sends a
malformed date or filters a date field with a string fails here as it would in production.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from syncd.resources import shipped

TEXT_TYPES = frozenset({"string", "textarea", "picklist", "email", "phone", "url", "combobox"})
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
    label: str = ""
    nillable: bool = True
    defaulted: bool = False  # defaultedOnCreate
    name_field: bool = False
    calculated: bool = False
    filterable: bool = True  # long text areas cannot appear in WHERE or ORDER BY
    sortable: bool = True


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
    label: str = ""
    label_plural: str = ""
    stub: bool = False  # a reference target the sandbox describes but keeps no records of

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        return self.relationships.get(name.lower())

    @property
    def name_field(self) -> FieldDef | None:
        return next((f for f in self.fields.values() if f.name_field), None)


def _f(name: str, type_: str, length: int = 0, **kw: Any) -> FieldDef:
    if kw.pop("ro", False):
        kw.update(createable=False, updateable=False)
    return FieldDef(name, type_, length, label=name, **kw)


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

# The org's objects and their standard fields (salesforce_objects.json: recorded describes
# and the Object Reference). The sandbox's behaviour adds what describe does not say: which
# fields a write must carry, the picklist values the store knows, objects without a recycle bin.
OBJECTS_FILE = ("sandbox", "salesforce_objects.json")  # in syncd/shipped/ (resources.py)
_REQUIRED = {
    "Account": ("Name",), "Contact": ("LastName",), "User": ("Username", "LastName", "Email"),
    "Group": ("Name",), "GroupMember": ("GroupId", "UserOrGroupId"),
    "Opportunity": ("Name", "StageName", "CloseDate"), "Task": ("Status", "Priority"),
}
_PICKLISTS = {
    ("Opportunity", "StageName"): tuple(STAGES), ("Task", "Status"): TASK_STATUSES,
    ("Task", "Priority"): PRIORITIES, ("Task", "TaskSubtype"): ("Task", "Email", "Call"),
    ("Group", "Type"): ("Regular", "Queue"), ("Event", "ShowAs"): ("Busy", "Free", "OutOfOffice"),
}
_OBJECT_FLAGS: dict[str, dict[str, bool]] = {
    "User": {"soft_delete": False, "deletable": False},
    "Group": {"soft_delete": False},
    "GroupMember": {"soft_delete": False, "updateable": False},
}


def _field_from(sobject: str, spec: Mapping[str, Any]) -> FieldDef:
    name = spec["name"]
    return FieldDef(
        name, spec["type"], int(spec.get("length", 0)),
        required=name in _REQUIRED.get(sobject, ()),
        createable=spec.get("createable", True), updateable=spec.get("updateable", True),
        reference_to=tuple(spec.get("referenceTo", ())),
        relationship_name=spec.get("relationshipName"),
        polymorphic=spec.get("polymorphicForeignKey", False),
        external_id=spec.get("externalId", False), unique=spec.get("unique", False),
        picklist=_PICKLISTS.get((sobject, name), tuple(spec.get("picklist", ()))),
        label=spec.get("label", name), nillable=spec.get("nillable", True),
        defaulted=spec.get("defaultedOnCreate", False), name_field=spec.get("nameField", False),
        calculated=spec.get("calculated", False), filterable=spec.get("filterable", True),
        sortable=spec.get("sortable", True),
    )


@lru_cache(maxsize=1)
def _standard() -> dict[str, tuple[str, list[FieldDef], dict[str, Any]]]:
    """sObject name -> (key prefix, standard fields, object options)."""
    data = json.loads(shipped(OBJECTS_FILE).read_text(encoding="utf-8"))["objects"]
    out: dict[str, tuple[str, list[FieldDef], dict[str, Any]]] = {}
    for name, spec in data.items():
        stub = bool(spec.get("readOnly"))
        opts: dict[str, Any] = {"label": spec["label"], "label_plural": spec["labelPlural"]}
        if stub:
            opts.update(stub=True, createable=False, updateable=False, deletable=False)
        opts.update(_OBJECT_FLAGS.get(name, {}))
        opts["soft_delete"] = any(f["name"] == "IsDeleted" for f in spec["fields"])
        out[name] = (spec["keyPrefix"], [_field_from(name, f) for f in spec["fields"]], opts)
    return out


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
        known = [n for n, (_, _, opts) in _standard().items() if not opts.get("stub")]
        if target not in known:
            raise ValueError(f"custom field {name}: reference_to must name one of {known}")
        kw.update(reference_to=(target,), relationship_name=name[:-3] + "__r")
    return FieldDef(name, type_, label=name, filterable=type_ != "textarea",
                    sortable=type_ != "textarea", **kw)


class Catalog:
    """The org's objects, with the custom fields declared in seed settings."""

    def __init__(self, custom_fields: Mapping[str, Iterable[str | Mapping[str, Any]]]) -> None:
        standard = _standard()
        writable = [n for n, (_, _, opts) in standard.items() if not opts.get("stub")]
        unknown = [name for name in custom_fields if name not in writable]
        if unknown:
            raise ValueError(f"custom_fields: unknown sObject(s) {unknown}; know {writable}")
        self.objects: dict[str, SObjectDef] = {}
        self._by_prefix: dict[str, SObjectDef] = {}
        for name, (prefix, own, opts) in standard.items():
            fields = [*own, *(custom_field(spec) for spec in custom_fields.get(name, ()))]
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
