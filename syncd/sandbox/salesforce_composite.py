"""`/composite`: several REST requests in one call that counts once against the API limit.

syncd polls every watched sObject in one composite call, so Salesforce's daily limit is spent
per poll, not per object per poll. Salesforce caps a call at 25 subrequests, 5 of them queries;
each answers `{"body", "httpHeaders", "httpStatusCode", "referenceId"}` in request order. The
sandbox runs read subrequests (GET: queries, records, describes) through the same handlers as
direct calls; writes are refused with a clear error, since composite writes would need
Salesforce's rollback across subrequests and syncd writes through collections instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from http.client import HTTPMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from syncd.sandbox.core import Response
from syncd.sandbox.salesforce_rest import Call, allow, object_body
from syncd.sandbox.salesforce_schema import SfError

MAX_SUBREQUESTS, MAX_QUERIES = 25, 5
_QUERY_HEADS = ("query", "queryall")
Route = Callable[[Call, list[str]], Response]


def composite(call: Call, route: Route) -> Response:
    allow(call.req, "GET", "POST")
    if call.req.method == "GET":
        names = ("batch", "tree", "sobjects", "graph")
        return Response.json(200, {n: f"{call.base}/composite/{n}" for n in names})
    body = object_body(call.req, "CompositeRequest")
    subrequests = body.get("compositeRequest")
    if not isinstance(subrequests, list) or not subrequests:
        raise SfError(400, "JSON_PARSER_ERROR", "compositeRequest must be a non-empty list")
    if len(subrequests) > MAX_SUBREQUESTS:
        raise SfError(
            400,
            "INVALID_INPUT",
            (
                f"Received {len(subrequests)} subrequests. The maximum number of subrequests "
                f"allowed is {MAX_SUBREQUESTS}."
            ),
        )
    parsed = [_parse(call, item) for item in subrequests]
    queries = sum(1 for _, parts in parsed if parts[:1] and parts[0].lower() in _QUERY_HEADS)
    if queries > MAX_QUERIES:
        raise SfError(
            400,
            "INVALID_INPUT",
            (
                f"Received {queries} query subrequests. The maximum number of query subrequests "
                f"allowed is {MAX_QUERIES}."
            ),
        )
    results = [_answer(_run(route, sub, parts), ref) for (sub, parts), ref in
               zip(parsed, (str(item.get("referenceId", "")) for item in subrequests),
                   strict=True)]
    return Response.json(200, {"compositeResponse": results})


def _parse(call: Call, item: Any) -> tuple[Call, list[str]]:
    """A subrequest as the Call it would have been, and its path below the version."""
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise SfError(400, "JSON_PARSER_ERROR", "each subrequest needs a method and a url")
    method = str(item.get("method", "")).upper()
    if method != "GET":
        raise SfError(
            400,
            "INVALID_INPUT",
            (
                f"sandbox: composite subrequest {method or '?'} {item['url']} is not supported; "
                "the sandbox runs GET subrequests (queries, reads) and takes writes through "
                "composite/sobjects"
            ),
        )
    url = urlsplit(item["url"])
    prefix = call.base + "/"
    if not url.path.startswith(prefix):
        raise SfError(
            400,
            "INVALID_INPUT",
            (f"The url {item['url']} of a subrequest must start with {prefix}"),
        )
    path = unquote(url.path)
    headers = HTTPMessage()
    for name, value in call.req.headers.items():
        headers[name] = value
    for name, value in (item.get("httpHeaders") or {}).items():
        del headers[name]
        headers[name] = str(value)
    req = replace(
        call.req,
        method="GET",
        path=path,
        raw_path=item["url"],
        headers=headers,
        query=parse_qs(url.query, keep_blank_values=True),
        body=b"",
    )
    parts = [p for p in path[len(prefix) :].split("/") if p]
    return replace(call, req=req), parts


def _run(route: Route, sub: Call, parts: list[str]) -> Response:
    """A subrequest's error is its own answer; the call as a whole still succeeds."""
    try:
        return route(sub, parts)
    except SfError as exc:
        return Response.json(exc.status, exc.rest_body())


def _answer(resp: Response, reference: str) -> dict[str, Any]:
    headers = {k: v for k, v in resp.headers.items()
               if k.lower() not in ("content-type", "content-length")}
    return {
        "body": json.loads(resp.body) if resp.body else None,
        "httpHeaders": headers,
        "httpStatusCode": resp.status,
        "referenceId": reference,
    }
