"""Read endpoints: record lists with cursor (`page[size]`) or offset (`page`/`per_page`,
refused past the first 10,000 records as Zendesk does) pagination, and the two incremental
ticket exports.

The exports follow Zendesk's contract that makes polling lossless: rows are ordered by
(generated_timestamp, id), changes from the minute before the request (sandbox clock) are left
out, deleted tickets appear with status "deleted", and an `after_cursor` comes back even at
end of stream, so a client resumes exactly where it stopped.

Side-loading ("the ticket, ticket event, organization, and user incremental export endpoints
support side-loading", developer.zendesk.com, Incremental Exports): `include=users`,
`groups`, `organizations` (comma-separated) add, beside a page's tickets, each user, group or
organization those tickets refer to, once (users: requester, submitter, assignee, CCs and
followers). Other names are ignored. A cursor export's `after_url` keeps `include`, as it keeps
`per_page`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

from syncd.sandbox.core import Response
from syncd.sandbox.zendesk_model import (
    Call,
    ZendeskError,
    bad_request,
    group_view,
    not_found,
    organization_view,
    parse_ts,
    user_view,
)

Row = dict[str, Any]
View = Callable[[Row], Row]
_PAGE_KEYS = ("page[size]", "page[after]", "page[before]", "page", "per_page")
_EXPORT_CURSOR = re.compile(r"(\d+)\.0\|\|(\d+)\|(b?)")
EXPORT_PAGE_MAX = 1000
_USER_KEYS = ("requester_id", "submitter_id", "assignee_id")
_USER_LISTS = ("collaborator_ids", "follower_ids", "email_cc_ids")
EXPORT_LAG_S = 60
OFFSET_CAP = 10_000  # offset pagination past 10,000 records answers 400 since 2024


def int_arg(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request("InvalidPaginationParameter", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise bad_request(
            "InvalidPaginationParameter", f"{name} must be between {low} and {high}"
        )
    return value


def page_url(call: Call, **params: Any) -> str:
    """This request's URL with its page parameters replaced: absolute, as zenpy follows it."""
    query = {k: v[-1] for k, v in call.req.query.items() if k not in _PAGE_KEYS}
    query.update({k: str(v) for k, v in params.items()})
    return f"{call.base}{call.req.path}?{urlencode(query, safe='[],')}"


# -- lists ----------------------------------------------------------------------------------
def paginate(
    call: Call, key: str, rows: Iterable[Row], view: View, *, descending: bool = False
) -> Response:
    """One page of `rows` (already ordered by id, ascending unless `descending`)."""
    rows = list(rows)
    if {"page[size]", "page[after]", "page[before]"} & set(call.req.query):
        return Response.json(200, _cursor_page(call, key, rows, view, descending))
    page = int_arg(call, "page", 1, 1, 10**6)
    per_page = int_arg(call, "per_page", 100, 1, 100)
    if page * per_page > OFFSET_CAP:
        raise bad_request("InvalidPaginationParameter",
                          "Offset pagination is limited to the first 10,000 records; "
                          "use cursor pagination (page[size]) to go further")
    start = (page - 1) * per_page
    window = rows[start:start + per_page]
    return Response.json(200, {
        key: [view(r) for r in window],
        "next_page": page_url(call, page=page + 1, per_page=per_page)
        if start + per_page < len(rows) else None,
        "previous_page": page_url(call, page=page - 1, per_page=per_page) if page > 1 else None,
        "count": len(rows),
    })


def _cursor_page(
    call: Call, key: str, rows: list[Row], view: View, descending: bool
) -> dict[str, Any]:
    size = int_arg(call, "page[size]", 100, 1, 100)
    after, before = call.req.arg("page[after]"), call.req.arg("page[before]")

    def further(row_id: int, mark: int) -> bool:
        """Does `row_id` come after `mark` in this list's order?"""
        return row_id < mark if descending else row_id > mark

    if after:
        mark = _decode_page_cursor(after)
        candidates = [r for r in rows if further(r["id"], mark)]
        window = candidates[:size]
    elif before:
        mark = _decode_page_cursor(before)
        candidates = [r for r in rows if further(mark, r["id"])]
        window = candidates[-size:]
    else:
        candidates = rows
        window = rows[:size]
    after_cursor = _page_cursor(window[-1]["id"]) if window else None
    before_cursor = _page_cursor(window[0]["id"]) if window else None
    return {
        key: [view(r) for r in window],
        "meta": {
            "has_more": len(candidates) > len(window),
            "after_cursor": after_cursor,
            "before_cursor": before_cursor,
        },
        "links": {
            "next": page_url(call, **{"page[after]": after_cursor, "page[size]": size})
            if after_cursor else None,
            "prev": page_url(call, **{"page[before]": before_cursor, "page[size]": size})
            if before_cursor else None,
        },
    }


def _page_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": "id", "v": row_id}).encode()).decode()


def _decode_page_cursor(cursor: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["v"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("InvalidPaginationParameter", "page cursor is invalid") from None


def show_many(call: Call, key: str, table: dict[int, Row], view: View) -> Response:
    rows = [table[i] for i in call.ids_param() if i in table and not table[i].get("deleted")]
    return Response.json(200, {key: [view(r) for r in rows], "next_page": None,
                               "previous_page": None, "count": len(rows)})


def show(table: dict[int, Row], row_id: int) -> Row:
    row = table.get(row_id)
    if row is None or row.get("deleted"):
        raise not_found()
    return row


def sorted_rows(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: r["id"])


# -- incremental exports ------------------------------------------------------------------------
def _export_key(ticket: Row) -> tuple[int, int]:
    return ticket["generated_timestamp"], ticket["id"]


def _export_rows(call: Call) -> tuple[list[Row], int]:
    """Tickets the export may show now, in export order, and the newest instant it covers."""
    horizon = int(call.now.timestamp()) - EXPORT_LAG_S
    skip_deleted = call.req.arg("exclude_deleted") == "true"
    rows = [
        t for t in call.state.tickets.values()
        if t["generated_timestamp"] <= horizon and not (skip_deleted and t["deleted"])
    ]
    rows.sort(key=_export_key)
    return rows, horizon


def _start_time(call: Call, horizon: int) -> int:
    raw = call.req.arg("start_time")
    if raw is None or not raw.lstrip("-").isdigit():
        raise bad_request("InvalidValue", "start_time must be a Unix epoch time in seconds")
    start = max(int(raw), 0)
    if start > horizon:
        raise ZendeskError(422, {
            "error": "InvalidValue",
            "description": "Too recent start_time. Use a start_time older than 1 minute",
        })
    return start


def export_cursor(position: tuple[int, int], *, backwards: bool = False) -> str:
    """Zendesk's opaque cursor: base64 of "{generated_timestamp}.0||{ticket id}|"."""
    raw = f"{position[0]}.0||{position[1]}|{'b' if backwards else ''}"
    return base64.b64encode(raw.encode()).decode()


def _decode_export_cursor(cursor: str) -> tuple[tuple[int, int], bool]:
    try:
        found = _EXPORT_CURSOR.fullmatch(base64.b64decode(cursor.encode(), validate=True).decode())
    except (ValueError, binascii.Error):
        found = None
    if found is None:
        raise bad_request("InvalidPaginationParameter", "cursor is invalid")
    return (int(found.group(1)), int(found.group(2))), found.group(3) == "b"


def incremental_cursor(call: Call, view: View) -> Response:
    """GET /incremental/tickets/cursor.json?start_time=|cursor= [&per_page=&exclude_deleted=]"""
    rows, horizon = _export_rows(call)
    per_page = int_arg(call, "per_page", EXPORT_PAGE_MAX, 1, EXPORT_PAGE_MAX)
    cursor = call.req.arg("cursor")
    if cursor and call.req.arg("start_time"):
        raise bad_request("InvalidPaginationParameter", "use either start_time or cursor")
    if cursor:
        position, backwards = _decode_export_cursor(cursor)
    else:
        position, backwards = (_start_time(call, horizon), 0), False
    if backwards:
        candidates = [r for r in rows if _export_key(r) < position]
        window = candidates[-per_page:]
    else:
        candidates = [r for r in rows if _export_key(r) > position]
        window = candidates[:per_page]
    after = export_cursor(_export_key(window[-1]) if window else position)
    before = (
        export_cursor(_export_key(window[0]), backwards=True) if window and cursor else None
    )
    return Response.json(200, {
        "tickets": [view(r) for r in window],
        **side_loads(call, window),
        "after_url": _export_url(call, after),
        "after_cursor": after,
        "before_url": _export_url(call, before) if before else None,
        "before_cursor": before,
        "end_of_stream": len(candidates) <= len(window),
    })


def _export_url(call: Call, cursor: str) -> str:
    url = f"{call.base}/api/v2/incremental/tickets/cursor.json?cursor={quote(cursor, safe='')}"
    for name in ("per_page", "exclude_deleted", "include"):
        if call.req.arg(name):
            url += f"&{name}={quote(call.req.arg(name) or '')}"
    return url


def incremental_time(call: Call, view: View) -> Response:
    """GET /incremental/tickets.json?start_time= : the older, time-based export. A page never
    splits one timestamp, so `next_page` (start_time=end_time) may repeat the page's last
    instant, as Zendesk's does; clients de-duplicate."""
    rows, horizon = _export_rows(call)
    per_page = int_arg(call, "per_page", EXPORT_PAGE_MAX, 1, EXPORT_PAGE_MAX)
    start = _start_time(call, horizon)
    candidates = [r for r in rows if r["generated_timestamp"] >= start]
    window = candidates[:per_page]
    while window and len(window) < len(candidates) and (
        candidates[len(window)]["generated_timestamp"] == window[-1]["generated_timestamp"]
    ):
        window.append(candidates[len(window)])
    end_time = window[-1]["generated_timestamp"] if window else start
    if window and window[0]["generated_timestamp"] == end_time:
        end_time += 1  # the whole page is one instant: move on, or the next page repeats it
    return Response.json(200, {
        "tickets": [view(r) for r in window],
        **side_loads(call, window),
        "count": len(window),
        "end_of_stream": len(window) == len(candidates),
        "end_time": end_time,
        "next_page": page_url(call, start_time=end_time,
                              **({"per_page": per_page} if call.req.arg("per_page") else {})),
    })


def side_loads(call: Call, tickets: list[Row]) -> dict[str, list[Row]]:
    """The `include`d users, groups and organizations `tickets` refer to, each once."""
    wanted = {n.strip() for n in (call.req.arg("include") or "").split(",")}
    state, found = call.state, {}
    if "users" in wanted:
        ids = {t[k] for t in tickets for k in _USER_KEYS if t.get(k)}
        ids.update(i for t in tickets for k in _USER_LISTS for i in t.get(k) or [])
        found["users"] = [user_view(state, state.users[i], call.base)
                          for i in sorted(ids) if i in state.users]
    if "groups" in wanted:
        ids = {t["group_id"] for t in tickets if t.get("group_id") in state.groups}
        found["groups"] = [group_view(state.groups[i], call.base) for i in sorted(ids)]
    if "organizations" in wanted:
        ids = {t["organization_id"] for t in tickets
               if t.get("organization_id") in state.organizations}
        found["organizations"] = [organization_view(state.organizations[i], call.base)
                                  for i in sorted(ids)]
    return found


def rating_rows(call: Call) -> list[Row]:
    """Satisfaction ratings, filtered by score and created_at window as the API allows."""
    score = call.req.arg("score")
    start, end = call.req.arg("start_time"), call.req.arg("end_time")
    rows = []
    for rating in sorted_rows(call.state.ratings.values()):
        created = int(parse_ts(rating["created_at"]).timestamp())  # type: ignore[union-attr]
        if score and rating["score"] != score:
            continue
        if (start and start.isdigit() and created < int(start)) or (
            end and end.isdigit() and created > int(end)
        ):
            continue
        rows.append(rating)
    return rows
