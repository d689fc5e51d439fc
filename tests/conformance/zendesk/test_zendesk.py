"""Zendesk conformance: real recorded answers (zenpy's cassettes, SOURCE.md) are fed to syncd's
connector through zenpy, and the sandbox's answers for every endpoint syncd calls must have the
recorded shape: the keys a real answer carries, of the recorded JSON types, and no others."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
from requests.adapters import BaseAdapter

from syncd.clock import FrozenClock
from syncd.connectors.base import poll
from syncd.connectors.tls import PinnedSession
from syncd.connectors.zendesk import SIDELOADS, ZendeskConnector
from syncd.model import Operation
from syncd.sandbox.server import SandboxServer
from syncd.settings import ZendeskSection

RECORDED: dict[str, Any] = json.loads((Path(__file__).parent / "recorded.json").read_text())[
    "interactions"]
HOST = urlsplit(RECORDED["export"]["body"]["after_url"]).hostname or ""


def _route(path: str) -> str:
    return re.sub(r"/(\d+|V3-\w+)(?=[./])", "/{id}", path)


class Replay(BaseAdapter):
    """Answers zenpy's requests with the recorded answers, by method and path. A recording
    holds one page: a request for a later page (`page[after]`) gets an empty last page."""

    def __init__(self, answers: Mapping[str, dict[str, Any]]) -> None:
        super().__init__()
        self.answers: dict[tuple[str, str], dict[str, Any]] = {}
        for answer in answers.values():  # the first recording of a route answers it
            self.answers.setdefault((answer["method"], _route(answer["path"])), answer)
        self.seen: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(str(request.url))
        self.seen.append(f"{request.method} {url.path}")
        answer = self.answers[(str(request.method), _route(url.path))]
        body = answer["body"]
        if "page[after]" in parse_qs(url.query):
            listed = next(k for k, v in body.items() if isinstance(v, list))
            body = {listed: [], "meta": {**body["meta"], "has_more": False}, "links": {}}
        response = requests.Response()
        response.status_code = answer["status"]
        response.headers.update({"Content-Type": "application/json; charset=utf-8"})
        response._content = json.dumps(body).encode()
        response.url, response.request = str(request.url), request
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def replayed() -> tuple[ZendeskConnector, Replay]:
    settings = ZendeskSection(subdomain=HOST.split(".")[0], email="redacted@example.com",
                              token="t")
    connector = ZendeskConnector(settings, FrozenClock(datetime(2026, 3, 2, tzinfo=UTC)))
    replay = Replay(RECORDED)
    connector.client.tickets.session.mount("https://", replay)
    return connector, replay


# -- (a) real answers through syncd's parsing ------------------------------------------------
def test_a_recorded_export_becomes_records(replayed: tuple[ZendeskConnector, Replay]) -> None:
    connector, replay = replayed
    records, cursor = poll(connector, None)
    tickets = RECORDED["export"]["body"]["tickets"]
    assert cursor == RECORDED["export"]["body"]["after_cursor"]
    assert [r.ref.id for r in records] == [str(t["id"]) for t in tickets]
    for record, ticket in zip(records, tickets, strict=True):
        for name in ("status", "subject", "priority", "requester_id", "created_at",
                     "updated_at", "organization_id"):
            assert record.fields[name] == ticket[name], name
        assert record.fields["tags"] == ticket["tags"]
        assert record.fields["via_channel"] == ticket["via"]["channel"]
        assert record.deleted is (ticket["status"] == "deleted")
    assert "GET /api/v2/incremental/tickets/cursor.json" in replay.seen


def test_a_whole_recorded_export_page_maps_as_zenpys_tickets_read(
    replayed: tuple[ZendeskConnector, Replay],
) -> None:
    """The export is parsed from its JSON, never through zenpy's objects: every ticket of a
    real page (87: new, open, pending and deleted; from the web, the API, a sample ticket; with
    and without an assignee and a group) becomes the same Record as zenpy's own Ticket objects
    of that page give."""
    connector, _ = replayed
    page = RECORDED["export_whole"]
    connector.client.tickets.session.mount("https://", Replay({"whole": page, **RECORDED}))
    records, cursor = poll(connector, None)
    zenpys = connector.client.tickets.incremental(start_time=0, include=SIDELOADS)
    assert records == connector._records([ticket.to_dict() for ticket in zenpys])
    assert cursor == page["body"]["after_cursor"]
    assert len(records) == len(page["body"]["tickets"]) == 87
    assert {r.fields["status"] for r in records} == {"new", "open", "pending", "deleted"}
    assert sum(r.deleted for r in records) == 1


def test_a_recorded_directory_and_show(replayed: tuple[ZendeskConnector, Replay]) -> None:
    connector, _ = replayed
    directory = connector.directory()
    users = RECORDED["users"]["body"]["users"]
    assert set(directory.users) == {str(u["id"]) for u in users}
    assert {g.name for g in directory.groups.values()} == {
        g["name"] for g in RECORDED["groups"]["body"]["groups"]}
    ticket = RECORDED["ticket_show"]["body"]["ticket"]
    op = Operation("k", "zendesk", "add_tags", str(ticket["id"]), {"tags": ticket["tags"]})
    assert connector.verify(op).ok  # the recorded ticket has its own tags


def test_a_recorded_404_is_an_absence(replayed: tuple[ZendeskConnector, Replay]) -> None:
    connector, _ = replayed
    replay = Replay({"gone": {**RECORDED["ticket_not_found"], "method": "GET"}})
    connector.client.tickets.session.mount("https://", replay)
    outcome = connector.verify(Operation("k", "zendesk", "add_tags", "1", {"tags": ["x"]}))
    assert not outcome.ok and not outcome.retryable and outcome.error == "ticket not found"


def test_a_recorded_update_answer_is_the_ticket_as_saved(
    replayed: tuple[ZendeskConnector, Replay],
) -> None:
    # a real single-ticket update answers {"ticket", "audit"}: the executor stores that ticket
    # instead of reading it back
    connector, _ = replayed
    replay = Replay({k: v for k, v in RECORDED.items() if k != "ticket_not_found"})
    connector.client.tickets.session.mount("https://", replay)
    ticket = RECORDED["ticket_update"]["body"]["ticket"]
    outcome = connector.execute(
        Operation("k", "zendesk", "update", str(ticket["id"]), {"status": ticket["status"]}))
    assert outcome.ok and outcome.record is not None, outcome
    fields = outcome.record.fields
    assert (outcome.record.ref.id, fields["status"], fields["tags"], fields["updated_at"]) == (
        str(ticket["id"]), ticket["status"], ticket["tags"], ticket["updated_at"])
    assert not [r for r in replay.seen if r.startswith("GET /api/v2/tickets")]


def test_a_recorded_webhook_list(replayed: tuple[ZendeskConnector, Replay]) -> None:
    connector, replay = replayed
    listed = connector.webhooks()
    recorded = RECORDED["webhooks"]["body"]["webhooks"]
    assert [(w.endpoint, w.active, w.name) for w in listed] == [
        (w["endpoint"], w["status"] == "active", w["name"]) for w in recorded]
    assert "GET /api/v2/webhooks" in replay.seen


# -- (b) the sandbox answers as the recordings show ------------------------------------------
def shape_schema(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a recorded object: every recorded key required, no other key, each
    of its recorded JSON type (or null: a recorded null constrains nothing)."""
    types = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
             dict: "object"}
    return {
        "type": "object",
        "required": sorted(sample),
        "additionalProperties": False,
        "properties": {k: {} if v is None else {"type": [types[type(v)], "null"]}
                       for k, v in sample.items()},
    }


def _first(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body[key]
    return value[0] if isinstance(value, list) else value


# (recorded answer, sandbox request, the key holding the object(s)); the requests are those
# syncd makes through zenpy (cursor pagination on lists, show_many by ids)
ENDPOINTS = [
    ("export", "GET", "/incremental/tickets/cursor.json?start_time=0", "tickets"),
    ("ticket_show", "GET", "/tickets/1.json", "ticket"),
    ("tickets_show_many", "GET", "/tickets/show_many.json?ids=1", "tickets"),
    ("ticket_update", "PUT", "/tickets/1.json", "ticket"),
    ("ticket_create", "POST", "/tickets.json", "ticket"),
    ("users_me", "GET", "/users/me.json", "user"),
    ("users", "GET", "/users.json?page[size]=100", "users"),
    ("users_show_many", "GET", "/users/show_many.json?ids={user}", "users"),
    ("groups", "GET", "/groups.json?page[size]=100", "groups"),
    ("group_memberships", "GET", "/group_memberships.json?page[size]=100", "group_memberships"),
    ("organizations_show_many", "GET", "/organizations/show_many.json?ids={org}",
     "organizations"),
    ("ticket_audits", "GET", "/ticket_audits.json?page[size]=100", "audits"),
    ("tickets_update_many", "PUT", "/tickets/update_many.json", "job_status"),
    ("upload", "POST", "/uploads.json?filename=notes.txt", "upload"),
    ("ticket_not_found", "PUT", "/tickets/999999.json", None),
]
BODIES = {
    "ticket_update": {"ticket": {"status": "open"}},
    "ticket_create": {"ticket": {"subject": "Hi", "comment": {"body": "Help"}}},
    "tickets_update_many": {"tickets": [{"id": 1, "priority": "high"}]},
    "ticket_not_found": {"ticket": {"status": "open"}},
}


@pytest.fixture
def seeded(sandbox: SandboxServer) -> tuple[PinnedSession, str, dict[str, int]]:
    sandbox.control("POST", "/_sandbox/seed", {"clock": "2026-03-02T08:00:00Z", "zendesk": {
        "organizations": [{"name": "Acme"}],
        "users": [{"name": "Ann", "email": "ann@example.com", "role": "agent",
                   "organization": "Acme"}],
        "groups": [{"name": "Support", "members": ["ann@example.com"]}],
        "ticket_fields": [{"title": "Kind", "type": "text"}],
        "tickets": [{"subject": "Printer", "requester": "ann@example.com", "group": "Support",
                     "custom_fields": {"Kind": "x"}}]}})
    sandbox.control("POST", "/_sandbox/clock", {"advance": 120})
    zd = sandbox.info["zendesk"]
    http = PinnedSession(verify=sandbox.ca_bundle)
    http.auth = (f"{zd['email']}/token", zd["token"])
    api = f"{sandbox.url}/api/v2"
    user = http.get(f"{api}/users/search.json", params={"query": "ann@example.com"}, timeout=30)
    ann = user.json()["users"][0]
    return http, api, {"user": ann["id"], "org": ann["organization_id"]}


@pytest.mark.parametrize("name,method,path,key", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_sandbox_answers_have_the_recorded_shape(
    seeded: tuple[PinnedSession, str, dict[str, int]], name: str, method: str, path: str,
    key: str | None,
) -> None:
    http, api, ids = seeded
    recorded = RECORDED[name]
    headers = {"Content-Type": "application/octet-stream"} if name == "upload" else {}
    data = b"hello" if name == "upload" else None
    resp = http.request(method, api + path.format(**ids), json=BODIES.get(name), data=data,
                        headers=headers, timeout=30)
    assert resp.status_code == recorded["status"], resp.text
    body = resp.json()
    jsonschema.validate(body, shape_schema(recorded["body"]))
    if key is not None:
        jsonschema.validate(_first(body, key), shape_schema(_first(recorded["body"], key)))
    real_limits = {h for h in recorded["headers"] if "rate" in h}
    assert {h.lower() for h in resp.headers if "rate" in h.lower()} <= real_limits | {
        "rate-limit", "rate-limit-remaining", "rate-limit-reset", "x-rate-limit",
        "x-rate-limit-remaining", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}


# Endpoints syncd calls whose own answer was not recorded, but whose objects were: the
# objects must have the recorded shape (recorded answer, its key, sandbox request, its key).
OBJECTS = [
    ("ticket_audits", "audits", "/tickets/1/audits.json", "audits"),
    ("ticket_show", "ticket", "/tickets.json?external_id=ext-1", "tickets"),
    ("ticket_field_create", "ticket_field", "/ticket_fields.json", "ticket_fields"),
]


@pytest.mark.parametrize("name,key,path,listed", OBJECTS, ids=[o[2] for o in OBJECTS])
def test_sandbox_objects_have_the_recorded_shape(
    sandbox: SandboxServer, seeded: tuple[PinnedSession, str, dict[str, int]], name: str,
    key: str, path: str, listed: str,
) -> None:
    http, api, _ = seeded
    created = http.post(f"{api}/tickets.json", timeout=30, json={"ticket": {
        "subject": "External", "comment": {"body": "x"}, "external_id": "ext-1"}})
    assert created.status_code == 201
    resp = http.get(api + path, timeout=30)
    assert resp.status_code == 200, resp.text
    objects = resp.json()[listed]
    if listed == "ticket_fields":  # the recorded one is a custom text field
        objects = [f for f in objects if f["removable"] and f["type"] == "text"]
    assert objects
    for found in objects:
        jsonschema.validate(found, shape_schema(_first(RECORDED[name]["body"], key)))


def test_sandbox_webhooks_are_listed_as_recorded(sandbox: SandboxServer) -> None:
    """Recorded webhooks differ in their optional keys (description, authentication,
    updated_*): the sandbox's carry every key all of them carry, no key none carries, each of
    the recorded type; the list is for admins only."""
    sandbox.control("POST", "/_sandbox/seed", {"zendesk": {
        "users": [{"name": "Ann", "email": "ann@example.com", "role": "agent"}],
        "webhooks": [{"endpoint": "https://127.0.0.1:1/hook", "signing_secret": "s",
                      "status": "inactive", "name": "syncd"}]}})
    zd = sandbox.info["zendesk"]
    http = PinnedSession(verify=sandbox.ca_bundle)
    http.auth = (f"{zd['email']}/token", zd["token"])
    resp = http.get(f"{sandbox.url}/api/v2/webhooks", timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    recorded = RECORDED["webhooks"]["body"]
    assert body.keys() == recorded.keys() and body["meta"] == recorded["meta"]
    (hook,) = body["webhooks"]
    always = set.intersection(*(set(w) for w in recorded["webhooks"]))
    ever = {k: type(v) for w in recorded["webhooks"] for k, v in w.items()}
    assert always <= hook.keys() <= ever.keys()
    assert all(isinstance(v, ever[k]) for k, v in hook.items())
    assert (hook["endpoint"], hook["status"], hook["name"]) == (
        "https://127.0.0.1:1/hook", "inactive", "syncd")
    assert "s" not in hook.values()  # never the signing secret
    sandbox.control("POST", "/_sandbox/seed", {"zendesk": {"users": [
        {"name": "Api", "email": zd["email"], "role": "agent"}]}})
    assert http.get(f"{sandbox.url}/api/v2/webhooks", timeout=30).status_code == 403
