"""The vendor registry (syncd/vendors/) is the one place a vendor's names and record kinds are
declared: what the connectors poll, the settings sections and the daemon's connectors must all
be named by it, and it loads no other code, so the rules language may read it freely."""

from __future__ import annotations

import subprocess
import sys

from syncd.clock import SystemClock
from syncd.connectors.graph import GraphConnector
from syncd.connectors.salesforce import SalesforceConnector
from syncd.connectors.zendesk import ZendeskConnector
from syncd.daemon.runtime import CONNECTORS
from syncd.settings import GraphSection, SalesforceSection, Settings, ZendeskSection
from syncd.vendors.registry import KINDS, SYSTEM_OF_FAMILY, VENDORS


def test_the_registry_loads_nothing_but_itself_and_the_standard_library() -> None:
    script = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import syncd.vendors.registry\n"
        "print(sorted(m for m in set(sys.modules) - before\n"
        "             if m.split('.')[0] not in sys.stdlib_module_names\n"
        "             and m != 'syncd' and not m.startswith('syncd.vendors')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_every_system_has_its_connector_and_settings_section() -> None:
    connectors = (ZendeskConnector, SalesforceConnector, GraphConnector)
    assert {c.system for c in connectors} == set(VENDORS) == set(CONNECTORS)
    assert set(VENDORS) <= set(Settings.model_fields)
    assert SYSTEM_OF_FAMILY == {
        "zendesk": "zendesk",
        "salesforce": "salesforce",
        "sharepoint": "graph",
    }


def test_what_the_connectors_poll_is_a_kind_rules_can_name() -> None:
    clock = SystemClock()
    zendesk = ZendeskConnector(
        ZendeskSection(subdomain="acme", email="a@b.example", token="t"), clock
    )
    salesforce = SalesforceConnector(
        SalesforceSection(client_id="c", objects=["Opportunity", "Account", "Task", "Case"]), clock
    )
    graph = GraphConnector(
        GraphSection(tenant_id="t", client_id="c", client_secret="s", lists=["Arrivals"]), clock
    )
    try:
        for connector in (zendesk, salesforce, graph):
            assert connector.kinds <= set(KINDS)
            assert {KINDS[kind].family for kind in connector.kinds} == {
                family for family, system in SYSTEM_OF_FAMILY.items() if system == connector.system
            }
        assert len(salesforce.kinds) == 4  # the three known sObjects and the generic kind
    finally:
        graph.close()
