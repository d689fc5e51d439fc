"""API calls syncd makes over one simulated day of a 5,000-ticket support desk, against what a
competent zenpy script makes for the same effects and against the minimum the vendors' APIs
allow, at the vendors' real rate limits.

    .venv/bin/python bench/api_calls.py [--seed N] [--tickets N] [--new N] [--updates N]

The desk, its activity and its rules are in bench/common.py: 5,000 existing tickets, 600 new
ones (triage: tag, assign in turn, mail the group), a no-action ladder (re-read the ticket, then
mail after 1 h, add a note after 4 h, unless an agent acted) and a satisfaction mail when a
ticket is solved; 2,000 changes to existing tickets. syncd runs in-process as `syncd run`
would (one runtime, one cycle per poll interval, default settings and API budgets) on a frozen
clock moved in lockstep with the sandbox's: 2,880 polls at the default 30 s. Calls are counted
from the sandbox's `GET /_sandbox/requests` (less the activity's own requests, which it
records), and syncd's side effects are checked against the activity (every
expected mail, tag, assignment and note exactly once), so a low count cannot come from skipped
work.

Rate limits: the sandbox enforces the vendors' real ones (Zendesk 700 a minute on the
Enterprise plan syncd's defaults assume, its incremental export 10, Graph 600), counted on the
simulated clock (`limits_on_sandbox_clock`), and the 429s it answers are counted.

The baseline: the script a competent engineer writes with zenpy for the same process, polling
as often: zenpy's cursor-based incremental export for what changed (`tickets.incremental`),
then one ticket at a time: triage as one ticket update (the tag list with syncd-triaged added
to what it read, and the assignee), the ticket's audits read before a ladder step, the same
mails through Graph, requesters' emails read once each. It runs alongside syncd, in a process
and sandbox of its own, on the same activity and limits, and its effects are checked too.

The minimum, per purpose (computed from the scripted activity, not from what syncd did):
- detecting changes: one incremental-export call per poll (a page holds 1,000 changes; no
  poll of this day comes near); nothing for Graph, since no rule reads SharePoint;
- reference data: the agents, groups and memberships once (1 call: the group memberships
  side-load their users and groups, `include=users,groups`); requesters' emails come
  with the export (`include=users` sideloads them), so no extra call;
- before a step fires, the ticket is re-read (the issue requires it): its audits (one call per
  ticket: an agent's action is only visible there) and its fields (`tickets/show_many`, 100 a
  call, per poll);
- Zendesk writes, in two forms, both printed. Documented: tags are added without replacing
  others only by the tag endpoint or `update_many`'s `additional_tags` (a ticket's own update
  replaces the list), so triage's tag and assignment are two calls, or one `update_many`
  entry; a poll with t triaged tickets and n notes costs min(2t + n, 2*ceil((t + n)/100))
  (one call each, or `update_many` jobs of 100 plus one job-status read each). As syncd and
  the script do it: one ticket update carrying the whole tag list and the assignee:
  min(t + n, 2*ceil((t + n)/100)). syncd sends it with `safe_update` and the stamp of the list
  it read (a tag added meanwhile earns a 409, the ticket is read again, the tag is kept); the
  script's plain update overwrites such a tag;
- one `sendMail` per mail; one Graph token per token lifetime (3,599 s) in which mail is sent.

Targets (issue 19): syncd at most 1.0x the competent script's calls, no 429 answered.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from common import (
    AGENT_IDS,
    AWAY,
    EXPORT_PAGE,
    GRAPH_TOKEN_LIFETIME,
    H4_NOTE,
    MINUTE,
    STEPS,
    VENDOR_LIMITS,
    Activity,
    LockstepClock,
    Scenario,
    bench_sandbox,
    bench_settings,
    by_category,
    desk_runtime,
    limits_on_sandbox_clock,
    mail_effects,
    mails,
    make_scenario,
    request_log,
    syncd_requests,
    table,
    window_peaks,
)
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket

from syncd.connectors.tls import PinnedSession
from syncd.connectors.zendesk import pin_host
from syncd.daemon.cycle import run_cycle
from syncd.daemon.executor import Executor
from syncd.sandbox.server import SandboxServer
from syncd.settings import SyncdSection

EXPORT_LAG = MINUTE  # the export leaves out the last minute's changes
WARMUP = 10 * MINUTE
CATCH_UP = timedelta(hours=2)  # the ladder's catch_up: fire_if_within 2h


# -- syncd -----------------------------------------------------------------------------------
@dataclass
class SyncdRun:
    day: list[dict[str, Any]]  # syncd's requests during the day
    first_start: list[dict[str, Any]]  # ... during the first start (backfill) before it
    polls: int
    effects: dict[str, Counter[int]]
    ledger: Counter[tuple[str, str]]  # (rule, action) -> intents done
    not_done: Counter[str]  # intent state -> count, for states other than done/skipped
    throttled: dict[str, int]
    first_start_s: float
    wall_s: float
    read_backs: int = 0  # of the day's calls: syncd reading back its own writes


@contextmanager
def read_backs_counted() -> Iterator[list[int]]:
    """Count the vendor calls of `Executor._read_back` (syncd reading back records it wrote
    whose write answered no record), which the wire shows as any other `show_many`."""
    counted, original = [0], Executor._read_back

    def counting(self: Executor) -> None:
        stats = [c.governor.stats for c in self.rt.connectors.values()]  # type: ignore[attr-defined]
        before = sum(s.calls for s in stats)
        original(self)
        counted[0] += sum(s.calls for s in stats) - before

    Executor._read_back = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        Executor._read_back = original  # type: ignore[method-assign]


def run_syncd(scenario: Scenario) -> SyncdRun:
    started = time.monotonic()
    with bench_sandbox() as (sandbox, root), read_backs_counted() as read_backs:
        settings = bench_settings(sandbox, root)
        poll = timedelta(seconds=settings.syncd.poll_interval_s)
        tick = scenario.start - WARMUP
        sandbox.control("POST", "/_sandbox/seed", scenario.fixture(tick, real_limits=True))
        limits_on_sandbox_clock(sandbox)
        clock = LockstepClock(sandbox, tick)
        activity = Activity(sandbox, scenario, clock)
        rt = desk_runtime(settings, clock)
        try:
            while tick < scenario.start:  # first start: the backfill, then polls up to the day
                clock.set(max(tick, clock.now()))
                run_cycle(rt)
                tick += poll
            first_start = len(request_log(sandbox))
            first_s = time.monotonic() - started
            read_backs[0] = 0
            polls = 0
            while tick < scenario.end:  # the day: what changed since the last poll, then a cycle
                clock.set(max(tick, clock.now()))
                activity.until(tick)
                run_cycle(rt)
                polls += 1
                tick += poll
            throttled = {name: c.governor.stats.throttled  # type: ignore[attr-defined]
                         for name, c in rt.connectors.items()}
            with rt.store.read() as tx:
                entries = tx.ledger.list()
        finally:
            rt.close()
        log = request_log(sandbox)
        found = mail_effects(mails(sandbox))
    return SyncdRun(
        day=syncd_requests(log[first_start:], activity.made),
        first_start=syncd_requests(log[:first_start]),
        polls=polls,
        effects=found,
        ledger=Counter((e.intent.rule_id, e.intent.action) for e in entries
                       if e.state == "done"),
        not_done=Counter(str(e.state) for e in entries if e.state not in ("done", "skipped")),
        throttled=throttled,
        first_start_s=first_s,
        wall_s=time.monotonic() - started,
        read_backs=read_backs[0],
    )


# -- the minimum -----------------------------------------------------------------------------
@dataclass
class Minimum:
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def minimum(scenario: Scenario, poll: timedelta, polls: int, triage_calls: int) -> Minimum:
    """What the vendors' APIs allow at least, for this day's activity (module docstring), with
    triage's tag and assignment as `triage_calls` calls (2: the documented additive forms; 1:
    one ticket update replacing the tag list)."""
    expected = scenario.expected(scenario.end)
    start = scenario.start

    def tick_of(at: datetime) -> int:  # the poll that can first see / act on `at`
        return math.ceil((at - start) / poll)

    changes = Counter(tick_of(e.at + EXPORT_LAG) for e in scenario.events)
    # syncd's own writes show up in the export too: at most three per event, still one page
    pages = sum(max(1, math.ceil(3 * changes.get(t, 0) / EXPORT_PAGE)) for t in range(polls))
    rereads = Counter(tick_of(at) for at in expected.rereads)
    triaged = Counter(tick_of(t.created + EXPORT_LAG) for t in scenario.new
                      if t.id in expected.triage)
    notes = Counter(tick_of(t.created + STEPS["h4"]) for t in scenario.new if t.id in expected.h4)
    mail_ticks = sorted(
        [tick_of(t.created + EXPORT_LAG) for t in scenario.new if t.id in expected.triage]
        + [tick_of(t.created + STEPS["h1"]) for t in scenario.new if t.id in expected.h1]
        + [tick_of(e.at + EXPORT_LAG) for e in scenario.events
           if e.kind == "solve" and e.ticket in expected.csat]
    )
    tokens, valid_until = 0, -1.0
    for t in mail_ticks:
        if t * poll.total_seconds() >= valid_until:
            tokens += 1
            valid_until = t * poll.total_seconds() + GRAPH_TOKEN_LIFETIME.total_seconds()
    return Minimum({
        "detect changes": pages,
        "reference data": 1,
        "re-read before a step": sum(k + math.ceil(k / 100) for k in rereads.values()),
        "read back own writes": 0,
        "Zendesk writes": sum(
            min(triage_calls * triaged[t] + notes[t],
                2 * math.ceil((triaged[t] + notes[t]) / 100))
            for t in triaged.keys() | notes.keys()
        ),
        "mail": expected.mails(),
        "tokens": tokens,
    })


READ_BACK = "Zendesk: read back own writes (show)"  # counted in-process (read_backs_counted)
PURPOSE = {  # syncd's endpoint categories (bench/common.py) -> purpose rows of the minimum
    "Zendesk: incremental export (polls)": "detect changes",
    "Graph: drive delta (polls)": "detect changes",
    "Zendesk: directory refresh": "reference data",
    "Zendesk: emails, organizations": "reference data",
    "Graph: directory refresh": "reference data",
    "Zendesk: re-read before a step (show)": "re-read before a step",
    "Zendesk: re-read before a step (audits)": "re-read before a step",
    READ_BACK: "read back own writes",
    "Zendesk: tag writes": "Zendesk writes",
    "Zendesk: ticket updates and comments": "Zendesk writes",
    "Zendesk: batched updates + job status": "Zendesk writes",
    "Graph: sendMail": "mail",
    "Entra ID: tokens + discovery": "tokens",
    "Graph: 401, token expired": "tokens",
    "Zendesk: 401, token expired": "tokens",
}


# -- the competent baseline ------------------------------------------------------------------
class Script:
    """The script a competent engineer writes with zenpy (module docstring): the incremental
    export for what changed, then one ticket at a time. It keeps, in memory, the tickets not
    solved or closed with their creation instant, to step their ladders between changes."""

    def __init__(self, sandbox: SandboxServer, clock: LockstepClock) -> None:
        self.clock = clock
        zd, self.graph = sandbox.info["zendesk"], sandbox.info["graph"]
        self.zd = Zenpy(subdomain=zd["subdomain"], email=zd["email"], token=zd["token"],
                        session=PinnedSession(verify=sandbox.ca_bundle), disable_cache=True)
        pin_host(self.zd, "https", zd["netloc"])  # the sandbox host, as syncd does
        self.http = PinnedSession(verify=sandbox.ca_bundle)
        self.token: tuple[str, datetime] | None = None
        self.cursor: str | None = None
        self.last: datetime | None = None
        self.seen: dict[int, str] = {}
        self.live: dict[int, datetime] = {}  # not solved/closed: created_at
        self.done: set[tuple[int, str]] = set()
        self.stopped: set[int] = set()
        self.emails: dict[int, str] = {}
        self.rotation = [a for a in AGENT_IDS if a != AWAY]
        self.turn = 0
        agents = {u.id: u.email for u in self.zd.users(role=["agent", "admin"])}
        self.me = next(uid for uid, email in agents.items() if email == zd["email"])
        support = next(g.id for g in self.zd.groups() if g.name == "Support")
        members = {m.user_id for m in self.zd.group_memberships() if m.group_id == support}
        self.support = sorted(agents[m] for m in members if m in agents)

    def poll(self) -> None:
        now = self.clock.now()
        first = self.cursor is None
        since, self.last = self.last or now - CATCH_UP, now  # steps due since the last poll
        export = (self.zd.tickets.incremental(cursor=self.cursor) if self.cursor
                  else self.zd.tickets.incremental(start_time=0))
        for t in export:
            before = self.seen.get(t.id, None if first else "new")
            self.seen[t.id] = t.status
            if t.status in ("solved", "closed"):
                self.live.pop(t.id, None)
            else:
                self.live[t.id] = datetime.fromisoformat(t.created_at.replace("Z", "+00:00"))
            if "syncd-triaged" not in (t.tags or []):
                self.zd.tickets.update(Ticket(
                    id=t.id, tags=[*(t.tags or []), "syncd-triaged"],
                    assignee_id=self.rotation[self.turn % len(self.rotation)]))
                self.turn += 1
                self.mail(self.support, f"New ticket #{t.id}")
            if before is not None and before != "solved" and t.status == "solved":
                if t.requester_id not in self.emails:
                    self.emails[t.requester_id] = self.zd.users(id=t.requester_id).email
                self.mail([self.emails[t.requester_id]], f"How did we do on #{t.id}?")
        self.cursor = export.after_cursor or self.cursor
        for ticket_id, created in list(self.live.items()):
            if ticket_id not in self.stopped and since < created + STEPS["h4"]:
                self.ladder(ticket_id, created, since, now)

    def ladder(self, ticket_id: int, created: datetime, since: datetime, now: datetime) -> None:
        for step, offset in STEPS.items():
            due = created + offset
            if (ticket_id, step) in self.done or not since < due <= now:
                continue
            if self.touched_before(ticket_id, due):
                self.stopped.add(ticket_id)
                return
            self.done.add((ticket_id, step))
            if step == "h1":
                self.mail(self.support, f"1h without action: #{ticket_id}")
            else:
                note = Comment(body=H4_NOTE, public=False)
                self.zd.tickets.update(Ticket(id=ticket_id, comment=note))

    def touched_before(self, ticket_id: int, due: datetime) -> bool:
        """An agent's public comment, status change or reassignment before `due`."""
        for audit in list(self.zd.tickets.audits(ticket_id))[1:]:
            at = datetime.fromisoformat(str(audit.created_at).replace("Z", "+00:00"))
            if at >= due or audit.author_id == self.me or audit.author_id not in AGENT_IDS:
                continue
            for e in audit.events or []:
                if (e.get("type") == "Comment" and e.get("public")) or (
                        e.get("type") == "Change"
                        and e.get("field_name") in ("status", "assignee_id", "group_id")):
                    return True
        return False

    def mail(self, to: Sequence[str], subject: str) -> None:
        now = self.clock.now()
        if self.token is None or self.token[1] <= now:
            resp = self.http.post(f"{self.graph['authority']}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": self.graph["client_id"],
                "client_secret": self.graph["client_secret"],
                "scope": "https://graph.microsoft.com/.default"}, timeout=60)
            resp.raise_for_status()
            answer = resp.json()
            self.token = (answer["access_token"],
                          now + timedelta(seconds=int(answer["expires_in"]) - 60))
        message = {"subject": subject, "body": {"contentType": "Text", "content": subject},
                   "toRecipients": [{"emailAddress": {"address": a}} for a in to]}
        resp = self.http.post(f"{self.graph['base_url']}/users/{self.graph['mailbox']}/sendMail",
                              json={"message": message},
                              headers={"Authorization": f"Bearer {self.token[0]}"}, timeout=60)
        resp.raise_for_status()


@dataclass
class BaselineRun:
    day: list[dict[str, Any]]  # its requests during the day
    effects: dict[str, Counter[int]]
    wall_s: float


def run_baseline(scenario: Scenario, poll: timedelta) -> BaselineRun:
    """The competent script over the same day, in a sandbox of its own."""
    started = time.monotonic()
    with bench_sandbox() as (sandbox, _):
        sandbox.control("POST", "/_sandbox/seed",
                        scenario.fixture(scenario.start - WARMUP, real_limits=True))
        limits_on_sandbox_clock(sandbox)
        clock = LockstepClock(sandbox, scenario.start - WARMUP)
        activity = Activity(sandbox, scenario, clock)
        script = Script(sandbox, clock)
        script.poll()  # what it has seen before the day starts
        before = len(request_log(sandbox))
        tick = scenario.start
        while tick < scenario.end:
            clock.set(tick)
            activity.until(tick)
            script.poll()
            tick += poll
        day = syncd_requests(request_log(sandbox)[before:], activity.made)
        found = mail_effects(mails(sandbox))
    return BaselineRun(day, found, time.monotonic() - started)


def _baseline_process(args: argparse.Namespace, poll: timedelta, out: Connection) -> None:
    out.send(run_baseline(scenario_of(args), poll))
    out.close()


# -- the report ------------------------------------------------------------------------------
WHY = {
    "detect changes": "more than one export page in a poll",
    "reference data": "agents, groups and memberships read again every 15 minutes, one "
                      "call ([zendesk] directory_ttl_s: an agent's away flag is seen within "
                      "it), and syncd's own user once",
    "re-read before a step": "tickets due at one poll re-read apart",
    "read back own writes": "writes whose answer carries no ticket (an update_many job), read "
                            "back before a later intent of the pass reads them",
    "Zendesk writes": "polls with several triaged tickets could share one update_many job",
    "mail": "",
    "tokens": "msal reads the authority's OpenID configuration once per process",
}


def check_effects(run: SyncdRun, scenario: Scenario) -> list[str]:
    """Differences between what syncd did and what the activity requires (empty: all good)."""
    expected = scenario.expected(scenario.end)
    problems = mail_problems(run.effects, expected)
    done = run.ledger
    for (rule, action), want_n in {
        ("triage", "tag"): len(expected.triage), ("triage", "assign"): len(expected.triage),
        ("no-action", "comment"): len(expected.h4),
    }.items():
        if done[(rule, action)] != want_n:
            problems.append(f"{rule}/{action}: {done[(rule, action)]} done, {want_n} expected")
    if run.not_done:
        problems.append(f"intents not done: {dict(run.not_done)}")
    return problems


def mail_problems(effects: dict[str, Counter[int]], expected: Any) -> list[str]:
    """Differences between the mails sent and the ones the activity requires."""
    problems = []
    for kind, want in (("triage", expected.triage), ("h1", expected.h1), ("csat", expected.csat)):
        got = effects[kind]
        if set(got) != want:
            problems.append(f"{kind} mails: {len(set(got) - want)} unexpected, "
                            f"{len(want - set(got))} missing")
        if any(n > 1 for n in got.values()):
            problems.append(f"{kind} mails: {sum(n > 1 for n in got.values())} duplicated")
    return problems


def syncd_categories(run: SyncdRun) -> Counter[str]:
    """syncd's calls by endpoint category, its read-backs apart from the other `show_many`."""
    cats = by_category(run.day)
    show = "Zendesk: re-read before a step (show)"
    cats[show] -= run.read_backs
    cats[READ_BACK] += run.read_backs
    return +cats


def per_purpose(cats: Counter[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for label, n in cats.items():
        found[PURPOSE.get(label, "other")] += n
    return found


def report(scenario: Scenario, run: SyncdRun, base: BaselineRun, poll: timedelta) -> int:
    expected = scenario.expected(scenario.end)
    documented = minimum(scenario, poll, run.polls, triage_calls=2)
    one_call = minimum(scenario, poll, run.polls, triage_calls=1)
    cats = syncd_categories(run)
    mine, theirs = per_purpose(cats), per_purpose(by_category(base.day))
    total, script = sum(mine.values()), sum(theirs.values())
    print(f"syncd API calls over one simulated day: {len(scenario.existing):,} tickets, "
          f"{len(scenario.new):,} new, {sum(e.kind != 'create' for e in scenario.events):,} "
          f"changes; a poll every {poll.total_seconds():g} s ({run.polls:,} polls); "
          f"default API budgets; the vendors' real rate limits")
    print(f"expected effects: {len(expected.triage)} triaged (tag + assign + mail), "
          f"{len(expected.h1)} 1 h mails, {len(expected.h4)} 4 h notes, "
          f"{len(expected.csat)} satisfaction mails, {len(expected.rereads)} re-reads")
    problems = check_effects(run, scenario)
    base_problems = mail_problems(base.effects, expected)
    print("effects check: syncd " + ("every expected effect exactly once" if not problems
                                     else "FAILED: " + "; ".join(problems))
          + "; script " + ("every expected mail exactly once" if not base_problems
                           else "FAILED: " + "; ".join(base_problems)))
    print()
    rows, notes = [], []
    for purpose, least_n in documented.rows.items():
        n = mine.get(purpose, 0)
        note = ""
        if n > one_call.rows[purpose] and WHY.get(purpose):
            notes.append(f"  [{len(notes) + 1}] {purpose}: {WHY[purpose]}")
            note = f"[{len(notes)}]"
        rows.append([purpose, n, theirs.get(purpose, 0), least_n, one_call.rows[purpose], note])
    for other in sorted({"other"} & (mine.keys() | theirs.keys())):
        rows.append([other, mine.get(other, 0), theirs.get(other, 0), 0, 0, ""])
    rows.append(["total", total, script, documented.total, one_call.total, ""])
    rows.append(["syncd / column", "", _ratio(total, script), _ratio(total, documented.total),
                 _ratio(total, one_call.total), ""])
    rows.append(["script / column", "", "", _ratio(script, documented.total),
                 _ratio(script, one_call.total), ""])
    print(table(rows, ["purpose", "syncd", "script", "min, triage 2 calls",
                       "min, triage 1 call", "why"]))
    print("  min, triage 2 calls: the documented additive tag forms (tag endpoint, or one "
          "update_many entry)")
    print("  min, triage 1 call: one ticket update with the whole tag list and the assignee, "
          "as syncd (with safe_update) and the script do")
    print("\n".join(notes))
    print()
    theirs_by = by_category(base.day)
    print(table(sorted(([c, cats.get(c, 0), theirs_by.get(c, 0)] for c in cats.keys()
                        | theirs_by.keys()), key=lambda r: (-r[1], -r[2])),
                ["calls by endpoint", "syncd", "script"]))
    print()
    answered = sum(1 for e in run.day if e["status"] == 429)
    answered_base = sum(1 for e in base.day if e["status"] == 429)
    peaks = window_peaks(run.day)
    print("sandbox at the vendors' real limits; busiest simulated minute for syncd: " + ", ".join(
        f"{name} {peak}/{limit}" for name, (peak, _) in peaks.items()
        for limit in [VENDOR_LIMITS[name]]))
    print(f"  429s answered by the sandbox: syncd {answered}, script {answered_base}; throttled "
          f"seen by syncd's governors: {sum(run.throttled.values())}")
    first = len(run.first_start)
    print(f"first start (backfill of {len(scenario.existing):,} tickets, then polls up to the "
          f"day): {first:,} calls")
    print(f"wall time: syncd {run.wall_s:.0f} s (first start {run.first_start_s:.0f} s), "
          f"script {base.wall_s:.0f} s, alongside")
    print()
    verdicts = [
        ("syncd / competent script", _ratio(total, script), "<= 1.00x", total <= script),
        ("429s answered", f"{answered}", "0", answered == 0),
        ("effects check", "ok" if not (problems or base_problems) else "FAILED", "ok",
         not (problems or base_problems)),
    ]
    print(table([[n, v, t, "met" if ok else "NOT MET"] for n, v, t, ok in verdicts],
                ["figure", "value", "target", ""]))
    return 0 if not (problems or base_problems) else 1


def _ratio(n: int, least: int) -> str:
    return f"{n / least:.2f}x" if least else ("-" if n == 0 else "inf")


def scenario_of(args: argparse.Namespace) -> Scenario:
    return make_scenario(args.seed, existing=args.tickets, new=args.new, updates=args.updates)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--tickets", type=int, default=5_000)
    parser.add_argument("--new", type=int, default=600)
    parser.add_argument("--updates", type=int, default=2_000)
    args = parser.parse_args(list(argv) if argv is not None else None)
    poll = timedelta(seconds=SyncdSection().poll_interval_s)  # the default
    # the baseline runs alongside, in a process (and sandbox) of its own: two cores, one wait
    spawn = multiprocessing.get_context("spawn")
    receive, send = spawn.Pipe(duplex=False)
    worker = spawn.Process(target=_baseline_process, args=(args, poll, send), daemon=True)
    worker.start()
    run = run_syncd(scenario_of(args))
    base = receive.recv()
    worker.join()
    return report(scenario_of(args), run, base, poll)


if __name__ == "__main__":
    sys.exit(main())
