"""What every daemon job shares: settings, clock, store, connectors and the current rules.

Built once per process (`open_runtime`); a SIGHUP swaps `engine` for a freshly compiled rule
set, so each job reads `runtime.engine` once at its start and keeps that rule set for its run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from syncd.clock import Clock
from syncd.connectors.base import Connector
from syncd.daemon import rulesets
from syncd.daemon.progress import FirstSyncProgress, Silent
from syncd.errors import Fatal
from syncd.files import private_dir
from syncd.logs import Redactor, get_logger, settings_secrets
from syncd.redact import install, redact
from syncd.rules.engine import DEFAULT_GRACE, Engine
from syncd.rules.language.diagnostics import Diagnostic
from syncd.rules.language.loader import load_rules
from syncd.settings import Settings
from syncd.store.db import Store, open_store
from syncd.vendors.registry import SYSTEM_OF_FAMILY

log = get_logger("syncd.daemon")

# settings section -> (module, class) of its connector, made from that section, [tls], [proxy]
CONNECTORS: dict[str, tuple[str, str]] = {
    "zendesk": ("syncd.connectors.zendesk", "ZendeskConnector"),
    "salesforce": ("syncd.connectors.salesforce", "SalesforceConnector"),
    "graph": ("syncd.connectors.graph", "GraphConnector"),
}


class RulesRefused(Fatal, RuntimeError):
    """The rules directory has errors; `diagnostics` says where (file:line:col)."""

    def __init__(self, rules_dir: Path, diagnostics: list[Diagnostic]) -> None:
        errors = [d for d in diagnostics if d.is_error]
        super().__init__(f"{rules_dir}: {len(errors)} rule error(s)")
        self.diagnostics = errors


def compile_rules(rules_dir: Path) -> Engine:
    """The engine for `rules_dir`; refuses a rule set with any error (warnings are logged)."""
    result = load_rules(rules_dir)
    if result.errors:
        raise RulesRefused(rules_dir, result.diagnostics)
    for diagnostic in result.diagnostics:
        log.warning("rules_warning", diagnostic=str(diagnostic))
    return Engine(result.ruleset)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: Store
    engine: Engine
    connectors: Mapping[str, Connector]
    dry_run: bool = False
    failures: list[str] = field(default_factory=list)  # this cycle's, for `run --once`
    # the rules directory was refused at start: the first error and which rules run instead
    rules_refused: str | None = None
    # whether a vendor call may go out now (the service: only while its leader lease is valid)
    may_send: Callable[[], bool] = lambda: True
    # a first sync's progress bar (`syncd run` on a terminal); else the log lines only
    progress: FirstSyncProgress = field(default_factory=Silent)

    @property
    def grace(self) -> timedelta:
        """How late a step may fire and still count as on time: one poll plus slack."""
        return DEFAULT_GRACE + timedelta(seconds=self.settings.syncd.poll_interval_s)

    @property
    def kill_switch(self) -> bool:
        return Path(self.settings.syncd.kill_switch_file).exists()

    def connector_for(self, kind: str) -> Connector | None:
        """The connector for a record kind (`zendesk.ticket` -> zendesk)."""
        return self.connectors.get(SYSTEM_OF_FAMILY.get(kind.split(".", 1)[0], ""))

    def fail(self, what: str) -> None:
        self.failures.append(redact(what))

    def close(self) -> None:
        self.progress.close()
        for connector in self.connectors.values():
            close = getattr(connector, "close", None)  # Graph keeps an httpx client open
            if close is not None:
                close()
        self.store.close()


def build_connectors(settings: Settings, clock: Clock) -> dict[str, Connector]:
    """A connector for every configured vendor section whose secrets are present."""
    found: dict[str, Connector] = {}
    for section, (module_name, class_name) in CONNECTORS.items():
        own = getattr(settings, section)
        if own is None:
            continue
        try:
            factory = getattr(importlib.import_module(module_name), class_name)
            found[section] = factory(own, clock, settings.tls, settings.proxy)
        except (ImportError, AttributeError, ValueError) as exc:
            log.warning("connector_unavailable", system=section, reason=str(exc))
    return found


def open_runtime(
    settings: Settings,
    clock: Clock,
    *,
    store_url: str | None = None,
    connectors: Mapping[str, Connector] | None = None,
    dry_run: bool = False,
) -> Runtime:
    """Compile the rules, open the store (creating the state directory unless another
    `store_url` is given: `plan`'s throwaway copy), build the connectors. The daemon's own
    store keeps the last accepted rule set, run when the rules directory is refused
    (rulesets.py)."""
    install(Redactor(settings_secrets(settings)))
    own = store_url is None
    if own:
        private_dir(Path(settings.syncd.state_dir))
    store = open_store(store_url or settings.syncd.store_url,
                       max_attempts=settings.syncd.max_attempts)
    try:
        engine, refused = _rules(settings, clock, store, fall_back=own)
    except BaseException:
        store.close()
        raise
    return Runtime(
        settings=settings,
        clock=clock,
        store=store,
        engine=engine,
        connectors=build_connectors(settings, clock) if connectors is None else connectors,
        dry_run=dry_run or settings.syncd.dry_run,
        rules_refused=refused,
    )


def _rules(settings: Settings, clock: Clock, store: Store, *, fall_back: bool
           ) -> tuple[Engine, str | None]:
    """The engine of the rules directory, saved as the last accepted; if it is refused, the
    engine of the last accepted rule set and why (RulesRefused when there is none)."""
    rules_dir = Path(settings.syncd.rules_dir)
    try:
        engine = compile_rules(rules_dir)
    except RulesRefused as refused:
        with store.read() as tx:
            saved = rulesets.last_accepted(tx) if fall_back else None
        if saved is None:
            raise
        for diagnostic in refused.diagnostics:
            log.error("rules_refused", diagnostic=str(diagnostic))
        copy = rulesets.restore(saved, Path(settings.syncd.state_dir) / "last-accepted-rules")
        first = str(refused.diagnostics[0]) if refused.diagnostics else str(refused)
        why = f"{first}; running the rules accepted {saved.at.isoformat()}"
        log.error("rules_fallback", rules_dir=str(rules_dir), accepted_at=saved.at.isoformat())
        return compile_rules(copy), why
    if fall_back:
        with store.transaction() as tx:
            rulesets.remember(tx, rules_dir, clock.now())
    return engine, None
