"""Benchmark of `syncd replay`: 14 days of a 100,000-ticket helpdesk (40,000 changes) with 100
rules, two of them changed in the candidate.

    .venv/bin/python bench/replay.py [--tickets N] [--changes N] [--days N] [--seed N]

The state database is built as the daemon writes it (a snapshot per ticket, its first version
and every later change in field_history), with bench/engine.py's rules and tickets. Measured
(CPU seconds, time.process_time, one core; wall seconds):
- syncd's replay (daemon/replay.py): reads the store, evaluates only the rules that differ;
- the naive baseline: every rule of both sets over every version of every ticket, the same
  reconstruction of the past;
and both must find the same differences. Target: replay < 30 s on one core.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import TAGS, rules_yaml, ticket
from sqlalchemy import insert

from syncd.daemon.replay import evaluate_history, recorded, replay
from syncd.rules.engine import Engine
from syncd.rules.language import RuleSet
from syncd.rules.language.loader import load_rules
from syncd.store.db import open_store
from syncd.store.records import diff_fields
from syncd.store.tables import field_history, records

END = datetime(2026, 3, 16, 14, 0, tzinfo=UTC)  # a Monday afternoon
HISTORY_DAYS = 30  # how long the store has been running


def change(rng: random.Random, fields: dict[str, Any]) -> dict[str, Any]:
    """One thing people do to a ticket."""
    new = {**fields, "custom": dict(fields["custom"])}
    what = rng.random()
    if what < 0.4:
        new["status"] = {"new": "open", "open": rng.choice(["pending", "solved"]),
                         "pending": "open", "hold": "open"}.get(fields["status"], "open")
    elif what < 0.6:
        new["priority"] = rng.choice(["urgent", "high", "normal", "low"])
    elif what < 0.8:
        new["tags"] = sorted(set(fields["tags"]) | {rng.choice(TAGS)})
    else:
        new["agent_touched"] = True
    return new


def build_store(url: str, tickets: int, changes: int, days: int, seed: int) -> None:
    rng = random.Random(seed)
    start = END - timedelta(days=HISTORY_DAYS)
    first: dict[int, tuple[datetime, dict[str, Any]]] = {}
    for n in range(1, tickets + 1):
        seen = start + timedelta(minutes=rng.randrange(0, HISTORY_DAYS * 24 * 60 - 60))
        record = ticket(rng, n, seen)
        fields = {**record.fields, "created_at": (seen - timedelta(minutes=1)).isoformat()}
        first[n] = (seen, fields)
    later: dict[int, list[datetime]] = {}
    window = days * 24 * 60
    made = 0
    while made < changes:  # each on a ticket syncd had seen by then
        n = rng.randrange(1, tickets + 1)
        at = END - timedelta(minutes=rng.randrange(1, window))
        if at > first[n][0] and at not in later.get(n, []):
            later.setdefault(n, []).append(at)
            made += 1
    store = open_store(url)
    try:
        snapshot_rows: list[dict[str, Any]] = []
        history_rows: list[dict[str, Any]] = []
        for n, (seen, fields) in first.items():
            version, current = 1, fields
            history_rows += _rows(n, 1, diff_fields({}, fields, seen))
            for at in sorted(later.get(n, [])):
                new = {**change(rng, current), "updated_at": at.isoformat()}
                version += 1
                history_rows += _rows(n, version, diff_fields(current, new, at))
                current = new
            snapshot_rows.append({"kind": "zendesk.ticket", "id": str(n), "fields": current,
                                  "observed_at": max([seen, *later.get(n, [])]),
                                  "deleted": False, "version": version})
        with store.transaction() as tx:
            for chunk in range(0, len(snapshot_rows), 20_000):
                tx.conn.execute(insert(records), snapshot_rows[chunk:chunk + 20_000])
            for chunk in range(0, len(history_rows), 50_000):
                tx.conn.execute(insert(field_history), history_rows[chunk:chunk + 50_000])
    finally:
        store.close()


def _rows(n: int, version: int, diff: list[Any]) -> list[dict[str, Any]]:
    return [{"record_kind": "zendesk.ticket", "record_id": str(n), "version": version,
             "field": c.field, "at": c.at, "old": c.old, "new": c.new} for c in diff]


def candidate_yaml(text: str) -> str:
    """Two rules changed: a routing rule widened, a ladder's first step moved."""
    text = text.replace("group_id: 0, tags: {lacks: routed}, priority: [urgent, high]",
                        "group_id: 0, tags: {lacks: routed}, priority: [urgent, high, normal]")
    marker = "  - id: ladder-60\n"
    head, tail = text.split(marker)
    tail = tail.replace("after: 1 business_hour", "after: 2 business_hours", 1)
    return head + marker + tail


def timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def naive(url: str, running: RuleSet, candidate: RuleSet, since: datetime) -> dict[str, int]:
    """Every rule of both sets over every version: the differences by rule."""
    old, new = Engine(running), Engine(candidate)
    store = open_store(url)
    counts: dict[str, int] = {}
    try:
        with store.read() as tx:
            for ref, deleted, seen in recorded(tx, ["zendesk.ticket"]):
                before = evaluate_history(old, ref, deleted, seen, since, END)
                after = evaluate_history(new, ref, deleted, seen, since, END)
                for key in before.keys() | after.keys():
                    a, b = before.get(key), after.get(key)
                    if a is None or b is None or a[0].due_at != b[0].due_at:
                        rule = (a or b)[0].rule_id  # type: ignore[index]
                        counts[rule] = counts.get(rule, 0) + 1
    finally:
        store.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'state.db'}"
        rules = rules_yaml(100)
        for name, text in (("running", rules), ("candidate", candidate_yaml(rules))):
            (root / name).mkdir()
            (root / name / "rules.yaml").write_text(text)
        _, _, built = timed(lambda: build_store(url, args.tickets, args.changes, args.days,
                                                args.seed))
        size = (root / "state.db").stat().st_size
        print(f"store: {args.tickets:,} tickets, {args.changes:,} changes over {args.days} days "
              f"(history {HISTORY_DAYS} days): {size / 2**20:.0f} MB, built in {built:.0f} s")
        running = load_rules(root / "running").ruleset
        candidate = load_rules(root / "candidate").ruleset
        since = END - timedelta(days=args.days)

        def ours() -> Any:
            store = open_store(url)
            try:
                with store.read() as tx:
                    return replay(tx, running, candidate, since, END)
            finally:
                store.close()

        found, cpu, wall = timed(ours)
        counts = {rule: len(d.added) + len(d.removed) + len(d.moved)
                  for rule, d in found.differences.items()}
        print(f"syncd replay: {cpu:.1f} s CPU ({wall:.1f} s wall), {found.records:,} records, "
              f"{found.versions:,} versions, rules replayed {found.rules_replayed}, "
              f"differences {counts}")
        expected, base_cpu, base_wall = timed(lambda: naive(url, running, candidate, since))
        print(f"naive (every rule, every version): {base_cpu:.1f} s CPU ({base_wall:.1f} s wall), "
              f"differences {expected}")
        print(f"ratio: {base_cpu / cpu:.1f}x less CPU; target < 30 s: "
              f"{'met' if cpu < 30 else 'MISSED'}")
        if expected != counts:
            print("ERROR: the replay and the baseline disagree", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
