"""Every fault kind, seen through the unmodified vendor clients against the real emulators.

The server's own fault tests use a stand-in emulator; these prove that what a client sees is
the vendor's own failure (status, body shape, Retry-After) and that apply-then-fail kinds
really applied the write.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import msal
import msal.exceptions
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError
from zenpy import Zenpy
from zenpy.lib.exception import APIException

from syncd.connectors.tls import PinnedSession, httpx_verify
from syncd.sandbox.server import SandboxServer

CLOCK = "2026-03-02T09:00:00+00:00"


def faults(sandbox: SandboxServer, *specs: dict[str, Any]) -> None:
    sandbox.control("POST", "/_sandbox/faults", {"faults": list(specs)})


def statuses(sandbox: SandboxServer, vendor: str) -> list[int | None]:
    log = sandbox.control("GET", "/_sandbox/requests")["requests"]
    return [r["status"] for r in log if r["vendor"] == vendor]


@pytest.fixture
def zd(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Zenpy:
    sandbox.control("POST", "/_sandbox/seed", {"clock": CLOCK, "zendesk": {
        "users": [{"name": "Carl", "email": "carl@acme.example"}],
        "tickets": [{"subject": "Printer on fire", "requester": "carl@acme.example"}]}})
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "https")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", sandbox.netloc)
    creds = sandbox.info["zendesk"]
    return Zenpy(subdomain=creds["subdomain"], email=creds["email"], token=creds["token"],
                 session=PinnedSession(verify=sandbox.ca_bundle), disable_cache=True)


@pytest.fixture
def sf(sandbox: SandboxServer) -> Salesforce:
    sandbox.control("POST", "/_sandbox/seed", {"clock": CLOCK, "salesforce": {
        "accounts": [{"Name": "Acme"}]}})
    info = sandbox.info["salesforce"]
    token = PinnedSession(verify=sandbox.ca_bundle).post(info["token_url"], data={
        "grant_type": "client_credentials", "client_id": info["client_id"],
        "client_secret": info["client_secret"]}, timeout=10).json()
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"],
                      session=PinnedSession(verify=sandbox.ca_bundle))


def graph_token(sandbox: SandboxServer) -> dict[str, Any]:
    g = sandbox.info["graph"]
    app = msal.ConfidentialClientApplication(
        g["client_id"], client_credential=g["client_secret"], authority=g["authority"],
        instance_discovery=False, http_client=PinnedSession(verify=sandbox.ca_bundle))
    return app.acquire_token_for_client(["https://graph.microsoft.com/.default"])


def graph(sandbox: SandboxServer) -> httpx.Client:
    token = graph_token(sandbox)["access_token"]
    return httpx.Client(base_url=sandbox.info["graph"]["base_url"], timeout=10,
                        verify=httpx_verify(sandbox.ca_bundle),
                        headers={"Authorization": f"Bearer {token}"})


def test_zenpy_retries_a_429_after_its_integer_retry_after(
    sandbox: SandboxServer, zd: Zenpy
) -> None:
    faults(sandbox, {"vendor": "zendesk", "path": r"/tickets/1\.json", "kind": "status",
                     "status": 429, "retry_after": 1, "times": 1})
    started = time.monotonic()
    assert zd.tickets(id=1).subject == "Printer on fire"
    assert time.monotonic() - started >= 1.0
    assert statuses(sandbox, "zendesk") == [429, 200]


def test_zendesk_apply_then_status_leaves_the_write_applied(
    sandbox: SandboxServer, zd: Zenpy
) -> None:
    faults(sandbox, {"vendor": "zendesk", "method": "PUT", "path": "tags", "kind":
                     "apply_then_status", "status": 500, "times": 1})
    with pytest.raises(APIException):
        zd.tickets.add_tags(1, ["escalated"])
    assert "escalated" in zd.tickets(id=1).tags


def test_zendesk_apply_then_drop_leaves_the_write_applied(
    sandbox: SandboxServer, zd: Zenpy
) -> None:
    faults(sandbox, {"vendor": "zendesk", "method": "PUT", "path": "tags", "kind":
                     "apply_then_drop", "times": 1})
    with pytest.raises(requests.ConnectionError):
        zd.tickets.add_tags(1, ["dropped-but-done"])
    assert "dropped-but-done" in zd.tickets(id=1).tags


def test_salesforce_503_in_its_own_error_shape(sandbox: SandboxServer, sf: Salesforce) -> None:
    faults(sandbox, {"vendor": "salesforce", "path": "/query", "kind": "status", "status": 503,
                     "retry_after": 2, "times": 1})
    with pytest.raises(SalesforceGeneralError) as err:
        sf.query("SELECT Id FROM Account")
    assert err.value.status == 503
    assert isinstance(err.value.content, list) and err.value.content[0]["errorCode"]
    assert sf.query("SELECT Name FROM Account")["records"][0]["Name"] == "Acme"


def test_salesforce_drop_applies_nothing_but_apply_then_drop_does(
    sandbox: SandboxServer, sf: Salesforce
) -> None:
    faults(sandbox,
           {"vendor": "salesforce", "method": "POST", "path": "sobjects/Account", "kind": "drop",
            "times": 1},
           {"vendor": "salesforce", "method": "POST", "path": "sobjects/Account",
            "kind": "apply_then_drop", "times": 1})
    for name in ("Lost", "Landed"):
        with pytest.raises(requests.ConnectionError):
            sf.Account.create({"Name": name})
    names = {r["Name"] for r in sf.query("SELECT Name FROM Account")["records"]}
    assert names == {"Acme", "Landed"}


def test_salesforce_delay_answers_late_but_answers(sandbox: SandboxServer, sf: Salesforce) -> None:
    faults(sandbox, {"vendor": "salesforce", "path": "/query", "kind": "delay", "delay_s": 0.5,
                     "times": 1})
    started = time.monotonic()
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 1
    assert time.monotonic() - started >= 0.5


def test_identity_503_reaches_msal_which_waits_retry_after_before_asking_again(
    sandbox: SandboxServer,
) -> None:
    faults(sandbox, {"vendor": "auth", "path": "token", "kind": "status", "status": 503,
                     "retry_after": 1, "times": 1})
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):
        graph_token(sandbox)
    time.sleep(1.1)  # msal replays the failure from its cache until Retry-After has passed
    assert "access_token" in graph_token(sandbox)


def test_graph_throttling_and_apply_then_status_on_send_mail(sandbox: SandboxServer) -> None:
    mailbox = sandbox.info["graph"]["mailbox"]
    message = {"message": {"subject": "Case 1 waiting", "body": {"contentType": "Text",
               "content": "No action for 1 h"},
               "toRecipients": [{"emailAddress": {"address": "team@support.example"}}]}}
    faults(sandbox,
           {"vendor": "graph", "path": "sendMail", "kind": "status", "status": 429,
            "retry_after": 3, "times": 1},
           {"vendor": "graph", "path": "sendMail", "kind": "apply_then_status", "status": 504,
            "times": 1})
    with graph(sandbox) as g:
        throttled = g.post(f"/users/{mailbox}/sendMail", json=message)
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
        assert throttled.json()["error"]["code"]
        timed_out = g.post(f"/users/{mailbox}/sendMail", json=message)
        assert timed_out.status_code == 504
    mail = sandbox.control("GET", "/_sandbox/mail")["mail"]
    assert [m["subject"] for m in mail] == ["Case 1 waiting"]  # the 504 one went out
