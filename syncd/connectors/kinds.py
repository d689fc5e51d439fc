"""The one registry of vendors and record kinds: what each vendor declares beside its
connector (zendesk_kinds.py, salesforce_kinds.py, graph_kinds.py), gathered for the rules
language, the daemon and doctor to read. Plain data: it imports no vendor client."""

from __future__ import annotations

from syncd.connectors.graph_kinds import GRAPH
from syncd.connectors.salesforce_kinds import SALESFORCE
from syncd.connectors.vendor import RecordKind, Vendor
from syncd.connectors.zendesk_kinds import ZENDESK

# by system (connector and settings section), in the order checklists show them
VENDORS: dict[str, Vendor] = {v.system: v for v in (ZENDESK, SALESFORCE, GRAPH)}
# Record kinds a rule can name in `on:`, by name.
KINDS: dict[str, RecordKind] = {k.name: k for v in VENDORS.values() for k in v.kinds}
RECORD_KINDS: tuple[str, ...] = tuple(KINDS)
# record family (`sharepoint`) -> the system whose connector reads and writes it (`graph`)
SYSTEM_OF_FAMILY: dict[str, str] = {v.family: v.system for v in VENDORS.values()}
# the systems whose directories have groups, where a `group:Name` recipient is looked for
GROUP_SYSTEMS: tuple[str, ...] = tuple(v.system for v in VENDORS.values() if v.groups)
