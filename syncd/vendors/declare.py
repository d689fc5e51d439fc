"""The types a vendor declares itself with: the vendor, its record kinds, their fields' values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ValueType = Literal["bool", "number", "instant", "choice"]


@dataclass(frozen=True)
class Values:
    """What a field holds, so that `check` refuses a compared value it can never equal."""

    type: ValueType
    choices: tuple[str, ...] = ()  # for "choice": the vendor's documented values


@dataclass(frozen=True)
class RecordKind:
    """One kind of record a connector reads, with the connector's normalised field names
    (docs/rules.md, "Record fields")."""

    name: str  # "zendesk.ticket"
    var: str  # short template variable name: "ticket"
    fields: frozenset[str]
    # the vendor's last-change instant, in the order looked for
    changed_at: tuple[str, ...]
    mappings: frozenset[str] = frozenset()  # fields holding open mappings: `custom.anything`
    custom_suffix: str = ""  # Salesforce: any `*__c` field exists
    open: bool = False  # fields unknown in advance (a generic Salesforce object)
    # symbolic recipients a rule may name (`to: [assignee]`) -> the field they are read from
    recipients: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    sobject: str = ""  # Salesforce: the sObject this kind is ("" for the generic one)
    # fields whose values are known
    values: Mapping[str, Values] = field(default_factory=dict, hash=False, compare=False)

    @property
    def family(self) -> str:
        return self.name.partition(".")[0]

    def has_field(self, path: str) -> bool:
        """True when a dotted field path starts at a field this kind has."""
        head, dot, _ = path.partition(".")
        if self.open or head in self.mappings:
            return True
        if dot:  # only mappings have sub-fields
            return False
        return head in self.fields or bool(self.custom_suffix and head.endswith(self.custom_suffix))

    @property
    def all_fields(self) -> frozenset[str]:
        return self.fields | self.mappings


@dataclass(frozen=True)
class Vendor:
    """One vendor: its connector's system name and its record kinds."""

    system: str  # connector, settings section, `Operation.system`: "graph"
    family: str  # the prefix of its record kinds: "sharepoint"
    label: str  # for people: "SharePoint"
    kinds: tuple[RecordKind, ...]
    assignee_field: str = ""  # the field holding a record's assignee (`least_loaded`)
    groups: bool = False  # its directory has groups a `group:Name` recipient may name


def names(text: str) -> frozenset[str]:
    """Field names written as one space-separated string."""
    return frozenset(text.split())
