"""Pure ordering for the `dispatch` action: which queued ticket goes to which agent, in order.

Tickets are served by priority (urgent > high > normal > low > anything else), then oldest
first, then by id; each goes to the eligible agent with the lowest load (load / capacity, then
absolute load, then id), where eligible means available and below capacity. A ticket no agent
can take waits. The same input always yields the same plan, so re-planning after a crash
produces the same assignment intents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

PRIORITY_RANK: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
ORDER_KEYS = ("priority", "age")


@dataclass(frozen=True)
class QueuedTicket:
    id: str
    priority: str | None
    created_at: datetime


@dataclass(frozen=True)
class Agent:
    id: str
    available: bool = True
    capacity: int | None = None  # None: the action's default capacity
    load: int = 0  # tickets the agent already holds


@dataclass(frozen=True)
class Assignment:
    ticket_id: str
    agent_id: str
    position: int  # 0-based rank of the ticket in the served order


@dataclass(frozen=True)
class DispatchPlan:
    assignments: list[Assignment] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # ticket ids left queued, in served order


def id_key(identifier: str) -> tuple[int, int, str]:
    """Numeric ids compare as numbers (`9` before `10`), others as text after them."""
    return (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)


def order_tickets(
    tickets: Iterable[QueuedTicket], order: Sequence[str] = ORDER_KEYS
) -> list[QueuedTicket]:
    """Tickets in serving order: the `order` keys (priority, age) then id."""
    unknown = [key for key in order if key not in ORDER_KEYS]
    if unknown:
        raise ValueError(f"unknown dispatch order key(s) {unknown}; use {list(ORDER_KEYS)}")

    def sort_key(ticket: QueuedTicket) -> tuple[object, ...]:
        parts: list[object] = []
        for key in order:
            if key == "priority":
                parts.append(PRIORITY_RANK.get((ticket.priority or "").lower(), len(PRIORITY_RANK)))
            else:
                parts.append(ticket.created_at)
        parts.append(id_key(ticket.id))
        return tuple(parts)

    return sorted(tickets, key=sort_key)


def plan_dispatch(
    tickets: Iterable[QueuedTicket],
    agents: Iterable[Agent],
    *,
    capacity: int,
    order: Sequence[str] = ORDER_KEYS,
) -> DispatchPlan:
    """Assign queued tickets to available agents with spare capacity, deterministically."""
    pool = sorted((a for a in agents if a.available), key=lambda a: id_key(a.id))
    limits = {a.id: a.capacity if a.capacity is not None else capacity for a in pool}
    loads = {a.id: a.load for a in pool}
    plan = DispatchPlan()
    for position, ticket in enumerate(order_tickets(tickets, order)):
        eligible = [a for a in pool if loads[a.id] < limits[a.id]]
        if not eligible:
            plan.waiting.append(ticket.id)
            continue
        agent = min(eligible, key=lambda a: (loads[a.id] / limits[a.id], loads[a.id]))
        loads[agent.id] += 1
        plan.assignments.append(Assignment(ticket.id, agent.id, position))
    return plan
