"""The whole checklist, in the order an administrator fixes things.

`diagnose` runs the checks on loaded settings and rules, the vendors' connectors and a clock;
`examine` loads and opens those first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from syncd.clock import Clock
from syncd.doctor.local import (
    clock_check,
    credentials_dir,
    metrics_check,
    polled_check,
    rules_check,
    secret_check,
    settings_check,
    store_check,
)
from syncd.doctor.references import mailbox_checks, reference_checks, value_checks
from syncd.doctor.report import Check
from syncd.doctor.uses import rule_uses
from syncd.doctor.vendors import Vendors, configured, open_vendors, probe_vendors
from syncd.doctor.webhooks import webhook_checks
from syncd.rules.language.loader import LoadResult, load_rules
from syncd.settings import Settings


def examine(
    settings: Settings, clock: Clock, rules_dir: Path, env: Mapping[str, str]
) -> list[Check]:
    """Load the rules and open the vendors' connectors, then `diagnose`."""
    vendors = open_vendors(settings, clock)
    try:
        credentials = credentials_dir(settings, env)
        return diagnose(settings, load_rules(rules_dir), rules_dir, vendors, clock, credentials)
    finally:
        vendors.close()


def diagnose(
    settings: Settings,
    rules: LoadResult,
    rules_dir: Path,
    vendors: Vendors,
    clock: Clock,
    credentials: Path | None,
) -> list[Check]:
    """Every check: what is on this host first, then the vendors, the names the rules use
    there, and the clock (read from the vendors' answers)."""
    uses = rule_uses(rules.ruleset)
    systems = configured(settings)
    checks = [
        settings_check(systems),
        rules_check(rules, rules_dir),
        polled_check(rules, settings),
        *[secret_check(settings, s, credentials) for s in systems],
        store_check(settings),
        metrics_check(settings),
    ]
    probed, found = probe_vendors(vendors, systems, uses, clock)
    checks += probed
    checks += mailbox_checks(settings, uses, found)
    checks += reference_checks(settings, uses, found, vendors.graph)
    checks += value_checks(uses, found)
    checks += webhook_checks(settings.webhooks, vendors.zendesk if "zendesk" in found else None,
                             clock)
    checks.append(clock_check(found))
    return checks
