"""The vendors as doctor sees them: signing in, permissions, and what the rules' names are
looked up in.

Vendors are asked through the daemon's own connectors (same clients, TLS trust, proxy,
directories and field lists), so "found" here means found when the daemon resolves the name,
but each call is tried once: an unreachable host should fail the check now, not after minutes
of backoff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import jwt

from syncd.clock import Clock
from syncd.connectors.base import Directory, Dropdown
from syncd.connectors.graph import GraphConnector
from syncd.connectors.http import Governor, RetryPolicy, VendorError
from syncd.connectors.salesforce import SalesforceConnector, audience
from syncd.connectors.zendesk import ZendeskConnector
from syncd.doctor.report import Check
from syncd.doctor.uses import Uses
from syncd.settings import SECRET_FILES, Settings
from syncd.vendors.registry import VENDORS

SYSTEMS = tuple(VENDORS)
LABELS = {system: vendor.label for system, vendor in VENDORS.items()}
# For fixes: the settings keys naming each vendor's host and syncd's identity there.
HOST_KEYS = {
    "zendesk": "subdomain / netloc",
    "salesforce": "token_url / instance_url",
    "graph": "authority / base_url",
}
IDENTITY_KEYS = {"zendesk": "email", "salesforce": "client_id", "graph": "tenant_id / client_id"}
SECRET_FILE = {
    section: name for (section, key), name in SECRET_FILES.items() if key != "private_key"
}
AUTH_CODES = frozenset({"invalid_client", "invalid_grant", "unauthorized_client"})


@dataclass
class Vendors:
    """The connectors of the configured vendors whose secrets are present."""

    zendesk: ZendeskConnector | None = None
    salesforce: SalesforceConnector | None = None
    graph: GraphConnector | None = None

    def close(self) -> None:
        if self.graph is not None:
            self.graph.close()


def open_vendors(settings: Settings, clock: Clock) -> Vendors:
    """Connectors as the daemon builds them, each call tried once."""
    ready = {s for s in configured(settings) if not missing_secrets(settings, s)}
    tls, proxy = settings.tls, settings.proxy
    zd, sf, gr = settings.zendesk, settings.salesforce, settings.graph
    vendors = Vendors(
        zendesk=ZendeskConnector(zd, clock, tls, proxy) if zd and "zendesk" in ready else None,
        salesforce=(
            SalesforceConnector(sf, clock, tls, proxy) if sf and "salesforce" in ready else None
        ),
        graph=GraphConnector(gr, clock, tls, proxy) if gr and "graph" in ready else None,
    )
    for connector in (vendors.zendesk, vendors.salesforce, vendors.graph):
        if connector is not None:
            connector.retry = RetryPolicy(connector.governor, max_attempts=1)
    return vendors


def configured(settings: Settings) -> list[str]:
    """The vendors with a settings section, in checklist order."""
    return [s for s in SYSTEMS if getattr(settings, s) is not None]


def missing_secrets(settings: Settings, system: str) -> list[str]:
    """The vendor's secret files that are not there: without them it is not opened."""
    return [name for name in settings.missing_secrets() if name.startswith(system)]


@dataclass(frozen=True)
class Found:
    """What doctor read of one vendor, to look the rules' names up in."""

    directory: Directory
    fields: frozenset[str] | None = None  # None: not read (Graph), or not all of them
    skew_s: float | None = None  # the vendor's clock minus ours, from its `Date` header
    # fields chosen from a list, by name as `Compared.name` (uses.py); None: not read
    dropdowns: Mapping[str, Dropdown] | None = None


def probe_vendors(
    vendors: Vendors, systems: list[str], uses: Uses, clock: Clock
) -> tuple[list[Check], dict[str, Found]]:
    """Each vendor's checks, and what was read of those that answered."""
    zd, sf, gr = vendors.zendesk, vendors.salesforce, vendors.graph
    probes = {
        "zendesk": _zendesk(zd, uses, clock) if zd else None,
        "salesforce": _salesforce(sf, uses, clock) if sf else None,
        "graph": _graph(gr, uses, clock) if gr else None,
    }
    checks: list[Check] = []
    found: dict[str, Found] = {}
    for system, probe in probes.items():
        if probe is None:
            why = "its secret is missing" if system in systems else f"no [{system}] section"
            checks.append(Check(system, "skip", f"not tried: {why}"))
            continue
        checks += probe[0]
        if probe[1] is not None:
            found[system] = probe[1]
    return checks, found


def _vendor_failed(name: str, system: str, exc: VendorError) -> Check:
    """A failed vendor call, with the settings or secret most likely to blame."""
    section = f"[{system}]"
    if exc.status == 401 or exc.code in AUTH_CODES:
        fix = (f"{LABELS[system]} refused syncd's credentials: check {section} "
               f"{IDENTITY_KEYS[system]} and the {SECRET_FILE[system]} file")
    elif exc.code == "tls":
        fix = "the vendor's TLS certificate is not trusted: set [tls] ca_bundle to its CA"
    elif exc.status is None:
        fix = (f"cannot connect: check {section} {HOST_KEYS[system]}, DNS, firewalls and "
               "[proxy] https")
    elif exc.status == 403:
        fix = f"syncd's user lacks a permission in {LABELS[system]}: grant it, or check {section}"
    else:
        fix = f"check {section} {HOST_KEYS[system]}; try again if the vendor was unavailable"
    return Check(name, "fail", str(exc), fix)


def _skew(governor: Governor, clock: Clock) -> float | None:
    date = governor.vendor_date
    if date is None:
        return None
    return (date.replace(tzinfo=date.tzinfo or UTC) - clock.now()).total_seconds()


def _zendesk(zd: ZendeskConnector, uses: Uses, clock: Clock) -> tuple[list[Check], Found | None]:
    try:
        me = zd.retry.call(zd.client.users.me)
    except VendorError as exc:
        return [_vendor_failed("zendesk", "zendesk", exc)], None
    skew = _skew(zd.governor, clock)
    checks = [Check("zendesk", "ok", f"signed in as {me.email} ({me.role})"),
              _zendesk_role(me.email, me.role, polls="zendesk.ticket" in uses.kinds)]
    try:
        fields = zd.field_names()
        dropdowns = ({f"custom.{key}": found for key, found in zd.dropdowns().items()}
                     if any(c.system == "zendesk" for c in uses.compared) else None)
        # read thoroughly (max age 0): a group without members is no membership's side-load
        return checks, Found(zd.directory(0), fields, skew, dropdowns)
    except VendorError as exc:
        return [*checks, _vendor_failed("zendesk directory", "zendesk", exc)], None


def _zendesk_role(email: str, role: str, *, polls: bool) -> Check:
    """Polling reads the incremental ticket export, which Zendesk allows to admins only (an
    agent gets 403); writing tickets needs an agent or admin."""
    name = "zendesk permissions"
    make = f"make {email} an admin (Admin Center > People > Team members > Role)"
    if role == "admin":
        return Check(name, "ok", "admin: reads the incremental export, updates tickets")
    if role == "agent" and not polls:
        return Check(name, "ok", "agent: updates tickets (the rules poll no Zendesk tickets)")
    if role == "agent":
        return Check(name, "fail", f"{email} is an agent: polling reads the incremental "
                     "ticket export, which Zendesk allows to admins only (403 for agents)",
                     f"{make}, or set [zendesk] email to an admin's (and its token)")
    return Check(name, "fail", f"{email} is an {role}: syncd cannot read or update tickets",
                 f"{make}; an agent suffices when the rules poll no Zendesk tickets")


def _salesforce(
    sf: SalesforceConnector, uses: Uses, clock: Clock
) -> tuple[list[Check], Found | None]:
    try:
        directory = sf.directory()
    except VendorError as exc:
        return [_vendor_failed("salesforce", "salesforce", exc), _salesforce_sign_in(sf, exc)], None
    skew = _skew(sf.governor, clock)
    people = f"{len(directory.users)} user(s), {len(directory.groups)} group(s)"
    checks = [Check("salesforce", "ok", f"signed in: {people}"), _salesforce_sign_in(sf)]
    named = {r.name.partition(".")[0] for r in uses.references if r.systems == ("salesforce",)
             and r.what == "field"}
    described: dict[str, Mapping[str, Any]] = {}
    for sobject in sorted(named | {sobject for sobject, _ in uses.writes}):
        try:
            described[sobject] = sf.describe(sobject)
        except VendorError as exc:
            checks.append(_vendor_failed(f"salesforce {sobject}", "salesforce", exc))
    checks.append(_salesforce_permissions(uses.writes, described))
    fields = frozenset(f"{sobject}.{f['name']}" for sobject, d in described.items()
                       for f in d["fields"])
    complete = described.keys() >= named
    return checks, Found(directory, fields if complete else None, skew, _picklists(described))


def _picklists(described: Mapping[str, Mapping[str, Any]]) -> dict[str, Dropdown]:
    """The picklist fields of the described sObjects, by `sObject.Field`, with their active
    values; an unrestricted one may hold other values (set through the API, imported)."""
    return {
        f"{sobject}.{f['name']}": Dropdown(
            str(f.get("label") or f["name"]),
            tuple(str(v["value"]) for v in f.get("picklistValues") or () if v.get("active")),
            bool(f.get("restrictedPicklist")))
        for sobject, d in described.items() for f in d["fields"]
        if f.get("type") in ("picklist", "multipicklist")
    }


def _salesforce_sign_in(sf: SalesforceConnector, failed: VendorError | None = None) -> Check:
    """The OAuth flow and, for the JWT bearer flow, the audience the assertion names: a sandbox
    org refuses login.salesforce.com ("audience is invalid")."""
    cfg = sf.settings
    if not (cfg.username and cfg.private_key):
        return Check("salesforce sign-in", "ok" if failed is None else "fail",
                     "client credentials flow (no JWT audience)")
    shown = f"JWT bearer flow as {cfg.username}, audience {audience(cfg)}"
    if failed is None:
        return Check("salesforce sign-in", "ok", shown)
    if "audience" in failed.message:
        return Check("salesforce sign-in", "fail", f"{shown}: the org refused this audience",
                     "set [salesforce] jwt_audience to the org's login host: "
                     "https://login.salesforce.com (production), https://test.salesforce.com "
                     "(a sandbox org) or its My Domain URL")
    return Check("salesforce sign-in", "fail", shown)


def _salesforce_permissions(
    writes: Mapping[tuple[str, str], list[str]], described: Mapping[str, Mapping[str, Any]]
) -> Check:
    """Describe says whether syncd's user may create or edit each sObject the rules write."""
    verbs = {"createable": "create", "updateable": "edit"}
    can, cannot = [], []
    for (sobject, permission), wheres in sorted(writes.items()):
        if sobject in described:
            text = f"{verbs[permission]} {sobject}"
            (can if described[sobject].get(permission) else cannot).append((text, wheres[0]))
    if cannot:
        return Check(
            "salesforce permissions",
            "fail",
            "syncd's user may not " + ", ".join(f"{t} (used at {w})" for t, w in cannot),
            "grant " + ", ".join(t for t, _ in cannot) + " to syncd's user (profile or "
            "permission set)",
        )
    shown = ", ".join(t for t, _ in can) if can else "the rules write nothing to Salesforce"
    return Check("salesforce permissions", "ok", shown)


# Application permissions syncd needs, each met by any one of the names given (a broader
# permission includes a narrower one).
GRAPH_DRIVE = ("Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All",
               "Files.ReadWrite.All")
GRAPH_SEND = ("Mail.Send",)
GRAPH_VERIFY_MAIL = ("Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite")  # Sent Items


def _graph(gr: GraphConnector, uses: Uses, clock: Clock) -> tuple[list[Check], Found | None]:
    try:
        directory = gr.directory()
        token = gr._token()
    except VendorError as exc:
        return [_vendor_failed("graph", "graph", exc)], None
    return [
        Check("graph", "ok", f"token for {gr.settings.client_id}: {len(directory.users)} user(s)"),
        _graph_roles(token, drive=bool(gr.settings.drive_id),
                     mail=bool(uses.mail or gr.settings.mailbox)),
    ], Found(directory, skew_s=_skew(gr.governor, clock))


def _graph_roles(token: str, *, drive: bool, mail: bool) -> Check:
    """The app-only token's `roles` claim: the application permissions an admin consented to.
    Verification after a lost answer reads Sent Items: without a mail-reading role every such
    intent is held for a person instead of being verified."""
    name = "graph permissions"
    try:
        granted = set(jwt.decode(token, options={"verify_signature": False}).get("roles") or [])
    except jwt.PyJWTError:
        return Check(name, "skip", "not checked: the access token is not a JWT")
    needed = [(GRAPH_DRIVE, "the drive (folders, files)")] if drive else []
    if mail:
        needed += [(GRAPH_SEND, "sending mail"), (GRAPH_VERIFY_MAIL, "verifying sent mail")]
    missing = [(names, why) for names, why in needed if not granted & set(names)]
    if missing:
        shown = "; ".join(f"{_any_of(names)} (for {why})" for names, why in missing)
        return Check(name, "fail", f"the app's token lacks {shown}",
                     "in Entra ID > App registrations > API permissions, add the Microsoft "
                     "Graph application permission " + ", ".join(n[0] for n, _ in missing)
                     + " and grant admin consent")
    have = ", ".join(sorted(granted)) or "none"
    return Check(name, "ok", f"roles: {have}")


def _any_of(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else " or ".join(names[:2])
