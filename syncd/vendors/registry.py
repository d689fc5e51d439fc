"""The one registry of vendors and record kinds, gathered from each vendor's declaration
(zendesk.py, salesforce.py, graph.py here), for the rest of syncd to read."""

from __future__ import annotations

from syncd.vendors.declare import RecordKind, Vendor
from syncd.vendors.graph import GRAPH
from syncd.vendors.salesforce import SALESFORCE
from syncd.vendors.zendesk import ZENDESK

# by system (connector and settings section), in the order checklists show them
VENDORS: dict[str, Vendor] = {v.system: v for v in (ZENDESK, SALESFORCE, GRAPH)}
# Record kinds a rule can name in `on:`, by name.
KINDS: dict[str, RecordKind] = {k.name: k for v in VENDORS.values() for k in v.kinds}
RECORD_KINDS: tuple[str, ...] = tuple(KINDS)
# record family (`sharepoint`) -> the system whose connector reads and writes it (`graph`)
SYSTEM_OF_FAMILY: dict[str, str] = {v.family: v.system for v in VENDORS.values()}
# the systems whose directories have groups, where a `group:Name` recipient is looked for
GROUP_SYSTEMS: tuple[str, ...] = tuple(v.system for v in VENDORS.values() if v.groups)
