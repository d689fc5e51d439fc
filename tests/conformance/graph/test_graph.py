"""Microsoft Graph conformance: documented bodies (SOURCE.md) fed to syncd's connector, and the
sandbox's answers for every Graph call syncd makes validated against the schemas derived from
Graph's published v1.0 metadata (driveItem, listItem, user, message, uploadSession) and its
documented error body. Objects may carry only declared properties and `@` annotations."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx

from syncd.clock import SystemClock
from syncd.connectors.base import poll
from syncd.connectors.graph import GraphConnector
from syncd.connectors.http import PermanentError
from syncd.connectors.tls import PinnedSession, httpx_verify
from syncd.sandbox.server import SandboxServer
from syncd.settings import GraphSection

HERE = Path(__file__).parent
SCHEMAS: dict[str, Any] = json.loads((HERE / "graph-v1.0-subset.schema.json").read_text())
ERROR: dict[str, Any] = json.loads((HERE / "odata-error.schema.json").read_text())
DOCUMENTED: dict[str, Any] = json.loads((HERE / "documented.json").read_text())
BASE = "https://graph.microsoft.com/v1.0"


def validate(instance: Any, resource: str) -> None:
    schema = {"$schema": SCHEMAS["$schema"], "$defs": SCHEMAS["$defs"],
              "$ref": f"#/$defs/{resource}"}
    jsonschema.Draft202012Validator(schema).validate(instance)


def validate_collection(body: dict[str, Any], resource: str) -> None:
    extra = set(body) - {"value", "@odata.nextLink", "@odata.deltaLink", "@odata.context"}
    assert not extra, f"a collection answer with {extra}"
    for item in body["value"]:
        validate(item, resource)


# -- (a) documented bodies through syncd's parsing -------------------------------------------
@pytest.fixture
def documented_graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphConnector]:
    monkeypatch.setattr(GraphConnector, "_token", lambda self: "token")
    graph = GraphConnector(GraphSection(tenant_id="t", client_id="c", client_secret="s",
                                        drive_id="d"), SystemClock())
    yield graph
    graph.close()


def test_documented_delta_pages_become_records(documented_graph: GraphConnector) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{BASE}/drives/d/root/delta").respond(200, json=DOCUMENTED["delta_first_page"])
        mock.get(DOCUMENTED["delta_first_page"]["@odata.nextLink"]).respond(
            200, json=DOCUMENTED["delta_last_page"])
        records, cursor = poll(documented_graph, None)
    # a tombstone becomes a deleted record whatever it was (the store ignores ids it never saw)
    assert [(r.fields["name"], r.deleted) for r in records] == [
        ("file.txt", False), ("file5.txt", True), ("folder2", True), ("file.txt", False)]
    assert records[0].fields["path"] == "file.txt"  # no parentReference: the drive root
    assert json.loads(cursor) == {"drive": DOCUMENTED["delta_last_page"]["@odata.deltaLink"]}
    with respx.mock() as mock:
        mock.get(DOCUMENTED["delta_last_page"]["@odata.deltaLink"]).respond(
            200, json=DOCUMENTED["delta_latest"])
        assert poll(documented_graph, cursor)[0] == []


def test_documented_error_body_is_read(documented_graph: GraphConnector) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/drives/d/items/x").respond(416, json=DOCUMENTED["error"])
        with pytest.raises(PermanentError) as raised:
            documented_graph._get_json(f"{BASE}/drives/d/items/x")
    assert (raised.value.status, raised.value.code) == (416, "invalidRange")
    jsonschema.validate(DOCUMENTED["error"], ERROR)  # the schema admits the documented body


# -- (b) the sandbox answers as Graph's schemas allow ----------------------------------------
@pytest.fixture
def graph_http(sandbox: SandboxServer) -> Iterator[tuple[httpx.Client, str]]:
    g = sandbox.info["graph"]
    sandbox.control("POST", "/_sandbox/seed", {"graph": {
        "files": [{"path": "Clients/Acme Corp/notes.txt", "content": "hello"}],
        "lists": [{"name": "Arrivals", "columns": ["Name"], "items": [{"fields": {
            "Title": "Ana", "Name": "Ana"}}]}]}})
    token = PinnedSession(verify=sandbox.ca_bundle).post(
        f"{g['authority']}/oauth2/v2.0/token", timeout=30,
        data={"grant_type": "client_credentials", "client_id": g["client_id"],
              "client_secret": g["client_secret"],
              "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
    with httpx.Client(base_url=g["base_url"], verify=httpx_verify(sandbox.ca_bundle),
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http, f"/drives/{g['drive_id']}"


def test_drive_answers_are_drive_items(graph_http: tuple[httpx.Client, str]) -> None:
    http, drive = graph_http
    item = http.get(f"{drive}/root:/Clients/Acme Corp/notes.txt").json()
    validate(item, "driveItem")
    validate(http.get(f"{drive}/root:/Clients/Acme Corp").json(), "driveItem")
    validate(http.get(f"{drive}/items/{item['id']}").json(), "driveItem")
    validate_collection(http.get(f"{drive}/root:/Clients:/children").json(), "driveItem")
    validate_collection(http.get(f"{drive}/root/delta", params={"$top": 200}).json(),
                        "driveItem")
    made = http.post(f"{drive}/root:/Clients:/children", json={
        "name": "New", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"})
    assert made.status_code == 201
    validate(made.json(), "driveItem")
    put = http.put(f"{drive}/root:/Clients/New/a.txt:/content", content=b"abc",
                   params={"@microsoft.graph.conflictBehavior": "replace"})
    assert put.status_code in (200, 201)
    validate(put.json(), "driveItem")


def test_upload_session_answers(
    sandbox: SandboxServer, graph_http: tuple[httpx.Client, str]
) -> None:
    http, drive = graph_http
    session = http.post(f"{drive}/root:/Clients/big.bin:/createUploadSession",
                        json={"item": {"@microsoft.graph.conflictBehavior": "replace"}})
    assert session.status_code == 200
    validate(session.json(), "uploadSession")
    done = httpx.put(session.json()["uploadUrl"], content=b"x" * 10,
                     headers={"Content-Range": "bytes 0-9/10"},
                     verify=httpx_verify(sandbox.ca_bundle))
    assert done.status_code in (200, 201)
    validate(done.json(), "driveItem")


def test_directory_mail_and_list_answers(
    sandbox: SandboxServer, graph_http: tuple[httpx.Client, str]
) -> None:
    http, _ = graph_http
    g = sandbox.info["graph"]
    validate_collection(http.get("/users", params={
        "$select": "id,displayName,mail,accountEnabled"}).json(), "user")
    key = "String {00020329-0000-0000-C000-000000000046} Name SyncdKey"
    sent = http.post(f"/users/{g['mailbox']}/sendMail", json={"message": {
        "subject": "s", "body": {"contentType": "Text", "content": "b"},
        "toRecipients": [{"emailAddress": {"address": "a@example.com"}}],
        "singleValueExtendedProperties": [{"id": key, "value": "k1"}]},
        "saveToSentItems": True})
    assert sent.status_code == 202 and sent.content == b""
    found = http.get(f"/users/{g['mailbox']}/mailFolders/SentItems/messages", params={
        "$filter": f"singleValueExtendedProperties/any(ep: ep/id eq '{key}' and "
                   "ep/value eq 'k1')", "$select": "id"}).json()
    validate_collection(found, "message")
    assert len(found["value"]) == 1
    items = http.get(f"/sites/{g['site_id']}/lists/Arrivals/items/delta",
                     params={"expand": "fields"}).json()
    validate_collection(items, "listItem")


@pytest.mark.parametrize("case", ["404", "409", "403", "410"])
def test_error_answers_are_graph_errors(
    sandbox: SandboxServer, graph_http: tuple[httpx.Client, str], case: str
) -> None:
    http, drive = graph_http
    if case == "404":
        resp = http.get(f"{drive}/root:/Nowhere/x.txt")
    elif case == "409":
        body = {"name": "Clients", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}
        resp = http.post(f"{drive}/root/children", json=body)
    elif case == "403":
        sandbox.control("POST", "/_sandbox/seed", {"graph": {"app_roles": ["Mail.Send"]}})
        g = sandbox.info["graph"]
        token = PinnedSession(verify=sandbox.ca_bundle).post(
            f"{g['authority']}/oauth2/v2.0/token", timeout=30,
            data={"grant_type": "client_credentials", "client_id": g["client_id"],
                  "client_secret": g["client_secret"],
                  "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
        resp = http.get(f"/users/{g['mailbox']}/mailFolders/SentItems/messages",
                        headers={"Authorization": f"Bearer {token}"})
    else:
        stale = base64.urlsafe_b64encode(b"not a token").decode()
        resp = http.get(f"{drive}/root/delta", params={"token": stale})
        assert resp.headers.get("Location")
    assert resp.status_code == int(case)
    jsonschema.validate(resp.json(), ERROR)
