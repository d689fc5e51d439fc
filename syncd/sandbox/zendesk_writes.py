"""Write endpoints: tickets (one, many, bulk), tags, imports, uploads, satisfaction ratings
and the job statuses that bulk writes answer with.

Bulk writes run when they are posted (so a client that reads the tickets right away may
already see the change, as with a fast real job), but the job status they return says
`queued`, the first poll says `working` and only the second says `completed` with per-item
results: a client must really poll.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from syncd.sandbox.core import Response
from syncd.sandbox.zendesk_model import (
    ACCOUNT_ID,
    Call,
    ZendeskError,
    attachment_view,
    audit_view,
    bad_request,
    fmt_ts,
    forbidden,
    invalid,
    not_found,
    parse_ts,
    rating_view,
    ticket_view,
)
from syncd.sandbox.zendesk_tickets import TicketWriter, upload_token

IDEMPOTENCY_TTL = timedelta(hours=2)
UPLOAD_TTL = timedelta(days=3)
BULK_MAX = 100


def _writer(call: Call) -> TicketWriter:
    return TicketWriter(call.state, call.now, call.actor)


def _ticket_and_audit(call: Call, ticket: dict[str, Any], audit: dict[str, Any]) -> dict[str, Any]:
    return {"ticket": ticket_view(call.state, ticket, call.base),
            "audit": audit_view(call.state, audit, call.base)}


# -- tickets --------------------------------------------------------------------------------
def create_ticket(call: Call) -> Response:
    """POST /tickets.json, honouring `Idempotency-Key` like Zendesk: a replay of the same body
    within two hours answers the first response again (`x-idempotency-lookup: hit`); the same
    key with another body is refused."""
    key = call.req.header("Idempotency-Key")
    if key:
        replay = _idempotent_replay(call, key)
        if replay is not None:
            return replay
    ticket, audit = _writer(call).create(call.body("ticket"))
    resp = Response.json(201, _ticket_and_audit(call, ticket, audit),
                         {"Location": f"{call.base}/api/v2/tickets/{ticket['id']}.json"})
    if key:
        call.state.idempotency[key] = {
            "fingerprint": _fingerprint(call), "status": resp.status,
            "body": resp.body.decode(), "expires_at": fmt_ts(call.now + IDEMPOTENCY_TTL),
        }
        resp.headers["x-idempotency-lookup"] = "miss"
    return resp


def _fingerprint(call: Call) -> str:
    return hashlib.sha256(call.req.body).hexdigest()


def _idempotent_replay(call: Call, key: str) -> Response | None:
    stored = call.state.idempotency.get(key)
    if stored is None or parse_ts(stored["expires_at"]) <= call.now:  # type: ignore[operator]
        call.state.idempotency.pop(key, None)
        return None
    if stored["fingerprint"] != _fingerprint(call):
        raise bad_request("IdempotentRequestError",
                          "The request does not match the original request with this "
                          "Idempotency-Key")
    return Response(stored["status"], stored["body"].encode(), {
        "Content-Type": "application/json; charset=utf-8", "x-idempotency-lookup": "hit",
    })


def update_ticket(call: Call) -> Response:
    ticket, audit = _writer(call).update(call.path_id(), call.body("ticket"))
    return Response.json(200, _ticket_and_audit(call, ticket, audit))


def delete_ticket(call: Call) -> Response:
    _writer(call).delete(call.path_id())
    return Response.empty(204)


def change_tags(op: str) -> Callable[[Call], Response]:
    """PUT adds, POST sets, DELETE removes; each answers the ticket's full tag list."""

    def handler(call: Call) -> Response:
        data = call.req.json()
        if not isinstance(data, dict):
            raise bad_request("InvalidValue", "Parameter tags is required")
        ticket = _writer(call).change_tags(call.path_id(), op, data)
        return Response.json(201 if op == "set" else 200, {"tags": list(ticket["tags"])})

    return handler


def rate_ticket(call: Call) -> Response:
    rating = _writer(call).rate(call.path_id(), call.body("satisfaction_rating"))
    return Response.json(200, {"satisfaction_rating": rating_view(rating, call.base)})


# -- imports --------------------------------------------------------------------------------
def import_ticket(call: Call) -> Response:
    """Ticket Import API: historical created_at/updated_at and comments (admins only)."""
    _require_admin(call)
    ticket, _ = _writer(call).create(call.body("ticket"), imported=True)
    return Response.json(201, {"ticket": ticket_view(call.state, ticket, call.base)})


def _require_admin(call: Call) -> None:
    if call.actor["role"] != "admin":
        raise forbidden()


# -- bulk writes and their jobs -------------------------------------------------------------
def create_many(call: Call) -> Response:
    return _create_job(call, imported=False)


def import_many(call: Call) -> Response:
    _require_admin(call)
    return _create_job(call, imported=True)


def _create_job(call: Call, *, imported: bool) -> Response:
    items = _item_list(call)
    writer = _writer(call)

    def create(index: int, data: Any) -> dict[str, Any]:
        try:
            ticket, _ = writer.create(_object(data), imported=imported)
        except ZendeskError as exc:
            return {"index": index, **_failure(exc)}
        return {"index": index, "id": ticket["id"], "account_id": ACCOUNT_ID}

    results = [create(i, data) for i, data in enumerate(items)]
    return _job(call, "ticket_import" if imported else "create_many", results)


def update_many(call: Call) -> Response:
    """Both forms: batch `{"tickets": [{id, ...}]}` and bulk `?ids=` + `{"ticket": {...}}`
    (where `additional_tags`/`remove_tags` add and remove without replacing)."""
    writer = _writer(call)
    if call.req.arg("ids") is not None:
        changes = call.body("ticket")
        pairs = [(tid, changes) for tid in call.ids_param()]
    else:
        pairs = [(_object(item).get("id"), item) for item in _item_list(call)]

    def update(ticket_id: Any, data: Any) -> dict[str, Any]:
        outcome = {"action": "update", "id": ticket_id}
        try:
            if not isinstance(ticket_id, int):
                raise not_found()
            writer.update(ticket_id, _object(data))
        except ZendeskError as exc:
            return {**outcome, "status": "Failed", "success": False, **_failure(exc)}
        return {**outcome, "status": "Updated", "success": True}

    return _job(call, "bulk_update", [update(tid, data) for tid, data in pairs])


def destroy_many(call: Call) -> Response:
    writer = _writer(call)

    def destroy(ticket_id: int) -> dict[str, Any]:
        outcome = {"action": "delete", "id": ticket_id}
        try:
            writer.delete(ticket_id)
        except ZendeskError as exc:
            return {**outcome, "status": "Failed", "success": False, **_failure(exc)}
        return {**outcome, "status": "Deleted", "success": True}

    return _job(call, "bulk_delete", [destroy(tid) for tid in call.ids_param()])


def _item_list(call: Call) -> list[Any]:
    data = call.req.json()
    items = data.get("tickets") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise bad_request("InvalidValue", "Parameter tickets is required and must be a list")
    if len(items) > BULK_MAX:
        raise bad_request("TooManyValues",
                          f"Too many values specified for parameter 'tickets'. "
                          f"Maximum allowed is {BULK_MAX}.")
    return items


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise bad_request("InvalidValue", "each ticket must be an object")
    return data


def _failure(exc: ZendeskError) -> dict[str, Any]:
    details = exc.body.get("details")
    text = json.dumps(details) if details else exc.body.get("description", "")
    return {"error": exc.body.get("error", "Failed"), "details": text}


def _job(call: Call, job_type: str, results: list[dict[str, Any]]) -> Response:
    job_id = "V3-" + secrets.token_hex(16)
    job = {"id": job_id, "job_type": job_type, "total": len(results), "results": results,
           "polls": 0, "created_at": call.stamp}
    call.state.jobs[job_id] = job
    return Response.json(200, {"job_status": job_view(job, call.base)})


def job_view(job: dict[str, Any], base: str) -> dict[str, Any]:
    status = ("queued", "working", "completed")[min(job["polls"], 2)]
    done = status == "completed"
    completed_at = parse_ts(job["created_at"])
    return {
        "id": job["id"],
        "url": f"{base}/api/v2/job_statuses/{job['id']}.json",  # no job_type (recorded)
        "total": job["total"],
        "progress": job["total"] if done else (job["total"] // 2 if job["polls"] else None),
        "status": status,
        "message": f"Completed at {completed_at:%Y-%m-%d %H:%M:%S} +0000" if done else None,
        "results": job["results"] if done else None,
    }


def show_job(call: Call) -> Response:
    job = call.state.jobs.get(call.match.group("job"))
    if job is None:
        raise not_found()
    job["polls"] += 1
    return Response.json(200, {"job_status": job_view(job, call.base)})


# -- uploads and attachments -----------------------------------------------------------------
def upload(call: Call) -> Response:
    """POST /uploads.json?filename=[&token=]: raw bytes in, a token to put on a comment out."""
    filename = call.req.arg("filename")
    if not filename:
        raise invalid("filename", "Filename: cannot be blank", "BlankValue")
    token = call.req.arg("token")
    if token and token not in call.state.uploads:
        raise invalid("token", "Token: is invalid or expired")
    declared = (call.req.header("Content-Type") or "").split(";")[0].strip()
    content_type = (
        declared if declared and declared != "application/octet-stream"
        else mimetypes.guess_type(filename)[0] or "application/octet-stream"
    )
    attachment_id = call.state.new_id()
    call.state.attachments[attachment_id] = {
        "id": attachment_id, "file_name": filename, "content_type": content_type,
        "size": len(call.req.body), "content_token": secrets.token_urlsafe(18),
    }
    call.state.blobs[attachment_id] = call.req.body
    entry = call.state.uploads.get(token or "") or {
        "token": upload_token(), "expires_at": fmt_ts(call.now + UPLOAD_TTL),
        "attachment_ids": [],
    }
    entry["attachment_ids"].append(attachment_id)
    call.state.uploads[entry["token"]] = entry
    views = [attachment_view(call.state.attachments[a], call.base)
             for a in entry["attachment_ids"]]
    return Response.json(
        201,
        {"upload": {"token": entry["token"], "expires_at": entry["expires_at"],
                    "attachments": views, "attachment": views[-1]}},
        {"Location": views[-1]["url"]},
    )


def delete_upload(call: Call) -> Response:
    entry = call.state.uploads.pop(call.match.group("token"), None)
    if entry is None:
        raise not_found()
    for attachment_id in entry["attachment_ids"]:
        call.state.attachments.pop(attachment_id, None)
        call.state.blobs.pop(attachment_id, None)
    return Response.empty(204)
