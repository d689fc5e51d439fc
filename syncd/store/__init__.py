"""Durable state: snapshots, field history, rule memory, timers, the intents ledger, audit,
the leader lease. The only package that speaks SQL (tests/unit/test_store_owns_sql.py): the
rest of syncd reads and writes through the table classes of a `Tx` (db.py)."""
