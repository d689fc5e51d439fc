"""What every connector offers the daemon, and the small pieces the three share.

The contract (`Connector`):

- `kinds` are the record kinds its polls can read, as configured (`zendesk.ticket`; a Graph
  drive's `sharepoint.file`, its lists' `sharepoint.item`; one per Salesforce object).
- `poll_pages(cursor, kinds)` reads what changed since `cursor` (None: from the beginning,
  spent in the `backfill` lane) and yields `Page`s; with `kinds`, only those kinds are read (a
  kind left out keeps its place in the cursor: the daemon polls what its rules read). Each
  page's `cursor` is the resume point *after* that page: the daemon commits the page's records
  and its cursor in one transaction, so a crash replays at most one page. Delivery is
  at-least-once (a record may come again in a later page or poll); the store deduplicates by
  record and version. Always at least one page, possibly empty, so a cursor that moved
  without changes (Zendesk's `after_cursor`, a Graph deltaLink) is still stored.
- `execute(op)` carries out one `Operation` and answers an `Outcome`: ok; or not ok and
  `retryable` (429/5xx/timeout: the effect may or may not exist, verify before repeating);
  or not ok and not retryable (the vendor refused: dead-letter it, or for Zendesk's
  `error="conflict"` re-read and re-plan).
- `execute_many(ops)` the same for several operations, batched where the vendor allows;
  one Outcome per op, in order.
- `verify(op)` answers whether the effect of `op` exists: ok=True present; ok=False and not
  retryable: absent, safe to execute; ok=False and retryable: could not tell now.
- `fetch(ref)` re-reads one record (before a timer fires); None when it no longer exists.
  `fetch_many(refs)` the same for several (records due at the same poll), batched where the
  vendor allows.
- `directory(max_age_s)` users, groups, memberships and away flags, cached and refreshed by
  age: the connector's own TTL, or `max_age_s` when a caller missed someone in it.

Operations whose verb a connector does not know are refused (not retryable) by `dispatch`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from syncd.clock import Clock
from syncd.connectors.http import RetryableError, VendorError, default_lane
from syncd.model import Operation, Outcome, Record, RecordRef

MISS_REFRESH_S = 60.0  # a directory missing someone is read again at most once a minute


@dataclass(frozen=True)
class Page:
    """Records read in one vendor page and the cursor to resume after them."""

    records: Sequence[Record]
    cursor: str


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    name: str
    email: str | None
    active: bool = True
    away: bool = False
    group_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DirectoryGroup:
    id: str
    name: str
    member_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Dropdown:
    """A field whose value is chosen from a list (a Zendesk dropdown, a Salesforce picklist):
    a record holds one of `values` or none, or, when not `restricted`, possibly another."""

    title: str
    values: tuple[str, ...]
    restricted: bool = True


@dataclass(frozen=True)
class Directory:
    """The people of one system, for assignment strategies and recipients."""

    users: Mapping[str, DirectoryUser] = field(default_factory=dict)
    groups: Mapping[str, DirectoryGroup] = field(default_factory=dict)

    def user_by_email(self, email: str) -> DirectoryUser | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if (u.email or "").lower() == wanted), None)

    def group_by_name(self, name: str) -> DirectoryGroup | None:
        return next((g for g in self.groups.values() if g.name == name), None)


class Connector(Protocol):
    system: str  # "zendesk" | "salesforce" | "graph": `Operation.system`
    extra_fields: frozenset[str]  # what `fetch` reads at one more call per record
    kinds: frozenset[str]

    def poll_pages(
        self, cursor: str | None, kinds: Collection[str] | None = None
    ) -> Iterator[Page]: ...

    def execute(self, op: Operation) -> Outcome: ...

    def execute_many(self, ops: Sequence[Operation]) -> list[Outcome]: ...

    def verify(self, op: Operation) -> Outcome: ...

    def fetch(self, ref: RecordRef) -> Record | None: ...

    def fetch_many(
        self, refs: Sequence[RecordRef], *, extras: bool = True
    ) -> dict[RecordRef, Record | None]:
        """The records as they are now (None: gone); without `extras`, leaving out the
        `extra_fields` (a caller then keeps what it last read of them)."""
        ...

    def directory(self, max_age_s: float | None = None) -> Directory: ...


def fetch_each(
    fetch: Callable[[RecordRef], Record | None], refs: Sequence[RecordRef]
) -> dict[RecordRef, Record | None]:
    """`fetch_many` for a vendor without a batched read: one `fetch` per record."""
    return {ref: fetch(ref) for ref in dict.fromkeys(refs)}


def poll(connector: Connector, cursor: str | None) -> tuple[list[Record], str]:
    """All pages at once: (records, final cursor). For callers that need no per-page commit."""
    records: list[Record] = []
    last = cursor or ""
    for page in connector.poll_pages(cursor):
        records.extend(page.records)
        last = page.cursor
    return records, last


# -- outcomes --------------------------------------------------------------------------------
def done(**detail: Any) -> Outcome:
    return Outcome(ok=True, detail=detail)


def absent(reason: str, **detail: Any) -> Outcome:
    """`verify`: the effect is not there; executing is safe."""
    return Outcome(ok=False, retryable=False, error=reason, detail=detail)


def refused(reason: str, **detail: Any) -> Outcome:
    """The operation cannot be carried out as given (unknown verb, bad payload)."""
    return Outcome(ok=False, retryable=False, error=reason, detail=detail)


def failed(error: VendorError) -> Outcome:
    return Outcome(
        ok=False,
        retryable=isinstance(error, RetryableError),
        error=str(error),
        detail=error.detail(),
    )


Handler = Callable[[Operation], Outcome]
T = TypeVar("T")


def dispatch(op: Operation, handlers: Mapping[str, Handler], what: str) -> Outcome:
    """Run the handler for `op.verb` in the `escalation` lane (unless the caller chose one);
    vendor errors become Outcomes, a missing payload key is a refusal."""
    handler = handlers.get(op.verb)
    if handler is None:
        return refused(f"{what}: unknown verb {op.verb!r}; known: {sorted(handlers)}")
    try:
        with default_lane("escalation"):
            return handler(op)
    except VendorError as exc:
        return failed(exc)
    except (KeyError, TypeError, ValueError) as exc:
        return refused(f"{what} {op.verb}: bad payload ({type(exc).__name__}: {exc})")


class TtlCache(Generic[T]):
    """A value loaded on first use and again once older than `ttl_s` (clock time): the
    directory, field definitions. Loads spend the `poll` lane unless the caller chose one.
    `get(max_age_s)` asks for a younger value: a caller that missed an entry (a group created
    since) reloads it at most once per `max_age_s`, not on every miss."""

    def __init__(self, load: Callable[[], T], clock: Clock, ttl_s: float) -> None:
        self._load = load
        self._clock = clock
        self._ttl_s = ttl_s
        self._value: tuple[datetime, T] | None = None
        self._lock = threading.Lock()

    def get(self, max_age_s: float | None = None, load: Callable[[], T] | None = None) -> T:
        """The value, loaded again if older than the TTL or `max_age_s`; by `load` instead of
        the cache's own loader if given (a caller that missed an entry may read more)."""
        limit = self._ttl_s if max_age_s is None else min(self._ttl_s, max_age_s)
        with self._lock:
            now = self._clock.now()
            if self._value is None or (now - self._value[0]).total_seconds() >= limit:
                with default_lane("poll"):
                    self._value = (now, (load or self._load)())
            return self._value[1]
