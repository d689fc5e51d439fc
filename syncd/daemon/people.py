"""Who an action means: mail recipients and assignees, from the connectors' directories and the
store.

Choices that depend on history (round robin's pointer, least loaded's counts) are made while
the intent is being claimed, in its `mark_sent` transaction, and the resulting operations are
frozen with it (executor): a retry after a crash verifies and repeats the same choice instead
of choosing again.

Directories are the connectors' cached copies (kept an hour by Zendesk's default), which the
executor hands over (`People.directories`) as an action asks for them: the claim runs in a
write transaction, where no vendor may be called. A directory not handed over yet, or a person
or group not found in one, raises `DirectoryMiss`; the executor reads that directory outside
the transaction (again, at most once a minute, for somebody missing: they may be newer than
the copy) and claims once more. Only the directories an action reads are read at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import email_validator
from email_validator import EmailNotValidError, validate_email

from syncd.connectors.base import Connector, Directory, DirectoryGroup, DirectoryUser
from syncd.errors import Skippable
from syncd.model import Record, RecordRef
from syncd.rules.conditions import resolve
from syncd.rules.language.templates import ADDRESS
from syncd.store.db import Tx
from syncd.store.memory import INTERNAL
from syncd.vendors.registry import GROUP_SYSTEMS, SYSTEM_OF_FAMILY, VENDORS
from syncd.vendors.zendesk import TICKET

ROUND_ROBIN = f"{INTERNAL}round_robin"  # rule-memory row per group: {"last": user id}
OPEN_TICKET = frozenset({"new", "open", "pending", "hold"})
# what is read of every open record for queues and loads (with the system's assignee field)
OPEN_FIELDS = ("status", "IsClosed", "group_name")
ASSIGNEE_FIELD = {system: v.assignee_field for system, v in VENDORS.items() if v.assignee_field}
SYMBOLIC = TICKET.recipients  # a ticket's people, by the names rules use: field with the address


# Syntax only: an internal domain (`corp.local`) is a real company's; the mail server decides
# what is deliverable. (email-validator documents this list as the one to change.)
email_validator.SPECIAL_USE_DOMAIN_NAMES = []


class ActionError(Skippable):
    """The intent cannot be carried out as planned; the message is the dead letter's reason."""


def one_address(address: str, named: str) -> str:
    """`address` if it is exactly one mail address (no display name, no second address, no
    CR/LF: nothing a mail header could be split on), else ActionError saying why."""
    try:
        return validate_email(address, check_deliverability=False,
                              globally_deliverable=False).normalized
    except EmailNotValidError as exc:
        source = f" (from {named!r})" if named != address else ""
        raise ActionError(f"recipient {address!r}{source} is not one mail address: {exc}"
                          ) from None


class DirectoryMiss(ActionError):
    """The action needs `systems`' directories (`cold`: not handed over yet), or names somebody
    not in them (maybe not yet)."""

    def __init__(self, systems: tuple[str, ...], message: str, cold: bool = False) -> None:
        super().__init__(message)
        self.systems = systems
        self.cold = cold


class RecordMiss(ActionError):
    """The action needs a record syncd has not read (yet): look it up at its vendor once, outside
    the transaction, then prepare the action again."""

    def __init__(self, ref: RecordRef, message: str) -> None:
        super().__init__(message)
        self.ref = ref


class NothingToDo(ActionError):
    """The intent has no effect to carry out (an unassigned ticket's assignee to tell, tags
    that render empty): skipped with this reason, not failed."""


@dataclass(frozen=True)
class Assignee:
    user: DirectoryUser | None
    group: DirectoryGroup | None


def system_of(record: RecordRef) -> str:
    return SYSTEM_OF_FAMILY.get(record.family, record.family)


class People:
    """Directory look-ups for one executor pass (directories are the connectors' cached ones)."""

    def __init__(self, connectors: Mapping[str, Connector]) -> None:
        self.connectors = connectors
        self.directories: dict[str, Directory] = {}  # read by the executor, outside claims
        self._assigned: dict[tuple[str, str], int] = {}  # this pass's picks, for least loaded
        # tickets `dispatch` handed out in this pass (id -> agent id): the store learns of them
        # only at the next poll, and a second dispatch in the pass must not hand them out again
        self.dispatched: dict[str, str] = {}
        # records looked up at their vendor in this pass (RecordMiss): not asked for again
        self.looked_up: set[RecordRef] = set()
        # queues a dispatch has served in this pass: loads only grow and queues only shrink
        # within a pass, so a second dispatch of the same queue would hand out nothing
        self.served: set[tuple[str, ...]] = set()
        self._open: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def open_rows(self, tx: Tx, system: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """The kind's open records in the store as (id, OPEN_FIELDS), read once per pass (in
        SQL for Zendesk's tickets, not decoded whole); this pass's own picks are counted apart
        (`dispatched`, `_assigned`). A dispatch reads its queue's whole records by id."""
        found = self._open.get(kind)
        if found is None:
            open_only = ("status", OPEN_TICKET) if system == "zendesk" else None
            names = [*OPEN_FIELDS, *((ASSIGNEE_FIELD[system],) if system in ASSIGNEE_FIELD
                                     else ())]
            rows = tx.records.fields_of(kind, names, field_in=open_only)
            found = self._open[kind] = [(i, fields) for i, fields in rows if _is_open(fields)]
        return found

    def directory(self, system: str) -> Directory:
        if system not in self.connectors:
            raise ActionError(f"{system} is not configured")
        found = self.directories.get(system)
        if found is None:
            raise DirectoryMiss((system,), f"the {system} directory is not at hand", cold=True)
        return found

    def user(self, system: str, who: str) -> DirectoryUser:
        """An active user by email or id."""
        directory = self.directory(system)
        user = directory.users.get(who) if "@" not in who else directory.user_by_email(who)
        if user is None:
            raise DirectoryMiss((system,), f"no {system} user {who!r}")
        if not user.active:
            raise ActionError(f"{system} user {who!r} is not active")
        return user

    def group(self, system: str, name: str) -> DirectoryGroup:
        group = self.directory(system).group_by_name(name)
        if group is None:
            raise DirectoryMiss((system,), f"no {system} group named {name!r}")
        return group

    # -- recipients --------------------------------------------------------------------------
    def recipients(
        self, names: Iterable[str], record: Record, roles: Mapping[str, Any]
    ) -> list[str]:
        """Mail addresses for `to`/`cc` entries (docs/rules.md, notify), deduplicated."""
        seen: dict[str, str] = {}
        for name in names:
            for address in self._addresses(str(name).strip(), record, roles, depth=0):
                address = one_address(address, name)
                seen.setdefault(address.lower(), address)
        return list(seen.values())

    def _addresses(
        self, name: str, record: Record, roles: Mapping[str, Any], depth: int
    ) -> Iterator[str]:
        kind, _, value = name.partition(":")
        if name.startswith(ADDRESS):  # a template's output: data, an address and nothing else
            yield name.removeprefix(ADDRESS)
        elif kind == "group" and value:
            yield from self._group_emails(value.strip())
        elif kind == "user" and value:
            yield value.strip()
        elif kind == "role" and value and depth == 0:
            members = roles.get(value.strip())
            if members is None:
                raise ActionError(f"no role {value.strip()!r} (a rule var of that name)")
            for member in [members] if isinstance(members, str) else members:
                yield from self._addresses(str(member).strip(), record, roles, depth + 1)
        elif name in SYMBOLIC:
            if record.ref.family != "zendesk":
                raise ActionError(f"{name!r} is a ticket's; {record.ref} has none")
            address = record.fields.get(SYMBOLIC[name])
            if address:  # an unassigned ticket has no assignee to tell: not an error
                yield str(address)
        elif name == "owner":
            yield self._owner_email(record)
        elif "@" in name and ":" not in name:
            yield name
        else:
            raise ActionError(f"unknown recipient {name!r}")

    def _group_emails(self, name: str) -> Iterator[str]:
        systems = tuple(s for s in GROUP_SYSTEMS if s in self.connectors)
        for system in systems:
            directory = self.directory(system)
            group = directory.group_by_name(name)
            if group is not None:
                for member in sorted(group.member_ids):
                    user = directory.users.get(member)
                    if user is not None and user.active and user.email:
                        yield user.email
                return
        raise DirectoryMiss(systems, f"no group named {name!r}")

    def _owner_email(self, record: Record) -> str:
        owner = record.fields.get("OwnerId")
        if not owner:
            raise ActionError(f"{record.ref} has no OwnerId")
        user = self.user("salesforce", str(owner))
        if not user.email:
            raise ActionError(f"salesforce user {owner} has no email")
        return user.email

    # -- assignment --------------------------------------------------------------------------
    def assignee(
        self, tx: Tx, params: Mapping[str, Any], record: Record, now: datetime
    ) -> Assignee:
        """The person (and group) an `assign` action picks for `record`."""
        system = system_of(record.ref)
        strategy = params.get("strategy", "fixed")
        group = self.group(system, params["group"]) if params.get("group") else None
        skip_away = bool(params.get("skip_away", True))
        if strategy == "fixed":
            user = self.user(system, params["user"]) if params.get("user") else None
            if user is not None and user.away and skip_away:
                if group is None:
                    raise ActionError(f"{params['user']!r} is away and no group was given")
                user = None
            return Assignee(user, group)
        if strategy == "mapping":
            return Assignee(self.user(system, self._mapped(params["mapping"], record)), group)
        if strategy == "account_owner":
            return Assignee(self._account_owner(tx, record, system), group)
        assert group is not None  # round_robin and least_loaded need a group (schema)
        members = self._available(system, group, skip_away)
        if strategy == "round_robin":
            return Assignee(self._next_in_turn(tx, system, group, members, now), group)
        return Assignee(self._least_loaded(tx, system, record.ref.kind, members), group)

    def _available(self, system: str, group: DirectoryGroup, skip_away: bool) -> list[str]:
        users = self.directory(system).users
        members = sorted(
            (u for u in (users.get(m) for m in group.member_ids) if u is not None and u.active),
            key=lambda u: _id_order(u.id),
        )
        found = [u.id for u in members if not (skip_away and u.away)]
        if not found:
            raise ActionError(f"nobody in group {group.name!r} is available")
        return found

    def _next_in_turn(
        self, tx: Tx, system: str, group: DirectoryGroup, members: list[str], now: datetime
    ) -> DirectoryUser:
        """The member after the last one this group gave a record to (durably remembered)."""
        pointer = RecordRef(f"{system}.group", group.id)
        last = (tx.memory.get(ROUND_ROBIN, pointer) or {}).get("last")
        later = [m for m in members if last is None or _id_order(m) > _id_order(str(last))]
        chosen = (later or members)[0]
        tx.memory.put(ROUND_ROBIN, pointer, {"last": chosen}, now)
        return self.directory(system).users[chosen]

    def _least_loaded(self, tx: Tx, system: str, kind: str, members: list[str]) -> DirectoryUser:
        """The member with the fewest open records in the store (plus this pass's picks)."""
        field = ASSIGNEE_FIELD[system]
        load = dict.fromkeys(members, 0)
        for _, held in self.open_rows(tx, system, kind):
            owner = str(held.get(field) or "")
            if owner in load:
                load[owner] += 1
        chosen = min(members, key=lambda m: (load[m] + self._assigned.get((kind, m), 0),
                                             _id_order(m)))
        self._assigned[(kind, chosen)] = self._assigned.get((kind, chosen), 0) + 1
        return self.directory(system).users[chosen]

    def _mapped(self, mapping: Mapping[str, Any], record: Record) -> str:
        value = resolve(record.fields, mapping["field"])
        table = mapping.get("table") or {}
        who = table.get(str(value)) if value is not None else None
        who = who or mapping.get("default")
        if not who:
            raise ActionError(f"{mapping['field']}={value!r} is not in the mapping, no default")
        return str(who)

    def _account_owner(self, tx: Tx, record: Record, system: str) -> DirectoryUser:
        """The owner of the record's Salesforce account (a ticket's by organization name)."""
        if system == "salesforce":
            account_id = record.ref.id if record.ref.kind == "salesforce.account" else (
                record.fields.get("AccountId"))
            account = tx.records.get(RecordRef("salesforce.account", str(account_id or "")))
        else:
            name = record.fields.get("organization_name")
            accounts = tx.records.by_kind(
                "salesforce.account", lambda a: bool(name) and a.fields.get("Name") == name
            )
            account = accounts[0] if accounts else None
        if account is None or not account.fields.get("OwnerId"):
            raise ActionError(f"no Salesforce account (with an owner) for {record.ref}")
        owner = self.user("salesforce", str(account.fields["OwnerId"]))
        if system == "salesforce":
            return owner
        if not owner.email:
            raise ActionError(f"account owner {owner.id} has no email")
        return self.user(system, owner.email)


def _is_open(fields: Mapping[str, Any]) -> bool:
    if fields.get("status") is not None:
        return fields["status"] in OPEN_TICKET
    return not fields.get("IsClosed")


def _id_order(identifier: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order (9 before 10), then the others as text."""
    return (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)
