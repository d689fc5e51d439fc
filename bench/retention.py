"""Benchmark of retention: the state database's size after a simulated year of a 5,000-ticket
helpdesk, with pruning on against the same year with pruning off (the baseline), run side by
side.

    .venv/bin/python bench/retention.py [--tickets 5000] [--days 365] [--keep-days 90]
                                        [--changes 2636] [--new 600] [--seed 7]

Every simulated day, through the store's own API (the rows the daemon writes): `--changes`
ticket updates (status, priority, assignee, tags; each a snapshot and its field history),
`--new` new tickets each getting three intents (tag, assign, mail: planned, sent, done, with
their audit rows), and a ladder timer per new ticket that fires a day later. With pruning on,
`retention.prune` runs once a simulated day with `keep_days`; with the default 400 days nothing
is old enough within one year, so the default here is 90 (say `--keep-days 400 --days 730`
for two years at the default). Prints, for both stores: file size, rows per table, and with
pruning on the CPU time of the daily prunes. Ticket ids cycle within `--tickets`: a helpdesk
of that size, whose records (never pruned) stay at that count.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from syncd.model import Intent, Record, RecordRef, intent_key
from syncd.store.db import Store, open_store
from syncd.store.retention import prune
from syncd.store.tables import audit, field_history, intents, records, timers
from syncd.store.timers import TimerSpec

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
STATUSES = ("new", "open", "pending", "solved")
PRIORITIES = ("low", "normal", "high", "urgent")


def day_of_activity(store: Store, rng: random.Random, day: int, args: argparse.Namespace,
                    fields: dict[int, dict[str, object]]) -> None:
    at = START + timedelta(days=day)
    refs: list[RecordRef] = []
    with store.transaction() as tx:
        for n in range(args.changes):
            tid = rng.randrange(args.tickets)
            ticket = fields.setdefault(tid, {"status": "new", "priority": "normal",
                                             "tags": [], "assignee_id": None})
            ticket.update(status=rng.choice(STATUSES), priority=rng.choice(PRIORITIES),
                          assignee_id=rng.randrange(12),
                          tags=[f"t{rng.randrange(20)}"])
            tx.records.upsert(Record(RecordRef("zendesk.ticket", str(tid)), dict(ticket),
                                     at + timedelta(seconds=n)))
        for n in range(args.new):
            ref = RecordRef("zendesk.ticket", str((day * args.new + n) % args.tickets))
            refs.append(ref)
            made = [Intent(key=intent_key(rule, ref, "", at, action_index=n), rule_id=rule,
                           record=ref, action=action, params={"n": n}, due_at=at,
                           reason={"when": {"status": "new"}})
                    for rule, action in (("triage", "tag"), ("triage", "assign"),
                                         ("new-mail", "notify"))]
            tx.ledger.plan(made, at)
            for i in made:
                tx.ledger.mark_sent(i.key, at)
                tx.ledger.mark_done(i.key, {"ticket": ref.id}, at)
            tx.timers.replace("ladder", ref, [TimerSpec(f"ladder/{day}/{n}", "h24",
                                                        at + timedelta(days=1))], at)
    with store.transaction() as tx:
        for timer in tx.timers.due(at, 100_000):
            tx.timers.mark_fired(timer.key, at)


def rows(store: Store) -> dict[str, int]:
    with store.read() as tx:
        return {t.name: int(tx.conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in (records, field_history, intents, audit, timers)}


def run(path: Path, args: argparse.Namespace, pruning: bool) -> tuple[int, int, dict[str, int],
                                                                      float]:
    store = open_store(f"sqlite:///{path}", max_attempts=8)
    rng = random.Random(args.seed)
    fields: dict[int, dict[str, object]] = {}
    prune_cpu = 0.0
    for day in range(args.days):
        day_of_activity(store, rng, day, args, fields)
        if pruning:
            started = time.process_time()
            prune(store, START + timedelta(days=day + 1 - args.keep_days))
            prune_cpu += time.process_time() - started
    counted = rows(store)
    with store.read() as tx:  # pages holding rows; the file keeps freed pages for reuse
        used = int(tx.conn.exec_driver_sql("PRAGMA page_count").scalar() or 0) - int(
            tx.conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
        used *= int(tx.conn.exec_driver_sql("PRAGMA page_size").scalar() or 0)
    store.close()  # the last connection checkpoints the WAL into the file
    return path.stat().st_size, used, counted, prune_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep-days", type=int, default=90)
    parser.add_argument("--changes", type=int, default=2636)
    parser.add_argument("--new", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        size_off, used_off, rows_off, _ = run(Path(tmp) / "off.db", args, pruning=False)
        size_on, used_on, rows_on, cpu = run(Path(tmp) / "on.db", args, pruning=True)
    mb = 1024 * 1024
    print(f"{args.days} days of a {args.tickets:,}-ticket helpdesk ({args.changes:,} updates and "
          f"{args.new:,} new tickets a day), keep_days={args.keep_days}")
    print(f"  pruning off (baseline): file {size_off / mb:7.1f} MB, in use {used_off / mb:7.1f} MB"
          f"  {rows_off}")
    print(f"  pruning on:             file {size_on / mb:7.1f} MB, in use {used_on / mb:7.1f} MB"
          f"  {rows_on}")
    print(f"  file on/off: {size_on / size_off:.2f}x; daily prunes: {cpu:.1f} s CPU in all "
          f"({cpu / args.days * 1000:.0f} ms a day)")


if __name__ == "__main__":
    main()
