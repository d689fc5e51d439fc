"""Snapshots of every live record and the history of their fields.

The engine's `changed` / `became` conditions and `since: {became: ...}` anchors need to know
which field changed, when and from what, so every upsert diffs the new version against the
stored one and appends the differences to `field_history`. Values are compared as they are
stored (JSON), so a datetime and its ISO string are the same value and re-polling an unchanged
record (Salesforce look-back, replayed pages) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from syncd.model import FieldChange, Record, RecordRef
from syncd.store.tables import field_history, records, to_json_value

CHUNK = 500  # ids in one IN (...)


@dataclass(frozen=True)
class Upserted:
    """What an upsert did: the version it replaced, the field changes, the stored version, and
    whether a new version was written at all (False: the poller saw nothing new)."""

    previous: Record | None
    changes: list[FieldChange]
    version: int
    changed: bool


def diff_fields(old: Mapping[str, Any], new: Mapping[str, Any], at: datetime) -> list[FieldChange]:
    """Changes between two field mappings, nested dicts by dotted path, lists compared whole.

    A missing field and a null one are the same (a rule reads both as null).
    """
    before, after = _flatten(old), _flatten(new)
    return [
        FieldChange(path, at, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def _flatten(fields: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in fields.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


# built once: a poll stores every record it reads through them
_KEY = (records.c.kind == bindparam("k"), records.c.id == bindparam("i"))
_CURRENT = select(records).where(*_KEY).with_for_update()
_VALUES = {"fields": bindparam("f"), "observed_at": bindparam("o"), "deleted": bindparam("d"),
           "version": bindparam("v")}
_INSERT = insert(records).values(kind=bindparam("k"), id=bindparam("i"), **_VALUES)
_UPDATE = update(records).where(*_KEY).values(**_VALUES)
_HISTORY = insert(field_history)


class Records:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def upsert(self, record: Record) -> Upserted:
        """Store `record` as the newest version; an identical version is a no-op."""
        fields = to_json_value(dict(record.fields))
        key = {"k": record.ref.kind, "i": record.ref.id}
        row = self._conn.execute(_CURRENT, key).first()
        if row is None:
            previous, version = None, 1
            changes = diff_fields({}, fields, record.observed_at)
        else:
            previous, version = _record(row), row.version + 1
            changes = diff_fields(previous.fields, fields, record.observed_at)
            if not changes and previous.deleted == record.deleted:
                return Upserted(previous, [], row.version, changed=False)
        values = {"f": fields, "o": record.observed_at, "d": record.deleted, "v": version}
        self._conn.execute(_INSERT if row is None else _UPDATE, {**key, **values})
        if changes:
            self._conn.execute(
                _HISTORY,
                [
                    {
                        "record_kind": record.ref.kind,
                        "record_id": record.ref.id,
                        "version": version,
                        "field": change.field,
                        "at": change.at,
                        "old": change.old,
                        "new": change.new,
                    }
                    for change in changes
                ],
            )
        return Upserted(previous, changes, version, changed=True)

    def get(self, ref: RecordRef) -> Record | None:
        row = self._conn.execute(select(records).where(*_key(ref))).first()
        return _record(row) if row is not None else None

    def get_many(self, kind: str, ids: Iterable[str]) -> dict[str, Record]:
        """`get` of many records of one kind (those stored), in a statement per 500."""
        found: dict[str, Record] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), CHUNK):
            query = select(records).where(
                records.c.kind == kind, records.c.id.in_(wanted[start : start + CHUNK])
            )
            found.update((row.id, _record(row)) for row in self._conn.execute(query))
        return found

    def by_kind(
        self,
        kind: str,
        where: Callable[[Record], bool] | None = None,
        *,
        include_deleted: bool = False,
        field_in: tuple[str, Collection[str]] | None = None,
    ) -> list[Record]:
        """Records of one kind in id order; `where` filters in Python (rules' conditions).
        `field_in` (name, values) selects in the database on a top-level text field first, so
        that a helpdesk's solved history is not read and decoded to find its open tickets."""
        query = select(records).where(records.c.kind == kind).order_by(records.c.id)
        if field_in is not None:
            name, values = field_in
            query = query.where(records.c.fields[name].as_string().in_(sorted(values)))
        if not include_deleted:
            query = query.where(records.c.deleted.is_(False))
        found = (_record(row) for row in self._conn.execute(query).all())
        return [record for record in found if where is None or where(record)]

    def history(self, ref: RecordRef) -> list[FieldChange]:
        """Every field change of the record, oldest first."""
        query = (
            select(field_history)
            .where(field_history.c.record_kind == ref.kind, field_history.c.record_id == ref.id)
            .order_by(field_history.c.at, field_history.c.id)
        )
        return [FieldChange(r.field, r.at, r.old, r.new) for r in self._conn.execute(query)]


    # -- replay (daemon/replay.py) rebuilds each record's versions from these ordered scans

    def later_changes(self, kind: str) -> Iterator[Row[Any]]:
        """The field history of `kind` after each record's first version (record_id, version,
        field, at, old), in record id order."""
        fh = field_history.c
        return iter(self._conn.execute(
            select(fh.record_id, fh.version, fh.field, fh.at, fh.old)
            .where(fh.record_kind == kind, fh.version > 1).order_by(fh.record_id)
        ))

    def first_seen(self, kind: str) -> dict[str, datetime]:
        """Record id -> the instant of its first version, for the records of `kind` stored in
        more than one version."""
        fh = field_history.c
        return dict(self._conn.execute(
            select(fh.record_id, func.min(fh.at))
            .where(fh.record_kind == kind, fh.version == 1,
                   fh.record_id.in_(select(records.c.id).where(records.c.kind == kind,
                                                                records.c.version > 1)))
            .group_by(fh.record_id)
        ).all())

    def snapshots(self, kind: str) -> Iterator[Row[Any]]:
        """Every stored record of `kind`, deleted ones too (id, fields, observed_at, deleted),
        in id order."""
        return iter(self._conn.execute(
            select(records.c.id, records.c.fields, records.c.observed_at, records.c.deleted)
            .where(records.c.kind == kind).order_by(records.c.id)
        ))


def _key(ref: RecordRef) -> tuple[Any, ...]:
    return (records.c.kind == ref.kind, records.c.id == ref.id)


def _record(row: Row[Any]) -> Record:
    return Record(RecordRef(row.kind, row.id), row.fields, row.observed_at, row.deleted)
