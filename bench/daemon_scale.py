"""The whole daemon at scale: go-live, a 1,000-change cycle and an idle cycle with the shipped
rules, on helpdesks of 20,000 and 100,000 tickets (issue 19).

    .venv/bin/python bench/daemon_scale.py [--tickets 20000 100000] [--changes 1000] [--seed N]

For each size: the sandbox runs in a process of its own (`syncd sandbox`: its CPU and memory
are not syncd's), seeded with the demo company (config/sandbox-seed.yaml: agents, groups,
custom fields) and N tickets: most of them solved or closed history, about 12 % active (new,
open, pending, on hold) spread over the company's groups, with categories and kinds, created
over the last year. syncd runs in this process as `syncd run --once` would, one cycle at a
time, with the shipped rules (rules/), its default settings (first_sync = "baseline") and its
state database on disk, on a frozen clock moved in lockstep with the sandbox's (a wait of the
budget governor moves both), so the go-live's simulated duration is the pacing of the vendors'
limits as syncd's governor spends them (Zendesk's export: 10 pages of 1,000 a minute), and the
sandbox's own windows (real time) are raised out of the way.

Phases, each measured alone: go-live (the first cycle: every ticket read and recorded as the
baseline), a steady cycle after `--changes` tickets changed (priority and a tag, through
`update_many`), an idle cycle 15 minutes later (nothing changed: only what time makes due,
the dispatch queues' 15-minute repeats among it; the mix queues requests in Dispatch, with
impact and severity, and development tasks in Development). Printed per phase:
wall time, CPU time of this process (syncd alone), simulated time, vendor calls (from the
sandbox's request log) by endpoint, and the CPU of each step of the cycle (poll, timers,
executor) with what it did (records polled, timers fired, intents done and skipped: the work
time makes due grows with the helpdesk, the changes' does not); then the peak RSS and the state
database's size; and the growth of each figure from the smallest size to the largest.

Targets (issue 19): a 1,000-change cycle <= 10 s CPU at both sizes, growth <= 1.3x; an idle
cycle <= 1 s CPU at 100k; go-live at 100k <= 3 min CPU and within 1.2x of the export's own
pacing; peak RSS at 100k <= 400 MB; vendor reads at go-live O(pages), not O(tickets).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from common import LockstepClock, category, stamp, table, whole_seconds

from syncd.connectors.tls import PinnedSession
from syncd.daemon import cycle
from syncd.daemon.baseline import MARKER
from syncd.daemon.cycle import CycleReport, run_cycle
from syncd.daemon.executor import Executor
from syncd.daemon.runtime import Runtime, open_runtime
from syncd.demo.company import LISTS, WATCHED_FOLDERS
from syncd.model import RecordRef
from syncd.sandbox.server import load_fixture
from syncd.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "syncd" / "shipped" / "config" / "sandbox-seed.yaml"
RULES = REPO / "syncd" / "shipped" / "rules"
RAISED = 10**7
CHUNK = 5_000  # tickets per seed call
ACTIVE = ["new", "open", "pending", "hold"]
GROUPS = ["Support", "Engineers", "Development", "Helpdesk", "Dispatch", "IT Pros", "Sales"]
CATEGORIES = ["question", "urgent_issue", "server_issue", "issue_with_error",
              "issue_without_error", None, None]
CUSTOMERS = 2_000


class RemoteSandbox:
    """`syncd sandbox` in a process of its own: its control API over HTTPS."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "syncd"), "sandbox", "--dir", str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the sandbox did not start: {line}")
        self.info = json.loads((directory / "sandbox.json").read_text())
        self.url = self.info["url"]
        self.ca_bundle = self.info["ca_bundle"]
        self.http = PinnedSession(verify=self.ca_bundle)
        zd = self.info["zendesk"]
        self.api = PinnedSession(verify=self.ca_bundle)
        self.api.auth = (f"{zd['email']}/token", zd["token"])

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.http.request(method, f"{self.url}{path}", json=body, timeout=600)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def tickets(n: int, rng: random.Random, now: datetime) -> Iterator[dict[str, Any]]:
    """A year of history: ~88 % solved or closed, the rest active, over the groups."""
    for i in range(1, n + 1):
        created = whole_seconds(now - timedelta(days=365 * rng.random() ** 2 + 0.01))
        updated = whole_seconds(created + (now - created) * rng.random())
        active = rng.random() < 0.12
        status = rng.choice(ACTIVE) if active else rng.choice(["solved"] * 3 + ["closed"])
        ticket: dict[str, Any] = {
            "id": 100 + i, "subject": f"Question {i}", "status": status,
            "requester": f"customer{rng.randrange(CUSTOMERS)}@customer.example",
            "group": rng.choice(GROUPS), "priority": rng.choice(["low", "normal", "high"]),
            "tags": ["syncd-triaged"], "created_at": stamp(created), "updated_at": stamp(updated),
        }
        kind = rng.choice(["high_priority", "low_priority", "other", None])
        cat = rng.choice(CATEGORIES)
        fields = {k: v for k, v in (("Kind", kind), ("Category", cat)) if v}
        if ticket["group"] == "Dispatch":  # a triaged request: the dispatch queue's
            fields |= {"Impact": rng.choice(["high", "medium", "low"]),
                       "Severity": rng.choice(["critical", "major", "minor"])}
        if ticket["group"] == "Development":  # a development task: the developers' queue
            ticket["type"] = "task"
        if fields:
            ticket["custom_fields"] = fields
        yield ticket


@dataclass
class Phase:
    wall_s: float
    cpu_s: float
    simulated_s: float
    calls: Counter[str] = field(default_factory=Counter)
    steps: dict[str, float] = field(default_factory=dict)  # CPU s of each step of the cycle
    work: dict[str, int] = field(default_factory=dict)  # what the cycle did


# A cycle's steps (cycle.py): poll every source, fire the due timers, execute the due intents.
STEPS: dict[str, tuple[Any, str]] = {
    "poll": (cycle, "poll_all"), "timers": (cycle, "fire_due"), "executor": (Executor, "drain")}


@contextmanager
def cpu_by_step(into: Counter[str]) -> Iterator[None]:
    """Adds the CPU time of each of a cycle's steps to `into`: what grows with the helpdesk is
    told apart from what the changes cost."""
    saved = {name: getattr(owner, attr) for name, (owner, attr) in STEPS.items()}

    def timed(name: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return saved[name](*args, **kwargs)
            finally:
                into[name] += time.process_time() - start
        return run

    for name, (owner, attr) in STEPS.items():
        setattr(owner, attr, timed(name))
    try:
        yield
    finally:
        for name, (owner, attr) in STEPS.items():
            setattr(owner, attr, saved[name])


@dataclass
class Size:
    tickets: int
    phases: dict[str, Phase]
    rss_mb: float
    db_mb: float
    pages: int


def measured(sandbox: RemoteSandbox, clock: LockstepClock,
             rt: Runtime) -> tuple[Phase, CycleReport]:
    """One cycle (`syncd run --once`), measured."""
    before = len(sandbox.control("GET", "/_sandbox/requests")["requests"])
    wall, cpu, sim = time.monotonic(), time.process_time(), clock.now()
    steps: Counter[str] = Counter()
    with cpu_by_step(steps):
        report = run_cycle(rt)
    phase = Phase(time.monotonic() - wall, time.process_time() - cpu,
                  (clock.now() - sim).total_seconds(), steps=dict(steps))
    log = sandbox.control("GET", "/_sandbox/requests")["requests"][before:]
    phase.calls = Counter(category(e) for e in log if e["vendor"] is not None)
    phase.work = {"records": sum(report.polled.values()), "timers": report.fired,
                  "done": report.drained.done, "skipped": report.drained.skipped}
    return phase, report


def run_size(n: int, changes: int, seed: int) -> Size:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="syncd-scale-") as tmp:  # on disk, as deployed
        root = Path(tmp)
        sandbox = RemoteSandbox(root / "sandbox")
        try:
            return _run(sandbox, root, n, changes, rng)
        finally:
            sandbox.close()


def _run(sandbox: RemoteSandbox, root: Path, n: int, changes: int, rng: random.Random) -> Size:
    fixture = load_fixture(SEED)
    start = datetime.fromisoformat(fixture["clock"])
    fixture["zendesk"]["settings"] = {"rate_limit_per_minute": RAISED,
                                      "incremental_per_minute": RAISED}
    fixture["graph"]["settings"] = {"rate_limit_per_minute": RAISED}
    sandbox.control("POST", "/_sandbox/seed", fixture)
    batch: list[dict[str, Any]] = []
    for ticket in tickets(n, rng, start):
        batch.append(ticket)
        if len(batch) == CHUNK:
            sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"tickets": batch}})
            batch = []
    if batch:
        sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"tickets": batch}})
    rules = root / "rules"
    shutil.copytree(RULES, rules)
    settings = load_settings(sandbox.directory / "syncd.toml", env={
        "SYNCD_SYNCD__RULES_DIR": str(rules), "SYNCD_SYNCD__STATE_DIR": str(root / "state"),
        "SYNCD_METRICS__ENABLED": "false", "SYNCD_GRAPH__LISTS": json.dumps(LISTS),
        "SYNCD_GRAPH__WATCHED_FOLDERS": json.dumps(WATCHED_FOLDERS)})
    clock = LockstepClock(sandbox, start)  # type: ignore[arg-type]
    phases: dict[str, Phase] = {}
    rt = open_runtime(settings, clock)
    try:
        phases["go-live"], report = measured(sandbox, clock, rt)
        with rt.store.read() as tx:
            done = (tx.memory.get(MARKER, RecordRef("syncd.source", "zendesk")) or {}).get("done")
        if not done or not report.ok:
            raise RuntimeError(f"go-live did not complete: {report.failures}")
        clock.advance(timedelta(minutes=2))
        run_cycle(rt)  # what the go-live's own writes show in the export
        ids = [100 + i for i in rng.sample(range(1, n + 1), min(changes, n))]
        for i in range(0, len(ids), 100):
            chunk = ",".join(map(str, ids[i : i + 100]))
            sandbox.api.put(f"{sandbox.url}/api/v2/tickets/update_many.json?ids={chunk}",
                            json={"ticket": {"priority": "urgent", "additional_tags": ["scale"]}},
                            timeout=600).raise_for_status()
        clock.advance(timedelta(minutes=2))  # the export leaves out the last minute
        phases[f"{changes:,}-change cycle"], _ = measured(sandbox, clock, rt)
        clock.advance(timedelta(minutes=15))  # the dispatch queues' repeats fall due
        phases["idle cycle"], _ = measured(sandbox, clock, rt)
    finally:
        rt.close()
    db = root / "state" / "state.db"
    db_bytes = sum(p.stat().st_size for p in db.parent.glob("state.db*"))
    pages = phases["go-live"].calls["Zendesk: incremental export (polls)"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Size(n, phases, rss, db_bytes / 2**20, pages)


def report(sizes: list[Size]) -> None:
    rows = []
    for size in sizes:
        for name, p in size.phases.items():
            rows.append([f"{size.tickets:,}", name, f"{p.wall_s:.1f}", f"{p.cpu_s:.1f}",
                         f"{p.simulated_s / 60:.1f}", sum(p.calls.values())])
    print(table(rows, ["tickets", "phase", "wall s", "CPU s", "simulated min", "vendor calls"]))
    print()
    rows = [[f"{size.tickets:,}", name, *(f"{p.steps.get(s, 0):.2f}" for s in STEPS),
             *(p.work.get(w, 0) for w in ("records", "timers", "done", "skipped"))]
            for size in sizes for name, p in size.phases.items()]
    print(table(rows, ["tickets", "phase", *(f"{s} CPU s" for s in STEPS), "records polled",
                       "timers fired", "intents done", "skipped"]))
    print()
    print(table([[f"{s.tickets:,}", f"{s.rss_mb:.0f}", f"{s.db_mb:.0f}", s.pages] for s in sizes],
                ["tickets", "peak RSS MB", "state DB MB", "export pages at go-live"]))
    for size in sizes:
        print(f"\nvendor calls by endpoint, {size.tickets:,} tickets")
        names = sorted({c for p in size.phases.values() for c in p.calls})
        print(table([[c, *(p.calls.get(c, 0) for p in size.phases.values())] for c in names],
                    ["endpoint", *size.phases]))
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\ngrowth from {small.tickets:,} to {large.tickets:,} tickets "
              f"({large.tickets / small.tickets:g}x)")
        rows = [[name, f"{large.phases[name].cpu_s / max(p.cpu_s, 1e-3):.2f}x",
                 f"{large.phases[name].wall_s / max(p.wall_s, 1e-3):.2f}x"]
                for name, p in small.phases.items()]
        rows += [[f"{name}: {step}", f"{large.phases[name].steps.get(step, 0) / cpu:.2f}x", ""]
                 for name, p in small.phases.items() if name.endswith("change cycle")
                 for step in STEPS if (cpu := p.steps.get(step, 0)) >= 0.05]
        rows.append(["peak RSS", f"{large.rss_mb / small.rss_mb:.2f}x", ""])
        print(table(rows, ["figure", "CPU", "wall"]))
    print()
    print(verdicts(sizes))


def verdicts(sizes: list[Size]) -> str:
    rows = []
    for size in sizes:
        change = next(p for name, p in size.phases.items() if name.endswith("change cycle"))
        live = size.phases["go-live"]
        pacing = size.pages / 10 * 60  # the export's own: 10 pages a minute
        rows += [
            [f"{size.tickets:,}: change cycle CPU", f"{change.cpu_s:.1f} s", "<= 10 s",
             change.cpu_s <= 10],
            [f"{size.tickets:,}: idle cycle CPU", f"{size.phases['idle cycle'].cpu_s:.2f} s",
             "<= 1 s", size.phases["idle cycle"].cpu_s <= 1],
            [f"{size.tickets:,}: go-live CPU", f"{live.cpu_s:.0f} s", "<= 180 s",
             live.cpu_s <= 180],
            [f"{size.tickets:,}: go-live / export pacing",
             f"{live.simulated_s / max(pacing, 1):.2f}x", "<= 1.2x",
             live.simulated_s <= 1.2 * pacing],
            [f"{size.tickets:,}: peak RSS", f"{size.rss_mb:.0f} MB", "<= 400 MB",
             size.rss_mb <= 400],
            [f"{size.tickets:,}: go-live reads per export page",
             f"{_reads(live) / max(size.pages, 1):.1f}", "O(pages)", None],
        ]
    return table([[n, v, t, "" if ok is None else "met" if ok else "NOT MET"]
                  for n, v, t, ok in rows], ["figure", "value", "target", ""])


def _reads(phase: Phase) -> int:
    return sum(n for c, n in phase.calls.items() if re.match(r"Zendesk: (re-read|emails)", c))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one size
    args = parser.parse_args(list(argv) if argv is not None else None)
    sizes = []
    for n in sorted(args.tickets):
        # each size in a fresh process: peak RSS is per size
        if len(args.tickets) > 1:
            out = subprocess.run([sys.executable, __file__, "--tickets", str(n), "--changes",
                                  str(args.changes), "--seed", str(args.seed), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            sizes.append(_size(json.loads(out.splitlines()[-1])))
        else:
            sizes.append(run_size(n, args.changes, args.seed))
    if args.json:
        print(json.dumps(_plain(sizes[0])))
        return 0
    report(sizes)
    return 0


def _plain(size: Size) -> dict[str, Any]:
    return {"tickets": size.tickets, "rss_mb": size.rss_mb, "db_mb": size.db_mb,
            "pages": size.pages, "phases": {k: {**vars(p), "calls": dict(p.calls)}
                                            for k, p in size.phases.items()}}


def _size(d: dict[str, Any]) -> Size:
    phases = {k: Phase(v["wall_s"], v["cpu_s"], v["simulated_s"], Counter(v["calls"]),
                       v["steps"], v["work"])
              for k, v in d["phases"].items()}
    return Size(d["tickets"], phases, d["rss_mb"], d["db_mb"], d["pages"])


if __name__ == "__main__":
    sys.exit(main())
