"""The sandbox's Salesforce describe against describes recorded from a real org
(recorded/, SOURCES.md): the same standard fields with the same types, flags, reference
targets, relationship names and name fields, and no key a real describe lacks. So a query
real Salesforce refuses (a parent's missing name field) is refused here too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from syncd.connectors.tls import PinnedSession
from syncd.sandbox.server import SandboxServer

RECORDED = Path(__file__).with_name("recorded")
COMPARED = ("type", "length", "nillable", "createable", "updateable", "defaultedOnCreate",
            "nameField", "polymorphicForeignKey", "referenceTo", "relationshipName",
            "filterable", "sortable", "calculated", "externalId", "unique")
ORG_SPECIFIC = {"RecordTypeId"}  # exists only in orgs with record types on the object


def recorded(sobject: str) -> dict[str, Any]:
    return dict(json.loads((RECORDED / f"{sobject}.describe.json").read_text()))


def standard(fields: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in fields
            if not f["name"].endswith("__c") and f["name"] not in ORG_SPECIFIC}


@pytest.fixture
def sf(sandbox: SandboxServer) -> Salesforce:
    creds = sandbox.info["salesforce"]
    session = PinnedSession(verify=sandbox.ca_bundle)
    token = session.post(creds["token_url"], data={
        "grant_type": "client_credentials", "client_id": creds["client_id"],
        "client_secret": creds["client_secret"]}, timeout=10).json()["access_token"]
    return Salesforce(instance_url=creds["instance_url"], session_id=token, session=session)


@pytest.mark.parametrize("sobject", ["Account", "Contact", "Opportunity", "Event"])
def test_describe_lists_the_real_standard_fields(sf: Salesforce, sobject: str) -> None:
    real = recorded(sobject)
    ours = sf.restful(f"sobjects/{sobject}/describe")
    theirs, mine = standard(real["fields"]), {f["name"]: f for f in ours["fields"]}
    assert list(mine) == list(theirs)  # every standard field, in describe's order
    differ = [(name, key, mine[name].get(key), field[key])
              for name, field in theirs.items() for key in COMPARED
              if mine[name].get(key) != field[key]]
    assert differ == []
    assert ours["keyPrefix"] == real["keyPrefix"] and ours["label"] == real["label"]


@pytest.mark.parametrize("sobject", ["Account", "Contact", "Opportunity", "Event", "Task",
                                     "User", "Group", "OpportunityHistory"])
def test_describe_sends_no_key_a_real_describe_lacks(sf: Salesforce, sobject: str) -> None:
    real = recorded("Account")
    ours = sf.restful(f"sobjects/{sobject}/describe")
    assert set(ours) - set(real) == set()
    assert {k for f in ours["fields"] for k in f} - set(real["fields"][0]) == set()
    picklist_keys = {k for f in real["fields"] for p in f["picklistValues"] for k in p}
    assert {k for f in ours["fields"] for p in f["picklistValues"] for k in p} <= picklist_keys


def test_objects_transcribed_from_the_object_reference(sf: Salesforce) -> None:
    def fields(sobject: str) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in sf.restful(f"sobjects/{sobject}/describe")["fields"]}

    task, event = fields("Task"), standard(recorded("Event")["fields"])
    for shared in ("WhoId", "WhatId", "Subject", "ActivityDate", "OwnerId", "IsDeleted",
                   "AccountId", "Description", "IsReminderSet", "SystemModstamp"):
        assert {k: task[shared][k] for k in ("type", "relationshipName", "nameField",
                                             "polymorphicForeignKey")} == {
            k: event[shared][k] for k in ("type", "relationshipName", "nameField",
                                          "polymorphicForeignKey")}, shared
    assert [n for n, f in fields("User").items() if f["nameField"]] == ["Name"]
    assert [n for n, f in fields("Group").items() if f["nameField"]] == ["Name"]
    assert not any(f["nameField"] for f in fields("OpportunityHistory").values())


def test_a_parent_without_a_name_field_is_refused_as_salesforce_does(sf: Salesforce) -> None:
    """Opportunity.LastAmountChangedHistory leads to OpportunityHistory, which has no Name."""
    for rel in ("LastAmountChangedHistory", "LastCloseDateChangedHistory"):
        assert sf.query(f"SELECT {rel}.CreatedDate FROM Opportunity")["totalSize"] == 0
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.query(f"SELECT Id, {rel}.Name FROM Opportunity")
        (error,) = info.value.content
        assert set(error) == {"message", "errorCode"} and error["errorCode"] == "INVALID_FIELD"
        assert error["message"].endswith(
            "No such column 'Name' on entity 'OpportunityHistory'. If you are attempting to use "
            "a custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.")


@pytest.mark.parametrize("sobject", ["Account", "Contact", "Opportunity", "Event"])
def test_every_recorded_relationship_can_be_queried(sf: Salesforce, sobject: str) -> None:
    """Each parent path the real describe offers is one SOQL accepts here."""
    described: dict[str, dict[str, Any]] = {}
    for name, field in standard(recorded(sobject)["fields"]).items():
        rel = field["relationshipName"]
        if field["type"] != "reference" or not rel:
            continue
        if field["polymorphicForeignKey"]:
            assert sf.query(f"SELECT {rel}.Name FROM {sobject}")["done"], name
            continue
        target = field["referenceTo"][0]
        if target not in described:
            described[target] = sf.restful(f"sobjects/{target}/describe")
        named = [f["name"] for f in described[target]["fields"] if f["nameField"]]
        paths = [f"{rel}.Id", *(f"{rel}.{n}" for n in named)]
        assert sf.query(f"SELECT {', '.join(paths)} FROM {sobject}")["done"], name


def test_an_unknown_field_is_refused_with_salesforces_body(sandbox: SandboxServer,
                                                          sf: Salesforce) -> None:
    url = f"{sandbox.info['salesforce']['instance_url']}/services/data/v59.0/query/"
    resp = sf.session.get(url, params={"q": "SELECT Id, Foo FROM Account"},
                          headers={"Authorization": f"Bearer {sf.session_id}"}, timeout=10)
    assert resp.status_code == 400
    assert resp.json() == [{"message": "\nSELECT Id, Foo FROM Account\n           ^\nERROR at "
                            "Row:1:Column:12\nNo such column 'Foo' on entity 'Account'. If you "
                            "are attempting to use a custom field, be sure to append the '__c' "
                            "after the custom field name. Please reference your WSDL or the "
                            "describe call for the appropriate names.",
                            "errorCode": "INVALID_FIELD"}]
