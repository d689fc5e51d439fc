"""Snapshots of every live record and the history of their fields.

The engine's `changed` / `became` conditions and `since: {became: ...}` anchors need to know
which field changed, when and from what, so every upsert diffs the new version against the
stored one and appends the differences to `field_history`. Values are compared as they are
stored (JSON), so a datetime and its ISO string are the same value and re-polling an unchanged
record (Salesforce look-back, replayed pages) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Row,
    Select,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.sql import visitors

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
    changes: list[FieldChange] = []
    for name in old.keys() | new.keys():
        if old.get(name) == new.get(name):  # most fields of a version: nothing to walk
            continue
        before, after = _flatten({name: old.get(name)}), _flatten({name: new.get(name)})
        changes += [FieldChange(path, at, before.get(path), after.get(path))
                    for path in before.keys() | after.keys()
                    if before.get(path) != after.get(path)]
    return sorted(changes, key=lambda change: change.field)


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
        return self.upsert_many([record])[0]

    def upsert_many(self, batch: Sequence[Record]) -> list[Upserted]:
        """`upsert` of many records (a polled page), each at most once: the stored versions
        read in a statement per 500, the new versions and their history written in one
        statement each (executemany), whatever the number of records."""
        if len({record.ref for record in batch}) != len(batch):
            raise ValueError("a record is upserted at most once per batch")
        rows = self._current(batch)
        done: list[Upserted] = []
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for record in batch:
            fields = to_json_value(dict(record.fields))
            row = rows.get(record.ref)
            if row is None:
                previous, version = None, 1
                changes = diff_fields({}, fields, record.observed_at)
            else:
                previous, version = _record(row), row.version + 1
                changes = diff_fields(previous.fields, fields, record.observed_at)
                if not changes and previous.deleted == record.deleted:
                    done.append(Upserted(previous, [], row.version, changed=False))
                    continue
            (new if row is None else changed).append({
                "k": record.ref.kind, "i": record.ref.id, "f": fields, "o": record.observed_at,
                "d": record.deleted, "v": version})
            history += [{"record_kind": record.ref.kind, "record_id": record.ref.id,
                         "version": version, "field": change.field, "at": change.at,
                         "old": change.old, "new": change.new} for change in changes]
            done.append(Upserted(previous, changes, version, changed=True))
        for statement, values in ((_INSERT, new), (_UPDATE, changed), (_HISTORY, history)):
            if values:
                self._conn.execute(statement, values)
        return done

    def _current(self, batch: Sequence[Record]) -> dict[RecordRef, Row[Any]]:
        """The stored rows of `batch`'s records, locked for this transaction's update."""
        found: dict[RecordRef, Row[Any]] = {}
        for kind in dict.fromkeys(record.ref.kind for record in batch):
            ids = [record.ref.id for record in batch if record.ref.kind == kind]
            for start in range(0, len(ids), CHUNK):
                query = select(records).where(
                    records.c.kind == kind, records.c.id.in_(ids[start : start + CHUNK])
                ).with_for_update()
                found.update((RecordRef(kind, row.id), row) for row in self._conn.execute(query))
        return found

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
        """Records of one kind in id order (code points: the same on every engine); `where`
        filters in Python (rules' conditions). `field_in` (name, values) selects in the
        database on a top-level text field first, so that a helpdesk's solved history is not
        read and decoded to find its open tickets (by the status index). Sorted here, not by
        ORDER BY: for that, the database would walk every record in key order instead."""
        query = _of_kind(select(records), kind, field_in, include_deleted)
        found = sorted((_record(row) for row in self._conn.execute(query).all()),
                       key=lambda record: record.ref.id)
        return [record for record in found if where is None or where(record)]

    def fields_of(
        self, kind: str, names: Sequence[str], *,
        field_in: tuple[str, Collection[str]] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """(id, {name: value}) of the kind's records (not deleted), in id order: only the
        top-level fields `names`, picked out in the database. A dispatch counts every open
        ticket's owner each pass: decoding 12,000 whole tickets for three fields each is
        most of an idle cycle's CPU at 100,000 tickets. `field_in` as in `by_kind`."""
        columns = [records.c.id, *(records.c.fields[name].label(f"f{i}")
                                   for i, name in enumerate(names))]
        query = _of_kind(select(*columns), kind, field_in, include_deleted=False)
        found = [(row[0], dict(zip(names, row[1:], strict=True)))
                 for row in self._conn.execute(query).all()]
        return sorted(found, key=lambda item: item[0])

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


def _of_kind(query: Select[Any], kind: str, field_in: tuple[str, Collection[str]] | None,
             include_deleted: bool) -> Select[Any]:
    query = query.where(records.c.kind == kind)
    if field_in is not None:
        name, values = field_in
        query = query.where(_text_field(name).in_(sorted(values)))
    if not include_deleted:
        query = query.where(records.c.deleted.is_(False))
    return query


def _text_field(name: str) -> ColumnElement[str]:
    """A top-level field as text, its JSON path written into the statement rather than bound:
    an index on the expression (tables.records_status) serves only a query whose expression
    is the same, path included."""

    def inline(param: BindParameter[Any]) -> None:
        param.literal_execute = True

    return visitors.cloned_traverse(records.c.fields[name].as_string(), {},
                                    {"bindparam": inline})


def _key(ref: RecordRef) -> tuple[Any, ...]:
    return (records.c.kind == ref.kind, records.c.id == ref.id)


def _record(row: Row[Any]) -> Record:
    return Record(RecordRef(row.kind, row.id), row.fields, row.observed_at, row.deleted)
