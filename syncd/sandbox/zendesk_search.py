"""`GET /search.json` and `GET /users/search.json` over a small subset of Zendesk's query
language: `type:`, `status:` (also `status<solved`, `status>new`), `tags:`/`tag:`,
`priority:`, `ticket_type:`, `assignee:`, `group:`, `requester:`, `organization:`,
`created>`/`created<`/`updated>`/`updated<` dates, `email:`, `role:`, `name:`, a leading `-` to
negate, and free text or "quoted phrases" matched case-insensitively in subjects, descriptions,
comments, names and emails. Results are offset-paginated and capped at 1,000 like Zendesk's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from syncd.sandbox.core import Response
from syncd.sandbox.zendesk_model import (
    STATUSES,
    Call,
    ZendeskError,
    ZendeskState,
    bad_request,
    group_view,
    organization_view,
    parse_ts,
    ticket_view,
    user_view,
)
from syncd.sandbox.zendesk_reads import int_arg, page_url

Row = dict[str, Any]
_TOKEN = re.compile(r'(-?)(?:(\w+)(:|<=|>=|<|>))?("[^"]*"|\S+)')
SEARCH_CAP = 1000
_SORTS = {"created_at", "updated_at", "priority", "status", "ticket_type"}


class _Term:
    def __init__(self, negate: bool, key: str | None, op: str, value: str) -> None:
        self.negate, self.key, self.op = negate, (key or "").lower(), op
        self.value = value.strip('"').lower()


def parse_query(query: str) -> list[_Term]:
    return [_Term(m.group(1) == "-", m.group(2), m.group(3) or ":", m.group(4))
            for m in _TOKEN.finditer(query)]


def search(call: Call) -> Response:
    query = call.req.arg("query")
    if not query or not query.strip():
        raise bad_request("InvalidValue", "query parameter is required")
    per_page = int_arg(call, "per_page", 100, 1, 100)
    page = int_arg(call, "page", 1, 1, 10**6)
    if page * per_page > SEARCH_CAP:
        raise ZendeskError(422, {
            "error": "invalid",
            "description": "Invalid search: Requested response size was greater than "
                           "Search Response Limits",
        })
    terms = parse_query(query)
    kinds = {t.value for t in terms if t.key == "type" and not t.negate}
    kinds = kinds or {call.req.arg("filter[type]") or "ticket", "user", "organization", "group"}
    results = [r for kind in ("ticket", "user", "organization", "group") if kind in kinds
               for r in _matches(call, kind, terms)]
    results = _sort(call, results)
    start = (page - 1) * per_page
    return Response.json(200, {
        "results": results[start:start + per_page],
        "facets": None,
        "next_page": page_url(call, page=page + 1, per_page=per_page)
        if start + per_page < min(len(results), SEARCH_CAP) else None,
        "previous_page": page_url(call, page=page - 1, per_page=per_page) if page > 1 else None,
        "count": len(results),
    })


def search_users(call: Call) -> Response:
    """GET /users/search.json?query= (email or name) or ?external_id="""
    state = call.state
    external = call.req.arg("external_id")
    query = call.req.arg("query")
    if external:
        rows = [u for u in state.users.values() if u["external_id"] == external]
    elif query:
        terms = parse_query(query)
        rows = [u for u in state.users.values() if all(_user_term(state, u, t) for t in terms)]
    else:
        raise bad_request("InvalidValue", "query or external_id is required")
    rows.sort(key=lambda u: u["id"])
    return Response.json(200, {"users": [user_view(state, u, call.base) for u in rows],
                               "next_page": None, "previous_page": None, "count": len(rows)})


def _matches(call: Call, kind: str, terms: list[_Term]) -> list[Row]:
    state, base = call.state, call.base
    texts: dict[int, list[str]] = {}
    if kind == "ticket" and any(not t.key for t in terms):
        for c in state.comments.values():
            texts.setdefault(c["ticket_id"], []).append(c["body"].lower())
    checks: dict[str, tuple[Any, Callable[[Row, _Term], bool], Callable[[Row], Row]]] = {
        "ticket": ([t for t in state.tickets.values() if not t["deleted"]],
                   lambda t, term: _ticket_term(state, t, term, texts.get(t["id"], [])),
                   lambda t: ticket_view(state, t, base)),
        "user": (state.users.values(), lambda u, term: _user_term(state, u, term),
                 lambda u: user_view(state, u, base)),
        "organization": (state.organizations.values(),
                         lambda o, term: _name_term(o, term), lambda o: organization_view(o, base)),
        "group": (state.groups.values(), lambda g, term: _name_term(g, term),
                  lambda g: group_view(g, base)),
    }
    rows, check, view = checks[kind]
    wanted = [t for t in terms if t.key != "type"]
    return [{**view(r), "result_type": kind}
            for r in sorted(rows, key=lambda r: r["id"])
            if all(check(r, term) != term.negate for term in wanted)]


def _ticket_term(state: ZendeskState, t: Row, term: _Term, comments: list[str]) -> bool:
    key, value = term.key, term.value
    if key == "status":
        return _compare(STATUSES.index(t["status"]), term.op,
                        STATUSES.index(value) if value in STATUSES else -99)
    if key in ("tags", "tag"):
        return value in t["tags"]
    if key == "priority":
        return (t["priority"] or "none") == value
    if key == "ticket_type":
        return (t["type"] or "none") == value
    if key in ("assignee", "requester", "submitter"):
        return _is_user(state, t[f"{key}_id"], value)
    if key == "group":
        group = state.groups.get(t["group_id"] or 0)
        return value == "none" if group is None else value in (str(group["id"]),
                                                               group["name"].lower())
    if key == "organization":
        org = state.organizations.get(t["organization_id"] or 0)
        return value == "none" if org is None else value in (str(org["id"]), org["name"].lower())
    if key in ("created", "updated"):
        return _date_compare(t[f"{key}_at"], term)
    if key in ("subject", "description"):
        return value in (t[key] or "").lower()
    texts = [(t["subject"] or "").lower(), (t["description"] or "").lower(), *comments]
    return not key and any(value in text for text in texts)


def _user_term(state: ZendeskState, u: Row, term: _Term) -> bool:
    key, value = term.key, term.value
    if key == "email":
        return (u["email"] or "").lower() == value
    if key == "role":
        return u["role"] == value
    if key == "name":
        return value in u["name"].lower()
    if key in ("created", "updated"):
        return _date_compare(u[f"{key}_at"], term)
    return not key and (value == (u["email"] or "").lower() or value in u["name"].lower())


def _name_term(row: Row, term: _Term) -> bool:
    return term.key in ("", "name") and term.value in row["name"].lower()


def _is_user(state: ZendeskState, user_id: int | None, value: str) -> bool:
    if user_id is None:
        return value == "none"
    user = state.users[user_id]
    return value in (str(user_id), (user["email"] or "").lower(), user["name"].lower())


def _compare(left: Any, op: str, right: Any) -> bool:
    return {":": left == right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[op]


def _date_compare(stamp: str, term: _Term) -> bool:
    mark: datetime | None = parse_ts(term.value.upper())
    if mark is None:
        raise bad_request("InvalidValue", f"invalid date in search query: {term.value}")
    when = parse_ts(stamp)
    if term.op == ":" and len(term.value) == 10:
        return when is not None and when.date() == mark.date()
    return when is not None and _compare(when, term.op, mark)


def _sort(call: Call, results: list[Row]) -> list[Row]:
    sort_by = call.req.arg("sort_by")
    if sort_by not in _SORTS:
        return results  # "relevance": the emulator's relevance is id order
    field = "type" if sort_by == "ticket_type" else sort_by
    descending = call.req.arg("sort_order", "desc") != "asc"
    return sorted(results, key=lambda r: (r.get(field) is None, str(r.get(field) or "")),
                  reverse=descending)
