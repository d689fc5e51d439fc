"""syncd: runs a support team's processes across Zendesk, Salesforce and SharePoint."""

from typing import Annotated

import typer

from syncd import __version__
from syncd.commands.audit import audit
from syncd.commands.check import check, schema
from syncd.commands.demo import demo
from syncd.commands.doctor import doctor
from syncd.commands.explain import explain
from syncd.commands.init import init
from syncd.commands.intents import intents
from syncd.commands.rehearse import rehearse_command
from syncd.commands.replay import replay_command
from syncd.commands.run import plan, run
from syncd.commands.sandbox import sandbox
from syncd.commands.silence import app as silence
from syncd.commands.store import app as store

app = typer.Typer(no_args_is_help=True, help=__doc__, rich_markup_mode="markdown")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"syncd {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Run support processes from YAML rules across Zendesk, Salesforce and SharePoint."""


app.command()(init)
app.command()(sandbox)
app.command()(check)
app.command()(schema)
app.command()(intents)
app.command()(audit)
app.command()(explain)
app.command()(run)
app.command()(plan)
app.command("replay")(replay_command)
app.command()(demo)
app.command("rehearse")(rehearse_command)
app.command()(doctor)
app.add_typer(silence, name="silence",
              help="Hold back a rule's actions for a while: add, list, expire (as amtool does).")
app.add_typer(store, name="store")

if __name__ == "__main__":
    app()
