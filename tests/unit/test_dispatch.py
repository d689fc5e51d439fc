"""Dispatch ordering: priority, then age, then id; least-loaded available agents with capacity."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from syncd.daemon.dispatch import (
    Agent,
    Assignment,
    QueuedTicket,
    order_tickets,
    plan_dispatch,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ticket(tid: str, priority: str | None = "normal", minutes: int = 0) -> QueuedTicket:
    return QueuedTicket(tid, priority, T0 + timedelta(minutes=minutes))


def test_priority_then_age_then_id() -> None:
    tickets = [
        ticket("5", "low", 0),
        ticket("4", "normal", 10),
        ticket("3", "normal", 5),
        ticket("10", "urgent", 30),
        ticket("9", "urgent", 30),
        ticket("2", "high", 50),
        ticket("1", None, -100),
    ]
    assert [t.id for t in order_tickets(tickets)] == ["9", "10", "2", "3", "4", "5", "1"]


def test_age_only_order() -> None:
    tickets = [ticket("1", "urgent", 5), ticket("2", "low", 1)]
    assert [t.id for t in order_tickets(tickets, ["age"])] == ["2", "1"]


def test_unknown_order_key_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dispatch order"):
        order_tickets([], ["size"])


def test_assigns_least_loaded_and_respects_capacity_and_away() -> None:
    tickets = [ticket(str(i), "normal", i) for i in range(1, 7)]
    agents = [
        Agent("ann", load=1),
        Agent("bob", load=0),
        Agent("cat", available=False),
        Agent("dan", load=0, capacity=1),
    ]
    plan = plan_dispatch(tickets, agents, capacity=2)
    assert plan.assignments == [
        Assignment("1", "bob", 0),
        Assignment("2", "dan", 1),
        Assignment("3", "ann", 2),
        Assignment("4", "bob", 3),
    ]
    assert plan.waiting == ["5", "6"]


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    tickets = [ticket(str(i), random.Random(i).choice(["low", "high"]), i % 3) for i in range(40)]
    agents = [Agent(f"a{i}", load=i % 2) for i in range(5)]
    first = plan_dispatch(tickets, agents, capacity=4)
    shuffled_t, shuffled_a = tickets[:], agents[:]
    random.Random(7).shuffle(shuffled_t)
    random.Random(8).shuffle(shuffled_a)
    assert plan_dispatch(shuffled_t, shuffled_a, capacity=4) == first
    assert len(first.assignments) == 5 * 4 - 2  # a1 and a3 already hold one each
    assert len(first.waiting) == 40 - 18
