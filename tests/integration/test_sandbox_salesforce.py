"""The Salesforce emulator through the real, unmodified simple-salesforce over real TLS."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from syncd.connectors.tls import PinnedSession
from syncd.sandbox.core import SandboxClock, SandboxContext
from syncd.sandbox.salesforce import SalesforceVendor
from syncd.sandbox.server import SandboxServer

START = "2026-03-02T09:00:00Z"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def session(sandbox: SandboxServer) -> PinnedSession:
    return PinnedSession(verify=sandbox.ca_bundle)


def token_call(sandbox: SandboxServer, form: dict[str, str], **kw: Any) -> requests.Response:
    return session(sandbox).post(sandbox.info["salesforce"]["token_url"], data=form, timeout=10,
                                 **kw)


def client_credentials(sandbox: SandboxServer) -> str:
    creds = sandbox.info["salesforce"]
    resp = token_call(sandbox, {"grant_type": "client_credentials",
                                "client_id": creds["client_id"],
                                "client_secret": creds["client_secret"]})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def connect(sandbox: SandboxServer, token: str | None = None) -> Salesforce:
    return Salesforce(instance_url=sandbox.info["salesforce"]["instance_url"],
                      session_id=token or client_credentials(sandbox), session=session(sandbox))


@pytest.fixture
def sf(sandbox: SandboxServer) -> Salesforce:
    sandbox.control("POST", "/_sandbox/seed", {"clock": START, "salesforce": {
        "settings": {"custom_fields": {"Task": [
            {"name": "Syncd_Key__c", "external_id": True, "unique": True}]}},
        "users": [{"@key": "ann", "Username": "ann@acme.example", "Email": "ann@acme.example",
                   "Name": "Ann Lee"},
                  {"@key": "gone", "Username": "old@acme.example", "Email": "old@acme.example",
                   "Name": "Old Timer", "IsActive": False}],
        "accounts": [{"@key": "acme", "Name": "Acme", "OwnerId": "@ann"}],
        "opportunities": [
            {"@key": "won", "Name": "Acme renewal", "StageName": "Closed Won",
             "CloseDate": "2026-02-27", "AccountId": "@acme", "OwnerId": "@ann",
             "CreatedDate": "2026-01-05T10:00:00Z", "SystemModstamp": "2026-02-27T16:00:00Z"},
            {"Name": "Acme upsell", "StageName": "Prospecting", "CloseDate": "2026-06-30",
             "AccountId": "@acme", "SystemModstamp": "2026-01-10T08:00:00Z"},
        ],
    }})
    return connect(sandbox)


def opportunity_id(sf: Salesforce, name: str) -> str:
    return str(sf.query(f"SELECT Id FROM Opportunity WHERE Name = '{name}'")["records"][0]["Id"])


# --- OAuth -------------------------------------------------------------------------------------


def test_client_credentials_grant_in_the_form_or_as_basic_auth(sandbox: SandboxServer) -> None:
    creds = sandbox.info["salesforce"]
    form = token_call(sandbox, {"grant_type": "client_credentials",
                                "client_id": creds["client_id"],
                                "client_secret": creds["client_secret"]}).json()
    assert form["token_type"] == "Bearer"
    assert form["instance_url"] == sandbox.url
    assert abs(int(form["issued_at"]) / 1000 - time.time()) < 60  # ms, on the sandbox clock
    basic = token_call(sandbox, {"grant_type": "client_credentials"},
                       auth=(creds["client_id"], creds["client_secret"])).json()
    assert basic["access_token"] != form["access_token"]
    assert connect(sandbox, basic["access_token"]).query("SELECT Id FROM User")["totalSize"] == 1

    wrong = token_call(sandbox, {"grant_type": "client_credentials",
                                 "client_id": creds["client_id"], "client_secret": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
    unsupported = token_call(sandbox, {"grant_type": "authorization_code"})
    assert unsupported.json() == {"error": "unsupported_grant_type",
                                  "error_description": "grant type not supported"}


def test_jwt_bearer_grant_verifies_the_assertion(sandbox: SandboxServer,
                                                 rsa_key: rsa.RSAPrivateKey) -> None:
    sandbox.control("POST", "/_sandbox/clock", {"now": START})
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {
        "settings": {"jwt_public_key_pem": public_pem(rsa_key)},
        "users": [{"Username": "ann@acme.example", "Email": "ann@acme.example", "Name": "Ann"}],
    }})
    client_id = sandbox.info["salesforce"]["client_id"]
    start = datetime.fromisoformat(START).timestamp()

    def grant(key: rsa.RSAPrivateKey = rsa_key, **claims: Any) -> requests.Response:
        body = {"iss": client_id, "sub": "ann@acme.example", "aud": "https://login.salesforce.com",
                "exp": int(start) + 180, **claims}
        return token_call(sandbox, {"grant_type": JWT_GRANT,
                                    "assertion": jwt.encode(body, key, algorithm="RS256")})

    ok = grant()
    assert ok.status_code == 200, ok.text
    sf = connect(sandbox, ok.json()["access_token"])
    me = sf.query("SELECT Username FROM User WHERE Id = '{}'".format(
        ok.json()["id"].rsplit("/", 1)[1]))
    assert me["records"][0]["Username"] == "ann@acme.example"

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refusals = [grant(other_key), grant(sub="who@acme.example"), grant(iss="someone-else"),
                grant(exp=int(start) - 1), grant(aud="https://evil.example")]
    assert [(r.status_code, r.json()["error"]) for r in refusals] == [
        (400, "invalid_grant"), (400, "invalid_grant"), (400, "invalid_client_id"),
        (400, "invalid_grant"), (400, "invalid_grant")]


def test_jwt_audience_must_be_the_orgs_login_host(sandbox: SandboxServer,
                                                  rsa_key: rsa.RSAPrivateKey) -> None:
    """A sandbox org answers for test.salesforce.com (or its My Domain), not login."""
    sandbox.control("POST", "/_sandbox/clock", {"now": START})
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {
        "settings": {"jwt_public_key_pem": public_pem(rsa_key), "org_kind": "sandbox"},
        "users": [{"Username": "ann@acme.example", "Email": "ann@acme.example", "Name": "Ann"}],
    }})
    exp = int(datetime.fromisoformat(START).timestamp()) + 180

    def grant(aud: str) -> requests.Response:
        body = {"iss": sandbox.info["salesforce"]["client_id"], "sub": "ann@acme.example",
                "aud": aud, "exp": exp}
        return token_call(sandbox, {"grant_type": JWT_GRANT,
                                    "assertion": jwt.encode(body, rsa_key, algorithm="RS256")})

    assert grant("https://test.salesforce.com").status_code == 200
    assert grant(sandbox.url).status_code == 200  # the org's "My Domain"
    refused = grant("https://login.salesforce.com")
    assert (refused.status_code, refused.json()) == (400, {
        "error": "invalid_grant", "error_description": "audience is invalid"})


def test_expired_token_is_refused_and_a_new_one_works(sf: Salesforce,
                                                      sandbox: SandboxServer) -> None:
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {"settings": {
        "token_lifetime_s": 600}}})
    short = connect(sandbox)
    sandbox.control("POST", "/_sandbox/clock", {"advance": 601})
    with pytest.raises(SalesforceExpiredSession) as info:
        short.query("SELECT Id FROM Account")
    assert info.value.status == 401
    assert info.value.content == [{"message": "Session expired or invalid",
                                   "errorCode": "INVALID_SESSION_ID"}]
    assert connect(sandbox).query("SELECT Id FROM Account")["totalSize"] == 1


# --- query -------------------------------------------------------------------------------------


def test_query_pages_through_thousands_of_records(sandbox: SandboxServer) -> None:
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {"tasks": [
        {"Subject": f"Follow up {i:04d}"} for i in range(2600)]}})
    sf = connect(sandbox)
    soql = "SELECT Id, Subject FROM Task ORDER BY Subject"
    everything = sf.query_all(soql)
    assert everything["totalSize"] == 2600
    assert [r["Subject"] for r in everything["records"]] == [
        f"Follow up {i:04d}" for i in range(2600)]

    first = sf.query(soql)
    assert (first["totalSize"], first["done"], len(first["records"])) == (2600, False, 2000)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert (rest["done"], len(rest["records"]), "nextRecordsUrl" in rest) == (True, 600, False)
    with pytest.raises(SalesforceMalformedRequest) as info:  # the locator closed after its end
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert info.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"

    small = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=500"})
    assert (len(small["records"]), small["nextRecordsUrl"][-4:]) == (500, "-500")
    tiny = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(tiny["records"]) == 200  # Salesforce's minimum batch


def test_soql_relationships_dates_and_ordering_over_the_wire(sf: Salesforce,
                                                             sandbox: SandboxServer) -> None:
    rows = sf.query("SELECT Name, Account.Name, Owner.Email, IsWon, CloseDate FROM Opportunity "
                    "WHERE CloseDate = LAST_N_DAYS:7 AND Owner.Email LIKE '%@acme.example'")
    assert rows["totalSize"] == 1
    won = rows["records"][0]
    assert (won["Name"], won["IsWon"], won["CloseDate"]) == ("Acme renewal", True, "2026-02-27")
    assert won["Account"]["Name"] == "Acme"
    assert won["Owner"] == {"attributes": won["Owner"]["attributes"], "Email": "ann@acme.example"}

    modified = sf.query("SELECT Name, SystemModstamp FROM Opportunity WHERE SystemModstamp >= "
                        "2026-01-10T09:00:00+01:00 ORDER BY SystemModstamp, Id")
    assert [(r["Name"], r["SystemModstamp"]) for r in modified["records"]] == [
        ("Acme upsell", "2026-01-10T08:00:00.000+0000"),
        ("Acme renewal", "2026-02-27T16:00:00.000+0000")]
    assert sf.query("select name from OPPORTUNITY where ISWON = false")["records"][0]["Name"] == \
        "Acme upsell"


def test_query_all_sees_deleted_records(sf: Salesforce) -> None:
    upsell = opportunity_id(sf, "Acme upsell")
    assert sf.Opportunity.delete(upsell) == 204
    live = sf.query("SELECT Id FROM Opportunity")
    everything = sf.query_all("SELECT Id, IsDeleted FROM Opportunity ORDER BY IsDeleted",
                              include_deleted=True)
    assert live["totalSize"] == 1
    assert [(r["Id"], r["IsDeleted"]) for r in everything["records"]][-1] == (upsell, True)


# --- sObjects ----------------------------------------------------------------------------------


def test_crud_answers_with_salesforce_status_codes(sf: Salesforce, sandbox: SandboxServer) -> None:
    won = opportunity_id(sf, "Acme renewal")
    created = sf.Task.create({"Subject": "Kick-off call", "WhatId": won,
                              "ActivityDate": "2026-03-05"})
    assert created["success"] is True and created["errors"] == []
    assert created["id"].startswith("00T") and len(created["id"]) == 18
    task = sf.Task.get(created["id"])
    assert task["attributes"] == {"type": "Task",
                                  "url": f"/services/data/v59.0/sobjects/Task/{created['id']}"}
    assert (task["Status"], task["Priority"], task["IsClosed"]) == ("Not Started", "Normal",
                                                                     False)
    assert task["AccountId"] == sf.query("SELECT Id FROM Account")["records"][0]["Id"]
    assert task["CreatedDate"] == "2026-03-02T09:00:00.000+0000"

    assert sf.Task.update(created["id"], {"Status": "Completed"}) == 204
    assert sf.Task.get(created["id"])["IsClosed"] is True
    assert sf.Task.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Task.get(created["id"])
    assert gone.value.content == [{"message": "entity is deleted",
                                   "errorCode": "ENTITY_IS_DELETED"}]
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Task.get("00TSb0000000000AAA")
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"


@pytest.mark.parametrize(("body", "code", "fields"), [
    ({"Name": "No stage"}, "REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"]),
    ({"Name": "x", "StageName": "Prospecting", "CloseDate": "2026-03-31", "Foo__c": 1},
     "INVALID_FIELD", None),
    ({"Name": "x", "StageName": "Prospecting", "CloseDate": "31/03/2026"},
     "JSON_PARSER_ERROR", ["CloseDate"]),
    ({"Name": "x", "StageName": "Closed Won", "CloseDate": "2026-03-31", "IsWon": True},
     "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsWon"]),
    ({"Name": "x", "StageName": "Prospecting", "CloseDate": "2026-03-31", "AccountId": "acme"},
     "MALFORMED_ID", ["AccountId"]),
    ({"Name": "x", "StageName": "Prospecting", "CloseDate": "2026-03-31",
      "AccountId": "001Sb0000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
])
def test_invalid_writes_are_refused_like_salesforce(sf: Salesforce, body: dict[str, Any],
                                                    code: str, fields: list[str] | None) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Opportunity.create(body)
    error = info.value.content[0]
    assert error["errorCode"] == code
    assert error.get("fields") == fields
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 2  # nothing was written


def test_inactive_owner_is_refused(sf: Salesforce) -> None:
    old = sf.query("SELECT Id FROM User WHERE IsActive = false")["records"][0]["Id"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create({"Subject": "x", "OwnerId": old})
    assert info.value.content[0]["errorCode"] == "INACTIVE_OWNER_OR_USER"


def test_system_modstamp_moves_with_the_sandbox_clock(sf: Salesforce,
                                                      sandbox: SandboxServer) -> None:
    won = opportunity_id(sf, "Acme renewal")
    sandbox.control("POST", "/_sandbox/clock", {"advance": 3600.25})
    assert sf.Opportunity.update(won, {"NextStep": "Send invoice"}) == 204
    after = sf.Opportunity.get(won)
    assert after["SystemModstamp"] == "2026-03-02T10:00:00.250+0000"
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["CreatedDate"] == "2026-01-05T10:00:00.000+0000"
    changed = sf.query("SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-03-02T09:59:59Z")
    assert [r["Id"] for r in changed["records"]] == [won]


def test_upsert_by_external_id_creates_then_updates(sf: Salesforce) -> None:
    assert sf.Task.upsert("Syncd_Key__c/welcome-1", {"Subject": "Welcome call"}) == 201
    assert sf.Task.upsert("Syncd_Key__c/welcome-1", {"Subject": "Welcome call (moved)"}) == 204
    task = sf.Task.get_by_custom_id("Syncd_Key__c", "welcome-1")
    assert task["Subject"] == "Welcome call (moved)"
    assert sf.query("SELECT COUNT() FROM Task")["totalSize"] == 1
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Task.upsert("Subject/x", {"Priority": "High"})
    assert "Provided external ID field does not exist" in info.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as dup:
        sf.Task.create({"Subject": "again", "Syncd_Key__c": "WELCOME-1"})
    assert dup.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    described = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert described["Syncd_Key__c"]["externalId"] is True
    assert {"Account", "Opportunity"} <= set(described["WhatId"]["referenceTo"])
    assert described["WhatId"]["polymorphicForeignKey"] is True


def test_deleting_an_account_deletes_its_deals_and_their_activities(sf: Salesforce) -> None:
    won = opportunity_id(sf, "Acme renewal")
    task = sf.Task.create({"Subject": "Renewal call", "WhatId": won})["id"]
    event = sf.Event.create({"Subject": "QBR", "WhatId": won,
                             "StartDateTime": "2026-03-03T10:00:00+01:00",
                             "DurationInMinutes": 90})["id"]
    assert sf.Event.get(event)["EndDateTime"] == "2026-03-03T10:30:00.000+0000"
    account = sf.query("SELECT Id FROM Account")["records"][0]["Id"]
    assert sf.Account.delete(account) == 204
    for sobject in ("Account", "Opportunity", "Task", "Event"):
        assert sf.query(f"SELECT COUNT() FROM {sobject}")["totalSize"] == 0
    gone = sf.query_all("SELECT Id FROM Task WHERE IsDeleted = true", include_deleted=True)
    assert [r["Id"] for r in gone["records"]] == [task]


def test_updated_and_deleted_resources_cover_the_window(sf: Salesforce,
                                                        sandbox: SandboxServer) -> None:
    won = opportunity_id(sf, "Acme renewal")
    upsell = opportunity_id(sf, "Acme upsell")
    sandbox.control("POST", "/_sandbox/clock", {"advance": 600})
    sf.Opportunity.update(won, {"Amount": 1200})
    sf.Opportunity.delete(upsell)
    sandbox.control("POST", "/_sandbox/clock", {"advance": 600})
    start = datetime.fromisoformat(START)
    updated = sf.Opportunity.updated(start, start + timedelta(hours=1))
    assert updated == {"ids": [won], "latestDateCovered": "2026-03-02T09:20:00.000+0000"}
    deleted = sf.Opportunity.deleted(start, start + timedelta(hours=1))
    assert deleted["deletedRecords"] == [{"id": upsell,
                                          "deletedDate": "2026-03-02T09:10:00.000+0000"}]
    assert deleted["earliestDateAvailable"] == "2026-02-15T09:20:00.000+0000"


# --- composite collections ---------------------------------------------------------------------


def test_collection_with_partial_failure_keeps_the_good_records(sf: Salesforce) -> None:
    won = opportunity_id(sf, "Acme renewal")
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Task"}, "Subject": "Day 1", "WhatId": won},
        {"attributes": {"type": "Opportunity"}, "Name": "No stage"},
        {"attributes": {"type": "Task"}, "Subject": "Day 2", "WhatId": won},
    ]})
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1] == {"success": False, "errors": [{
        "statusCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [StageName, CloseDate]",
        "fields": ["StageName", "CloseDate"]}]}
    tasks = sf.query("SELECT Id, Subject FROM Task ORDER BY Subject")["records"]
    assert [(t["Id"], t["Subject"]) for t in tasks] == [(results[0]["id"], "Day 1"),
                                                        (results[2]["id"], "Day 2")]
    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Task"}, "id": results[0]["id"], "Status": "Completed"},
        {"attributes": {"type": "Task"}, "Status": "Completed"}]})
    assert updated[0] == {"id": results[0]["id"], "success": True, "errors": []}
    assert updated[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    fetched = sf.restful(f"composite/sobjects/Task?ids={results[0]['id']},{results[2]['id']}"
                         "&fields=Subject,IsClosed")
    assert [(t["Subject"], t["IsClosed"]) for t in fetched] == [("Day 1", True), ("Day 2", False)]


def test_collection_all_or_none_rolls_everything_back(sf: Salesforce) -> None:
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Task"}, "Subject": "Day 1"},
        {"attributes": {"type": "Task"}, "Subject": "Day 2", "WhatId": "001Sb0000000000AAA"},
    ]})
    assert results[0] == {"success": False, "errors": [{
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was "
                   "using AllOrNone header", "fields": []}]}
    assert results[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert sf.query("SELECT COUNT() FROM Task")["totalSize"] == 0
    ids = ",".join(opportunity_id(sf, n) for n in ("Acme renewal", "Acme upsell"))
    deleted = sf.restful(f"composite/sobjects?ids={ids},bogus&allOrNone=true", method="DELETE")
    assert [r["success"] for r in deleted] == [False, False, False]
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 2


def test_collection_over_200_records_is_refused(sf: Salesforce) -> None:
    records = [{"attributes": {"type": "Task"}, "Subject": str(i)} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


# --- composite -----------------------------------------------------------------------------------


def _query(sf: Salesforce, soql: str, ref: str) -> dict[str, Any]:
    return {"method": "GET", "referenceId": ref,
            "url": f"/services/data/v{sf.sf_version}/query/?q={soql.replace(' ', '+')}"}


def test_composite_answers_each_query_and_counts_once(sandbox: SandboxServer,
                                                      sf: Salesforce) -> None:
    sf.query("SELECT Id FROM User")
    used = sf.api_usage["api-usage"].used
    answer = sf.restful("composite", method="POST", json={"compositeRequest": [
        _query(sf, "SELECT Name FROM Account", "accounts"),
        _query(sf, "SELECT Name FROM Opportunity ORDER BY Name", "deals"),
        _query(sf, "SELECT Nope FROM Account", "broken"),
    ]})
    results = {r["referenceId"]: r for r in answer["compositeResponse"]}
    assert [r["referenceId"] for r in answer["compositeResponse"]] == ["accounts", "deals",
                                                                      "broken"]
    assert results["accounts"]["httpStatusCode"] == 200
    assert [a["Name"] for a in results["accounts"]["body"]["records"]] == ["Acme"]
    assert results["deals"]["body"]["totalSize"] == len(results["deals"]["body"]["records"])
    assert results["broken"]["httpStatusCode"] == 400  # its own error; the others stand
    assert results["broken"]["body"][0]["errorCode"] == "INVALID_FIELD"
    assert sf.api_usage["api-usage"].used == used + 1  # one call for three queries


@pytest.mark.parametrize(("subrequests", "says"), [
    (26, "maximum number of subrequests allowed is 25"),
    (6, "maximum number of query subrequests allowed is 5"),
])
def test_composite_over_salesforce_caps_is_refused(sf: Salesforce, subrequests: int,
                                                    says: str) -> None:
    batch = [_query(sf, "SELECT Id FROM Account", f"q{n}") for n in range(subrequests)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite", method="POST", json={"compositeRequest": batch})
    assert says in info.value.content[0]["message"]


def test_composite_writes_are_refused_by_the_sandbox_with_the_way_out(sf: Salesforce) -> None:
    write = {"method": "POST", "referenceId": "t",
             "url": f"/services/data/v{sf.sf_version}/sobjects/Task", "body": {"Subject": "x"}}
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite", method="POST", json={"compositeRequest": [write]})
    assert "composite/sobjects" in info.value.content[0]["message"]
    assert sf.query("SELECT Id FROM Task WHERE Subject = 'x'")["totalSize"] == 0


# --- limits and errors -------------------------------------------------------------------------


def test_api_usage_is_reported_and_the_daily_limit_enforced(sandbox: SandboxServer) -> None:
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {"settings": {
        "daily_api_limit": 3}}})
    sf = connect(sandbox)
    sf.query("SELECT Id FROM User")
    assert sf.api_usage["api-usage"] == (1, 3)
    assert sf.limits()["DailyApiRequests"] == {"Max": 3, "Remaining": 1}
    assert sf.api_usage["api-usage"] == (2, 3)
    sf.query("SELECT Id FROM User")
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM User")
    assert info.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sandbox.control("POST", "/_sandbox/clock", {"advance": 86400})  # the window rolls on
    assert connect(sandbox).query("SELECT Id FROM User")["totalSize"] == 1


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY"),
    ("SELECT Foo FROM Opportunity", "INVALID_FIELD"),
    ("SELECT Id FROM Opportunityy", "INVALID_TYPE"),
])
def test_bad_queries_answer_400_with_the_error_code(sf: Salesforce, soql: str, code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(soql)
    assert info.value.status == 400
    assert info.value.content[0]["errorCode"] == code


def test_bad_requests_get_salesforce_error_lists(sf: Salesforce, sandbox: SandboxServer) -> None:
    http = session(sandbox)
    base = f"{sandbox.url}/services/data/v59.0"
    auth = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    bad_json = http.post(f"{base}/sobjects/Task/", data=b"{'Subject':", headers=auth)
    assert bad_json.status_code == 400
    assert bad_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    unknown = http.get(f"{base}/sobjects/Widget/", headers=auth)
    assert (unknown.status_code, unknown.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    wrong_method = http.put(f"{base}/sobjects/Task/", json={}, headers=auth)
    assert (wrong_method.status_code, wrong_method.json()[0]["errorCode"]) == (
        405, "METHOD_NOT_ALLOWED")
    no_token = http.get(f"{base}/query/?q=SELECT+Id+FROM+User")
    assert no_token.status_code == 401
    assert no_token.json() == [{"message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID"}]
    with pytest.raises(SalesforceExpiredSession):
        connect(sandbox, "00D!forged").query("SELECT Id FROM User")
    versions = http.get(f"{sandbox.url}/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions


def test_injected_faults_carry_salesforce_bodies(sf: Salesforce, sandbox: SandboxServer) -> None:
    sandbox.control("POST", "/_sandbox/faults", {"faults": [
        {"vendor": "salesforce", "path": "/query", "kind": "status", "status": 503, "times": 1}]})
    with pytest.raises(SalesforceGeneralError) as info:
        sf.query("SELECT Id FROM User")
    assert (info.value.status, info.value.content[0]["errorCode"]) == (503, "SERVER_UNAVAILABLE")
    assert sf.query("SELECT Id FROM User")["totalSize"] == 3


def test_snapshot_round_trips_data_but_not_tokens(rsa_key: rsa.RSAPrivateKey) -> None:
    creds = {"salesforce": {"client_id": "id", "client_secret": "s", "instance_url": "x"}}
    ctx = SandboxContext(clock=SandboxClock(), credentials=creds)
    vendor = SalesforceVendor(ctx)
    vendor.seed({"settings": {"custom_fields": {"Opportunity": ["Region__c"]},
                              "jwt_public_key_pem": public_pem(rsa_key)},
                 "records": {"Opportunity": [{"Name": "Deal", "StageName": "Closed Lost",
                                              "CloseDate": "2026-01-01", "IsDeleted": True,
                                              "Region__c": "EMEA"}]}})
    state = json.loads(json.dumps(vendor.snapshot()))
    assert '"s"' not in json.dumps(state)  # the client secret stays out of the state file
    restored = SalesforceVendor(SandboxContext(clock=SandboxClock(), credentials=creds))
    restored.restore(state)
    assert restored.snapshot() == state
    deal = state["store"]["records"]["Opportunity"][0]
    assert (deal["Region__c"], deal["IsDeleted"], deal["IsClosed"]) == ("EMEA", True, True)


def test_a_request_line_past_16384_bytes_is_refused_with_414(sf: Salesforce) -> None:
    """As Salesforce's front end does; the same query in a composite body is answered."""
    names = " OR ".join(f"Name = 'Account number {n:05d}'" for n in range(700))
    soql = f"SELECT Id, Name FROM Account WHERE {names}"
    with pytest.raises(SalesforceGeneralError) as info:
        sf.query(soql)
    assert info.value.status == 414
    url = f"/services/data/v{sf.sf_version}/query/?{urlencode({'q': soql})}"
    answer = sf.restful("composite", method="POST", json={"compositeRequest": [
        {"method": "GET", "url": url, "referenceId": "long"}]})
    assert answer["compositeResponse"][0]["httpStatusCode"] == 200
