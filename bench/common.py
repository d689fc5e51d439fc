"""What the daemon benchmarks share: the support desk they simulate, the sandbox it lives in,
and a syncd runtime pointed at it.

The desk (`Scenario`): 12 agents in the group Support (one marked away), 2 Supervisors, 3,000
customers and, by default, 5,000 tickets already there (open, pending, on hold, solved; created
2-30 days before the benchmark starts, triaged long ago). During the simulated period new
tickets arrive (more in business hours), agents answer them (some within the hour, some later,
some not at all), customers write back, agents add notes and solve tickets. Everything is
drawn from a seeded RNG, so a run is repeatable and the syncd run and its baseline see exactly
the same activity.

The rules (`RULES`), a small real support process:
- `triage`: a new ticket is tagged, assigned in turn within Support, and Support is mailed;
- `no-action`: a ticket in new/open that no agent has touched is mailed about to Support after
  1 h and gets an internal note after 4 h (re-read from Zendesk before each step fires);
- `csat`: a ticket that becomes solved gets a satisfaction mail to its requester.

Because the rules are simple, the expected side effects follow from the activity alone
(`Scenario.expected`): the benchmarks check that syncd did exactly those, so a call count is
never the count of a run that skipped work.

Clocks. `LockstepClock` is a FrozenClock that moves the sandbox clock with it (each `set`,
`advance` and every `sleep` of syncd's budget governor): one simulated instant for syncd and
the vendors. The sandbox's rate-limit windows run on real time, which a simulated day does not:
`limits_on_sandbox_clock` makes the sandbox count them on its own (lockstep) clock, so that it
enforces the vendors' real limits over the simulated day and answers 429 past them
(api_calls.py); a benchmark on an accelerated clock (latency.py) raises them instead.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import tempfile
import textwrap
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.clock import Clock, FrozenClock
from syncd.connectors.tls import PinnedSession
from syncd.daemon.runtime import Runtime, open_runtime
from syncd.sandbox.core import RateLimiter
from syncd.sandbox.server import SandboxServer
from syncd.settings import Settings, load_settings

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
STEPS = {"h1": HOUR, "h4": 4 * HOUR}  # the no-action ladder's steps
AGENT_IDS = list(range(1001, 1013))
AWAY = 1012
SUPERVISOR_IDS = [1101, 1102]
CUSTOMER_BASE = 100_000
CUSTOMERS = 3_000
GRAPH_TOKEN_LIFETIME = timedelta(seconds=3599)  # the sandbox's default (Entra ID: 60-90 min)
EXPORT_PAGE = 1000  # incremental export page size
# the vendors' own limits per minute (the sandbox's are raised, see the module docstring)
VENDOR_LIMITS = {"zendesk": 700, "zendesk incremental export": 10, "graph": 600}

RULES = """
rules:
  - id: triage
    on: zendesk.ticket
    when: {status: new, tags: {lacks: syncd-triaged}}
    do:
      - tag: [syncd-triaged]
      - assign: {group: Support, strategy: round_robin}
      - notify: {to: [group:Support], subject: "New ticket #{{ ticket.id }}",
                 body: "{{ ticket.subject }} {{ ticket.url }}"}
  - id: no-action
    on: zendesk.ticket
    when: {status: [new, open]}
    since: created_at
    until: {agent_touched: true}
    catch_up: {fire_if_within: 2h}
    steps:
      - id: h1
        after: 1h
        do: [{notify: {to: [group:Support], subject: "1h without action: #{{ ticket.id }}",
                       body: "{{ ticket.url }}"}}]
      - id: h4
        after: 4h
        do: [{comment: {body: "No agent has acted on this ticket for 4 hours."}}]
  - id: csat
    on: zendesk.ticket
    when: {status: {became: solved}}
    do:
      - notify: {to: [requester], subject: "How did we do on #{{ ticket.id }}?",
                 body: "Tell us in one click."}
"""
H4_NOTE = "No agent has acted on this ticket for 4 hours."


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


# -- the scenario ----------------------------------------------------------------------------
@dataclass
class NewTicket:
    id: int
    created: datetime
    requester: str  # email
    reply_at: datetime | None = None  # an agent's first public reply
    reply_status: str = "pending"  # status the reply leaves: pending, or open
    solve_at: datetime | None = None

    def status_at(self, when: datetime) -> str:
        """new/open (syncd's triage opens it), pending or solved, per the scripted activity."""
        if self.solve_at is not None and self.solve_at <= when:
            return "solved"
        if self.reply_at is not None and self.reply_at <= when:
            return self.reply_status
        return "open"

    def touched_by(self, when: datetime) -> bool:
        return self.reply_at is not None and self.reply_at <= when


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    kind: str = field(compare=False)  # create | reply | customer | note | solve
    ticket: int = field(compare=False)
    author: int | None = field(default=None, compare=False)
    status: str | None = field(default=None, compare=False)


@dataclass
class Expected:
    """The side effects the rules must produce, and the re-reads before timers they need."""

    triage: set[int]
    h1: set[int]
    h4: set[int]
    csat: set[int]
    rereads: list[datetime]  # due instants at which a ticket must be re-read

    def mails(self) -> int:
        return len(self.triage) + len(self.h1) + len(self.csat)


@dataclass
class Scenario:
    start: datetime
    end: datetime
    existing: list[dict[str, Any]]
    new: list[NewTicket]
    events: list[Event]

    # -- the fixture -------------------------------------------------------------------------
    def fixture(self, clock: datetime, real_limits: bool = False) -> dict[str, Any]:
        """Staff, customers and the existing tickets; the sandbox's limits are the vendors'
        real ones with `real_limits`, else raised out of the way (see the module docstring)."""
        staff = [{"id": a, "name": f"Agent {a}", "email": f"agent{a}@example.com",
                  "role": "agent", "away": a == AWAY} for a in AGENT_IDS]
        staff += [{"id": s, "name": f"Supervisor {s}", "email": f"super{s}@example.com",
                   "role": "agent"} for s in SUPERVISOR_IDS]
        customers = [{"id": CUSTOMER_BASE + n, "name": f"Customer {n}",
                      "email": customer(n)} for n in range(CUSTOMERS)]
        raised = 1 if real_limits else 10**7
        return {
            "clock": clock.isoformat(),
            "zendesk": {
                "settings": {"rate_limit_per_minute": raised * VENDOR_LIMITS["zendesk"],
                             "incremental_per_minute": raised * VENDOR_LIMITS[
                                 "zendesk incremental export"]},
                "users": staff + customers,
                "groups": [
                    {"name": "Support", "members": [f"agent{a}@example.com" for a in AGENT_IDS]},
                    {"name": "Supervisors",
                     "members": [f"super{s}@example.com" for s in SUPERVISOR_IDS]},
                ],
                "tickets": self.existing,
            },
            "graph": {"settings": {"rate_limit_per_minute": raised * VENDOR_LIMITS["graph"]}},
        }

    def new_ticket_fixture(self, ticket: NewTicket) -> dict[str, Any]:
        at = stamp(ticket.created)
        return {"zendesk": {"tickets": [{
            "id": ticket.id, "subject": f"Order {ticket.id} has not arrived", "status": "new",
            "requester": ticket.requester, "created_at": at, "updated_at": at,
            "description": "Where is my parcel?"}]}}

    # -- what must happen --------------------------------------------------------------------
    def expected(self, until: datetime) -> Expected:
        """Effects whose trigger lies before `until` (callers leave a quiet tail after the
        last trigger, so nothing is borderline)."""
        triage = {t.id for t in self.new if t.created < until}
        h1: set[int] = set()
        h4: set[int] = set()
        rereads: list[datetime] = []
        for t in self.new:
            for step, offset in STEPS.items():
                due = t.created + offset
                if due >= until or t.status_at(due) not in ("new", "open"):
                    break  # the timeline ends: its record left `when`
                rereads.append(due)  # a ticket in `when` at a due step is re-read first
                if t.touched_by(due):
                    break  # `until` holds: the rest of the timeline is cancelled
                (h1 if step == "h1" else h4).add(t.id)
        csat = {e.ticket for e in self.events if e.kind == "solve" and e.at < until}
        return Expected(triage, h1, h4, csat, sorted(rereads))


def customer(n: int) -> str:
    return f"customer{n}@customer.example"


def busy_instant(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """An instant in [start, end), three times likelier in business hours (08:00-18:00)."""
    while True:
        at = start + (end - start) * rng.random()
        if 8 <= at.hour < 18 or rng.random() < 1 / 3:
            return whole_seconds(at)


def _clear_of_steps(created: datetime, at: datetime) -> bool:
    """An agent action is kept 3 minutes away from a step's due instant, so that which side of
    the step it falls on never depends on poll timing (both the syncd run and the baseline
    would see it the same way)."""
    return all(abs((at - (created + s)).total_seconds()) > 180 for s in STEPS.values())


def make_scenario(
    seed: int,
    *,
    existing: int = 5_000,
    new: int = 600,
    updates: int = 2_000,
    start: datetime = T0,
    span: timedelta = timedelta(days=1),
    arrivals: timedelta | None = None,
    quiet: timedelta = HOUR,
) -> Scenario:
    """`existing` tickets, `new` arriving in the first `arrivals` (default: the span less 5 h,
    so every step of the ladder falls in the span), `updates` changes to existing tickets. No
    activity in the last `quiet` of the span."""
    rng = random.Random(seed)
    end = start + span
    last = end - quiet
    arrivals = arrivals or (span - 5 * HOUR)
    statuses = ["open"] * 50 + ["pending"] * 30 + ["hold"] * 10 + ["solved"] * 10
    tickets = []
    status_of: dict[int, str] = {}
    requester_of: dict[int, int] = {}
    for n in range(1, existing + 1):
        created = whole_seconds(start - timedelta(days=2 + 28 * rng.random()))
        updated = created + (start - created) * rng.random()
        status = rng.choice(statuses)
        cust = rng.randrange(CUSTOMERS)
        tickets.append({
            "id": n, "subject": f"Question {n}", "status": status, "requester": customer(cust),
            "assignee": f"agent{rng.choice(AGENT_IDS[:-1])}@example.com",
            "tags": ["syncd-triaged"], "created_at": stamp(created),
            "updated_at": stamp(whole_seconds(updated)),
        })
        status_of[n] = status
        requester_of[n] = cust

    seq = iter(range(10**9))
    events: list[Event] = []
    fresh: list[NewTicket] = []
    first_new = existing + 1
    for n in range(new):
        created = busy_instant(rng, start, start + arrivals)
        email = customer(rng.randrange(CUSTOMERS)) if rng.random() < 0.7 else (
            f"new{n}@newcustomer.example")
        t = NewTicket(first_new + n, created, email)
        roll = rng.random()
        delay = (None if roll < 0.2 else rng.uniform(5, 50) if roll < 0.65
                 else rng.uniform(65, 230) if roll < 0.9 else rng.uniform(245, 600))
        if delay is not None:
            at = whole_seconds(created + timedelta(minutes=delay))
            if at < last and _clear_of_steps(created, at):
                t.reply_at = at
                t.reply_status = "pending" if rng.random() < 0.6 else "open"
        if t.reply_at is not None and rng.random() < 0.4:
            at = whole_seconds(t.reply_at + timedelta(minutes=rng.uniform(20, 300)))
            if at < last and _clear_of_steps(created, at):
                t.solve_at = at
        fresh.append(t)
        agent = rng.choice(AGENT_IDS[:-1])
        events.append(Event(created, next(seq), "create", t.id))
        if t.reply_at is not None:
            events.append(Event(t.reply_at, next(seq), "reply", t.id, agent, t.reply_status))
        if t.solve_at is not None:
            events.append(Event(t.solve_at, next(seq), "solve", t.id, agent, "solved"))

    # changes to existing tickets, in time order so that each sees the status before it
    instants = sorted(busy_instant(rng, start, last) for _ in range(updates))
    kinds = ["customer"] * 35 + ["reply"] * 30 + ["note"] * 15 + ["solve"] * 20
    for at in instants:
        while True:
            n = rng.randrange(1, existing + 1)
            if status_of[n] != "solved":
                break
        kind = rng.choice(kinds)
        agent = rng.choice(AGENT_IDS[:-1])
        if kind == "customer":
            events.append(Event(at, next(seq), kind, n, CUSTOMER_BASE + requester_of[n]))
            status_of[n] = "open" if status_of[n] == "pending" else status_of[n]
        elif kind == "reply":
            events.append(Event(at, next(seq), kind, n, agent, "pending"))
            status_of[n] = "pending"
        elif kind == "note":
            events.append(Event(at, next(seq), kind, n, agent))
        else:
            events.append(Event(at, next(seq), kind, n, agent, "solved"))
            status_of[n] = "solved"
    return Scenario(start, end, tickets, fresh, sorted(events))


# -- the sandbox -----------------------------------------------------------------------------
class Activity:
    """Applies scripted events to the sandbox as the vendor's users would make them: new
    tickets through /_sandbox/seed (the customer's mail arriving), everything else through the
    Zendesk API as the agent or customer named, at the sandbox clock's instant when `until`
    reaches them (api_calls.py: the next poll, at most 30 s late, which is why the scenario
    keeps agents' actions three minutes away from a step's due instant). `made` lists the API
    requests it made, so that `syncd_requests` can leave them out of the count."""

    def __init__(self, sandbox: SandboxServer, scenario: Scenario, clock: Clock) -> None:
        self.sandbox = sandbox
        self.scenario = scenario
        self.clock = clock
        self.by_id = {t.id: t for t in scenario.new}
        zd = sandbox.info["zendesk"]
        self.http = PinnedSession(verify=sandbox.ca_bundle)
        self.http.auth = (f"{zd['email']}/token", zd["token"])
        self.made: list[tuple[str, str, str]] = []  # (method, path, at)
        self._next = 0

    def until(self, when: datetime) -> None:
        """Apply every event not applied yet with `at <= when`."""
        events = self.scenario.events
        stop = bisect.bisect_right(events, when, lo=self._next, key=lambda e: e.at)
        for event in events[self._next : stop]:
            self.apply(event)
        self._next = stop

    def next_at(self) -> datetime | None:
        events = self.scenario.events
        return events[self._next].at if self._next < len(events) else None

    def apply(self, event: Event) -> None:
        if event.kind == "create":
            fixture = self.scenario.new_ticket_fixture(self.by_id[event.ticket])
            self.sandbox.control("POST", "/_sandbox/seed", fixture)
            return
        public = event.kind != "note"
        body = {"customer": "Any news?", "reply": "We are looking into it.",
                "note": "Checked the logs.", "solve": "Fixed; closing."}[event.kind]
        change: dict[str, Any] = {"comment": {"body": body, "public": public,
                                              "author_id": event.author}}
        if event.status:
            change["status"] = event.status
        path = f"/api/v2/tickets/{event.ticket}.json"
        at = self.clock.now().isoformat()
        resp = self.http.put(f"{self.sandbox.url}{path}", json={"ticket": change}, timeout=60)
        resp.raise_for_status()
        self.made.append(("PUT", path, at))


class LockstepClock(FrozenClock):
    """A FrozenClock that sets the sandbox's clock whenever it moves (see the module
    docstring): syncd's sleeps (its budget governor, job polling) move both."""

    def __init__(self, sandbox: SandboxServer, start: datetime) -> None:
        super().__init__(start)
        self.sandbox = sandbox
        self._push()

    def set(self, when: datetime) -> None:
        super().set(when)
        self._push()

    def advance(self, delta: timedelta | float) -> None:
        super().advance(delta)
        self._push()

    def _push(self) -> None:
        self.sandbox.control("POST", "/_sandbox/clock", {"now": self.now().isoformat()})


def limits_on_sandbox_clock(sandbox: SandboxServer) -> None:
    """Have the sandbox count its rate-limit windows on its own clock (see the module docstring):
    a client that waits moves that clock (LockstepClock), so a 429's `Retry-After` is honoured
    in simulated time, as the vendor's would be in real time."""
    ctx = sandbox.sandbox.ctx
    ctx.limiter = RateLimiter(now=lambda: ctx.clock.now().timestamp())


@contextmanager
def bench_sandbox() -> Iterator[tuple[SandboxServer, Path]]:
    shm = Path("/dev/shm")  # the state database's fsyncs are not what is measured
    where = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="syncd-bench-", dir=where) as tmp:
        root = Path(tmp)
        with SandboxServer(directory=root / "sandbox") as sandbox:
            yield sandbox, root


def bench_settings(sandbox: SandboxServer, root: Path, rules_text: str = RULES,
                   **syncd: Any) -> Settings:
    """The sandbox's syncd.toml with the benchmark's rules (`rules_text`, default RULES), a
    fresh state directory and every API budget at its default; `syncd` overrides [syncd] keys
    (poll_interval_s)."""
    rules = root / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "desk.yaml").write_text(textwrap.dedent(rules_text))
    env = {
        "SYNCD_SYNCD__RULES_DIR": str(rules),
        "SYNCD_SYNCD__STATE_DIR": str(root / "state"),
        "SYNCD_METRICS__ENABLED": "false",
        # the benchmarks measure calls and latency: no blast-radius limit may hold their work
        **{f"SYNCD_LIMITS__{k}": '{"any": 100000000}'
           for k in ("RULE_PER_CYCLE", "RULE_PER_HOUR", "PER_CYCLE", "PER_HOUR")},
        **{f"SYNCD_SYNCD__{k.upper()}": str(v) for k, v in syncd.items()},
    }
    return load_settings(sandbox.directory / "syncd.toml", env=env)  # type: ignore[operator]


def desk_runtime(settings: Settings, clock: Clock) -> Runtime:
    """A runtime as `syncd run` opens it: every vendor of the sandbox's syncd.toml configured
    (Zendesk, Salesforce, Graph). The desk's rules read Zendesk tickets and send mail through
    Graph; syncd polls only what its rules read, so Salesforce and the drive cost nothing."""
    return open_runtime(settings, clock)


# -- the request log -------------------------------------------------------------------------
def request_log(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return list(sandbox.control("GET", "/_sandbox/requests")["requests"])


def syncd_requests(
    log: Iterable[Mapping[str, Any]], others: Iterable[tuple[str, str, str]] = ()
) -> list[dict[str, Any]]:
    """The vendor requests of `log` less `others` ((method, path, at) of requests somebody
    else made: the activity's). The log's `at` is the sandbox clock's ISO-8601 instant."""
    left = Counter((m, p, datetime.fromisoformat(a).isoformat()) for m, p, a in others)
    found = []
    for entry in log:
        if entry["vendor"] is None:
            continue
        key = (entry["method"], entry["path"], datetime.fromisoformat(entry["at"]).isoformat())
        if left[key]:
            left[key] -= 1
            continue
        found.append(dict(entry))
    if +left:
        raise RuntimeError(f"{sum(left.values())} activity requests missing from the log")
    return found


VENDOR_NAMES = {"zendesk": "Zendesk", "graph": "Graph", "salesforce": "Salesforce",
                "auth": "Entra ID"}
CATEGORIES: list[tuple[str, str, str, str]] = [  # label, vendor, method, path regex
    ("Zendesk: incremental export (polls)", "zendesk", "GET", r"/incremental/tickets/"),
    ("Zendesk: directory refresh", "zendesk", "GET",
     r"/api/v2/(users|users/me|groups|group_memberships|organizations|ticket_fields)\.json$"),
    ("Zendesk: emails, organizations", "zendesk", "GET",
     r"/(users|organizations)/(show_many|\d+)\.json$"),
    ("Zendesk: re-read before a step (show)", "zendesk", "GET",
     r"/tickets/(\d+|show_many)\.json$"),
    ("Zendesk: re-read before a step (audits)", "zendesk", "GET", r"/tickets/\d+/audits"),
    ("Zendesk: tag writes", "zendesk", "PUT", r"/tickets/\d+/tags\.json$"),
    ("Zendesk: ticket updates and comments", "zendesk", "PUT", r"/tickets/\d+\.json$"),
    ("Zendesk: batched updates + job status", "zendesk", "", r"update_many|job_statuses"),
    ("Graph: drive delta (polls)", "graph", "GET", r"/delta"),
    ("Graph: directory refresh", "graph", "GET", r"/v1\.0/users$"),
    ("Graph: sendMail", "graph", "POST", r"/sendMail$"),
    ("Graph: drive items", "graph", "GET", r"/items/"),
    ("Salesforce: composite (polls)", "salesforce", "POST", r"/composite$"),
    ("Salesforce: describe, token", "salesforce", "", r"/describe$|/oauth2/token$"),
    ("Entra ID: tokens + discovery", "auth", "", r""),
]


def category(entry: Mapping[str, Any]) -> str:
    if entry["status"] == 401:
        return f"{VENDOR_NAMES.get(str(entry['vendor']), entry['vendor'])}: 401, token expired"
    for label, vendor, method, pattern in CATEGORIES:
        if (entry["vendor"] == vendor and (not method or entry["method"] == method)
                and re.search(pattern, str(entry["path"]))):
            return label
    return f"other: {entry['vendor']} {entry['method']} {entry['path']}"


def by_category(entries: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(category(e) for e in entries)


def window_peaks(entries: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per vendor limit in VENDOR_LIMITS: (the most requests in any 60 s of the simulated clock,
    the requests beyond the limit there, i.e. the 429s the real vendor would have answered)."""
    groups: dict[str, list[float]] = {name: [] for name in VENDOR_LIMITS}
    for e in entries:
        at = datetime.fromisoformat(str(e["at"])).timestamp()
        if e["vendor"] in groups:
            groups[str(e["vendor"])].append(at)
        if e["vendor"] == "zendesk" and "/incremental/" in str(e["path"]):
            groups["zendesk incremental export"].append(at)
    peaks = {}
    for name, times in groups.items():
        times.sort()
        peak = over = lo = 0
        for hi, at in enumerate(times):
            while at - times[lo] >= 60.0:
                lo += 1
            peak = max(peak, hi - lo + 1)
            over += hi - lo + 1 > VENDOR_LIMITS[name]
        peaks[name] = (peak, over)
    return peaks


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def mails(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return list(sandbox.control("GET", "/_sandbox/mail")["mail"])


SUBJECT = re.compile(r"^(New ticket|1h without action:|How did we do on) #(\d+)")
MAIL_KIND = {"New ticket": "triage", "1h without action:": "h1", "How did we do on": "csat"}


def mail_effects(found: Iterable[Mapping[str, Any]]) -> dict[str, Counter[int]]:
    """Mails per kind (triage, h1, csat) and ticket: a count above 1 is a duplicate."""
    effects: dict[str, Counter[int]] = {k: Counter() for k in MAIL_KIND.values()}
    for mail in found:
        m = SUBJECT.match(str(mail["subject"]))
        if m:
            effects[MAIL_KIND[m.group(1)]][int(m.group(2))] += 1
    return effects
