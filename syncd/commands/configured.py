"""The read-only commands' way into the state database: the configured store, opened as it
is (never created)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd.commands.output import fail
from syncd.logs import Redactor, settings_secrets
from syncd.redact import install
from syncd.settings import Settings, SettingsError, load_settings
from syncd.store.db import STORE_ERRORS, Store, open_store, shown_url, sqlite_file


@contextmanager
def configured_store(config: Path | None) -> Iterator[tuple[Settings, Store]]:
    """The settings and the store they name. A missing SQLite file is an error rather than
    created: an empty database made by an administrator's shell (possibly as root) would
    hide the real one's absence and could be unwritable for the service."""
    try:
        settings = load_settings(config)
    except SettingsError as exc:
        fail(str(exc))
    install(Redactor(settings_secrets(settings)))
    database = sqlite_file(settings.syncd.store_url)
    if database is not None and not Path(database).is_file():
        fail(
            f"no state database at {database}: syncd has not run with this configuration "
            "yet (see syncd.state_dir / syncd.store_url)"
        )
    try:
        store = open_store(settings.syncd.store_url, max_attempts=settings.syncd.max_attempts)
    except STORE_ERRORS as exc:
        fail(f"{shown_url(settings.syncd.store_url)}: {exc}")
    try:
        yield settings, store
    finally:
        store.close()
