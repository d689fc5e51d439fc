"""Every Salesforce endpoint syncd calls, answered by the sandbox, held to the shape Salesforce
documents (sf_documented.py, the REST API Developer Guide): no key Salesforce does not send,
none it always sends missing. A sandbox answer the real API would not give fails here."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
import requests
import sf_documented as doc

from syncd.connectors.tls import PinnedSession
from syncd.sandbox.server import SandboxServer

API = "/services/data/v59.0"
STRINGS = {"type": "array", "items": {"type": "string"}}
ERRORS = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["message", "errorCode"], "additionalProperties": False,
    "properties": {"message": {"type": "string"}, "errorCode": {"type": "string"},
                   "fields": STRINGS}}}
RECORD = {"type": "object", "required": ["attributes"], "properties": {"attributes": {
    "type": "object", "required": ["type", "url"], "additionalProperties": False,
    "properties": {"type": {"type": "string"},
                   "url": {"type": "string", "pattern": r"^/services/data/v\d+\.\d/sobjects/"}}}}}
QUERY = {"type": "object", "required": ["totalSize", "done", "records"],
         "additionalProperties": False, "properties": {
             "totalSize": {"type": "integer"}, "done": {"type": "boolean"},
             "nextRecordsUrl": {"type": "string",
                                "pattern": r"^/services/data/v\d+\.\d/query/[0-9A-Za-z]+-\d+$"},
             "records": {"type": "array", "items": RECORD}}}
HEADERS = {"type": "object", "additionalProperties": {"type": "string"}}
SUBREQUEST = {"type": "object", "additionalProperties": False,
              "required": ["body", "httpHeaders", "httpStatusCode", "referenceId"],
              "properties": {"body": {}, "httpHeaders": HEADERS,
                             "httpStatusCode": {"type": "integer"},
                             "referenceId": {"type": "string"}}}
COMPOSITE = {"type": "object", "required": ["compositeResponse"], "additionalProperties": False,
             "properties": {"compositeResponse": {"type": "array", "items": SUBREQUEST}}}
RECORD_ERROR = {"type": "object", "required": ["statusCode", "message", "fields"],
                "additionalProperties": False,
                "properties": {"statusCode": {"type": "string"}, "message": {"type": "string"},
                               "fields": STRINGS}}
SAVE_RESULT = {"type": "object", "required": ["success", "errors"], "additionalProperties": False,
               "properties": {"id": {"type": ["string", "null"]}, "success": {"type": "boolean"},
                              "errors": {"type": "array", "items": RECORD_ERROR},
                              "created": {"type": "boolean"}}}
COLLECTION = {"type": "array", "items": SAVE_RESULT}
TOKEN = {"type": "object",  # client credentials answers also carry issued_at and signature
         "required": ["access_token", "scope", "instance_url", "id", "token_type"],
         "additionalProperties": False, "properties": {
             k: {"type": "string"} for k in ("access_token", "scope", "instance_url", "id",
                                             "token_type", "issued_at", "signature",
                                             "api_instance_url")}}
OAUTH_ERROR = {"type": "object", "required": ["error", "error_description"],
               "additionalProperties": False,
               "properties": {"error": {"type": "string"},
                              "error_description": {"type": "string"}}}
LIMIT_INFO = re.compile(r"api-usage=\d+/\d+(; per-app-api-usage=\d+/\d+\(appName=[^)]+\))?")


def test_the_shapes_fit_salesforces_own_examples() -> None:
    """The schemas below are not looser or stricter than the documents: each documented
    example passes its schema."""
    for body, schema in [
        (doc.TOKEN_RESPONSE, TOKEN), (doc.TOKEN_AUDIENCE_REFUSED, OAUTH_ERROR),
        (doc.QUERY_FIRST_BATCH, QUERY), (doc.QUERY_LAST_BATCH, QUERY),
        (doc.ERROR_MALFORMED_ID, ERRORS),
        ({"compositeResponse": [doc.COMPOSITE_CREATED, doc.COMPOSITE_FAILED]}, COMPOSITE),
        (doc.COMPOSITE_FAILED["body"], ERRORS), (doc.COMPOSITE_CREATED["body"], SAVE_RESULT),
        (doc.COLLECTION_CREATE_RESULTS, COLLECTION), (doc.COLLECTION_UPDATE_RESULTS, COLLECTION),
        (doc.COLLECTION_UPSERT_RESULTS, COLLECTION),
    ]:
        jsonschema.validate(body, schema)
    assert LIMIT_INFO.fullmatch(doc.LIMIT_INFO)


class Org:
    """Raw HTTP against the sandbox's Salesforce, as syncd's connector would call it."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.creds = sandbox.info["salesforce"]
        self.session = PinnedSession(verify=sandbox.ca_bundle)
        self.token = self.call_token({"grant_type": "client_credentials",
                                      "client_id": self.creds["client_id"],
                                      "client_secret": self.creds["client_secret"]})
        assert self.token.status_code == 200
        self.auth = {"Authorization": f"Bearer {self.token.json()['access_token']}"}

    def call_token(self, form: dict[str, str]) -> requests.Response:
        return self.session.post(self.creds["token_url"], data=form, timeout=10)

    def __call__(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> requests.Response:
        resp = self.session.request(method, f"{self.creds['instance_url']}{path}", json=body,
                                    headers={**self.auth, **(headers or {})}, timeout=10)
        if resp.status_code != 401:  # a call with no session is no API call of the org's
            assert LIMIT_INFO.fullmatch(resp.headers.get("Sforce-Limit-Info", "")), resp.headers
        return resp


@pytest.fixture
def org(sandbox: SandboxServer) -> Org:
    sandbox.control("POST", "/_sandbox/seed", {"clock": "2026-03-02T10:00:00Z", "salesforce": {
        "settings": {"custom_fields": {"Task": [
            {"name": "Syncd_Key__c", "external_id": True, "unique": True}]},
            "per_app_api_limit": 5000},
        "accounts": [{"Name": f"Acct {n:03d}"} for n in range(250)],
    }})
    return Org(sandbox)


def valid(resp: requests.Response, status: int, schema: dict[str, Any]) -> Any:
    assert resp.status_code == status, resp.text
    body = resp.json()
    jsonschema.validate(body, schema)
    return body


def test_token_endpoint(org: Org) -> None:
    jsonschema.validate(org.token.json(), TOKEN)
    refused = org.call_token({"grant_type": "client_credentials", "client_id": "wrong",
                              "client_secret": "x"})
    valid(refused, 400, OAUTH_ERROR)


def test_composite_queries_and_describes(org: Org) -> None:
    queries = [("Account", "SELECT Id, Name, Owner.Name FROM Account ORDER BY SystemModstamp, Id"),
               ("Task", "SELECT Id, Nope__c FROM Task")]
    request = [{"method": "GET", "url": f"{API}/queryAll/?{urlencode({'q': q})}",
                "referenceId": ref, "httpHeaders": {"Sforce-Query-Options": "batchSize=200"}}
               for ref, q in queries]
    request.append({"method": "GET", "url": f"{API}/sobjects/User/describe",
                    "referenceId": "User"})
    body = valid(org("POST", f"{API}/composite",
                     {"allOrNone": False, "compositeRequest": request}), 200, COMPOSITE)
    account, task, user = body["compositeResponse"]
    assert [r["referenceId"] for r in body["compositeResponse"]] == ["Account", "Task", "User"]
    jsonschema.validate(account["body"], QUERY)
    assert account["httpStatusCode"] == 200 and len(account["body"]["records"]) == 200
    assert task["httpStatusCode"] == 400 and task["httpHeaders"] == {}
    jsonschema.validate(task["body"], ERRORS)
    assert user["httpStatusCode"] == 200 and user["body"]["name"] == "User"
    # the next batch, by the path the first one names
    rest = valid(org("GET", account["body"]["nextRecordsUrl"]), 200, QUERY)
    assert rest["done"] is True and len(rest["records"]) == 50


def test_query_and_query_all(org: Org) -> None:
    for resource in ("query", "queryAll"):
        q = urlencode({"q": "SELECT Id, Name, Email, IsActive FROM User"})
        valid(org("GET", f"{API}/{resource}/?{q}"), 200, QUERY)
        bad = urlencode({"q": "SELECT Id FROM Nope"})
        assert valid(org("GET", f"{API}/{resource}/?{bad}"), 400, ERRORS)[0]["errorCode"] == (
            "INVALID_TYPE")


def test_sobject_rows(org: Org) -> None:
    created = valid(org("POST", f"{API}/sobjects/Task/", {"Subject": "Call"}), 201, SAVE_RESULT)
    assert set(created) == {"id", "success", "errors"}
    updated = org("PATCH", f"{API}/sobjects/Task/{created['id']}", {"Subject": "Call back"})
    assert (updated.status_code, updated.content) == (204, b"")
    valid(org("PATCH", f"{API}/sobjects/Task/{created['id']}", {"Nope": 1}), 400, ERRORS)
    valid(org("GET", f"{API}/sobjects/Task/00T000000000000AAA"), 404, ERRORS)


def test_collections(org: Org) -> None:
    task = {"attributes": {"type": "Task"}}
    made = valid(org("POST", f"{API}/composite/sobjects", {"allOrNone": False, "records": [
        {**task, "Subject": "One"}, {**task, "Subject": "x" * 300}]}), 200, COLLECTION)
    assert [r["success"] for r in made] == [True, False]
    valid(org("PATCH", f"{API}/composite/sobjects", {"allOrNone": False, "records": [
        {**task, "id": made[0]["id"], "Subject": "Uno"},
        {**task, "id": "001xx000003DGb2AAG", "Subject": "?"}]}), 200, COLLECTION)
    upserted = valid(org("PATCH", f"{API}/composite/sobjects/Task/Syncd_Key__c", {
        "allOrNone": False, "records": [{**task, "Syncd_Key__c": "k/1", "Subject": "Keyed"}]}),
        200, COLLECTION)
    assert upserted[0]["created"] is True


def test_an_expired_or_wrong_session(org: Org) -> None:
    resp = org("GET", f"{API}/sobjects/Task/describe", headers={"Authorization": "Bearer nope"})
    assert valid(resp, 401, ERRORS) == [{"message": "Session expired or invalid",
                                         "errorCode": "INVALID_SESSION_ID"}]
