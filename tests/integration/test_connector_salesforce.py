"""The Salesforce connector against the sandbox, through the real simple-salesforce client."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syncd.clock import SystemClock
from syncd.connectors.base import poll
from syncd.connectors.http import VendorError
from syncd.connectors.salesforce import SalesforceConnector
from syncd.connectors.salesforce import audience as jwt_audience
from syncd.model import Operation, RecordRef
from syncd.sandbox.server import SandboxServer
from syncd.settings import SalesforceSection, TlsSection, load_settings

NOW = "2026-03-02T10:00:00+00:00"
KEY_FIELD = {"name": "Syncd_Key__c", "type": "string", "external_id": True, "unique": True}


def connector(sandbox: SandboxServer, **overrides: Any) -> SalesforceConnector:
    """The sandbox's connector: `overrides` of [salesforce] settings, or of connector
    attributes that are not settings (`page_size`)."""
    sf = sandbox.info["salesforce"]
    settings: dict[str, Any] = {
        "token_url": sf["token_url"],
        "client_id": sf["client_id"],
        "client_secret": sf["client_secret"],
        "lookback_s": 120,
        "objects": ("Account", "Task"),
    }
    tuning = {k: overrides.pop(k) for k in list(overrides)
              if k not in SalesforceSection.model_fields}
    found = SalesforceConnector(SalesforceSection(**{**settings, **overrides}), SystemClock(),
                                TlsSection(ca_bundle=sandbox.ca_bundle))
    for name, value in tuning.items():
        setattr(found, name, value)
    return found


def seed(sandbox: SandboxServer, accounts: int = 0, **extra: Any) -> None:
    rows = [
        # ties: five accounts share each second, across the page boundary
        {
            "Name": f"Acct {n:03d}",
            "SystemModstamp": f"2026-03-02T09:{n // 5 // 60:02d}:{n // 5 % 60:02d}.000+0000",
        }
        for n in range(accounts)
    ]
    sandbox.control(
        "POST",
        "/_sandbox/seed",
        {
            "clock": NOW,
            "salesforce": {
                "settings": {"custom_fields": {"Task": [KEY_FIELD]}, **extra.pop("settings", {})},
                "accounts": rows,
                **extra,
            },
        },
    )


def op(verb: str, key: str = "rule/k1", target: str = "Task", **payload: Any) -> Operation:
    return Operation(key=key, system="salesforce", verb=verb, target=target, payload=payload)


def fault(sandbox: SandboxServer, **spec: Any) -> None:
    sandbox.control("POST", "/_sandbox/faults", {"faults": [{"vendor": "salesforce", **spec}]})


def test_poll_pages_then_resume_without_loss_or_repeat(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=250)
    sf = connector(sandbox, objects=("Account",), page_size=200)
    pages = list(sf.poll_pages(None))
    assert [len(p.records) for p in pages] == [200, 50]
    names = [r.fields["Name"] for p in pages for r in p.records]
    assert names == [f"Acct {n:03d}" for n in range(250)]
    assert pages[0].records[0].ref.kind == "salesforce.account"
    assert "attributes" not in pages[0].records[0].fields

    # resuming after page one repeats nothing, although the look-back re-reads the tie
    rest, cursor = poll(sf, pages[0].cursor)
    assert [r.fields["Name"] for r in rest] == names[200:]
    assert poll(sf, cursor)[0] == []

    # a row committed late with an older stamp (within the look-back) is still found
    sandbox.control(
        "POST",
        "/_sandbox/seed",
        {
            "salesforce": {
                "accounts": [{"Name": "Late", "SystemModstamp": "2026-03-02T09:00:45.000+0000"}]
            }
        },
    )
    late, cursor = poll(sf, cursor)
    assert [r.fields["Name"] for r in late] == ["Late"]
    assert poll(sf, cursor)[0] == []


def test_one_poll_of_three_objects_is_one_api_call(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=3)
    sf = connector(sandbox, objects=("Opportunity", "Account", "Task"))
    records, cursor = poll(sf, None)  # the first poll also authenticates and describes
    assert [r.fields["Name"] for r in records] == ["Acct 000", "Acct 001", "Acct 002"]
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {"accounts": [{"Name": "New"}]}})
    before = len(sandbox.control("GET", "/_sandbox/requests")["requests"])
    records, cursor = poll(sf, cursor)
    assert [r.fields["Name"] for r in records] == ["New"]
    made = sandbox.control("GET", "/_sandbox/requests")["requests"][before:]
    assert [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in made] == [("POST", "composite")]


def test_a_refused_object_query_fails_only_that_objects_poll(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=1, settings={"custom_fields": {"Task": [KEY_FIELD, "Region__c"]}})
    sf = connector(sandbox, objects=("Account", "Task"))
    _, cursor = poll(sf, None)  # describes Task with Region__c
    sandbox.control("POST", "/_sandbox/seed", {"salesforce": {
        "settings": {"custom_fields": {"Task": [KEY_FIELD]}},  # an admin deletes it
        "accounts": [{"Name": "Polled anyway"}]}})
    pages = []
    with pytest.raises(VendorError) as info:
        for page in sf.poll_pages(cursor):
            pages.append(page)
    assert info.value.code == "INVALID_FIELD" and "Task" in str(info.value)
    assert [r.fields["Name"] for p in pages for r in p.records] == ["Polled anyway"]
    # the next cycle describes Task afresh and polls it again from where it stood
    sandbox.control("POST", "/_sandbox/seed",
                    {"salesforce": {"tasks": [{"Subject": "After the fix"}]}})
    records, _ = poll(sf, pages[-1].cursor)
    assert [r.fields.get("Subject") for r in records] == ["After the fix"]


def test_poll_names_parents_that_have_a_name_field_only(sandbox: SandboxServer) -> None:
    """The real Opportunity points at OpportunityHistory (no Name) and Task at polymorphic
    parents: the SELECT names only parents whose describe has a name field."""
    sandbox.control("POST", "/_sandbox/seed", {
        "clock": NOW,
        "salesforce": {
            "settings": {"custom_fields": {"Task": [KEY_FIELD]}},
            "accounts": [{"@key": "acme", "Name": "Acme"}],
            "opportunities": [{"@key": "deal", "Name": "Big deal", "StageName": "Prospecting",
                               "CloseDate": "2026-04-01", "AccountId": "@acme"}],
            "tasks": [{"Subject": "Call", "WhatId": "@deal"}],
        },
    })
    sf = connector(sandbox, objects=("Opportunity", "Account", "Task"))
    records = {r.ref.kind: r for r in poll(sf, None)[0]}
    assert set(records) == {"salesforce.opportunity", "salesforce.account", "salesforce.task"}
    deal = records["salesforce.opportunity"].fields
    assert deal["Account"] == {"Name": "Acme"}
    assert deal["Owner"] == {"Name": "Sandbox Integration"}
    assert "LastAmountChangedHistory" not in deal and deal["LastAmountChangedHistoryId"] is None
    task = records["salesforce.task"].fields
    assert "What" not in task and task["Account"] == {"Name": "Acme"}
    # a rule that reads a polymorphic parent names it in parent_fields
    sf = connector(sandbox, objects=("Task",), parent_fields=("Task.What.Name",))
    (task_record,) = poll(sf, None)[0]
    assert task_record.fields["What"] == {"Name": "Big deal"}


def test_records_carry_parent_names_and_deletes(sandbox: SandboxServer) -> None:
    sandbox.control(
        "POST",
        "/_sandbox/seed",
        {
            "clock": NOW,
            "salesforce": {
                "accounts": [{"@key": "acme", "Name": "Acme"}],
                "opportunities": [
                    {
                        "Name": "Big deal",
                        "StageName": "Prospecting",
                        "CloseDate": "2026-04-01",
                        "AccountId": "@acme",
                    }
                ],
            },
        },
    )
    sf = connector(sandbox, objects=("Opportunity",))
    (opportunity,), _ = poll(sf, None)
    assert opportunity.ref.kind == "salesforce.opportunity"
    assert opportunity.fields["Account"] == {"Name": "Acme"}
    assert sf.fetch(opportunity.ref).fields["Name"] == "Big deal"  # type: ignore[union-attr]
    assert sf.fetch(RecordRef("salesforce.opportunity", "006000000000000AAA")) is None


def test_each_verb_is_absent_before_and_verified_after(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=1)
    sf = connector(sandbox)
    (account,), _ = poll(sf, None)
    ops = [
        op("create", key="r/create", fields={"Subject": "Kickoff call", "WhatId": account.ref.id}),
        op("upsert_by_key", key="r/upsert", fields={"Subject": "Send welcome pack"}),
        op(
            "update",
            target="Account",
            key="r/update",
            Id=account.ref.id,
            fields={"Industry": "Energy"},
        ),
    ]
    for operation in ops:
        before = sf.verify(operation)
        assert not before.ok and not before.retryable, (operation.verb, before)
        assert sf.execute(operation).ok, operation.verb
        assert sf.verify(operation).ok, operation.verb
    again = sf.execute(ops[1])  # upsert by key is idempotent
    assert again.ok and again.detail["created"] is False


def test_execute_many_uses_composite_collections(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=2)
    sf = connector(sandbox)
    accounts, _ = poll(sf, None)
    ops = [op("create", key=f"r/{n}", fields={"Subject": f"Task {n}"}) for n in range(3)]
    ops += [
        op("update", target="Account", key=f"r/a{n}", Id=a.ref.id, fields={"Type": "Customer"})
        for n, a in enumerate(accounts)
    ]
    ops.append(op("create", key="r/bad", fields={"NoSuchField__c": 1}))
    outcomes = sf.execute_many(ops)
    assert [o.ok for o in outcomes] == [True] * 5 + [False]
    assert not outcomes[-1].retryable
    assert all(sf.verify(o).ok for o in ops[:5])
    paths = [r["path"] for r in sandbox.control("GET", "/_sandbox/requests")["requests"]]
    assert sum(p.endswith("/composite/sobjects") for p in paths) == 2


def test_apply_then_500_is_retryable_and_verify_finds_the_effect(sandbox: SandboxServer) -> None:
    seed(sandbox)
    sf = connector(sandbox)
    create = op("create", key="r/once", fields={"Subject": "Only once"})
    sf.directory()  # authenticate and describe before the fault
    fault(
        sandbox,
        method="POST",
        path=r"/sobjects/Task/?$",
        kind="apply_then_status",
        status=500,
        times=1,
    )
    outcome = sf.execute(create)
    assert not outcome.ok and outcome.retryable and outcome.detail["maybe_applied"]
    assert sf.verify(create).ok


def test_429_with_retry_after_is_honoured(sandbox: SandboxServer) -> None:
    seed(sandbox)
    sf = connector(sandbox)
    fault(sandbox, method="GET", path=r"/query", kind="status", status=429, retry_after=1, times=1)
    assert sf.verify(op("create")).error == "no record carries this key"
    assert (sf.governor.stats.throttled, sf.governor.stats.retries) == (1, 1)


def test_expired_token_is_renewed_once(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=1, settings={"token_lifetime_s": 60})
    sf = connector(sandbox)
    assert len(poll(sf, None)[0]) == 1
    sandbox.control("POST", "/_sandbox/clock", {"advance": 120})
    assert sf.execute(op("upsert_by_key", fields={"Subject": "After expiry"})).ok
    requests = sandbox.control("GET", "/_sandbox/requests")["requests"]
    assert [r["status"] for r in requests if r["path"] == "/services/oauth2/token"] == [200, 200]
    assert 401 in [r["status"] for r in requests]


def test_jwt_bearer_flow(sandbox: SandboxServer) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    seed(
        sandbox,
        accounts=1,
        settings={"jwt_public_key_pem": public},
        users=[
            {
                "Username": "ann@acme.example",
                "Email": "ann@acme.example",
                "Name": "Ann Owner",
                "IsActive": True,
            }
        ],
    )
    sf = connector(sandbox, client_secret=None, username="ann@acme.example", private_key=private)
    assert len(poll(sf, None)[0]) == 1
    assert sf.directory().user_by_email("ann@acme.example") is not None


def test_jwt_audience_follows_the_login_host(sandbox: SandboxServer) -> None:
    """Against a Salesforce sandbox org the assertion's aud is not login.salesforce.com."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    seed(sandbox, accounts=1, settings={"jwt_public_key_pem": public, "org_kind": "sandbox"},
         users=[{"Username": "ann@acme.example", "Email": "ann@acme.example", "Name": "Ann"}])
    jwt_flow = {"client_secret": None, "username": "ann@acme.example", "private_key": private}
    assert len(poll(connector(sandbox, **jwt_flow), None)[0]) == 1  # aud: the token URL's host
    wrong = connector(sandbox, jwt_audience="https://login.salesforce.com", **jwt_flow)
    with pytest.raises(VendorError) as info:
        poll(wrong, None)
    assert "audience is invalid" in str(info.value)


@pytest.mark.parametrize(("token_url", "audience"), [
    ("https://login.salesforce.com/services/oauth2/token", "https://login.salesforce.com"),
    ("https://test.salesforce.com/services/oauth2/token", "https://test.salesforce.com"),
    ("https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token",
     "https://acme--uat.sandbox.my.salesforce.com"),
])
def test_default_jwt_audience_is_the_login_host(token_url: str, audience: str) -> None:
    assert jwt_audience(SalesforceSection(token_url=token_url, client_id="c")) == audience
    explicit = SalesforceSection(token_url=token_url, client_id="c", jwt_audience="https://x")
    assert jwt_audience(explicit) == "https://x"


def test_the_connector_of_the_sandbox_configuration(sandbox: SandboxServer) -> None:
    seed(sandbox, accounts=1)
    assert sandbox.directory is not None
    settings = load_settings(sandbox.directory / "syncd.toml", env={})
    assert settings.salesforce is not None and settings.salesforce.client_secret is not None
    sf = SalesforceConnector(settings.salesforce, SystemClock(), settings.tls, settings.proxy)
    secret = settings.salesforce.client_secret.get_secret_value()
    assert secret and secret not in repr(sf.settings) and secret not in repr(sf)
    sf.directory()


def test_fetch_of_an_object_with_many_custom_fields(sandbox: SandboxServer) -> None:
    """Hundreds of custom fields make a field list longer than Salesforce's 16,384-byte
    request line (414): the re-read goes in a composite body instead of the URL."""
    many = [f"Implementation_Checklist_Item_Number_{n:03d}__c" for n in range(400)]
    seed(sandbox, accounts=1, settings={"custom_fields": {"Task": [KEY_FIELD, *many]}},
         tasks=[{"Subject": "Kick-off", many[-1]: "done"}])
    sf = connector(sandbox)
    task = next(r for r in poll(sf, None)[0] if r.ref.kind == "salesforce.task")
    fetched = sf.fetch(task.ref)
    assert fetched is not None and fetched.fields[many[-1]] == "done"
    requests = sandbox.control("GET", "/_sandbox/requests")["requests"]
    assert 414 not in [r["status"] for r in requests]


def test_the_connected_apps_own_allocation_bounds_the_budget(sandbox: SandboxServer) -> None:
    """Sforce-Limit-Info's per-app-api-usage: syncd spends no more than its app has left,
    however large the org's daily limit."""
    seed(sandbox, accounts=1, settings={"per_app_api_limit": 2000, "daily_api_limit": 100000})
    sf = connector(sandbox, daily_api_requests=100000, share=0.5)
    assert len(poll(sf, None)[0]) == 1
    bucket = sf.governor.buckets["default"]
    assert bucket.per_minute == 2000 / 1440  # not 100,000 x 0.5 a day
    assert bucket.available(sf.governor.clock.now()) <= bucket.capacity == pytest.approx(2000 / 24)


def test_a_refusal_describe_cannot_cure_costs_one_describe_not_one_per_poll(
    sandbox: SandboxServer,
) -> None:
    seed(sandbox, accounts=1)
    sf = connector(sandbox, objects=("Account", "Task"), parent_fields=("Task.Nope.Name",))
    for _ in range(4):
        with pytest.raises(VendorError):
            poll(sf, None)
    describes = [r for r in sandbox.control("GET", "/_sandbox/requests")["requests"]
                 if r["path"].endswith("/describe")]
    assert len(describes) == 2 * 2  # Account and Task: at first, then once more after the refusal
