"""The Zendesk emulator called in-process (no sockets): Zendesk's side-effect rules, export
consistency while tickets change mid-paging, persistence, and the shapes of injected faults."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.sandbox.core import Request, Response, SandboxClock, SandboxContext
from syncd.sandbox.zendesk import ZendeskVendor

EMAIL, TOKEN = "syncd@sandbox.example", "s3cret"
ANN, BOB, CARL = 1001, 1002, 1004
RESPONDERS, ENGINEERS = 2001, 2002
FIXTURE: dict[str, Any] = {
    "users": [
        {"id": ANN, "name": "Ann", "email": "ann@support.example", "role": "agent"},
        {"id": BOB, "name": "Bob", "email": "bob@support.example", "role": "agent"},
        {"id": CARL, "name": "Carl", "email": "carl@acme.example"},
    ],
    "groups": [
        {"id": RESPONDERS, "name": "First Responders", "members": ["ann@support.example"]},
        {"id": ENGINEERS, "name": "Engineers", "members": ["bob@support.example"]},
    ],
    "tickets": [{"subject": "Help", "requester": "carl@acme.example"}],
}


class Api:
    """A ZendeskVendor plus just enough of the server to call it like a client would."""

    def __init__(self, fixture: dict[str, Any] | None = None) -> None:
        self.ctx = SandboxContext(clock=SandboxClock(),
                                  credentials={"zendesk": {"email": EMAIL, "token": TOKEN}})
        self.ctx.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        self.vendor = ZendeskVendor(self.ctx)
        self.vendor.seed(fixture if fixture is not None else FIXTURE)

    def send(self, method: str, url: str, body: bytes = b"", auth: str | None = None) -> Response:
        headers = Message()
        basic = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
        headers["Authorization"] = auth or f"Basic {basic}"
        split = urlsplit(url)
        return self.vendor.handle(Request(method, split.path, url, parse_qs(split.query), headers,
                                          body, "https://127.0.0.1:8443"))

    def __call__(self, method: str, url: str, body: Any = None,
                 auth: str | None = None) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        resp = self.send(method, url, raw, auth)
        return resp.status, json.loads(resp.body) if resp.body else None

    def ticket(self, ticket_id: int = 1) -> dict[str, Any]:
        return self("GET", f"/api/v2/tickets/{ticket_id}.json")[1]["ticket"]

    def update(self, changes: dict[str, Any], ticket_id: int = 1) -> tuple[int, Any]:
        return self("PUT", f"/api/v2/tickets/{ticket_id}.json", {"ticket": changes})

    def advance(self, seconds: float) -> None:
        self.ctx.clock.advance(seconds)


@pytest.fixture
def api() -> Api:
    return Api()


def test_an_assignee_brings_their_group_and_opens_a_new_ticket(api: Api) -> None:
    api.update({"assignee_id": ANN})
    ticket = api.ticket()
    assert (ticket["group_id"], ticket["status"]) == (RESPONDERS, "open")


def test_moving_to_a_group_drops_an_assignee_who_is_not_a_member(api: Api) -> None:
    api.update({"assignee_id": ANN})
    api.update({"group_id": ENGINEERS})
    assert (api.ticket()["group_id"], api.ticket()["assignee_id"]) == (ENGINEERS, None)


def test_solving_an_unassigned_ticket_assigns_the_solver(api: Api) -> None:
    api.update({"status": "solved"})
    solver = api("GET", "/api/v2/users/me.json")[1]["user"]["id"]
    assert api.ticket()["assignee_id"] == solver


def test_a_requester_reply_reopens_a_pending_ticket_but_an_agent_note_does_not(api: Api) -> None:
    api.update({"status": "pending"})
    api.update({"comment": {"body": "still waiting", "author_id": ANN, "public": False}})
    assert api.ticket()["status"] == "pending"
    api.update({"comment": {"body": "any news?", "author_id": CARL}})
    assert api.ticket()["status"] == "open"


def test_a_no_op_update_leaves_updated_at_and_the_audit_trail_alone(api: Api) -> None:
    before = api.ticket()
    api.advance(120)
    status, answer = api.update({"status": "new", "subject": "Help"})
    assert status == 200 and answer["audit"]["events"] == []
    assert api.ticket()["updated_at"] == before["updated_at"]
    assert len(api("GET", "/api/v2/tickets/1/audits.json")[1]["audits"]) == 1


def test_comments_take_their_time_from_the_sandbox_clock(api: Api) -> None:
    api.advance(3600)
    api.update({"comment": {"body": "An hour later"}})
    comments = api("GET", "/api/v2/tickets/1/comments.json")[1]["comments"]
    assert [c["created_at"] for c in comments][-1] == "2026-03-02T10:00:00Z"
    assert api.ticket()["updated_at"] == "2026-03-02T10:00:00Z"


def test_export_shows_a_ticket_changed_mid_paging_once_at_its_new_place() -> None:
    api = Api({"tickets": [{"subject": f"t{i}", "updated_at": f"2026-03-01T00:00:0{i}Z"}
                           for i in range(1, 6)]})
    export = "/api/v2/incremental/tickets/cursor.json"
    page = api("GET", f"{export}?start_time=0&per_page=2")[1]
    seen = [t["id"] for t in page["tickets"]]
    api.update({"priority": "high"}, ticket_id=4)  # not read yet: it moves to the end
    api.update({"priority": "high"}, ticket_id=1)  # already read: its new version comes again
    api.advance(61)
    while not page["end_of_stream"]:
        page = api("GET", page["after_url"])[1]
        seen += [t["id"] for t in page["tickets"]]
    assert seen == [1, 2, 3, 5, 1, 4]


def test_prev_links_and_before_cursors_walk_back_to_the_same_rows() -> None:
    api = Api({"tickets": [{"subject": f"t{i}", "updated_at": f"2026-03-01T00:00:{i:02d}Z"}
                           for i in range(1, 26)]})
    first = api("GET", "/api/v2/tickets.json?page[size]=10")[1]
    second = api("GET", first["links"]["next"])[1]
    back = api("GET", second["links"]["prev"])[1]
    assert [t["id"] for t in back["tickets"]] == [t["id"] for t in first["tickets"]]
    assert back["meta"]["has_more"] is False  # nothing before the first page

    export = "/api/v2/incremental/tickets/cursor.json"
    page = api("GET", f"{export}?start_time=0&per_page=10")[1]
    assert page["before_url"] is None  # a start_time page has nothing before it
    page = api("GET", page["after_url"])[1]
    earlier = api("GET", page["before_url"])[1]
    assert [t["id"] for t in earlier["tickets"]] == list(range(1, 11))


def test_export_refuses_a_start_time_inside_the_hidden_last_minute(api: Api) -> None:
    recent = int(api.ctx.clock.now().timestamp()) - 30
    status, body = api("GET", f"/api/v2/incremental/tickets.json?start_time={recent}")
    assert status == 422 and "Too recent start_time" in body["description"]


def test_snapshot_round_trips_everything_including_uploads_and_jobs(api: Api) -> None:
    uploaded = api.send("POST", "/api/v2/uploads.json?filename=a.bin", b"\x00\x01binary")
    upload_token = json.loads(uploaded.body)["upload"]["token"]
    api.update({"comment": {"body": "file", "uploads": [upload_token]}, "tags": ["x"]})
    api("PUT", "/api/v2/tickets/update_many.json?ids=1", {"ticket": {"additional_tags": ["y"]}})
    snapshot = json.loads(json.dumps(api.vendor.snapshot()))
    assert TOKEN not in json.dumps(snapshot)
    restored = Api({})
    restored.vendor.restore(snapshot)
    assert restored.vendor.snapshot() == snapshot
    for url in ("/api/v2/tickets/1.json", "/api/v2/tickets/1/comments.json",
                "/api/v2/tickets/1/audits.json", "/api/v2/users.json"):
        assert restored("GET", url) == api("GET", url)
    attachment = api("GET", "/api/v2/tickets/1/comments.json")[1]["comments"][-1]["attachments"][0]
    content = restored.send("GET", attachment["content_url"], auth="none")
    assert content.body == b"\x00\x01binary"


def test_create_many_and_destroy_many_report_each_item(api: Api) -> None:
    _, created = api("POST", "/api/v2/tickets/create_many.json", {"tickets": [
        {"subject": "ok", "comment": {"body": "x"}}, {"subject": "no body"}]})
    job_url = f"/api/v2/job_statuses/{created['job_status']['id']}.json"
    api("GET", job_url)
    results = api("GET", job_url)[1]["job_status"]["results"]
    assert results[0]["id"] == 2 and (results[1]["index"], results[1]["error"]) == (
        1, "RecordInvalid")
    _, destroyed = api("DELETE", "/api/v2/tickets/destroy_many.json?ids=1,2,99")
    job_url = f"/api/v2/job_statuses/{destroyed['job_status']['id']}.json"
    api("GET", job_url)
    outcomes = [r["success"] for r in api("GET", job_url)[1]["job_status"]["results"]]
    assert outcomes == [True, True, False]
    assert api("GET", "/api/v2/tickets/1.json")[0] == 404


def test_import_path_without_json_suffix_is_served(api: Api) -> None:
    status, body = api("POST", "/api/v2/imports/tickets", {"ticket": {
        "subject": "old", "comments": [{"value": "from 2001", "created_at": "2001-01-01"}]}})
    assert status == 201 and body["ticket"]["created_at"] == "2026-03-02T09:00:00Z"
    comments = api("GET", f"/api/v2/tickets/{body['ticket']['id']}/comments.json")[1]
    assert comments["comments"][0]["created_at"] == "2001-01-01T00:00:00Z"


def test_bearer_tokens_are_accepted_and_other_credentials_are_not(api: Api) -> None:
    assert api("GET", "/api/v2/tickets.json", auth=f"Bearer {TOKEN}")[0] == 200
    assert api("GET", "/api/v2/tickets.json", auth="Bearer nope")[0] == 401
    password = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    assert api("GET", "/api/v2/tickets.json", auth=f"Basic {password}")[0] == 401


@pytest.mark.parametrize(("status", "content_type", "retry_after"), [
    (429, "text/plain", "7"), (503, "text/plain", "7"), (500, "application/json", None),
    (502, "text/html", None), (404, "application/json", None),
])
def test_injected_faults_answer_in_zendesks_shapes(
    api: Api, status: int, content_type: str, retry_after: str | None
) -> None:
    resp = api.vendor.error_response(status, 7)
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith(content_type)
    assert resp.headers.get("Retry-After") == retry_after
    if content_type == "application/json":
        assert "error" in json.loads(resp.body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)
TICKET_KEYS = st.sampled_from([
    "subject", "status", "priority", "type", "tags", "assignee_id", "group_id", "requester_id",
    "requester", "comment", "comments", "custom_fields", "additional_tags", "remove_tags",
    "collaborator_ids", "due_at", "safe_update", "updated_stamp", "created_at", "id",
])
WRITES = st.sampled_from([
    ("PUT", "/api/v2/tickets/1.json", "ticket"), ("POST", "/api/v2/tickets.json", "ticket"),
    ("POST", "/api/v2/imports/tickets.json", "ticket"),
    ("PUT", "/api/v2/tickets/update_many.json", "tickets"),
    ("PUT", "/api/v2/tickets/update_many.json?ids=1,2", "ticket"),
    ("PUT", "/api/v2/tickets/1/tags.json", "tags"),
    ("POST", "/api/v2/tickets/1/satisfaction_rating.json", "satisfaction_rating"),
])


@settings(max_examples=100, deadline=None)
@given(write=WRITES, fields=st.dictionaries(TICKET_KEYS, JSON, max_size=5), wrap=st.booleans())
def test_no_client_input_makes_the_emulator_fail(
    write: tuple[str, str, str], fields: dict[str, Any], wrap: bool
) -> None:
    method, url, root = write
    payload = {root: [fields] if root == "tickets" else fields} if wrap else fields
    status, body = Api()(method, url, payload)
    assert status in (200, 201, 400, 404, 409, 422)
    assert status < 300 or set(body) >= {"error"}
