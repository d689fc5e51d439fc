"""Checks of what is on this host: settings, rules, secrets, the store, and the clock."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from syncd.daemon.coverage import unpolled_rules
from syncd.doctor.report import Check
from syncd.doctor.vendors import Found, missing_secrets
from syncd.rules.language.loader import LoadResult
from syncd.settings import CREDENTIALS_ENV, Settings, SettingsError, metrics_exposed
from syncd.store.db import STORE_ERRORS, open_store, shown_url, sqlite_file

CLOCK_TOLERANCE_S = 60.0


def settings_failed(exc: SettingsError) -> Check:
    """The only check there is when the settings do not load: the others need them."""
    return Check(
        "settings",
        "fail",
        str(exc),
        "correct the settings as the message says (config/syncd.example.toml documents every "
        "key); the other checks need settings that load",
    )


def credentials_dir(settings: Settings, env: Mapping[str, str]) -> Path | None:
    """Where secrets are read from: systemd's $CREDENTIALS_DIRECTORY, else `[secrets] dir`."""
    return Path(env[CREDENTIALS_ENV]) if env.get(CREDENTIALS_ENV) else settings.secrets.dir


def metrics_check(settings: Settings) -> Check:
    """`/metrics` on every interface tells anyone who can reach the host what syncd does."""
    exposed = metrics_exposed(settings)
    if exposed is None:
        where = "disabled" if not settings.metrics.enabled else settings.metrics.host
        return Check("metrics", "ok", f"/metrics: {where}")
    return Check("metrics", "warn", exposed,
                 'set [metrics] host = "127.0.0.1" and scrape through a proxy or an SSH tunnel, '
                 "or firewall the port")


def settings_check(configured: list[str]) -> Check:
    if not configured:
        return Check(
            "settings",
            "fail",
            "no vendor is configured",
            "add [zendesk], [salesforce] and/or [graph] (config/syncd.example.toml)",
        )
    return Check("settings", "ok", f"vendors configured: {', '.join(configured)}")


def rules_check(loaded: LoadResult, rules_dir: Path) -> Check:
    errors = loaded.errors
    if errors:
        return Check(
            "rules",
            "fail",
            "\n".join(str(d) for d in errors),
            f"correct these in the rule files (`syncd check {rules_dir}`); the daemon refuses "
            "to start with them",
        )
    warnings = len(loaded.diagnostics)
    return Check(
        "rules",
        "ok",
        f"{len(loaded.ruleset.rules)} rule(s) in {len(loaded.files)} file(s) from {rules_dir}"
        + (f", {warnings} warning(s): see `syncd check`" if warnings else ""),
    )


def polled_check(loaded: LoadResult, settings: Settings) -> Check:
    """Every rule is on something a source polls: else it can never fire."""
    unpolled = unpolled_rules(loaded.ruleset, settings)
    if unpolled:
        fixes = sorted({u.fix for u in unpolled})
        return Check("polled", "fail", "\n".join(map(str, unpolled)), "; ".join(fixes))
    return Check("polled", "ok", "every rule is on something a source polls")


def secret_check(settings: Settings, system: str, credentials: Path | None) -> Check:
    """The vendor's secret files are present (their values are never shown)."""
    name = f"{system} secret"
    missing = missing_secrets(settings, system)
    if not missing:
        return Check(name, "ok", f"present in {credentials}")
    file = missing[0].split()[0]
    if credentials is None:
        return Check(
            name,
            "fail",
            f"missing {missing[0]}: no credentials directory",
            f"set [secrets] dir (or LoadCredential= under systemd) and put {file} there",
        )
    return Check(
        name,
        "fail",
        f"missing {missing[0]} in {credentials}",
        f"write the secret to {credentials / file} (one line, readable by root only)",
    )


def store_check(settings: Settings) -> Check:
    """The store opens and takes a write (rolled back). A SQLite file that does not exist yet
    is not created here: it is fine when syncd can create it on first start."""
    shown = shown_url(settings.syncd.store_url)
    database = sqlite_file(settings.syncd.store_url)
    fix = "point [syncd] state_dir / store_url at a directory the service can write"
    if database is not None:
        path = Path(database)
        if not path.exists():
            return _first_run(path, Path(settings.syncd.state_dir), fix)
    try:
        store = open_store(settings.syncd.store_url, max_attempts=settings.syncd.max_attempts)
        try:
            with store.read() as tx:  # rolled back when the block ends
                tx.meta.rewrite()
        finally:
            store.close()
    except STORE_ERRORS as exc:
        return Check("store", "fail", f"{shown}: {exc}".splitlines()[0], fix)
    return Check("store", "ok", f"{shown} opens and takes writes")


def _first_run(database: Path, state_dir: Path, fix: str) -> Check:
    directory = database.parent
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if not directory.exists() and directory != state_dir:  # syncd makes state_dir only
        return Check("store", "fail", f"directory {directory} does not exist", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check(
            "store",
            "fail",
            f"no database yet, and this user cannot create {database} ({existing} is read-only)",
            f"run doctor as the user syncd runs as (or root), or {fix}",
        )
    return Check("store", "ok", f"no database yet: syncd creates {database} on first start")


def clock_check(found: Mapping[str, Found]) -> Check:
    """Timers fire by this host's clock: it must agree with the vendors' `Date` headers."""
    skews = {system: seen.skew_s for system, seen in found.items() if seen.skew_s is not None}
    if not skews:
        return Check("clock", "skip", "not checked: no vendor answered")
    worst = max(skews, key=lambda s: abs(skews[s]))
    off = skews[worst]
    if abs(off) <= CLOCK_TOLERANCE_S:
        return Check("clock", "ok", f"within {abs(off):.0f} s of {', '.join(skews)}")
    side = "behind" if off > 0 else "ahead of"
    return Check(
        "clock",
        "fail",
        f"this host's clock is {abs(off):.0f} s {side} {worst}'s (tolerance "
        f"{CLOCK_TOLERANCE_S:.0f} s): timers would fire at the wrong time",
        "turn on time synchronisation (`timedatectl set-ntp true`, chrony or ntpd)",
    )
