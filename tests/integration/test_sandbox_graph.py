"""The Graph and identity-platform emulators, driven by unmodified msal and httpx over real TLS.

Every test starts from a reset sandbox (the `sandbox` fixture). REQUESTS_CA_BUNDLE points at the
system bundle, so msal only trusts the sandbox through the PinnedSession it is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import msal
import pytest

from syncd.connectors.tls import PinnedSession, httpx_verify

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
FRAGMENT = 327_680
KEY_PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name syncd-key"


def msal_app(sandbox: Any, secret: str | None = None) -> msal.ConfidentialClientApplication:
    info = sandbox.info["graph"]
    return msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=secret or info["client_secret"],
        authority=info["authority"],
        instance_discovery=False,
        http_client=PinnedSession(verify=sandbox.ca_bundle),
        verify=sandbox.ca_bundle,
    )


def client(sandbox: Any, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=sandbox.info["graph"]["base_url"],
        verify=httpx_verify(sandbox.ca_bundle),
        headers=headers,
        timeout=30,
    )


@pytest.fixture
def graph(sandbox: Any) -> Iterator[httpx.Client]:
    result = msal_app(sandbox).acquire_token_for_client(GRAPH_SCOPE)
    with client(sandbox, result["access_token"]) as http:
        yield http


@pytest.fixture
def raw(sandbox: Any) -> Iterator[httpx.Client]:
    """A client without a Graph token, for upload and download URLs."""
    with httpx.Client(verify=httpx_verify(sandbox.ca_bundle), timeout=30) as http:
        yield http


@pytest.fixture
def drive(sandbox: Any) -> str:
    return f"/drives/{sandbox.info['graph']['drive_id']}"


def seed(sandbox: Any, **graph: Any) -> None:
    sandbox.control("POST", "/_sandbox/seed", {"graph": graph})


def graph_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code, error
    assert {"request-id", "date", "client-request-id"} <= set(error["innerError"])
    return error


def drain(http: httpx.Client, url: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow a delta query to its deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        resp = http.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["value"]
        pages += 1
        if "@odata.nextLink" not in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


# -- identity platform --------------------------------------------------------------------------


def test_msal_client_credentials_token_is_accepted_by_graph(sandbox: Any) -> None:
    app = msal_app(sandbox)
    first = app.acquire_token_for_client(GRAPH_SCOPE)
    again = app.acquire_token_for_client(GRAPH_SCOPE)

    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == 3599
    assert first["token_source"] == "identity_provider"
    assert again["token_source"] == "cache"
    with client(sandbox, first["access_token"]) as http:
        site = http.get(f"/sites/{sandbox.info['graph']['site_id']}")
    assert site.status_code == 200
    assert site.json()["webUrl"] == "https://contoso.sharepoint.com/sites/syncd"


def test_msal_wrong_secret_gets_entra_error_dict(sandbox: Any) -> None:
    result = msal_app(sandbox, secret="not-the-secret").acquire_token_for_client(GRAPH_SCOPE)

    assert "access_token" not in result
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret")


def test_msal_unknown_tenant_fails_discovery(sandbox: Any) -> None:
    info = sandbox.info["graph"]
    tenant = "00000000-1111-2222-3333-444444444444"
    discovery = httpx.get(
        f"{sandbox.url}/{tenant}/v2.0/.well-known/openid-configuration",
        verify=httpx_verify(sandbox.ca_bundle),
    )

    assert discovery.status_code == 400
    assert discovery.json()["error"] == "invalid_tenant"
    assert discovery.json()["error_codes"] == [90002]
    with pytest.raises(ValueError, match="tenant name or GUID"):
        msal.ConfidentialClientApplication(
            info["client_id"],
            client_credential=info["client_secret"],
            authority=f"{sandbox.url}/{tenant}",
            instance_discovery=False,
            http_client=PinnedSession(verify=sandbox.ca_bundle),
        )


@pytest.mark.parametrize(
    ("change", "status", "error", "code"),
    [
        ({"tenant": "contoso-wrong"}, 400, "invalid_request", 90002),
        ({"scope": "https://graph.microsoft.com/User.Read"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://management.azure.com/.default"}, 400, "invalid_resource", 500011),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"client_id": "11111111-2222-3333-4444-555555555555"}, 400, "unauthorized_client", 700016),
        ({"client_secret": ""}, 401, "invalid_client", 7000218),
    ],
)
def test_token_endpoint_rejects_bad_requests(
    sandbox: Any, change: dict[str, str], status: int, error: str, code: int
) -> None:
    info = sandbox.info["graph"]
    form = {
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "grant_type": "client_credentials",
        "scope": GRAPH_SCOPE[0],
        "tenant": info["tenant_id"],
    } | change
    tenant = form.pop("tenant")
    resp = httpx.post(
        f"{sandbox.url}/{tenant}/oauth2/v2.0/token",
        data=form,
        verify=httpx_verify(sandbox.ca_bundle),
    )
    assert resp.status_code == status
    assert resp.json()["error"] == error
    assert resp.json()["error_codes"] == [code]


def test_graph_rejects_missing_unknown_and_expired_tokens(sandbox: Any) -> None:
    seed(sandbox, settings={"token_lifetime_s": 600})
    app = msal_app(sandbox)
    token = app.acquire_token_for_client(GRAPH_SCOPE)
    assert token["expires_in"] == 600
    with client(sandbox) as anonymous:
        missing = anonymous.get("/users")
    with client(sandbox, "not-a-token") as forged:
        unknown = forged.get("/users")
    graph_error(missing, 401, "InvalidAuthenticationToken")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    graph_error(unknown, 401, "InvalidAuthenticationToken")

    sandbox.control("POST", "/_sandbox/clock", {"advance": 601})
    cached = app.acquire_token_for_client(GRAPH_SCOPE)  # msal still trusts its cache
    with client(sandbox, cached["access_token"]) as http:
        expired = http.get("/users")
    fresh = msal_app(sandbox).acquire_token_for_client(GRAPH_SCOPE)
    with client(sandbox, fresh["access_token"]) as http:
        renewed = http.get("/users")

    assert cached["token_source"] == "cache"
    assert "expired" in graph_error(expired, 401, "InvalidAuthenticationToken")["message"]
    assert renewed.status_code == 200


# -- sites, drives, items -----------------------------------------------------------------------


def test_sites_and_drives_are_addressable_every_documented_way(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    info = sandbox.info["graph"]
    by_id = graph.get(f"/sites/{info['site_id']}").json()
    by_path = graph.get("/sites/contoso.sharepoint.com:/sites/syncd").json()
    drives = graph.get(f"/sites/{info['site_id']}/drives").json()["value"]
    default = graph.get(f"/sites/{info['site_id']}/drive").json()
    via_path = graph.get("/sites/contoso.sharepoint.com:/sites/syncd:/drive").json()
    root_site = graph.get("/sites/root").json()
    selected = graph.get(drive + "/root", params={"$select": "id,name"}).json()

    assert by_id["id"] == by_path["id"] == info["site_id"]
    assert [d["id"] for d in drives] == [info["drive_id"]]
    assert default["driveType"] == via_path["driveType"] == "documentLibrary"
    assert default["id"] == via_path["id"] == info["drive_id"]
    assert "root" in root_site and root_site["id"] != info["site_id"]
    assert set(selected) == {"id", "name"}
    graph_error(graph.get(drive + "/root", params={"$select": "nope"}), 400, "invalidRequest")
    graph_error(graph.get("/sites/contoso.sharepoint.com:/sites/other"), 404, "itemNotFound")


def test_items_resolve_by_path_with_or_without_trailing_colon(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    seed(sandbox, files=[{"path": "Clients/Acme/Kickoff.vtt", "content": "WEBVTT"}])

    plain = graph.get(drive + "/root:/Clients/Acme/Kickoff.vtt").json()
    colon = graph.get(drive + "/root:/Clients/Acme/Kickoff.vtt:").json()
    folded = graph.get(drive + "/root:/clients/ACME/kickoff.vtt").json()
    kids = graph.get(drive + "/root:/Clients/Acme:/children").json()["value"]
    acme = graph.get(drive + "/root:/Clients/Acme").json()
    below = graph.get(f"{drive}/items/{acme['id']}:/Kickoff.vtt").json()

    assert plain["id"] == colon["id"] == folded["id"] == kids[0]["id"] == below["id"]
    assert plain["parentReference"]["path"] == f"{drive}/root:/Clients/Acme"
    assert plain["file"]["mimeType"] == "text/vtt"
    assert acme["folder"]["childCount"] == 1
    graph_error(graph.get(drive + "/root:/Clients/Globex"), 404, "itemNotFound")


def test_children_page_through_2600_items_with_absolute_next_links(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    files = [{"path": f"Bulk/file-{i:04}.txt", "content": str(i)} for i in range(2600)]
    seed(sandbox, files=files)

    first = graph.get(drive + "/root:/Bulk:/children").json()
    seen: list[str] = []
    url: str | None = drive + "/root:/Bulk:/children?$top=500&$select=id,name"
    pages = 0
    while url:
        body = graph.get(url).json()
        seen += [item["name"] for item in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
        assert url is None or url.startswith(f"{sandbox.url}/v1.0/drives/")

    assert len(first["value"]) == 200 and "@odata.nextLink" in first
    assert pages == 6
    assert sorted(seen) == sorted(f["path"].split("/")[1] for f in files)
    assert len(set(seen)) == 2600


def test_folder_creation_honours_conflict_behavior(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    def make(name: str, behavior: str | None) -> httpx.Response:
        body: dict[str, Any] = {"name": name, "folder": {}}
        if behavior:
            body["@microsoft.graph.conflictBehavior"] = behavior
        return graph.post(drive + "/root/children", json=body)

    created = make("Acme", "fail")
    graph.put(drive + "/root:/Acme/notes.txt:/content", content=b"keep me")
    failed = make("acme", "fail")
    default = make("Acme", None)
    renamed = make("Acme", "rename")
    renamed_again = make("Acme", "rename")
    replaced = make("Acme", "replace")
    notes = graph.get(drive + "/root:/Acme/notes.txt")

    assert created.status_code == 201
    graph_error(failed, 409, "nameAlreadyExists")
    graph_error(default, 409, "nameAlreadyExists")
    assert renamed.status_code == 201 and renamed.json()["name"] == "Acme 1"
    assert renamed_again.json()["name"] == "Acme 2"
    assert replaced.status_code == 200 and replaced.json()["id"] == created.json()["id"]
    assert notes.status_code == 200


def test_simple_upload_replace_rename_download_and_size_limit(
    sandbox: Any, graph: httpx.Client, raw: httpx.Client, drive: str
) -> None:
    first = graph.put(drive + "/root:/Transcripts/ZD-1 Acme.vtt:/content", content=b"WEBVTT\n1")
    second = graph.put(drive + "/root:/Transcripts/ZD-1 Acme.vtt:/content", content=b"WEBVTT\n2")
    parent = first.json()["parentReference"]["id"]
    renamed = graph.put(
        f"{drive}/items/{parent}:/ZD-1 Acme.vtt:/content",
        params={"@microsoft.graph.conflictBehavior": "rename"},
        content=b"other",
    )
    refused = graph.put(
        f"{drive}/items/{parent}:/ZD-1 Acme.vtt:/content",
        params={"@microsoft.graph.conflictBehavior": "fail"},
        content=b"other",
    )
    redirect = graph.get(f"{drive}/items/{first.json()['id']}/content")
    downloaded = raw.get(redirect.headers["Location"])
    via_item = raw.get(
        graph.get(f"{drive}/items/{first.json()['id']}").json()["@microsoft.graph.downloadUrl"]
    )
    too_big = graph.put(drive + "/root:/big.bin:/content", content=b"x" * (4 * 1024 * 1024 + 1))

    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert renamed.status_code == 201 and renamed.json()["name"] == "ZD-1 Acme 1.vtt"
    graph_error(refused, 409, "nameAlreadyExists")
    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith(sandbox.url)
    assert downloaded.content == via_item.content == b"WEBVTT\n2"
    graph_error(too_big, 413, "requestTooLarge")


def test_upload_session_takes_aligned_fragments_and_commits(
    sandbox: Any, graph: httpx.Client, raw: httpx.Client, drive: str
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 12_345)
    total = len(data)
    step = FRAGMENT * 4
    session = graph.post(
        drive + "/root:/Recordings/call.mp4:/createUploadSession",
        json={"item": {"@microsoft.graph.conflictBehavior": "rename"}},
    ).json()
    url = session["uploadUrl"]

    def put(start: int, end: int, **headers: str) -> httpx.Response:
        rng = {"Content-Range": f"bytes {start}-{end - 1}/{total}"}
        return raw.put(url, content=data[start:end], headers=rng | headers)

    with_auth = put(0, step, Authorization=graph.headers["Authorization"])
    misaligned = put(0, 1000)
    answers = [put(start, min(start + step, total)) for start in range(0, step * 2, step)]
    overlap = put(0, step)
    status = raw.get(url).json()
    final = [put(start, min(start + step, total)) for start in range(step * 2, total, step)]
    item = final[-1].json()
    content = raw.get(graph.get(f"{drive}/items/{item['id']}/content").headers["Location"])

    assert url.startswith(sandbox.url) and session["nextExpectedRanges"] == ["0-"]
    assert with_auth.status_code == 401
    assert misaligned.status_code == 416
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[1].json()["nextExpectedRanges"] == [f"{step * 2}-"]
    assert graph_error(overlap, 416, "invalidRange")["innerError"]["code"] == "fragmentOverlap"
    assert status["nextExpectedRanges"] == [f"{step * 2}-"]
    assert [r.status_code for r in final[:-1]] == [202] * (len(final) - 1)
    assert final[-1].status_code == 201
    assert item["name"] == "call.mp4" and item["size"] == total
    assert content.content == data
    graph_error(raw.get(url), 404, "itemNotFound")


def test_upload_session_can_be_cancelled(
    graph: httpx.Client, raw: httpx.Client, drive: str
) -> None:
    url = graph.post(drive + "/root:/cancel.bin:/createUploadSession").json()["uploadUrl"]

    cancelled = raw.delete(url)

    assert cancelled.status_code == 204
    graph_error(raw.get(url), 404, "itemNotFound")
    graph_error(graph.get(drive + "/root:/cancel.bin"), 404, "itemNotFound")


def test_delete_needs_matching_etag(graph: httpx.Client, drive: str) -> None:
    item = graph.put(drive + "/root:/a.txt:/content", content=b"a").json()

    stale = graph.delete(f"{drive}/items/{item['id']}", headers={"If-Match": '"{X},0"'})
    deleted = graph.delete(f"{drive}/items/{item['id']}", headers={"If-Match": item["eTag"]})

    graph_error(stale, 412, "resourceModified")
    assert deleted.status_code == 204
    graph_error(graph.get(f"{drive}/items/{item['id']}"), 404, "itemNotFound")


# -- delta --------------------------------------------------------------------------------------


def test_delta_enumerates_then_reports_only_changes_and_deletes(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    sandbox.control("POST", "/_sandbox/clock", {"now": "2024-05-01T09:00:00+00:00"})
    files = [{"path": f"Meetings/m{i:03}.vtt", "content": "WEBVTT"} for i in range(450)]
    seed(sandbox, files=[*files, {"path": "Other/x.txt", "content": "x"}])

    initial, link, pages = drain(graph, drive + "/root/delta?$top=100")
    sandbox.control("POST", "/_sandbox/clock", {"advance": 60})
    graph.put(drive + "/root:/Meetings/m007.vtt:/content", content=b"WEBVTT changed")
    graph.delete(drive + "/root:/Other/x.txt")
    changes, next_link, _ = drain(graph, link)
    quiet, _, _ = drain(graph, next_link)
    meetings = graph.get(drive + "/root:/Meetings").json()
    scoped, _, _ = drain(graph, f"{drive}/items/{meetings['id']}/delta")

    assert pages == 5 and len(initial) == 454  # root, 2 folders, 451 files
    assert len({i["id"] for i in initial}) == 454
    assert "path" not in initial[-1]["parentReference"]
    by_name = {i["name"]: i for i in changes}
    assert set(by_name) == {"m007.vtt", "x.txt", "Meetings", "Other", "root"}
    assert by_name["m007.vtt"]["lastModifiedDateTime"] == "2024-05-01T09:01:00Z"
    assert by_name["m007.vtt"]["size"] == len(b"WEBVTT changed")
    assert by_name["x.txt"]["deleted"] == {"state": "deleted"}
    assert quiet == []
    assert len(scoped) == 451 and all(i["name"] != "Other" for i in scoped)


def test_delta_token_latest_and_expiry_with_resync_location(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    seed(sandbox, settings={"delta_token_max_age_s": 600}, folders=["A", "B"])
    latest = graph.get(drive + "/root/delta", params={"token": "latest"}).json()
    graph.post(drive + "/root/children", json={"name": "C", "folder": {}})
    since_latest, link, _ = drain(graph, latest["@odata.deltaLink"])

    sandbox.control("POST", "/_sandbox/clock", {"advance": 601})
    gone = graph.get(link)
    forged = graph.get(drive + "/root/delta", params={"token": "bm90LWEtdG9rZW4"})
    restarted, _, _ = drain(graph, gone.headers["Location"])

    assert latest["value"] == []
    assert {i["name"] for i in since_latest} == {"C", "root"}
    error = graph_error(gone, 410, "resyncRequired")
    assert error["innerError"]["code"] == "resyncChangesApplyDifferences"
    assert gone.headers["Location"].startswith(f"{sandbox.url}/v1.0{drive}/root/delta")
    assert forged.status_code == 410
    assert {i["name"] for i in restarted} == {"root", "A", "B", "C"}


# -- lists --------------------------------------------------------------------------------------


def test_arrivals_list_items_fields_and_delta(sandbox: Any, graph: httpx.Client) -> None:
    site = f"/sites/{sandbox.info['graph']['site_id']}"
    columns = ["Guest", {"name": "Arrival", "dateTime": {}}, {"name": "Seats", "number": {}}]
    ana = {"Title": "Acme", "Guest": "Ana", "Arrival": "2024-05-02T09:00:00Z", "Seats": 3}
    seed(sandbox, lists=[{"name": "Arrivals", "columns": columns, "items": [{"fields": ana}]}])
    items = f"{site}/lists/Arrivals/items"

    _, link, _ = drain(graph, items + "/delta")
    listed = graph.get(items, params={"expand": "fields"}).json()["value"]
    bare = graph.get(items).json()["value"]
    added = graph.post(items, json={"fields": {"Title": "Globex", "Seats": 2}})
    patched = graph.patch(f"{items}/1/fields", json={"Seats": 4})
    unknown = graph.patch(f"{items}/1/fields", json={"Colour": "red"})
    mistyped = graph.patch(f"{items}/1/fields", json={"Seats": "four"})
    removed = graph.delete(f"{items}/{added.json()['id']}")
    changes, _, _ = drain(graph, link + "&expand=fields")
    created = graph.post(
        f"{site}/lists",
        json={
            "displayName": "Departures",
            "columns": [{"name": "When", "dateTime": {}}],
            "list": {"template": "genericList"},
        },
    )

    assert listed[0]["fields"]["Guest"] == "Ana" and "fields" not in bare[0]
    assert added.status_code == 201 and added.json()["id"] == "2"
    assert patched.json()["Seats"] == 4 and patched.json()["Guest"] == "Ana"
    graph_error(unknown, 400, "invalidRequest")
    graph_error(mistyped, 400, "invalidRequest")
    assert removed.status_code == 204
    by_id = {c["id"]: c for c in changes}
    assert by_id["1"]["fields"]["Seats"] == 4
    assert by_id["2"]["deleted"] == {"state": "deleted"}
    assert created.status_code == 201 and created.json()["displayName"] == "Departures"


# -- mail ---------------------------------------------------------------------------------------


def test_send_mail_is_kept_findable_by_extended_property(sandbox: Any, graph: httpx.Client) -> None:
    mailbox = sandbox.info["graph"]["mailbox"]
    message = {
        "subject": "Kickoff",
        "body": {"contentType": "Text", "content": "Hello Acme"},
        "toRecipients": [{"emailAddress": {"address": "ana@acme.example"}}],
        "ccRecipients": [{"emailAddress": {"address": "bo@acme.example"}}],
        "internetMessageHeaders": [{"name": "x-syncd-key", "value": "abc"}],
        "singleValueExtendedProperties": [{"id": KEY_PROP, "value": "abc"}],
    }
    by_key = f"singleValueExtendedProperties/any(ep: ep/id eq '{KEY_PROP}' and ep/value eq 'abc')"

    sent = graph.post(f"/users/{mailbox}/sendMail", json={"message": message})
    outbox = sandbox.control("GET", "/_sandbox/mail")["mail"]
    found = graph.get(
        f"/users/{mailbox}/mailFolders/SentItems/messages",
        params={
            "$filter": by_key,
            "$expand": f"singleValueExtendedProperties($filter=id eq '{KEY_PROP}')",
        },
    ).json()["value"]
    other_key = graph.get(
        f"/users/{mailbox}/messages", params={"$filter": by_key.replace("'abc'", "'xyz'")}
    ).json()["value"]
    copy = graph.get(
        f"/users/{mailbox}/messages/{found[0]['id']}",
        params={"$select": "subject,internetMessageHeaders"},
    ).json()
    by_header = graph.get(
        f"/users/{mailbox}/messages",
        params={"$filter": "internetMessageHeaders/any(h: h/name eq 'x-syncd-key')"},
    )

    assert sent.status_code == 202 and sent.content == b""
    assert outbox == [
        {
            "sent_at": outbox[0]["sent_at"],
            "from": mailbox,
            "to": ["ana@acme.example"],
            "cc": ["bo@acme.example"],
            "subject": "Kickoff",
            "body": "Hello Acme",
            "headers": {"x-syncd-key": "abc"},
        }
    ]
    assert [m["subject"] for m in found] == ["Kickoff"]
    assert found[0]["singleValueExtendedProperties"] == [{"id": KEY_PROP, "value": "abc"}]
    assert other_key == []
    assert copy == {"subject": "Kickoff"}  # Sent Items copies carry no internet headers
    graph_error(by_header, 400, "ErrorInvalidUrlQueryFilter")


def test_send_mail_rejects_bad_headers_and_missing_recipients(
    sandbox: Any, graph: httpx.Client
) -> None:
    url = f"/users/{sandbox.info['graph']['mailbox']}/sendMail"
    to = [{"emailAddress": {"address": "ana@acme.example"}}]
    bad_header = {
        "toRecipients": to,
        "internetMessageHeaders": [{"name": "Syncd-Key", "value": "1"}],
    }

    graph_error(graph.post(url, json={"message": bad_header}), 400, "InvalidInternetMessageHeader")
    graph_error(graph.post(url, json={"message": {"subject": "x"}}), 400, "ErrorInvalidRecipients")
    graph_error(
        graph.post("/users/nobody@contoso.example/sendMail", json={"message": {}}),
        404,
        "Request_ResourceNotFound",
    )
    assert sandbox.control("GET", "/_sandbox/mail")["mail"] == []


def test_sent_items_copy_appears_after_configured_delay(sandbox: Any, graph: httpx.Client) -> None:
    mailbox = sandbox.info["graph"]["mailbox"]
    sandbox.control("POST", "/_sandbox/clock", {"now": "2024-05-01T09:00:00+00:00"})
    seed(sandbox, settings={"sent_items_delay_s": 30})
    message = {"subject": "Late", "toRecipients": [{"emailAddress": {"address": "a@b.example"}}]}
    graph.post(f"/users/{mailbox}/sendMail", json={"message": message})

    early = graph.get(f"/users/{mailbox}/messages").json()["value"]
    sandbox.control("POST", "/_sandbox/clock", {"advance": 30})
    later = graph.get(f"/users/{mailbox}/messages", params={"$search": '"subject:late"'})

    assert early == []
    assert [m["subject"] for m in later.json()["value"]] == ["Late"]


# -- $batch, throttling, faults, bad input ------------------------------------------------------


def test_batch_runs_dependencies_and_reports_each_status(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    json_headers = {"Content-Type": "application/json"}
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{sandbox.info['graph']['mailbox']}"},
        {"id": "2", "method": "GET", "url": f"{drive}/root:/Missing"},
        {
            "id": "3",
            "method": "POST",
            "url": f"{drive}/root/children",
            "dependsOn": ["2"],
            "headers": json_headers,
            "body": {"name": "Never", "folder": {}},
        },
        {
            "id": "4",
            "method": "POST",
            "url": f"{drive}/root/children",
            "dependsOn": ["1"],
            "headers": json_headers,
            "body": {"name": "Made", "folder": {}},
        },
    ]

    resp = graph.post("/$batch", json={"requests": requests})
    answers = {r["id"]: r for r in resp.json()["responses"]}

    assert resp.status_code == 200
    assert [r["id"] for r in resp.json()["responses"]] != ["1", "2", "3", "4"]
    assert {k: a["status"] for k, a in answers.items()} == {"1": 200, "2": 404, "3": 424, "4": 201}
    assert answers["2"]["body"]["error"]["code"] == "itemNotFound"
    assert graph.get(drive + "/root:/Made").status_code == 200
    assert graph.get(drive + "/root:/Never").status_code == 404


@pytest.mark.parametrize(
    "requests",
    [
        [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)],
        [{"id": "1", "method": "GET", "url": "/users"}] * 2,
        [{"id": "1", "method": "POST", "url": "/users", "body": {}}],
        [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}],
        [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}],
    ],
    ids=["over-20", "duplicate-id", "body-without-headers", "absolute-url", "unknown-dependency"],
)
def test_malformed_batch_fails_as_a_whole(graph: httpx.Client, requests: list[Any]) -> None:
    graph_error(graph.post("/$batch", json={"requests": requests}), 400, "BadRequest")


def test_budget_exhaustion_answers_429_with_retry_after(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    seed(sandbox, settings={"rate_limit_per_minute": 5})

    statuses = [graph.get(drive).status_code for _ in range(5)]
    throttled = graph.get(drive)
    in_batch = graph.post(
        "/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/users"}]}
    )

    assert statuses == [200] * 5
    graph_error(throttled, 429, "activityLimitReached")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    inner = in_batch.json()["responses"][0]
    assert inner["status"] == 429 and int(inner["headers"]["Retry-After"]) >= 1


def test_injected_fault_uses_graph_error_shape(sandbox: Any, graph: httpx.Client) -> None:
    fault = {"vendor": "graph", "kind": "status", "status": 503, "retry_after": 7, "times": 1}
    sandbox.control("POST", "/_sandbox/faults", {"faults": [fault]})

    failed = graph.get("/users")
    recovered = graph.get("/users")

    graph_error(failed, 503, "serviceNotAvailable")
    assert failed.headers["Retry-After"] == "7"
    assert recovered.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        (
            "POST",
            "/root/children",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "invalidRequest",
        ),
        ("GET", "/items/01NOTANITEMID", {}, 404, "itemNotFound"),
        ("PUT", "/root/children", {"json": {}}, 405, "invalidRequest"),
        ("GET", "/root/nonsense", {}, 400, "BadRequest"),
        ("GET", "/root/children?$top=lots", {}, 400, "invalidRequest"),
        ("POST", "/root/children", {"json": {"name": "a:b", "folder": {}}}, 400, "invalidRequest"),
        (
            "POST",
            "/root/children",
            {"json": {"name": "A", "folder": {}, "@microsoft.graph.conflictBehavior": "overwrite"}},
            400,
            "invalidRequest",
        ),
        ("POST", "/root/children", {"json": {"name": "A"}}, 400, "invalidRequest"),
    ],
    ids=[
        "invalid-json",
        "unknown-id",
        "wrong-method",
        "unknown-segment",
        "bad-top",
        "illegal-name",
        "bad-behavior",
        "no-facet",
    ],
)
def test_bad_input_gets_graph_errors(
    graph: httpx.Client,
    drive: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    graph_error(graph.request(method, drive + path, **kwargs), status, code)


def test_unknown_drive_and_app_only_me_are_rejected(graph: httpx.Client) -> None:
    graph_error(graph.get("/drives/b!unknown/root"), 404, "itemNotFound")
    graph_error(graph.get("/me/drive"), 400, "BadRequest")


def test_parent_reference_path_is_percent_encoded_as_graph_does(
    sandbox: Any, graph: httpx.Client, drive: str
) -> None:
    """Graph answers `/drive/root:/tmp/Festa%20della%20mamma%202024` (msgraph-sdk-java#2027):
    an API path, percent-encoded, that clients must decode to compare with a folder name."""
    seed(sandbox, files=[{"path": "Clients/Acme Corp/Zürich/notes.txt", "content": "x"}])
    item = graph.get(f"{drive}/root:/Clients/Acme Corp/Zürich/notes.txt").json()
    assert item["parentReference"]["path"] == (
        f"{drive}/root:/Clients/Acme%20Corp/Z%C3%BCrich")


def test_tokens_carry_the_seeded_roles_and_a_missing_role_is_refused(sandbox: Any) -> None:
    """A tenant where the admin did not grant Mail.Read: the token's `roles` claim says so, and
    reading Sent Items answers Exchange's 403 ErrorAccessDenied (sendMail still works)."""
    import jwt

    seed(sandbox, app_roles=["Sites.ReadWrite.All", "Mail.Send"])
    token = msal_app(sandbox).acquire_token_for_client(GRAPH_SCOPE)["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["roles"] == ["Sites.ReadWrite.All", "Mail.Send"]
    mailbox = sandbox.info["graph"]["mailbox"]
    with client(sandbox, token) as http:
        sent = http.post(f"/users/{mailbox}/sendMail", json={"message": {
            "subject": "s", "body": {"contentType": "Text", "content": "b"},
            "toRecipients": [{"emailAddress": {"address": "a@example.com"}}]}})
        assert sent.status_code == 202
        denied = http.get(f"/users/{mailbox}/mailFolders/SentItems/messages")
        error = graph_error(denied, 403, "ErrorAccessDenied")
        assert error["message"] == "Access is denied. Check credentials and try again."
        graph_error(http.get("/users"), 403, "Authorization_RequestDenied")
        assert http.get(f"/drives/{sandbox.info['graph']['drive_id']}/root").status_code == 200


def test_sandbox_mail_log_keeps_sub_second_instants_graph_keeps_whole_seconds(
    sandbox: Any, graph: httpx.Client
) -> None:
    """Benchmarks measure latency from `/_sandbox/mail`'s `sent_at`; Graph's wire format
    (sentDateTime) stays whole seconds."""
    mailbox = sandbox.info["graph"]["mailbox"]
    sandbox.control("POST", "/_sandbox/clock", {"now": "2026-03-02T10:00:00.250000+00:00"})
    message = {"subject": "Tick", "body": {"contentType": "Text", "content": "x"},
               "toRecipients": [{"emailAddress": {"address": "ana@acme.example"}}]}
    assert graph.post(f"/users/{mailbox}/sendMail", json={"message": message}).status_code == 202
    [logged] = sandbox.control("GET", "/_sandbox/mail")["mail"]
    assert logged["sent_at"] == "2026-03-02T10:00:00.250000Z"
    [kept] = graph.get(f"/users/{mailbox}/mailFolders/SentItems/messages").json()["value"]
    assert kept["sentDateTime"] == "2026-03-02T10:00:00Z"
