"""Pieces every Graph resource emulator shares: the error answer, timestamps, ids, OData query
options ($select, $top, $skiptoken) and absolute paging links.

Graph errors always look like `{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}` (graph.md §2); handlers raise `GraphError` and the vendor renders it, so
no handler can answer with a traceback.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from syncd.sandbox.core import Request

T = TypeVar("T")
Json = dict[str, Any]

# Characters clients may leave unescaped in Graph paths (site ids, drive ids, colon paths).
_PATH_SAFE = "/:!$,'()=@;~*"


class GraphError(Exception):
    """An answer in Graph's error shape; raised anywhere below `GraphVendor.handle`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = dict(headers or {})


def not_found(message: str = "The resource could not be found.") -> GraphError:
    return GraphError(404, "itemNotFound", message)


def bad_request(message: str, code: str = "invalidRequest") -> GraphError:
    return GraphError(400, code, message)


def method_not_allowed(req: Request, allowed: Iterable[str]) -> GraphError:
    allow = ", ".join(sorted(allowed))
    return GraphError(
        405,
        "invalidRequest",
        f"The HTTP method '{req.method}' is not allowed for this resource.",
        headers={"Allow": allow},
    )


def error_body(err: GraphError, now: datetime, request_id: str, client_request_id: str) -> Json:
    inner: Json = {
        "date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id,
    }
    if err.inner_code:
        inner = {"code": err.inner_code, **inner}
    return {"error": {"code": err.code, "message": err.message, "innerError": inner}}


def iso(when: datetime) -> str:
    """Graph's timestamp format: UTC, whole seconds, `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 instant; naive values are UTC. Raises ValueError."""
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def new_guid() -> str:
    return str(uuid.uuid4())


def new_item_id() -> str:
    """SharePoint-style driveItem id: `01` + 32 base32 characters."""
    return "01" + base64.b32encode(secrets.token_bytes(20)).decode()[:32]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    """Inverse of `b64url`; raises ValueError on garbage."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def query_arg(req: Request, name: str) -> str | None:
    """An OData system query option; v1.0 accepts it with or without the `$` prefix."""
    value = req.arg(f"${name}")
    return value if value is not None else req.arg(name)


def select(req: Request, obj: Json, allowed: frozenset[str], type_name: str) -> Json:
    """Apply `$select` to one entity's top-level keys; unknown properties are a 400 as on Graph."""
    raw = query_arg(req, "select")
    if not raw:
        return obj
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    for prop in wanted:
        if prop not in allowed:
            raise bad_request(
                f"Could not find a property named '{prop}' on type 'microsoft.graph.{type_name}'."
            )
    return {k: v for k, v in obj.items() if k in wanted}


def top(req: Request, default: int, maximum: int) -> int:
    """Page size from `$top`; the server may return fewer than asked (clamped to `maximum`)."""
    raw = query_arg(req, "top")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value '{raw}' for $top.") from None
    if value < 1:
        raise bad_request(f"Invalid value '{raw}' for $top.")
    return min(value, maximum)


def link(req: Request, path: str, **params: str | None) -> str:
    """Absolute URL on the sandbox for `path`, keeping the caller's query options except those
    overridden in `params` (None removes one)."""
    query = {k: v[-1] for k, v in req.query.items()}
    for key, value in params.items():
        name = key.replace("__", "$")
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    url = req.base_url + quote(path, safe=_PATH_SAFE)
    return url + ("?" + urlencode(query, safe="$,'()") if query else "")


def paged(
    req: Request,
    rows: Sequence[T],
    key: Callable[[T], str],
    render: Callable[[T], Json],
    default_top: int,
    max_top: int,
) -> Json:
    """One page of a collection ordered by `key`, with an absolute `@odata.nextLink` when more
    remain. The skip token is the last key seen, so inserts between pages shift nothing."""
    size = top(req, default_top, max_top)
    token = req.arg("$skiptoken")
    start = 0
    if token is not None:
        try:
            after = unb64url(token).decode()
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Invalid $skiptoken.") from None
        start = next((i for i, row in enumerate(rows) if key(row) > after), len(rows))
    chunk = rows[start : start + size]
    body: Json = {"value": [render(row) for row in chunk]}
    if start + size < len(rows):
        last = b64url(key(chunk[-1]).encode())
        body["@odata.nextLink"] = link(req, req.path, __skiptoken=last)
    return body
