"""`syncd store copy`: move the state database to another engine or server (SQLite to
PostgreSQL when an installation grows to two hosts), losing no timer, intent or rule set."""

from __future__ import annotations

from typing import Annotated

import typer

from syncd.store.copy import copy_store
from syncd.store.db import STORE_ERRORS, Store, open_store, shown_url

app = typer.Typer(no_args_is_help=True, help="The state database: copy it to another.")


def _shown(url: str) -> str:
    try:
        return shown_url(url)
    except STORE_ERRORS:  # the URL is not one
        return "(not a database URL)"


def _open(url: str, what: str) -> Store:
    try:
        return open_store(url)
    except STORE_ERRORS as exc:
        typer.echo(f"error: {what} {_shown(url)}: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(1) from None


@app.command("copy")
def copy(
    source: Annotated[str, typer.Option("--from", help="Database URL to read, e.g. sqlite:///var/lib/syncd/state.db")],
    destination: Annotated[str, typer.Option("--to", help="Empty database URL to fill, e.g. postgresql+psycopg://syncd@db/syncd")],
) -> None:
    """Copy every timer, intent, snapshot, cursor and the last accepted rule set into an empty
    database (created and migrated as needed). Stop syncd on the source first."""
    src = _open(source, "source")
    try:
        dst = _open(destination, "destination")
        try:
            copied = copy_store(src, dst)
        except STORE_ERRORS as exc:
            typer.echo(f"error: copy to {_shown(destination)}: {str(exc).splitlines()[0]}",
                       err=True)
            raise typer.Exit(1) from None
        finally:
            dst.close()
    finally:
        src.close()
    rows = ", ".join(f"{table} {n}" for table, n in copied.rows.items())
    typer.echo(f"copied {_shown(source)} to {_shown(destination)}: {rows}")
