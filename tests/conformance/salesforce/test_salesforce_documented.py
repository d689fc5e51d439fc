"""Salesforce's documented bodies, served to syncd's connector through its real HTTP stack
(simple-salesforce over the connector's own requests session): what syncd makes of what
Salesforce says it sends, without the sandbox in between."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import BaseAdapter
from sf_documented import (
    COLLECTION_CREATE_RESULTS,
    COLLECTION_UPDATE_RESULTS,
    COLLECTION_UPSERT_RESULTS,
    COMPOSITE_FAILED,
    ERROR_MALFORMED_ID,
    LIMIT_INFO,
    QUERY_FIRST_BATCH,
    QUERY_LAST_BATCH,
    TOKEN_AUDIENCE_REFUSED,
    TOKEN_RESPONSE,
)

from syncd.clock import FrozenClock
from syncd.connectors.http import VendorError
from syncd.connectors.salesforce import SalesforceConnector
from syncd.model import Operation, RecordRef
from syncd.settings import SalesforceSection

ORG = "https://yourInstance.salesforce.com"


def CLOCK() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 10, tzinfo=UTC))

Answer = tuple[int, Any]
Route = Callable[[requests.PreparedRequest], Answer]


class DocumentedOrg(BaseAdapter):
    """Answers each request with a documented body chosen by `route`."""

    def __init__(self, route: Route) -> None:
        super().__init__()
        self.route = route
        self.seen: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.seen.append(request)
        status, body = self.route(request)
        resp = requests.Response()
        resp.status_code = status
        resp.headers["Content-Type"] = "application/json;charset=UTF-8"
        resp.headers["Sforce-Limit-Info"] = LIMIT_INFO
        resp._content = json.dumps(body).encode() if body is not None else b""
        resp.url = request.url or ""
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def describe(name: str, *fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "keyPrefix": {"Account": "001", "Task": "00T"}.get(name, "001"),
            "fields": [{"name": "Id", "type": "id"}, *fields,
                       {"name": "SystemModstamp", "type": "datetime"}]}


def connector(route: Route, **config: Any) -> tuple[SalesforceConnector, DocumentedOrg]:
    sf = SalesforceConnector(SalesforceSection(
        token_url="https://login.salesforce.com/services/oauth2/token", client_id="3MVG9",
        client_secret="s", **config), CLOCK())
    org = DocumentedOrg(lambda req: (200, TOKEN_RESPONSE) if "oauth2" in (req.url or "")
                        else route(req))
    sf.session.mount("https://", org)
    return sf, org


def _path(req: requests.PreparedRequest) -> str:
    return urlsplit(req.url or "").path


def test_documented_token_answer_and_limits_header_are_understood() -> None:
    sf, org = connector(lambda req: (200, describe("Account", {"name": "Name", "type": "string"})))
    assert sf.describe("Account")["name"] == "Account"
    assert org.seen[-1].headers["Authorization"] == f"Bearer {TOKEN_RESPONSE['access_token']}"
    assert (org.seen[-1].url or "").startswith(ORG.lower())  # the documented instance_url
    bucket = sf.governor.buckets["default"]
    # per-app-api-usage=17/250 of the documented header
    assert bucket.available(sf.governor.clock.now()) <= 250 - 17


def test_documented_jwt_audience_refusal_is_a_clear_error() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    sf = SalesforceConnector(SalesforceSection(
        token_url="https://test.salesforce.com/services/oauth2/token", client_id="3MVG9",
        username="ann@acme.example", private_key=pem), CLOCK())
    org = DocumentedOrg(lambda req: (400, TOKEN_AUDIENCE_REFUSED))
    sf.session.mount("https://", org)
    with pytest.raises(VendorError) as info:
        sf.describe("Account")
    assert "audience is invalid" in str(info.value)
    form = parse_qs(org.seen[0].body if isinstance(org.seen[0].body, str) else
                    (org.seen[0].body or b"").decode())
    claims = json.loads(_b64(form["assertion"][0].split(".")[1]))
    assert claims["aud"] == "https://test.salesforce.com"


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_documented_query_batches_are_followed_by_next_records_url() -> None:
    account = describe("Account", {"name": "Name", "type": "string"})

    def route(req: requests.PreparedRequest) -> Answer:
        path = _path(req)
        if path.endswith("/describe"):
            return 200, account
        if path.endswith("/composite"):
            sub = json.loads(req.body or b"{}")["compositeRequest"]
            if sub[0]["url"].endswith("/describe"):
                return 200, {"compositeResponse": []}
            first = {**QUERY_FIRST_BATCH, "records": [
                {**r, "Id": r["attributes"]["url"].rsplit("/", 1)[1],
                 "SystemModstamp": "2026-03-02T09:00:00.000+0000"}
                for r in QUERY_FIRST_BATCH["records"]]}
            return 200, {"compositeResponse": [{"body": first, "httpHeaders": {},
                                                "httpStatusCode": 200, "referenceId": "Account"}]}
        assert path == QUERY_FIRST_BATCH["nextRecordsUrl"]
        last = {**QUERY_LAST_BATCH, "records": [
            {**r, "Id": r["attributes"]["url"].rsplit("/", 1)[1],
             "SystemModstamp": "2026-03-02T09:00:01.000+0000"}
            for r in QUERY_LAST_BATCH["records"]]}
        return 200, last

    sf, _ = connector(route, objects=("Account",))
    pages = list(sf.poll_pages(None))
    assert [[r.fields["Name"] for r in p.records] for p in pages] == [
        ["Test 1", "Test 2"], ["Test 2001"]]
    assert "attributes" not in pages[0].records[0].fields


def test_a_documented_failed_subrequest_fails_its_object_only() -> None:
    described = {"Account": describe("Account", {"name": "Name", "type": "string"}),
                 "Task": describe("Task", {"name": "Subject", "type": "combobox"})}

    def route(req: requests.PreparedRequest) -> Answer:
        path = _path(req)
        if path.endswith("/describe"):
            return 200, described[path.split("/")[-2]]
        sub = json.loads(req.body or b"{}")["compositeRequest"]
        if sub[0]["url"].endswith("/describe"):
            return 200, {"compositeResponse": []}
        row = {"attributes": {"type": "Account", "url": "/x/001D000000IRFmaIAH"},
               "Id": "001D000000IRFmaIAH", "Name": "Test 1",
               "SystemModstamp": "2026-03-02T09:00:00.000+0000"}
        return 200, {"compositeResponse": [
            {"body": {"totalSize": 1, "done": True, "records": [row]}, "httpHeaders": {},
             "httpStatusCode": 200, "referenceId": "Account"},
            {**COMPOSITE_FAILED, "referenceId": "Task"}]}

    sf, _ = connector(route, objects=("Account", "Task"))
    pages = []
    with pytest.raises(VendorError) as info:
        for page in sf.poll_pages(None):
            pages.append(page)
    assert [r.fields["Name"] for p in pages for r in p.records] == ["Test 1"]
    assert info.value.code == "INVALID_EMAIL_ADDRESS" and "Task" in info.value.message


def test_documented_collection_results_become_outcomes() -> None:
    answers = {"POST": COLLECTION_CREATE_RESULTS, "PATCH": COLLECTION_UPDATE_RESULTS}

    def route(req: requests.PreparedRequest) -> Answer:
        if _path(req).endswith("/Syncd_Key__c"):
            return 200, COLLECTION_UPSERT_RESULTS
        return 200, answers[req.method or ""]

    sf, _ = connector(route)

    def op(verb: str, n: int, **payload: Any) -> Operation:
        return Operation(key=f"r/{verb}{n}", system="salesforce", verb=verb, target="Task",
                         payload={"fields": {"Subject": "x"}, **payload})

    outcomes = sf.execute_many([op("create", 1), op("create", 2),
                                op("update", 1, Id="001RM000003oCprYAE"),
                                op("update", 2, Id="001xx000003DGb2AAG"),
                                op("upsert_by_key", 1), op("upsert_by_key", 2)])
    assert [o.ok for o in outcomes] == [True, False, True, False, True, True]
    assert outcomes[0].detail["id"] == "001RM000003oLnnYAE"
    assert "DUPLICATES_DETECTED" in str(outcomes[1].error)
    assert "MALFORMED_ID" in str(outcomes[3].error)
    assert [o.detail.get("created") for o in outcomes[4:]] == [True, False]


def test_a_documented_error_body_names_its_code() -> None:
    sf, _ = connector(lambda req: (400, ERROR_MALFORMED_ID))
    with pytest.raises(VendorError) as info:
        sf.fetch(RecordRef("salesforce.account", "001900K0001pPuOAAU"))
    assert info.value.code == "MALFORMED_ID"
    assert "id value of incorrect type" in info.value.message
