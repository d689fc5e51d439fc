"""`mode: canary` in the engine (docs/rules.md "Canary rollout"): which records a rule acts on
live and which in shadow. A wrong side is a real action on a record the admin kept in shadow
(or none where they wanted one), and until issue 17's mutation run no unit test looked: the
share, its boundary, per-rule choice and the `canary: live|shadow` reason were checked only
end to end.

The order is a hash of the rule id and the record (blake2b, 8 bytes, big-endian, mod 10,000;
a record is live when its place is below percent x 100). It is pinned here because it is part
of the contract: "the same records on every evaluation and restart", so an upgrade that
changed it would move records that were live to shadow and back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import blake2b
from pathlib import Path

from syncd.model import Record, RecordRef
from syncd.rules.engine import Engine
from syncd.rules.language.loader import load_rules

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KIND = "zendesk.ticket"


def engine_of(tmp_path: Path, canary: str, rule_id: str = "tag-new",
              acts: str = "do: [{tag: [seen]}]") -> Engine:
    path = tmp_path / f"r{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(f"rules:\n  - id: {rule_id}\n    on: {KIND}\n    mode: canary\n"
                    f"    canary: {canary}\n    when: {{status: new}}\n    {acts}\n")
    result = load_rules([path])
    assert not result.errors, [str(d) for d in result.errors]
    return Engine(result.ruleset)


def side(engine: Engine, ticket: int, **fields: object) -> str:
    """'live' or 'shadow': the side the record's one intent fell on (its flag and its reason
    must agree)."""
    record = Record(RecordRef(KIND, str(ticket)), {"status": "new", **fields}, NOW)
    [intent] = engine.evaluate(record, None, {}, NOW).intents
    said = intent.reason["canary"]
    assert intent.shadow == (said == "shadow"), (intent.shadow, said)
    return said


def place(rule_id: str, ticket: int) -> int:
    text = f"{rule_id}\x1f{KIND}\x1f{ticket}".encode()
    return int.from_bytes(blake2b(text, digest_size=8).digest(), "big") % 10_000


def test_a_record_is_live_below_its_place_and_shadow_at_it(tmp_path: Path) -> None:
    ticket = next(t for t in range(1, 1000) if place("tag-new", t) % 100)  # a decimal percent
    at = place("tag-new", ticket)  # e.g. 4217: shadow at 42.17 %, live at 42.18 %
    assert side(engine_of(tmp_path, f"{{percent: {at / 100}}}"), ticket) == "shadow"
    assert side(engine_of(tmp_path, f"{{percent: {(at + 1) / 100}}}"), ticket) == "live"


def test_the_share_is_stable_nested_and_chosen_per_rule(tmp_path: Path) -> None:
    tickets = range(1, 401)
    narrow, wide = engine_of(tmp_path, "{percent: 10}"), engine_of(tmp_path, "{percent: 30}")
    live10 = {t for t in tickets if side(narrow, t) == "live"}
    live30 = {t for t in tickets if side(wide, t) == "live"}
    assert live10 == {t for t in tickets if place("tag-new", t) < 1000}
    assert live30 == {t for t in tickets if place("tag-new", t) < 3000}
    assert 20 <= len(live10) <= 60 and 90 <= len(live30) <= 150
    assert live10 < live30  # a wider percent keeps the records a narrower one had
    other = engine_of(tmp_path, "{percent: 30}", rule_id="close-stale")
    assert {t for t in tickets if side(other, t) == "live"} != live30  # each rule its own


def test_a_scope_canary_is_live_exactly_where_its_condition_holds(tmp_path: Path) -> None:
    engine = engine_of(tmp_path, "{scope: {tags: {contains: canary}}}")
    assert side(engine, 1, tags=["canary"]) == "live"
    assert side(engine, 1, tags=["other"]) == "shadow"


def test_a_scope_canary_decides_each_step_of_a_timeline(tmp_path: Path) -> None:
    ladder = "since: created_at\n    steps: [{id: one, after: 0m, do: [{tag: [one]}]}]"
    engine = engine_of(tmp_path, "{scope: {tags: {contains: canary}}}", acts=ladder)
    created = NOW.isoformat()
    assert side(engine, 1, tags=["canary"], created_at=created) == "live"
    assert side(engine, 1, tags=["other"], created_at=created) == "shadow"
