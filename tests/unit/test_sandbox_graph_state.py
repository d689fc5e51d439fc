"""Graph emulator state: seeding rules and `--state` persistence, without sockets."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from syncd.sandbox.core import Request, Response, SandboxClock, SandboxContext
from syncd.sandbox.graph import GraphVendor
from syncd.sandbox.identity import IdentityVendor

BASE = "https://127.0.0.1:8443"
CREDENTIALS = {
    "graph": {
        "authority": f"{BASE}/7f3c2a9e-0000-4000-8000-000000000001",
        "tenant_id": "7f3c2a9e-0000-4000-8000-000000000001",
        "client_id": "c1d2e3f4-0000-4000-8000-000000000002",
        "client_secret": "s3cret-value",
        "base_url": f"{BASE}/v1.0",
        "site_id": "contoso.sharepoint.com,11111111-1111-4111-8111-111111111111,"
        "22222222-2222-4222-8222-222222222222",
        "drive_id": "b!drive-under-test",
        "mailbox": "syncd@contoso.example",
    }
}
DRIVE = f"/v1.0/drives/{CREDENTIALS['graph']['drive_id']}"
MAILBOX = CREDENTIALS["graph"]["mailbox"]


class Emulator:
    """A Graph vendor and its identity platform, called the way the server calls them."""

    def __init__(self) -> None:
        self.ctx = SandboxContext(clock=SandboxClock(), credentials=CREDENTIALS, base_url=BASE)
        self.identity = IdentityVendor(self.ctx)
        self.graph = GraphVendor(self.ctx, self.identity)
        self.token = self.identity.tokens.issue(
            CREDENTIALS["graph"]["client_id"], CREDENTIALS["graph"]["tenant_id"]
        )

    def call(self, method: str, url: str, body: Any = None) -> Response:
        parts = urlsplit(url)
        headers = http.client.HTTPMessage()
        headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else b""
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = Request(
            method=method,
            path=parts.path,
            raw_path=url,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=data,
            base_url=BASE,
        )
        return self.graph.handle(req)


def body(resp: Response) -> Any:
    return json.loads(resp.body)


def test_snapshot_restores_bytes_lists_mail_and_live_delta_links() -> None:
    before = Emulator()
    payload = bytes(range(256))
    before.graph.seed(
        {
            "users": [{"userPrincipalName": "ana@contoso.example", "displayName": "Ana"}],
            "files": [
                {"path": "Bin/blob.dat", "content_base64": base64.b64encode(payload).decode()}
            ],
            "lists": [
                {"name": "Arrivals", "columns": ["Guest"], "items": [{"fields": {"Guest": "Bo"}}]}
            ],
        }
    )
    message = {"subject": "Hi", "toRecipients": [{"emailAddress": {"address": "a@b.example"}}]}
    assert (
        before.call("POST", f"/v1.0/users/{MAILBOX}/sendMail", {"message": message}).status == 202
    )
    delta_link = body(before.call("GET", f"{DRIVE}/root/delta"))["@odata.deltaLink"]

    state = json.loads(json.dumps(before.graph.snapshot()))
    after = Emulator()
    after.graph.restore(state)

    assert before.token not in json.dumps(state)
    assert CREDENTIALS["graph"]["client_secret"] not in json.dumps(state)
    item = body(after.call("GET", f"{DRIVE}/root:/Bin/blob.dat"))
    assert item["size"] == 256
    assert after.graph.drives[CREDENTIALS["graph"]["drive_id"]].items[item["id"]].content == payload
    assert after.graph.mail() == before.graph.mail()
    site = f"/v1.0/sites/{CREDENTIALS['graph']['site_id']}"
    fields = body(after.call("GET", f"{site}/lists/Arrivals/items?expand=fields"))["value"][0]
    assert fields["fields"]["Guest"] == "Bo"
    assert body(after.call("GET", "/v1.0/users/ana@contoso.example"))["displayName"] == "Ana"
    resumed = after.call("GET", delta_link.removeprefix(BASE))
    assert resumed.status == 200 and body(resumed)["value"] == []


def test_tokens_do_not_survive_a_restart() -> None:
    before = Emulator()
    after = Emulator()
    after.graph.restore(json.loads(json.dumps(before.graph.snapshot())))
    after.token = before.token

    assert after.call("GET", "/v1.0/users").status == 401


def test_reset_forgets_data_and_invalidates_delta_links() -> None:
    emulator = Emulator()
    emulator.graph.seed({"folders": ["Clients/Acme"]})
    delta_link = body(emulator.call("GET", f"{DRIVE}/root/delta"))["@odata.deltaLink"]

    emulator.graph.reset()

    assert emulator.call("GET", f"{DRIVE}/root:/Clients").status == 404
    assert emulator.call("GET", delta_link.removeprefix(BASE)).status == 410
    assert body(emulator.call("GET", f"/v1.0/users/{MAILBOX}"))["mail"] == MAILBOX


@pytest.mark.parametrize(
    "section",
    [
        {"settings": {"rate_limit_per_minute": "many"}},
        {"settings": {"no_such_setting": 1}},
        {"files": [{"content": "no path"}]},
        {"files": [{"path": "bad:name.txt", "content": ""}]},
        {"lists": [{"columns": ["Nameless list"]}]},
        {"lists": [{"name": "Arrivals", "columns": ["Guest"], "items": [{"fields": {"Nope": 1}}]}]},
        {"users": [{"mail": "no-upn@contoso.example"}]},
    ],
)
def test_bad_seed_sections_are_value_errors(section: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Emulator().graph.seed(section)


def test_deferred_upload_commits_only_when_asked() -> None:
    emulator = Emulator()
    session = body(
        emulator.call(
            "POST", f"{DRIVE}/root:/notes.txt:/createUploadSession", {"deferCommit": True}
        )
    )
    url = urlsplit(session["uploadUrl"])

    def upload_url(method: str, data: bytes = b"", content_range: str = "") -> Response:
        headers = http.client.HTTPMessage()
        if content_range:
            headers["Content-Range"] = content_range
        query = parse_qs(url.query)
        return emulator.graph.handle(
            Request(method, url.path, url.path, query, headers, data, BASE)
        )

    uploaded = upload_url("PUT", b"hello", "bytes 0-4/5")
    before_commit = emulator.call("GET", f"{DRIVE}/root:/notes.txt")
    committed = upload_url("POST")

    assert uploaded.status == 202 and body(uploaded)["nextExpectedRanges"] == []
    assert before_commit.status == 404
    assert committed.status == 201 and body(committed)["size"] == 5
