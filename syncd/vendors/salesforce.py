"""Salesforce and its record kinds, as its connector (syncd/connectors/salesforce.py) reads
them: one per sObject syncd knows, and `salesforce.record` for any other polled object."""

from __future__ import annotations

from syncd.vendors.declare import RecordKind, Values, Vendor, names

CHANGED_AT = ("SystemModstamp", "LastModifiedDate")
OWNER = {"owner": "OwnerId"}


def _kind(
    name: str,
    var: str,
    fields: str,
    sobject: str = "",
    mappings: str = "",
    open: bool = False,
    values: dict[str, Values] | None = None,
) -> RecordKind:
    return RecordKind(
        name=name,
        var=var,
        fields=names(fields),
        changed_at=CHANGED_AT,
        mappings=names(mappings),
        custom_suffix="__c",
        open=open,
        recipients=OWNER,
        sobject=sobject,
        values=values or {},
    )


OPPORTUNITY = _kind(
    "salesforce.opportunity",
    "opportunity",
    "Id Name AccountId OwnerId StageName IsWon IsClosed CloseDate Amount Type"
    " CreatedDate LastModifiedDate SystemModstamp",
    sobject="Opportunity",
    mappings="Account",
    values={
        "IsWon": Values("bool"),
        "IsClosed": Values("bool"),
        "Amount": Values("number"),
        "CloseDate": Values("instant"),
    },
)
ACCOUNT = _kind(
    "salesforce.account",
    "account",
    "Id Name OwnerId Type Industry SystemModstamp",
    sobject="Account",
)
TASK = _kind(
    "salesforce.task",
    "task",
    "Id Subject Status IsClosed ActivityDate OwnerId WhatId Description",
    sobject="Task",
)
GENERIC = _kind("salesforce.record", "record", "Id Name OwnerId SystemModstamp", open=True)

SALESFORCE = Vendor(
    system="salesforce",
    family="salesforce",
    label="Salesforce",
    kinds=(OPPORTUNITY, ACCOUNT, TASK, GENERIC),
    assignee_field="OwnerId",
    groups=True,
)

# sObject name <-> record kind; any other polled object is `salesforce.record`
SOBJECT_OF_KIND: dict[str, str] = {k.name: k.sobject for k in SALESFORCE.kinds if k.sobject}
KIND_OF_SOBJECT: dict[str, str] = {sobject: kind for kind, sobject in SOBJECT_OF_KIND.items()}


def kind_of_sobject(sobject: str) -> str:
    return KIND_OF_SOBJECT.get(sobject, GENERIC.name)
