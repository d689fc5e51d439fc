"""`syncd store copy`: move the state database to another engine or server (SQLite to
PostgreSQL when an installation grows to two hosts), losing no timer, intent or rule set."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from syncd.store.copy import copy_store
from syncd.store.db import Store, StoreError, open_store

app = typer.Typer(no_args_is_help=True, help="The state database: copy it to another.")


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def _open(url: str, what: str) -> Store:
    try:
        return open_store(url)
    except (StoreError, SQLAlchemyError, ArgumentError) as exc:
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
        except (StoreError, SQLAlchemyError) as exc:
            typer.echo(f"error: copy to {_shown(destination)}: {str(exc).splitlines()[0]}",
                       err=True)  # fmt: skip
            raise typer.Exit(1) from None
        finally:
            dst.close()
    finally:
        src.close()
    rows = ", ".join(f"{table} {n}" for table, n in copied.rows.items())
    typer.echo(f"copied {_shown(source)} to {_shown(destination)}: {rows}")
